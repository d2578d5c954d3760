/**
 * denseProduct, the projections' product: forward values bit for bit those of the composition
 * reshape·matMul·add; gradients equal to tfjs autodiff of that composition (float32 rounding) and to
 * float64 sums; with and without bias, one or two contracted axes; nothing left behind by a forward +
 * backward; a clear error, before any work, for operands that do not fit.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, test } from 'vitest';
import { denseProduct } from '../../src/index.js';
import { BACKENDS, useBackend } from '../helpers/backends.js';
import { expectClose } from '../helpers/close.js';
import { rng, uniform } from '../property/random.js';

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** tfjs's own composition (taped op by op): (…lead, …contracted) · (…contracted, …out) + bias. */
function composed(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor | null, axes = 1): tf.Tensor {
  const lead = x.shape.slice(0, x.rank - axes);
  const out = w.shape.slice(axes);
  const k = size(w.shape.slice(0, axes));
  let y = tf.matMul(tf.reshape(x, [size(lead), k]), tf.reshape(w, [k, size(out)])); // (M,K)·(K,N)
  if (b != null) y = tf.add(y, tf.reshape(b, [size(out)]));
  return tf.reshape(y, [...lead, ...out]); // (M,N) -> (…lead, …out)
}

describe.each(BACKENDS)('denseProduct on %s', (backend) => {
  beforeAll(() => useBackend(backend));

  const cases: Array<[string, number[], number[], number, boolean]> = [
    ['1×1 dense', [1, 1], [1, 1], 1, true],
    ['2-D dense', [7, 5], [5, 3], 1, true],
    ['(B,T,D)·(D,N) without bias', [3, 13, 16], [16, 29], 1, false],
    ['(B,T,D)·(D,U,H)', [2, 65, 64], [64, 4, 16], 1, true],
    ['(B,T,U,H)·(U,H,D)', [2, 33, 4, 8], [4, 8, 40], 2, true],
  ];
  test.each(cases)('%s: forward and gradients', (_, xShape, wShape, axes, withBias) => {
    const outShape = wShape.slice(axes);
    const yShape = [...xShape.slice(0, xShape.length - axes), ...outShape];
    const r = rng(size(xShape) + size(wShape));
    const xv = uniform(r, size(xShape), 1);
    const wv = uniform(r, size(wShape), 1);
    const bv = uniform(r, size(outShape), 1);
    const dyv = uniform(r, size(yShape), 1);
    const before = tf.memory().numTensors;
    const [ours, theirs] = tf.tidy(() => {
      const x = tf.tensor(xv, xShape);
      const w = tf.tensor(wv, wShape);
      const b = withBias ? tf.tensor(bv, outShape) : null;
      const dy = tf.tensor(dyv, yShape);
      const inputs = b ? [x, w, b] : [x, w];
      // The loss sum(y ∘ dY) makes dY the product's incoming gradient.
      const run = (f: typeof denseProduct) => [
        f(x, w, b, axes),
        ...tf.grads((...t: tf.Tensor[]) => tf.sum(tf.mul(f(t[0]!, t[1]!, t[2] ?? null, axes), dy)))(inputs),
      ].map((t) => t.dataSync());
      return [run(denseProduct), run(composed)];
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(Array.from(ours[0]!), 'forward: the composition itself').toEqual(Array.from(theirs[0]!));
    ours.slice(1).forEach((g, i) => expectClose(g, theirs[i + 1]!, `gradient ${i} vs tfjs autodiff`, 1e-5, 1e-5));
    // float64: dX = dY·Wᵀ, dW = Xᵀ·dY, db = Σ dY over rows, on the flattened (M,K)·(K,N).
    const n = size(outShape);
    const k = size(wShape.slice(0, axes));
    const m = size(xShape) / k;
    const [dX, dW, dB] = [new Float64Array(m * k), new Float64Array(k * n), new Float64Array(n)];
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        const g = dyv[i * n + j]!;
        dB[j]! += g;
        for (let p = 0; p < k; p++) {
          dX[i * k + p]! += g * wv[p * n + j]!;
          dW[p * n + j]! += xv[i * k + p]! * g;
        }
      }
    }
    expectClose(ours[1]!, dX, 'dX vs float64', 1e-5, 1e-5);
    expectClose(ours[2]!, dW, 'dW vs float64', 1e-5, 1e-5);
    if (withBias) expectClose(ours[3]!, dB, 'db vs float64', 1e-5, 1e-5);
  });

  test('operands that do not fit are refused before any work, naming the shapes', () => {
    const x = tf.zeros([2, 3]);
    const w = tf.zeros([4, 5]);
    const w3 = tf.zeros([3, 2, 5]);
    const before = tf.memory().numTensors;
    expect(() => denseProduct(x, w, null)).toThrow(
      'denseProduct: the last 1 axes of x must equal the first of kernel; received x of shape [2,3] and kernel of shape [4,5]');
    expect(() => denseProduct(x, w3, null, 2)).toThrow('received x of shape [2,3] and kernel of shape [3,2,5]');
    expect(() => denseProduct(x, w3, null, 3)).toThrow('the last 3 axes');
    expect(() => denseProduct(x, w3, tf.zeros([5]))).toThrow("denseProduct: bias must have the kernel's output shape [2,5]; received [5]");
    expect(tf.memory().numTensors).toBe(before + 1); // the inline bias is the caller's
    tf.dispose([x, w, w3]);
  });
});
