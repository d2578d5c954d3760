/**
 * The naive reference: plain loops, float32 arithmetic (Math.fround after every operation), the
 * Keras 3.6 formula step by step. Kept forever as the oracle of every engine path, and used by the
 * engines for the rows they compute exactly (exact-rows.ts): rows with no allowed key (where Keras's
 * `fround(s - 1e9)` logits matter) and rows whose inputs may make the result non-finite.
 */
import { normalizeProblem, type NormalizedProblem } from './problem.js';
import { dropoutKey, dropoutRowFactors } from './dropout_hash.js';
import { referenceRowLogits } from './reference-logits.js';
import type { AttentionProblem, AttentionResult } from './types.js';

const f = Math.fround;

/**
 * Computes attention exactly as Keras 3.6 does in float32, with plain loops.
 *
 * For each (b, u, t): `Qs = fround(Q * scale)`, logits `s_j = Σ_h Qs·K` (float32, in order),
 * then `fround(s + a)` for an additive mask and `fround(s - 1e9)` for keys not allowed by the bool
 * mask, causal or window, then `softmax` (`exp(x - max) / sum`) and `Σ_j p·V`.
 *
 * @example
 * ```ts
 * import { attentionReference } from 'grouped-query-attention/engine';
 * const H = 2;
 * const r = attentionReference({
 *   batch: 1, queryLength: 1, keyLength: 2, numQueryHeads: 1, numKeyValueHeads: 1, headDim: H,
 *   query: new Float32Array([1, 0]), key: new Float32Array([1, 0, 0, 1]),
 *   value: new Float32Array([1, 2, 3, 4]), returnProbabilities: true,
 * });
 * console.log(r.output, r.probabilities); // Float32Array(2), Float32Array(2)
 * ```
 */
export function attentionReference(problem: AttentionProblem): AttentionResult {
  const p = normalizeProblem('attentionReference', problem);
  const output = new Float32Array(p.B * p.T * p.U * p.H);
  const probabilities = p.wantProbabilities ? new Float32Array(p.B * p.U * p.T * p.S) : undefined;
  const logSumExp = p.wantLogSumExp ? new Float32Array(p.B * p.U * p.T) : undefined;
  const scratch = new Float64Array(p.S);
  for (let b = 0; b < p.B; b++) {
    for (let u = 0; u < p.U; u++) {
      for (let t = 0; t < p.T; t++) referenceRow(p, b, u, t, output, probabilities, scratch, logSumExp);
    }
  }
  return { output, ...(probabilities ? { probabilities } : {}), ...(logSumExp ? { logSumExp } : {}) };
}

/**
 * One row (b, u, t) of the reference, written into `output` (B,T,U,H) and, when given,
 * `probabilities` (B,U,T,S). `scratch` holds at least S numbers.
 */
export function referenceRow(
  p: NormalizedProblem,
  b: number,
  u: number,
  t: number,
  output: Float32Array,
  probabilities: Float32Array | undefined,
  scratch: Float64Array = new Float64Array(p.S),
  logSumExp?: Float32Array,
): void {
  const { T, S, C, U, V, H, G } = p;
  const kvh = Math.floor(u / G);
  const logits = scratch;
  // NaN wins the max (tfjs's reduction): then every exp(s - max) and the row are NaN, like the
  // composite's softmax (so is a row whose max is +Inf (Inf - Inf) or -Inf (all keys -Inf)).
  const max = referenceRowLogits(p, b, u, t, new Float32Array(H), logits);
  let sum = 0;
  for (let j = 0; j < S; j++) {
    const e = f(Math.exp(f(logits[j]! - max)));
    logits[j] = e;
    sum = f(sum + e);
  }
  if (logSumExp) logSumExp[(b * U + u) * T + t] = f(max + Math.log(sum));
  const factors = p.dropoutRate > 0 ? new Float32Array(S) : null;
  if (factors) dropoutRowFactors(factors, dropoutKey(p.dropoutSeed), p.dropoutRate, b, u, t);
  const oBase = ((b * T + t) * U + u) * H;
  for (let h = 0; h < H; h++) output[oBase + h] = 0;
  const pBase = ((b * U + u) * T + t) * S;
  for (let j = 0; j < S; j++) {
    const pj0 = f(logits[j]! / sum);
    if (probabilities) probabilities[pBase + j] = pj0;
    // Dropout acts after the softmax; the returned probabilities are taken before it (Keras).
    const pj = factors ? f(pj0 * factors[j]!) : pj0;
    const vBase = ((b * C + j) * V + kvh) * H;
    for (let h = 0; h < H; h++) output[oBase + h] = f(output[oBase + h]! + f(pj * p.value[vBase + h]!));
  }
}
