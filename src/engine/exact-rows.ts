/**
 * Which rows every engine path computes with the exact per-row routine of the reference
 * (`referenceRow`) instead of its fast kernel: "rows computed exactly".
 *
 * 1. Rows with no allowed key (mask-rule.ts): Keras's `fround(s - 1e9)` logits matter there.
 * 2. Rows whose logits or output may be non-finite. The composite (Keras, and the tfjs ops of
 *    `groupedQueryAttentionReference`) computes ALL T×S logits, masked keys included (a masked key
 *    only gets `-1e9` added), and multiplies ALL probabilities by ALL values. So a NaN/±Inf in K or
 *    V at any key of a row's kv head reaches the row even where a flash kernel skips the key
 *    (causal/window tiles, masked keys): NaN + x = NaN, 0·Inf = NaN, a softmax whose max is NaN or
 *    +Inf is NaN everywhere. The fast kernels do not reproduce that, so such rows go here:
 *    - every row of a (batch, kv head) group whose keys 0..S-1 hold a non-finite K or V value;
 *    - every row whose query holds a non-finite value, or whose additive-mask row does;
 *    - every row where huge finite values could overflow float32 (the logit bound
 *      `H·max|Q·scale|·max|K| + max|mask| + 1e9`, or `S·max|V|` for the output, reaches
 *      {@link SAFE_MAGNITUDE}): overflow depends on the order of summation, which the kernels
 *      and the composite do not share;
 *    - with a bool mask, causal or window, every row whose logit bound reaches
 *      {@link MASKED_LOGIT_LIMIT}: the kernels drop a disallowed key (weight 0) where Keras gives it
 *      the logit `fround(s - 1e9)`, which is the same only while the allowed logits stay far above
 *      the disallowed ones (exp of the gap underflows).
 *
 * Cost: one pass over Q, K and V (the first S keys of every group) and the additive mask, O(input);
 * on finite inputs below the bound the set is exactly (1).
 */
import { findRowsWithNoAllowedKey, hasKeyRestrictions } from './mask-rule.js';
import type { NormalizedProblem } from './problem.js';

/**
 * Below this magnitude no float32 sum of the engine's logits, exponent arguments or output
 * accumulators can overflow (float32's largest finite value is ≈ 3.4e38; the margin covers the
 * rounding of H-term sums and the difference of two logits).
 */
export const SAFE_MAGNITUDE = 1e37;

/**
 * With disallowed keys, the logit bound below which dropping a disallowed key equals Keras's
 * `fround(s - 1e9)`: the gap between any allowed logit (≥ -L) and any disallowed one
 * (≤ L - 1e9 + 64, float32 spacing there) stays above 104, where float32 exp underflows to 0.
 */
export const MASKED_LOGIT_LIMIT = 2.5e8;

/**
 * max |a[i]| over `count` runs of `len` floats starting at `start`, `stride` apart; NaN as soon as a
 * NaN is seen (±Inf gives Infinity).
 */
export function maxAbs(a: Float32Array, start: number, count: number, stride: number, len: number): number {
  let m = 0;
  for (let r = 0; r < count; r++) {
    const base = start + r * stride;
    for (let i = base; i < base + len; i++) {
      const x = Math.abs(a[i]!);
      if (!(x <= m)) {
        if (x !== x) return Number.NaN;
        m = x;
      }
    }
  }
  return m;
}

/** Whether `x` (a magnitude bound, possibly NaN) is safely finite. */
function safe(x: number): boolean {
  return x < SAFE_MAGNITUDE;
}

/**
 * Flat indices ((b·U + u)·T + t), ascending, of the rows computed exactly: rows with no allowed key
 * and rows whose result may be non-finite (see the module comment).
 */
export function findExactRows(p: NormalizedProblem): number[] {
  const { B, T, S, C, U, V, H, G } = p;
  const noAllowed = findRowsWithNoAllowedKey(p);
  const keyRow = V * H;
  const queryRow = U * H;
  const absScale = Math.abs(p.scale);
  const logitLimit = hasKeyRestrictions(p) ? MASKED_LOGIT_LIMIT : SAFE_MAGNITUDE;
  // Per (batch, kv head) group: max |K| and max |V| over keys 0..S-1.
  const groupK = new Float64Array(B * V);
  const groupV = new Float64Array(B * V);
  let anyGroupUnsafe = false;
  for (let b = 0; b < B; b++) {
    for (let kvh = 0; kvh < V; kvh++) {
      const start = b * C * keyRow + kvh * H;
      const k = maxAbs(p.key, start, S, keyRow, H);
      const v = p.value === p.key ? k : maxAbs(p.value, start, S, keyRow, H);
      groupK[b * V + kvh] = k;
      groupV[b * V + kvh] = v;
      if (!safe(k) || !safe(S * v)) anyGroupUnsafe = true;
    }
  }
  const m = p.mask !== null && p.mask.kind === 'additive' ? p.mask : null;
  // Per additive-mask row (its own, possibly broadcast, layout): max |mask| over the S keys.
  let maskRowMax: Float64Array | null = null;
  if (m !== null) {
    const len = m.shape[3];
    const rows = m.data.length / len;
    maskRowMax = new Float64Array(rows);
    for (let r = 0; r < rows; r++) maskRowMax[r] = maxAbs(m.data as Float32Array, r * len, 1, 0, len);
  }
  const extra: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let u = 0; u < U; u++) {
      const grp = b * V + Math.floor(u / G);
      const k = groupK[grp]!;
      const groupUnsafe = anyGroupUnsafe && (!safe(k) || !safe(S * groupV[grp]!));
      for (let t = 0; t < T; t++) {
        let exact = groupUnsafe;
        if (!exact) {
          const q = maxAbs(p.query, ((b * T + t) * U + u) * H, 1, 0, H) * absScale;
          let a = 0;
          if (maskRowMax !== null && m !== null) {
            const base = b * m.strides[0] + u * m.strides[1] + t * m.strides[2];
            a = maskRowMax[m.strides[3] === 0 ? base : base / m.shape[3]]!;
          }
          // |logit| ≤ H·max|Qs|·max|K| + max|mask| (float32 rounding is inside the margins).
          const bound = H * q * k + a;
          exact = !safe(q) || !(bound + 1e9 < SAFE_MAGNITUDE && bound < logitLimit);
        }
        if (exact) extra.push((b * U + u) * T + t);
      }
    }
  }
  if (extra.length === 0) return noAllowed;
  if (noAllowed.length === 0) return extra;
  return [...new Set([...noAllowed, ...extra])].sort((x, y) => x - y);
}
