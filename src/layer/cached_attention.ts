/**
 * What a layer call with a KV cache adds to an ordinary call: checks of the cache and of the masks'
 * shapes, and the cache's key-mask bits. The mask rule itself is the layer's one
 * (`computeAttentionMask`, Keras's `_compute_attention_mask`) and the attention is the op's one
 * dispatch (`groupedQueryAttention` with its `cache` option), exactly as in an uncached call.
 *
 * Shape letters: B batch · T positions of this call · L positions the cache holds · S = L + T.
 *
 * With a cache, the value and key masks cover this call's T positions, (B, T); the cache remembers
 * them (AND-ed) as its key-mask bits, so later calls see the earlier positions masked as the call
 * that wrote them said. Query masks cover this call's queries, (B, T); an attention mask broadcasts to
 * (B, U, T, S). The causal mask is aligned bottom-right: the query at absolute position L + i sees keys
 * 0..L+i.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { check, formatShape } from '../errors.js';
import { checkLayerMasks } from './attention_mask.js';

export interface CachedCallMasks {
  queryMask: tf.Tensor | null;
  valueMask: tf.Tensor | null;
  keyMask: tf.Tensor | null;
  attentionMask: tf.Tensor | null;
}

/** Checks the masks of a cached call with B = `batch`, T = `t`, S = `keyLength`, before any work. */
export function checkCachedMasks(
  where: string,
  masks: CachedCallMasks,
  batch: number,
  t: number,
  keyLength: number,
  numQueryHeads: number,
): void {
  for (const [name, m] of [['valueMask', masks.valueMask], ['keyMask', masks.keyMask]] as const) {
    if (m == null) continue;
    check(m.rank === 2 && m.shape[0] === batch && m.shape[1] === t, where, () =>
      `${name} must have shape (B, T) = ${formatShape([batch, t])} with a cache (it covers this call's ` +
      `positions); received ${formatShape(m.shape)}`);
  }
  // The value/key masks are checked above; the rest as in an uncached call over S = L + T keys.
  checkLayerMasks(where, { queryMask: masks.queryMask, attentionMask: masks.attentionMask }, batch, t, keyLength,
    numQueryHeads);
}

/**
 * The key-mask bits of this call's positions, (B, T): the value and key masks AND-ed (nonzero
 * attends, as Keras casts them to bool), or null when neither is given.
 */
export function newKeyBits(masks: CachedCallMasks): Uint8Array | null {
  let bits: Uint8Array | null = null;
  for (const m of [masks.valueMask, masks.keyMask]) {
    if (m == null) continue;
    const data = m.dataSync();
    if (bits == null) bits = new Uint8Array(data.length).fill(1);
    for (let i = 0; i < data.length; i++) if (data[i] === 0) bits[i] = 0;
  }
  return bits;
}
