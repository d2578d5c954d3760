/**
 * The op's mask rule applied to tensors, for the op, its composite path, its gradient and the kernel
 * hosts (the rule itself, with no tfjs, is in mask_rule.ts): masks expanded to rank 4, the kernel
 * form of a user mask, the causal/window mask as a tensor, and Keras's additive form
 * `(1 - mask) * -1e9` in float32 (docs/keras-3.6-behaviour.md §4–§6).
 *
 * Shape letters: B batch · T query length · S key length · U query heads.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  LARGE_NEGATIVE,
  maskKindOf,
  maskShapeRank4,
  type MaskKind,
  type PositionMaskOptions,
} from './mask_rule.js';

/** A mask ready for a kernel: rank 4, broadcastable to (B, U, T, S), and how to apply it. */
export interface KernelMask {
  /** 'bool': true allows; 'additive': float32 values added to the scaled logits. */
  kind: 'bool' | 'additive';
  mask: tf.Tensor4D;
}

/** {@link maskShapeRank4} applied to a tensor: a rank-4 view of the mask. */
export function expandMaskToRank4(
  mask: tf.Tensor,
  scoresShape: readonly [number, number, number, number],
  where: string,
  argName: string,
): tf.Tensor4D {
  return tf.reshape(mask, maskShapeRank4(mask.shape, scoresShape, where, argName)) as tf.Tensor4D;
}

/**
 * The kernel's mask input as a {@link KernelMask}, or null when `maskKind` is 'none' (the input is
 * then a placeholder) — for the kernel-side paths that rebuild the mask from a kernel call.
 */
export function kernelMaskOf(attrs: { maskKind: MaskKind }, mask: tf.Tensor4D | null | undefined): KernelMask | null {
  return attrs.maskKind === 'none' || mask == null ? null : { kind: attrs.maskKind, mask };
}

/**
 * Turns a user mask into the kernel form by {@link maskKindOf}'s rule: bool stays bool, numeric
 * becomes bool (nonzero allows) next to a causal or window mask, else the additive
 * `(1 - mask) * -1e9` (Keras 3.6's non-binary mask quirk, docs/keras-3.6-behaviour.md §5).
 */
export function normalizeMask(mask4: tf.Tensor4D, positional: PositionMaskOptions): KernelMask {
  if (mask4.dtype === 'bool') return { kind: 'bool', mask: mask4 };
  if (maskKindOf(mask4.dtype, positional) === 'bool') {
    return { kind: 'bool', mask: tf.notEqual(mask4, tf.scalar(0, mask4.dtype)) as tf.Tensor4D };
  }
  return { kind: 'additive', mask: maskAdder(mask4) };
}

/** Keras's additive form of a mask: `(1 - float(mask)) * -1e9` in float32. */
export function maskAdder(mask: tf.Tensor4D): tf.Tensor4D {
  const m = tf.cast(mask, 'float32');
  return tf.mul(tf.sub(tf.scalar(1), m), tf.scalar(LARGE_NEGATIVE)) as tf.Tensor4D;
}

/**
 * The causal and sliding-window masks as a bool (1, 1, T, S) tensor, or null when neither is on.
 * Query row i sits at absolute position p = queryOffset + i; causal allows keys j <= p and the
 * window allows |p - j| < slidingWindow.
 */
export function positionMask(
  queryLength: number,
  keyLength: number,
  { causal, queryOffset, slidingWindow }: PositionMaskOptions,
): tf.Tensor4D | null {
  if (!causal && slidingWindow <= 0) return null;
  return tf.tidy(() => {
    const p = tf.reshape(tf.range(queryOffset, queryOffset + queryLength, 1, 'int32'), [queryLength, 1]); // (T,1)
    const j = tf.reshape(tf.range(0, keyLength, 1, 'int32'), [1, keyLength]); // (1,S)
    let allowed: tf.Tensor | null = causal ? tf.greaterEqual(p, j) : null;
    if (slidingWindow > 0) {
      const band = tf.less(tf.abs(tf.sub(p, j)), tf.scalar(slidingWindow, 'int32'));
      allowed = allowed == null ? band : tf.logicalAnd(allowed, band);
    }
    return tf.reshape(allowed!, [1, 1, queryLength, keyLength]) as tf.Tensor4D; // (1,1,T,S)
  });
}

/**
 * The float32 adder a kernel-less path adds to the scaled logits: the user mask AND-ed with the
 * causal/window mask, as `(1 - mask) * -1e9`; null when nothing is masked.
 */
export function combinedAdder(
  mask: KernelMask | null,
  queryLength: number,
  keyLength: number,
  positional: PositionMaskOptions,
): tf.Tensor4D | null {
  const pos = positionMask(queryLength, keyLength, positional);
  if (mask == null) return pos == null ? null : maskAdder(pos);
  if (mask.kind === 'additive') {
    // normalizeMask never pairs an additive mask with positional masks.
    return mask.mask;
  }
  return maskAdder(pos == null ? mask.mask : (tf.logicalAnd(mask.mask, pos) as tf.Tensor4D));
}
