/**
 * The logits of one query row, written once for both naive references (reference.ts forward,
 * backward-reference.ts): Keras 3.6's float32 steps (docs/keras-3.6-behaviour.md), plain loops, no
 * tiling and nothing shared with the fast paths beyond the mask rule itself (mask-rule.ts).
 */
import { hasKeyRestrictions, keyBand, maskRowBase } from './mask-rule.js';
import type { NormalizedProblem } from './problem.js';

const f = Math.fround;

/**
 * Writes row (b, u, t)'s scaled query `fround(q · scale)` into `qs` (H numbers) and its float32
 * logits into `logits[0..S)`: `s_j = Σ_h fround(qs_h · k_jh)` summed in float32 in order, then
 * `fround(s + a)` for an additive mask and `fround(s - 1e9)` for keys the bool mask, causal or
 * window rule disallows. Returns the row's maximum, where NaN wins as in tfjs's max reduction
 * (so a row holding NaN, or whose max is ±Inf, softmaxes to NaN as the composite does).
 *
 * @example
 * ```ts
 * import { normalizeProblem } from './problem.js';
 * import { referenceRowLogits } from './reference-logits.js';
 * const p = normalizeProblem('example', {
 *   batch: 1, queryLength: 1, keyLength: 2, numQueryHeads: 1, numKeyValueHeads: 1, headDim: 1,
 *   query: new Float32Array([1]), key: new Float32Array([1, 2]), value: new Float32Array([0, 0]), scale: 1,
 * });
 * const logits = new Float64Array(2);
 * referenceRowLogits(p, 0, 0, 0, new Float32Array(1), logits); // 2; logits = [1, 2]
 * ```
 */
export function referenceRowLogits(
  p: NormalizedProblem,
  b: number,
  u: number,
  t: number,
  qs: Float32Array,
  logits: Float64Array,
): number {
  const { T, S, C, U, V, H, G } = p;
  const kvh = Math.floor(u / G);
  const qBase = ((b * T + t) * U + u) * H;
  for (let h = 0; h < H; h++) qs[h] = f(p.query[qBase + h]! * p.scale);
  const restricted = hasKeyRestrictions(p);
  const [lo, hi] = keyBand(p, p.p0 + t);
  const m = p.mask;
  const mBase = m ? maskRowBase(m, b, u, t) : 0;
  let max = -Infinity;
  for (let j = 0; j < S; j++) {
    const kBase = ((b * C + j) * V + kvh) * H;
    let s = 0;
    for (let h = 0; h < H; h++) s = f(s + f(qs[h]! * p.key[kBase + h]!));
    if (m && m.kind === 'additive') s = f(s + m.data[mBase + j * m.strides[3]]!);
    if (restricted) {
      let allowed = j >= lo && j <= hi;
      if (allowed && m && m.kind === 'bool') allowed = m.data[mBase + j * m.strides[3]] !== 0;
      if (!allowed) s = f(s - 1e9);
    }
    logits[j] = s;
    if (s > max || Number.isNaN(s)) max = s;
  }
  return max;
}
