/**
 * The dropout keep-mask of the composite path as a tensor, from the shared hash of
 * src/engine/dropout_hash.ts (not `tf.dropout`), so that the composite reference, its gradient and
 * every fused kernel drop the same probabilities for the same seed.
 *
 * Shape letters: B batch · U query heads · T query length · S key length.
 */
import * as tf from '@tensorflow/tfjs-core';
import { dropoutKey, dropoutRowFactors } from '../engine/dropout_hash.js';

/**
 * (B, U, T, S) float32: 0 where probability (b, u, i, j) is dropped, `fround(1 / fround(1 − rate))`
 * where it is kept.
 */
export function dropoutKeepMask(
  shape: readonly [number, number, number, number],
  rate: number,
  seed: number,
): tf.Tensor4D {
  const [B, U, T, S] = shape;
  const values = new Float32Array(B * U * T * S);
  const key = dropoutKey(seed);
  for (let b = 0; b < B; b++) {
    for (let u = 0; u < U; u++) {
      for (let i = 0; i < T; i++) {
        const row = ((b * U + u) * T + i) * S;
        dropoutRowFactors(values.subarray(row, row + S), key, rate, b, u, i);
      }
    }
  }
  return tf.tensor4d(values, [B, U, T, S]);
}
