/**
 * Attention masks of every kind the op tests sweep, for query (b, t, u) against s keys, drawn from
 * `seed` (bool masks keep about 70% of the keys).
 */
import * as tf from '@tensorflow/tfjs-core';

export type MaskKind =
  | 'none'
  | 'BTS'
  | 'TS'
  | 'B1S'
  | 'BUTS'
  | '1TS'
  | 'numeric'
  | 'numeric+causal'
  | 'fullyMaskedRows'
  | 'additive-1e9';

/** The mask of `kind` (null for 'none'); 'numeric+causal' is the numeric mask, to be used with `causal: true`. */
export function makeMask(kind: MaskKind, b: number, u: number, t: number, s: number, seed: number): tf.Tensor | null {
  const bits = (shape: number[]) => tf.less(tf.randomUniform(shape, 0, 1, 'float32', seed), 0.7);
  switch (kind) {
    case 'none':
      return null;
    case 'BTS':
      return bits([b, t, s]);
    case 'TS':
      return bits([t, s]);
    case 'B1S':
      return bits([b, 1, s]);
    case '1TS':
      return bits([1, t, s]);
    case 'BUTS':
      return bits([b, u, t, s]);
    case 'numeric':
    case 'numeric+causal':
      // Keras 3.6's quirk: 2 attracts attention, 0.5 half-masks, 0 masks.
      return tf.floor(tf.randomUniform([b, t, s], 0, 3, 'float32', seed));
    case 'additive-1e9':
      // Numeric 0/1 mask without causal: additive (1 − m)·−1e9; some rows are all −1e9.
      return tf.tidy(() => tf.mul(tf.cast(bits([b, t, s]), 'float32'), tf.reshape(tf.tensor1d(Array.from({ length: t }, (_, i) => (i === 0 ? 0 : 1))), [1, t, 1])));
    case 'fullyMaskedRows': {
      // Every row of query position 0 has no allowed key.
      const m = tf.buffer([b, t, s], 'bool');
      for (let i = 0; i < b; i++) for (let j = 1; j < t; j++) for (let k = 0; k < s; k++) m.set((j + k) % 3 !== 0, i, j, k);
      return m.toTensor();
    }
  }
}
