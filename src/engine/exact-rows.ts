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
 * Cost: one pass over Q, K and V (the first S keys of every group) and the additive mask, O(input),
 * a SIMD scan on the WebAssembly engine; on finite inputs below the bounds the set is exactly (1).
 *
 * A kernel that reads every key and value for every row (no disallowed key: everyRowSeesEveryKey)
 * and writes NaN for every doubtful row (a NaN or zero sum, a max logit beyond SAFE_MAGNITUDE; NaN/Inf
 * values multiplied in stay non-finite) can skip that pass: {@link findNonFiniteOutputRows} on its
 * output finds the rows after the fact. The WebAssembly kernel does this, so decoding from a KV
 * cache reads the cache once.
 */
import { findRowsWithNoAllowedKey, hasKeyRestrictions } from './mask-rule.js';
export { everyRowSeesEveryKey } from './mask-rule.js';
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
 * A segment scan: `out[s] = max |a[start + s·len + i]|` over i < len, for s < segments; NaN when a
 * NaN is among them (±Inf gives Infinity). The WebAssembly engine passes its SIMD scan.
 */
export type SegmentScan = (a: Float32Array, start: number, segments: number, len: number) => Float32Array;

/** The plain-JS {@link SegmentScan}. */
export function scanSegmentsJs(a: Float32Array, start: number, segments: number, len: number): Float32Array {
  const out = new Float32Array(segments);
  for (let s = 0; s < segments; s++) {
    let m = 0;
    const from = start + s * len;
    // Math.max propagates NaN.
    for (let i = from; i < from + len; i++) m = Math.max(m, Math.abs(a[i]!));
    out[s] = m;
  }
  return out;
}

/** Whether `x` (a magnitude bound, possibly NaN) is safely finite. */
function safe(x: number): boolean {
  return x < SAFE_MAGNITUDE;
}

/**
 * Flat indices ((b·U + u)·T + t), ascending, of the rows computed exactly: rows with no allowed key
 * and rows whose result may be non-finite (see the module comment). `queryRowMax`, when given, is
 * max |Q| of each (b, t, u) row (NaN for a row holding a NaN), as a kernel that read the query
 * measured it; otherwise the query is scanned here.
 */
export function findExactRows(p: NormalizedProblem, scan: SegmentScan = scanSegmentsJs, queryRowMax?: Float32Array): number[] {
  const { B, T, S, C, U, V, H, G } = p;
  const noAllowed = findRowsWithNoAllowedKey(p);
  const keyRow = V * H;
  const absScale = Math.abs(p.scale);
  const logitLimit = hasKeyRestrictions(p) ? MASKED_LOGIT_LIMIT : SAFE_MAGNITUDE;
  // Per (batch, kv head) group: max |K| and max |V| over keys 0..S-1 (Math.max keeps NaN).
  const groupK = new Float64Array(B * V);
  const groupV = new Float64Array(B * V);
  let anyGroupUnsafe = false;
  for (let b = 0; b < B; b++) {
    const k = scan(p.key, b * C * keyRow, S * V, H);
    const v = p.value === p.key ? k : scan(p.value, b * C * keyRow, S * V, H);
    for (let kvh = 0; kvh < V; kvh++) {
      let mk = 0;
      let mv = 0;
      for (let j = 0; j < S; j++) {
        mk = Math.max(mk, k[j * V + kvh]!);
        mv = Math.max(mv, v[j * V + kvh]!);
      }
      groupK[b * V + kvh] = mk;
      groupV[b * V + kvh] = mv;
      if (!safe(mk) || !safe(S * mv)) anyGroupUnsafe = true;
    }
  }
  // Per query row (b, t, u): max |Q|.
  const rowQ = queryRowMax ?? scan(p.query, 0, B * T * U, H);
  const m = p.mask !== null && p.mask.kind === 'additive' ? p.mask : null;
  // Per additive-mask row (its own, possibly broadcast, layout): max |mask| over the S keys.
  const maskRowMax = m !== null ? scan(m.data as Float32Array, 0, m.data.length / m.shape[3], m.shape[3]) : null;
  const extra: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let u = 0; u < U; u++) {
      const grp = b * V + Math.floor(u / G);
      const k = groupK[grp]!;
      const groupUnsafe = anyGroupUnsafe && (!safe(k) || !safe(S * groupV[grp]!));
      for (let t = 0; t < T; t++) {
        let exact = groupUnsafe;
        if (!exact) {
          const q = rowQ[(b * T + t) * U + u]! * absScale;
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

/**
 * Flat indices ((b·U + u)·T + t), ascending, of the rows of a fast path's `output` (B,T,U,H) holding
 * a non-finite value or one of magnitude ≥ {@link SAFE_MAGNITUDE}: with a kernel that reads every
 * key for every row, exactly the rows that may be non-finite in the composite (see the module comment).
 */
export function findNonFiniteOutputRows(p: NormalizedProblem, output: Float32Array): number[] {
  const { B, T, U, H } = p;
  const rows: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let u = 0; u < U; u++) {
        const o = ((b * T + t) * U + u) * H;
        let m = 0;
        for (let h = o; h < o + H; h++) m = Math.max(m, Math.abs(output[h]!));
        if (!safe(m)) rows.push((b * U + u) * T + t);
      }
    }
  }
  return rows.sort((x, y) => x - y);
}
