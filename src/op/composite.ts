/**
 * The composite attention path, built only from public tfjs ops in the order Keras 3.6 computes it
 * (keras/src/layers/attention/grouped_query_attention.py, `_compute_attention`):
 * repeat K/V heads, scale the query, Q·Kᵀ, add the mask, softmax, dropout, P·V.
 *
 * It is the oracle every fused kernel is tested against and the path taken on backends without a fused
 * kernel. Dropout multiplies the probabilities by a keep-mask built from the shared hash
 * (dropout_mask.ts), so the composite and the fused kernels drop the same entries for one seed.
 *
 * Shapes: query (B,T,U,H), key/value (B,S,V,H), adder broadcastable to (B,U,T,S); G = U / V.
 */
import * as tf from '@tensorflow/tfjs-core';
import { dropoutKeepMask } from './dropout_mask.js';

export interface CompositeOptions {
  scale: number;
  returnScores: boolean;
  dropout: number;
  training: boolean;
  /** u32 seed of the dropout hash (the op draws one when the caller gives none). */
  dropoutSeed: number;
}

/** Repeats each key/value head G times in a row (NumPy `repeat`, not `tile`): (B,S,V,H) -> (B,S,V·G,H). */
export function repeatHeads(x: tf.Tensor4D, groups: number): tf.Tensor4D {
  if (groups === 1) return x;
  const [b, s, v, h] = x.shape;
  // Rank 4 keeps tfjs's Tile gradient available (it stops at rank 4).
  const x4 = tf.reshape(x, [b * s, v, 1, h]); // (B·S,V,1,H)
  const tiled = tf.tile(x4, [1, 1, groups, 1]); // (B·S,V,G,H): head u = g·G + r reads kv head g
  return tf.reshape(tiled, [b, s, v * groups, h]) as tf.Tensor4D; // (B,S,U,H)
}

/** Attention probabilities (B,U,T,S) = softmax(scale·Q·Kᵀ + adder), Keras's order of rounding. */
export function compositeProbabilities(
  query: tf.Tensor4D,
  key: tf.Tensor4D,
  adder: tf.Tensor4D | null,
  scale: number,
): tf.Tensor4D {
  const groups = query.shape[2] / key.shape[2];
  const qs = tf.mul(query, tf.scalar(scale)); // Keras scales the query, not the logits
  const k = repeatHeads(key, groups); // (B,S,U,H)
  const qh = tf.transpose(qs, [0, 2, 1, 3]); // (B,U,T,H)
  const kt = tf.transpose(k, [0, 2, 3, 1]); // (B,U,H,S)
  let logits: tf.Tensor = tf.matMul(qh, kt); // (B,U,T,S)
  if (adder != null) logits = tf.add(logits, adder);
  return tf.softmax(logits) as tf.Tensor4D;
}

/** Output (B,T,U,H) and, when asked, the pre-dropout probabilities (B,U,T,S). */
export function compositeAttention(
  query: tf.Tensor4D,
  key: tf.Tensor4D,
  value: tf.Tensor4D,
  adder: tf.Tensor4D | null,
  options: CompositeOptions,
): [tf.Tensor4D, tf.Tensor4D | null] {
  const groups = query.shape[2] / key.shape[2];
  const probs = compositeProbabilities(query, key, adder, options.scale);
  const dropped =
    options.training && options.dropout > 0
      ? tf.mul(probs, dropoutKeepMask(probs.shape, options.dropout, options.dropoutSeed))
      : probs;
  const v = tf.transpose(repeatHeads(value, groups), [0, 2, 1, 3]); // (B,U,S,H)
  const o = tf.matMul(dropped, v); // (B,U,T,H)
  const output = tf.transpose(o, [0, 2, 1, 3]) as tf.Tensor4D; // (B,T,U,H)
  return [output, options.returnScores ? probs : null];
}
