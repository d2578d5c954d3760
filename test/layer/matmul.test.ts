/**
 * matMul2d, the projections' product: the same forward values as tf.matMul, bit for bit; gradients
 * equal to tfjs's own matMul gradient (float32 rounding) and to float64 sums; no tensor left behind
 * by a forward + backward; a clear error for operands that are not (M,K)·(K,N).
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, test } from 'vitest';
import { matMul2d } from '../../src/index.js';
import { BACKENDS, useBackend } from '../helpers/backends.js';
import { expectClose } from '../helpers/close.js';
import { rng, uniform } from '../property/random.js';

describe.each(BACKENDS)('matMul2d on %s', (backend) => {
  beforeAll(() => useBackend(backend));

  test.each([[1, 1, 1], [7, 5, 3], [37, 16, 29], [130, 64, 40]])('(M,K,N) = (%i,%i,%i): forward and gradients', (m, k, n) => {
    const r = rng(m * 1000 + k * 10 + n);
    const a = uniform(r, m * k, 1);
    const b = uniform(r, k * n, 1);
    const dy = uniform(r, m * n, 1);
    const before = tf.memory().numTensors;
    const [ours, theirs] = tf.tidy(() => {
      const at = tf.tensor2d(a, [m, k]);
      const bt = tf.tensor2d(b, [k, n]);
      const dyt = tf.tensor2d(dy, [m, n]);
      // The loss sum(y ∘ dY) makes dY the product's incoming gradient.
      const grads = (f: (x: tf.Tensor2D, w: tf.Tensor2D) => tf.Tensor) =>
        tf.grads((x: tf.Tensor, w: tf.Tensor) => tf.sum(tf.mul(f(x as tf.Tensor2D, w as tf.Tensor2D), dyt)))([at, bt]);
      return [
        [matMul2d(at, bt), ...grads(matMul2d)].map((t) => t.dataSync()),
        [tf.matMul(at, bt), ...grads((x, w) => tf.matMul(x, w))].map((t) => t.dataSync()),
      ];
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(Array.from(ours[0]!)).toEqual(Array.from(theirs[0]!)); // forward: tf.matMul itself
    expectClose(ours[1]!, theirs[1]!, 'dA vs tf.matMul gradient', 1e-5, 1e-5);
    expectClose(ours[2]!, theirs[2]!, 'dB vs tf.matMul gradient', 1e-5, 1e-5);
    // float64: dA = dY·Bᵀ, dB = Aᵀ·dY.
    const dA = new Float64Array(m * k);
    const dB = new Float64Array(k * n);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        const g = dy[i * n + j]!;
        for (let p = 0; p < k; p++) {
          dA[i * k + p]! += g * b[p * n + j]!;
          dB[p * n + j]! += a[i * k + p]! * g;
        }
      }
    }
    expectClose(ours[1]!, dA, 'dA vs float64', 1e-5, 1e-5);
    expectClose(ours[2]!, dB, 'dB vs float64', 1e-5, 1e-5);
  });

  test('operands that are not (M,K)·(K,N) are refused before any work, naming the shapes', () => {
    const before = tf.memory().numTensors;
    const a = tf.zeros([2, 3]);
    const b = tf.zeros([4, 5]);
    const c = tf.zeros([1, 3, 4]);
    expect(() => matMul2d(a as tf.Tensor2D, b as tf.Tensor2D)).toThrow('matMul2d: a must be (M,K) and b (K,N); received a of shape [2,3] and b of shape [4,5]');
    expect(() => matMul2d(a as tf.Tensor2D, c as unknown as tf.Tensor2D)).toThrow('b of shape [1,3,4]');
    tf.dispose([a, b, c]);
    expect(tf.memory().numTensors).toBe(before);
  });
});
