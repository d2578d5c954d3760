/**
 * A 2-D matrix product whose gradient is two more plain 2-D products.
 *
 * tfjs's own `matMul` gradient asks for transposed operands (`dA = dY·Bᵀ`, `dB = Aᵀ·dY` as
 * `matMul(dY, B, false, true)` and `matMul(A, dY, true, false)`). tfjs-wasm hands a product to
 * XNNPACK only when it is un-batched and neither operand is transposed; every other product runs a
 * scalar triple loop, 10–30× slower. Here the transposes are explicit `tf.transpose` copies (O(M·K)
 * next to the O(M·K·N) product) and the three products take the fast path. The forward is
 * `tf.matMul(a, b)` itself, so outputs are bit for bit those of `tf.matMul`; the gradients agree with
 * tfjs's to float32 rounding (another summation order).
 *
 * Shape letters: M rows of `a` · K inner size · N columns of `b`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { check, formatShape } from '../errors.js';

const product = tf.customGrad((a, b, save) => {
  const x = a as tf.Tensor2D;
  const w = b as tf.Tensor2D;
  (save as tf.GradSaveFunc)([x, w]);
  return {
    value: tf.matMul(x, w), // (M,K)·(K,N) -> (M,N)
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
      return [
        tf.matMul(dy as tf.Tensor2D, tf.transpose(ws)), // dA = dY·Bᵀ: (M,N)·(N,K) -> (M,K)
        tf.matMul(tf.transpose(xs), dy as tf.Tensor2D), // dB = Aᵀ·dY: (K,M)·(M,N) -> (K,N)
      ];
    },
  };
});

/**
 * `tf.matMul(a, b)` for 2-D `a` (M,K) and `b` (K,N), with a gradient made of un-transposed 2-D
 * products, the only ones tfjs-wasm runs on XNNPACK. Same forward values as `tf.matMul`; use it for
 * dense layers trained on the wasm backend (the layer's projections use it).
 *
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import '@tensorflow/tfjs-backend-cpu';
 * import { matMul2d } from 'grouped-query-attention';
 *
 * const x = tf.tensor2d([[1, 2], [3, 4]]);
 * const w = tf.variable(tf.tensor2d([[1, 0, 2], [0, 1, 3]]));
 * const { grads } = tf.variableGrads(() => tf.sum(matMul2d(x, w)) as tf.Scalar, [w]);
 * console.log(grads[w.name]!.arraySync()); // [[4, 4, 4], [6, 6, 6]], as with tf.matMul
 * ```
 */
export function matMul2d(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  check(a.rank === 2 && b.rank === 2 && a.shape[1] === b.shape[0], 'matMul2d', () =>
    `a must be (M,K) and b (K,N); received a of shape ${formatShape(a.shape)} and b of shape ${formatShape(b.shape)}`);
  return product(a, b) as tf.Tensor2D;
}
