/**
 * Gradient of the fused `GroupedQueryAttention` kernel, written analytically from public ops (the
 * tfjs fused matMul pattern): the probabilities are recomputed, then
 *   dV = Pᵀ·dO,  dP = dO·Vᵀ (+ dScores),  dS = P ∘ (dP − rowsum(dP ∘ P)),  dQ = scale·dS·K,  dK = dSᵀ·(scale·Q).
 * The G query heads of a group are folded into rows, (B,U,T,H) -> (B,V,G·T,H), so dK and dV sum over
 * the group with no K/V copies. No `tf.grads` here: a nested gradient run would reset the outer tape.
 */
import * as tf from '@tensorflow/tfjs-core';
import { compositeProbabilities } from './composite.js';
import { GroupedQueryAttention, type GroupedQueryAttentionAttrs } from './kernel_names.js';
import { combinedAdder, kernelMaskOf } from './masks.js';

function gradients(
  dy: tf.Tensor | tf.Tensor[],
  saved: tf.Tensor[],
  attrs: GroupedQueryAttentionAttrs,
): { query: () => tf.Tensor; key: () => tf.Tensor; value: () => tf.Tensor; mask: () => tf.Tensor } {
  const [query, key, value, maskInput] = saved as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
  const dOut = (Array.isArray(dy) ? dy[0] : dy) as tf.Tensor4D;
  const dScores = Array.isArray(dy) ? (dy[1] as tf.Tensor4D | undefined) : undefined;
  const [b, t, u, h] = query.shape;
  const [, s, v] = key.shape;
  const g = u / v;
  const mask = kernelMaskOf(attrs, maskInput);

  const grads = tf.tidy(() => {
    const adder = combinedAdder(mask, t, s, attrs);
    const p = compositeProbabilities(query, key, adder, attrs.scale); // (B,U,T,S)
    const pf = tf.reshape(p, [b, v, g * t, s]); // (B,V,G·T,S): the group folded into rows
    const fold = (x: tf.Tensor4D) => tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [b, v, g * t, h]); // (B,T,U,H) -> (B,V,G·T,H)
    const unfold = (x: tf.Tensor) => tf.transpose(tf.reshape(x, [b, u, t, h]), [0, 2, 1, 3]); // (B,V,G·T,H) -> (B,T,U,H)
    const heads = (x: tf.Tensor4D) => tf.transpose(x, [0, 2, 1, 3]); // (B,S,V,H) -> (B,V,S,H)
    const kh = heads(key);
    const vh = heads(value);
    const qs = fold(tf.mul(query, tf.scalar(attrs.scale)) as tf.Tensor4D); // scaled query, as in forward
    const dO = fold(dOut);

    const dV = tf.transpose(tf.matMul(pf, dO, true, false), [0, 2, 1, 3]); // (B,V,S,H) -> (B,S,V,H)
    let dP: tf.Tensor = tf.matMul(dO, vh, false, true); // (B,V,G·T,S)
    if (dScores != null) dP = tf.add(dP, tf.reshape(dScores, [b, v, g * t, s]));
    const dS = tf.mul(pf, tf.sub(dP, tf.sum(tf.mul(dP, pf), -1, true))); // softmax backward
    const dQ = tf.mul(unfold(tf.matMul(dS, kh)), tf.scalar(attrs.scale));
    const dK = tf.transpose(tf.matMul(dS, qs, true, false), [0, 2, 1, 3]); // (B,V,S,H) -> (B,S,V,H)
    return { dQ, dK, dV };
  });
  return {
    query: () => grads.dQ,
    key: () => grads.dK,
    value: () => grads.dV,
    mask: () => tf.zerosLike(maskInput),
  };
}

/** Registers the gradient once; called when the package is imported. */
export function registerGroupedQueryAttentionGradient(): void {
  if (tf.getGradient(GroupedQueryAttention) != null) return;
  tf.registerGradient({
    kernelName: GroupedQueryAttention,
    inputsToSave: ['query', 'key', 'value', 'mask'],
    gradFunc: (dy, saved, attrs) => gradients(dy, saved, attrs as unknown as GroupedQueryAttentionAttrs),
  });
}
