/**
 * The op's mask rule, once, for the op, its composite path, its gradient and the kernel hosts,
 * following Keras 3.6 (docs/keras-3.6-behaviour.md §4–§6): masks are expanded to rank 4 with
 * `expand_dims(axis=-3)`, must broadcast into the (B, U, T, S) scores without enlarging them, and are
 * applied additively as `(1 - mask) * -1e9` in float32.
 *
 * Shape letters: B batch · T query length · S key length · U query heads.
 *
 * One name for one concept: a query row whose keys are all masked is a "row with no allowed key"
 * (§6); it is not zero, and only bool and positional (causal, window) masks can make one.
 */
import * as tf from '@tensorflow/tfjs-core';
import { check, formatShape } from '../errors.js';
import type { GroupedQueryAttentionAttrs } from './kernel_names.js';

/** Keras's large negative for float32 scores (`Softmax` in keras/src/layers/activations/softmax.py). */
export const LARGE_NEGATIVE = -1e9;

/** A mask ready for a kernel: rank 4, broadcastable to (B, U, T, S), and how to apply it. */
export interface KernelMask {
  /** 'bool': true allows; 'additive': float32 values added to the scaled logits. */
  kind: 'bool' | 'additive';
  mask: tf.Tensor4D;
}

/** Positional masks that the op adds on top of `attentionMask`. */
export interface PositionMaskOptions {
  causal: boolean;
  queryOffset: number;
  slidingWindow: number;
}

/**
 * Checks a mask's shape and returns its rank-4 form as Keras's `_masked_softmax` expands it:
 * (B,T,S) -> (B,1,T,S), (T,S) -> (1,1,T,S). It must broadcast into `scoresShape` = (B, U, T, S)
 * without enlarging it. Pure: no tensor is made.
 */
export function maskShapeRank4(
  maskShape: readonly number[],
  scoresShape: readonly [number, number, number, number],
  where: string,
  argName: string,
): [number, number, number, number] {
  check(maskShape.length >= 2 && maskShape.length <= 4, where, () =>
    `${argName} must have rank 2, 3 or 4 (broadcastable to (B, U, T, S) = ${formatShape(scoresShape)}); ` +
    `received shape ${formatShape(maskShape)}`);
  // (T,S) -> (1,T,S) -> (1,1,T,S); (B,T,S) -> (B,1,T,S): the new axis lands at -3 each time.
  let shape = maskShape.slice();
  while (shape.length < 4) shape = [...shape.slice(0, shape.length - 2), 1, ...shape.slice(-2)];
  const ok = shape.every((d, i) => d === 1 || d === scoresShape[i]);
  check(ok, where, () =>
    `${argName} of shape ${formatShape(maskShape)} (as ${formatShape(shape)}) does not broadcast to the ` +
    `attention scores (B, U, T, S) = ${formatShape(scoresShape)}: each dimension must be 1 or equal`);
  return shape as [number, number, number, number];
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
 * The kernel's `maskKind` for a user mask of `dtype` (null: none), with Keras's dtype rule: a bool
 * mask stays bool; a numeric mask becomes bool (nonzero allows) when a causal or window mask is
 * AND-ed with it, and is otherwise used numerically (docs/keras-3.6-behaviour.md §5).
 */
export function maskKindOf(dtype: tf.DataType | null, positional: PositionMaskOptions): GroupedQueryAttentionAttrs['maskKind'] {
  if (dtype == null) return 'none';
  return dtype === 'bool' || positional.causal || positional.slidingWindow > 0 ? 'bool' : 'additive';
}

/**
 * The kernel's mask input as a {@link KernelMask}, or null when `maskKind` is 'none' (the input is
 * then a placeholder) — for the kernel-side paths that rebuild the mask from a kernel call.
 */
export function kernelMaskOf(attrs: Pick<GroupedQueryAttentionAttrs, 'maskKind'>, mask: tf.Tensor4D | null | undefined): KernelMask | null {
  return attrs.maskKind === 'none' || mask == null ? null : { kind: attrs.maskKind, mask };
}

/**
 * Whether a call can have rows with no allowed key (docs/keras-3.6-behaviour.md §6): with a bool
 * mask or a causal/window mask, never with an additive mask alone (it has no "allowed" keys, only
 * added values). Kernels compute such rows specially, exactly as Keras does.
 */
export function mayHaveRowsWithNoAllowedKey(attrs: Pick<GroupedQueryAttentionAttrs, 'maskKind' | 'causal' | 'slidingWindow'>): boolean {
  return attrs.maskKind !== 'additive' && (attrs.maskKind === 'bool' || attrs.causal || attrs.slidingWindow > 0);
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
