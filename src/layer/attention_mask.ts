/**
 * The layer's mask rule, Keras's `_compute_attention_mask` (grouped_query_attention.py @ v3.6.0;
 * docs/keras-3.6-behaviour.md §4): the query, value and key masks are cast to bool and AND-ed,
 * broadcast as (B,T,1) & (B,1,S), then AND-ed with the explicit attention mask cast to bool. Without
 * any of them the explicit mask is returned unchanged (a numeric mask then acts numerically, §5). The
 * causal and sliding-window masks are AND-ed by the attention op itself (op/masks.ts), which gives
 * the same result. Calls with a KV cache use this same rule, the cache's key-mask bits standing for
 * the value/key masks of the positions it holds.
 */
import * as tf from '@tensorflow/tfjs-core';
import { check, formatShape } from '../errors.js';
import { maskShapeRank4 } from '../op/mask_rule.js';

export interface LayerMasks {
  queryMask?: tf.Tensor | null | undefined;
  valueMask?: tf.Tensor | null | undefined;
  keyMask?: tf.Tensor | null | undefined;
  attentionMask?: tf.Tensor | null | undefined;
}

/** NumPy broadcast of two shapes (right-aligned), or null when they don't broadcast. */
export function broadcastShapes(a: readonly number[], b: readonly number[]): number[] | null {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) return null;
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** Checks that every mask is a bool or numeric tensor (Keras casts them to bool), before any work. */
export function checkMaskDtypes(where: string, masks: LayerMasks): void {
  for (const [name, m] of Object.entries(masks) as Array<[string, tf.Tensor | null | undefined]>) {
    check(m == null || (m.dtype !== 'string' && m.dtype !== 'complex64'), where, () =>
      `${name} must be a bool or numeric tensor; received dtype ${m!.dtype}`);
  }
}

/** Checks every mask's shape before any work, naming the mask and both shapes on failure. */
export function checkLayerMasks(
  where: string,
  masks: LayerMasks,
  batch: number,
  t: number,
  s: number,
  numQueryHeads: number,
): void {
  const seq = [
    ['queryMask', masks.queryMask, t, 'T'],
    ['valueMask', masks.valueMask, s, 'S'],
    ['keyMask', masks.keyMask, s, 'S'],
  ] as const;
  let auto: number[] | null = null;
  for (const [name, m, len, letter] of seq) {
    if (m == null) continue;
    check(m.rank === 2 && (m.shape[0] === batch || m.shape[0] === 1) && (m.shape[1] === len || m.shape[1] === 1),
      where, () => `${name} must have shape (B, ${letter}) = ${formatShape([batch, len])}; received ${formatShape(m.shape)}`);
    const as3 = name === 'queryMask' ? [m.shape[0]!, m.shape[1]!, 1] : [m.shape[0]!, 1, m.shape[1]!];
    auto = auto == null ? as3 : broadcastShapes(auto, as3);
  }
  const attn = masks.attentionMask;
  if (attn != null && auto != null) {
    const both = broadcastShapes(auto, attn.shape);
    check(both != null, where, () =>
      `attentionMask of shape ${formatShape(attn.shape)} does not broadcast with the query/value/key masks ` +
      `combined as ${formatShape(auto!)} (Keras AND-s them right-aligned)`);
  }
  // The effective mask must then broadcast into the (B, U, T, S) scores.
  const effective = attn == null ? auto : auto == null ? attn.shape : broadcastShapes(auto, attn.shape);
  if (effective != null) {
    const name = attn == null ? 'the query/value/key masks combined' : 'attentionMask';
    maskShapeRank4(effective, [batch, numQueryHeads, t, s], where, name);
  }
}

/**
 * The effective attention mask, or null. Bool whenever a query/value/key mask exists; otherwise the
 * explicit attention mask exactly as given.
 */
export function computeAttentionMask(masks: LayerMasks): tf.Tensor | null {
  const { queryMask, valueMask, keyMask, attentionMask } = masks;
  const toBool = (m: tf.Tensor) => (m.dtype === 'bool' ? m : tf.notEqual(m, tf.scalar(0, m.dtype)));
  let auto: tf.Tensor | null = null;
  const and = (m: tf.Tensor) => {
    auto = auto == null ? m : tf.logicalAnd(auto, m);
  };
  if (queryMask != null) and(tf.expandDims(toBool(queryMask), -1)); // (B,T) -> (B,T,1)
  if (valueMask != null) and(tf.expandDims(toBool(valueMask), -2)); // (B,S) -> (B,1,S)
  if (keyMask != null) and(tf.expandDims(toBool(keyMask), -2)); // (B,S) -> (B,1,S)
  if (auto == null) return attentionMask ?? null;
  return attentionMask == null ? auto : tf.logicalAnd(toBool(attentionMask), auto);
}
