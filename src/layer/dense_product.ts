/**
 * A dense projection, `x·kernel + bias` contracting the last axes of x with the first axes of the
 * kernel (Keras's EinsumDense for `...a,ab->...b` and `...ab,abc->...c`), taped as ONE op whose
 * gradient is plain 2-D products.
 *
 * Why one op: tfjs's own `matMul` gradient asks for transposed operands (`dA = dY·Bᵀ`,
 * `dB = Aᵀ·dY` as `matMul(dY, B, false, true)` and `matMul(A, dY, true, false)`), and tfjs-wasm hands
 * a product to XNNPACK only when it is un-batched and neither operand is transposed: every other
 * product runs a scalar triple loop, 10–30× slower. Here the transposes are explicit `tf.transpose`
 * copies (O(M·K) next to the O(M·K·N) product), so all three products take the fast path. And tfjs
 * saves a copy of every taped op's saved inputs (a reshape saves its input only to know its shape):
 * as one op, the projection saves x and the kernel once and none of its reshapes.
 *
 * The forward is the same ops as `tf.matMul` of the flattened operands plus the bias, so its values
 * are bit for bit those of the composition; the gradients agree with tfjs's to float32 rounding
 * (another summation order).
 *
 * Shape letters: M rows (the product of x's leading axes) · K contracted size · N output size.
 */
import * as tf from '@tensorflow/tfjs-core';
import { check, formatShape } from '../errors.js';

/**
 * `x·kernel + bias`: the last `axes` axes of `x` contract with the first `axes` axes of `kernel`;
 * the result has x's leading axes then the kernel's remaining axes, and `bias` (null for none) has
 * the kernel's remaining shape. With `axes = 1` and a 2-D kernel it is a dense layer; the layer's
 * query/key/value projections are (B,T,D)·(D,U,H) -> (B,T,U,H) and its output projection, with
 * `axes = 2`, (B,T,U,H)·(U,H,D) -> (B,T,D). The gradient runs as un-transposed 2-D products, the
 * only ones tfjs-wasm runs fast, and no reshape is taped.
 *
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import '@tensorflow/tfjs-backend-cpu';
 * import { denseProduct } from 'grouped-query-attention';
 *
 * const x = tf.tensor3d([[[1, 2], [3, 4]]]); // (1, 2, 2)
 * const kernel = tf.variable(tf.tensor2d([[1, 0, 2], [0, 1, 3]])); // (2, 3)
 * const bias = tf.variable(tf.tensor1d([0, 0, 1]));
 * console.log(denseProduct(x, kernel, bias).arraySync()); // [[[1, 2, 9], [3, 4, 19]]]
 * const { grads } = tf.variableGrads(() => tf.sum(denseProduct(x, kernel, bias)) as tf.Scalar, [kernel]);
 * console.log(grads[kernel.name]!.arraySync()); // [[4, 4, 4], [6, 6, 6]], as with tf.matMul
 * ```
 */
export function denseProduct(x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor | null, axes = 1): tf.Tensor {
  const lead = x.shape.slice(0, x.rank - axes);
  const contracted = kernel.shape.slice(0, axes);
  const out = kernel.shape.slice(axes);
  check(
    Number.isInteger(axes) && axes >= 1 && axes < kernel.rank && axes <= x.rank &&
      tf.util.arraysEqual(x.shape.slice(x.rank - axes), contracted),
    'denseProduct',
    () => `the last ${axes} axes of x must equal the first of kernel; received x of shape ${formatShape(x.shape)} and kernel of shape ${formatShape(kernel.shape)}`,
  );
  check(bias == null || tf.util.arraysEqual(bias.shape, out), 'denseProduct', () =>
    `bias must have the kernel's output shape ${formatShape(out)}; received ${formatShape(bias!.shape)}`);
  const [m, k, n] = [lead, contracted, out].map((shape) => tf.util.sizeFromShape(shape)) as [number, number, number];
  const product = (xs: tf.Tensor, ws: tf.Tensor, save: tf.GradSaveFunc) => {
    const x2 = tf.reshape(xs, [m, k]); // (...lead, ...contracted) -> (M,K)
    const w2 = tf.reshape(ws, [k, n]); // (...contracted, ...out) -> (K,N)
    save([x2, w2]);
    return tf.matMul(x2, w2); // (M,K)·(K,N) -> (M,N)
  };
  const gradients = (dy: tf.Tensor, saved: tf.Tensor[]) => {
    const [x2, w2] = saved as [tf.Tensor2D, tf.Tensor2D];
    const dy2 = tf.reshape(dy, [m, n]) as tf.Tensor2D; // (...lead, ...out) -> (M,N)
    return {
      dx: tf.reshape(tf.matMul(dy2, tf.transpose(w2)), x.shape), // dY·Wᵀ: (M,N)·(N,K) -> (M,K) -> x's shape
      dw: tf.reshape(tf.matMul(tf.transpose(x2), dy2), kernel.shape), // Xᵀ·dY: (K,M)·(M,N) -> (K,N) -> kernel's shape
      db: () => tf.reshape(tf.sum(dy2, 0), out), // rows summed: (M,N) -> (N) -> bias's shape
    };
  };
  const shape = [...lead, ...out];
  if (bias == null) {
    return tf.customGrad((xs, ws, save) => ({
      value: tf.reshape(product(xs as tf.Tensor, ws as tf.Tensor, save as tf.GradSaveFunc), shape), // (M,N) -> (...lead, ...out)
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const { dx, dw } = gradients(dy, saved);
        return [dx, dw];
      },
    }))(x, kernel);
  }
  return tf.customGrad((xs, ws, bs, save) => ({
    // Keras adds the bias after the product.
    value: tf.reshape(tf.add(product(xs as tf.Tensor, ws as tf.Tensor, save as tf.GradSaveFunc), tf.reshape(bs as tf.Tensor, [n])), shape), // (M,N) -> (...lead, ...out)
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const { dx, dw, db } = gradients(dy, saved);
      return [dx, dw, db()];
    },
  }))(x, kernel, bias);
}
