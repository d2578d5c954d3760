/**
 * The op's mask rule, once, with no tfjs import (so that the engine, the reference and the shader
 * hosts can import it too), following Keras 3.6 (docs/keras-3.6-behaviour.md §4–§6): masks are
 * expanded to rank 4 with `expand_dims(axis=-3)`, must broadcast into the (B, U, T, S) scores without
 * enlarging them, and are applied additively as `(1 - mask) * -1e9` in float32; the causal and
 * window masks are AND-ed with them.
 *
 * Shape letters: B batch · T query length · S key length · U query heads.
 *
 * One name for one concept: a query row whose keys are all masked is a "row with no allowed key"
 * (§6); it is not zero, and only bool and positional (causal, window) masks can make one.
 */
import { keyBand } from '../engine/mask-rule.js';
import { check, formatShape } from '../errors.js';

/** Keras's large negative for float32 scores (`Softmax` in keras/src/layers/activations/softmax.py). */
export const LARGE_NEGATIVE = -1e9;

/**
 * How a kernel applies its mask input: 'none' (a placeholder), 'bool' (nonzero allows the key) or
 * 'additive' (float32 values added to the scaled logits, Keras's `(1 - mask) * -1e9` already applied).
 */
export type MaskKind = 'none' | 'bool' | 'additive';

/** Positional masks that the op adds on top of `attentionMask`. */
export interface PositionMaskOptions {
  causal: boolean;
  queryOffset: number;
  slidingWindow: number;
}

/**
 * Whether key j is allowed for the query at absolute position p by the positional masks: causal
 * allows j <= p, a window w allows |p - j| < w.
 */
export function allowedByPosition(p: number, j: number, { causal, slidingWindow }: Omit<PositionMaskOptions, 'queryOffset'>): boolean {
  // The engine's band (one rule); S is unbounded here, the caller bounds j.
  const [lo, hi] = keyBand({ S: Number.POSITIVE_INFINITY, causal, window: slidingWindow }, p);
  return j >= lo && j <= hi;
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

/**
 * The kernel's `maskKind` for a user mask of `dtype` (null: none), with Keras's dtype rule: a bool
 * mask stays bool; a numeric mask becomes bool (nonzero allows) when a causal or window mask is
 * AND-ed with it, and is otherwise used numerically (docs/keras-3.6-behaviour.md §5).
 */
export function maskKindOf(dtype: string | null, positional: PositionMaskOptions): MaskKind {
  if (dtype == null) return 'none';
  return dtype === 'bool' || positional.causal || positional.slidingWindow > 0 ? 'bool' : 'additive';
}

/** Whether a call can have rows with no allowed key: the engine's rule (src/engine/mask-rule.ts). */
export { rowsMayHaveNoAllowedKey } from '../engine/mask-rule.js';
