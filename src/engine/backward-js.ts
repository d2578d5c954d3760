/**
 * The plain-JS attention backward (the semantics every backward path follows). Per (b, kv head, t)
 * the G query heads of the group read each key/value row once; per row the probabilities are
 * recomputed from the saved log-sum-exp, P_j = exp(s_j − lse), and
 *   D = rowsum(dO ∘ O),  dP_j = z_j·keepScale·(dO · V_j),  dS_j = P_j (dP_j − D),
 *   dV_j += P_j z_j keepScale dO,  dK_j += dS_j · Qs,  dQ += scale · dS_j K_j
 * (Qs = fround(scale·Q) as the forward; z_j the regenerated dropout decision). Keys outside
 * causal/window bounds are skipped; nothing of size T×S is stored. Rows with no allowed key take
 * Keras's float32 `fround(s − 1e9)` logits over every key (the composite's gradient); they and rows
 * with a far-from-zero log-sum-exp recompute their own max and sum (see EXACT_LSE_LIMIT).
 */
import { backwardCounters, type SavedForward } from './backward-problem.js';
import { dropoutKeepScale, dropoutKey, dropoutThreshold, mix32 } from './dropout_hash.js';
import { findRowsWithNoAllowedKey, keyBand } from './mask-rule.js';
import type { NormalizedProblem } from './problem.js';
import type { BackwardResult } from './types.js';

const f = Math.fround;

/**
 * Rows whose probabilities are recomputed with their own max and sum instead of the saved
 * log-sum-exp: rows with no allowed key, and rows whose float32 log-sum-exp is too far from 0 to
 * give P = exp(s − lse) to float32 accuracy (|lse| > 64, e.g. an additive −1e9 on every key), or
 * is not finite.
 */
export const EXACT_LSE_LIMIT = 64;

/** Whether row (b, u, t) takes the exact per-row routine (see {@link EXACT_LSE_LIMIT}). */
export function needsExactRow(lse: number, fullyMasked: boolean): boolean {
  return fullyMasked || !(Math.abs(lse) <= EXACT_LSE_LIMIT);
}

/** Scratch of {@link backwardRow}: S logits and H query/gradient floats. */
export interface RowScratch {
  qs: Float32Array;
  dq: Float64Array;
  logits: Float64Array;
}

export function rowScratch(p: NormalizedProblem): RowScratch {
  return { qs: new Float32Array(p.H), dq: new Float64Array(p.H), logits: new Float64Array(p.S) };
}

/**
 * The gradient contributions of one row (b, u, t): writes its dQ row and adds to dK, dV (both
 * (B, S, V, H)). `exact` recomputes the row's max and sum instead of reading the saved lse.
 */
export function backwardRow(
  p: NormalizedProblem,
  saved: SavedForward,
  b: number,
  u: number,
  t: number,
  fully: boolean,
  exact: boolean,
  dQuery: Float32Array,
  dKey: Float32Array | Float64Array,
  dValue: Float32Array | Float64Array,
  scratch: RowScratch,
): void {
  const { T, S, C, U, V, H, G } = p;
  const { qs, dq, logits } = scratch;
  const kvh = Math.floor(u / G);
  const m = p.mask;
  const dropping = p.dropoutRate > 0;
  const threshold = dropoutThreshold(p.dropoutRate);
  const keepScale = dropping ? dropoutKeepScale(p.dropoutRate) : 1;
  const row = (b * U + u) * T + t;
  const qb = ((b * T + t) * U + u) * H;
  for (let h = 0; h < H; h++) qs[h] = f(p.query[qb + h]! * p.scale);
  let D = 0;
  for (let h = 0; h < H; h++) D += saved.gradOutput[qb + h]! * saved.output[qb + h]!;
  let lo = 0;
  let hi = S - 1;
  if (!fully) {
    const r = keyBand(p, p.p0 + t);
    lo = Math.max(0, r[0]);
    hi = Math.min(S - 1, r[1]);
  }
  const mb = m !== null ? b * m.strides[0] + u * m.strides[1] + t * m.strides[2] : 0;
  // Logits of the row (−inf where a bool mask disallows), as the forward computes them.
  for (let j = lo; j <= hi; j++) {
    const kb = ((b * C + j) * V + kvh) * H;
    let s = 0;
    for (let h = 0; h < H; h++) s += qs[h]! * p.key[kb + h]!;
    if (fully) s = f(f(s) - 1e9);
    else if (m !== null) {
      const mv = m.data[mb + j * m.strides[3]]!;
      if (m.kind === 'additive') s = f(s + mv);
      else if (mv === 0) s = -Infinity;
    }
    logits[j] = s;
  }
  let lse = exact ? 0 : saved.logSumExp![row]!;
  if (exact) {
    let max = -Infinity;
    for (let j = lo; j <= hi; j++) if (logits[j]! > max) max = logits[j]!;
    let sum = 0;
    for (let j = lo; j <= hi; j++) sum += Math.exp(logits[j]! - max);
    lse = max + Math.log(sum);
  }
  const rowHash = dropping ? mix32((mix32((mix32((dropoutKey(p.dropoutSeed) ^ b) >>> 0) ^ u) >>> 0) ^ t) >>> 0) : 0;
  dq.fill(0);
  for (let j = lo; j <= hi; j++) {
    const s = logits[j]!;
    if (s === -Infinity) continue;
    const P = Math.exp(s - lse);
    if (P === 0) continue;
    const kept = !dropping || mix32((rowHash ^ j) >>> 0) >>> 8 >= threshold;
    const kb = ((b * C + j) * V + kvh) * H;
    const gb = ((b * S + j) * V + kvh) * H;
    let dP = 0;
    if (kept) {
      for (let h = 0; h < H; h++) dP += saved.gradOutput[qb + h]! * p.value[kb + h]!;
      dP *= keepScale;
      const pk = P * keepScale;
      for (let h = 0; h < H; h++) dValue[gb + h]! += pk * saved.gradOutput[qb + h]!;
    }
    const dS = P * (dP - D);
    for (let h = 0; h < H; h++) {
      dKey[gb + h]! += dS * qs[h]!;
      dq[h]! += dS * p.key[kb + h]!;
    }
  }
  for (let h = 0; h < H; h++) dQuery[qb + h] = dq[h]! * p.scale;
}

/** Runs a validated backward problem on the plain-JS path. */
export function attentionBackwardJs(p: NormalizedProblem, saved: SavedForward): BackwardResult {
  const { B, T, S, U, V, H } = p;
  const dQuery = saved.into?.dQuery ?? new Float32Array(B * T * U * H);
  const dKey = new Float64Array(B * S * V * H);
  const dValue = new Float64Array(B * S * V * H);
  const fullySet = new Set(findRowsWithNoAllowedKey(p));
  const scratch = rowScratch(p);
  if (saved.logSumExp === undefined) backwardCounters.logSumExpRecomputed++;
  for (let b = 0; b < B; b++) {
    for (let u = 0; u < U; u++) {
      for (let t = 0; t < T; t++) {
        const row = (b * U + u) * T + t;
        const fully = fullySet.has(row);
        // Without a saved log-sum-exp every row computes its own max and sum.
        const exact = saved.logSumExp === undefined || needsExactRow(saved.logSumExp[row]!, fully);
        backwardRow(p, saved, b, u, t, fully, exact, dQuery, dKey, dValue, scratch);
      }
    }
  }
  const narrow = (a: Float64Array, into: Float32Array | undefined): Float32Array => {
    if (into === undefined) return Float32Array.from(a);
    into.set(a);
    return into;
  };
  return { dQuery, dKey: narrow(dKey, saved.into?.dKey), dValue: narrow(dValue, saved.into?.dValue) };
}
