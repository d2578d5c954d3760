/**
 * The naive attention backward: the (T, S) probabilities of each (b, u) materialised, float64
 * arithmetic on the forward's float32 logits, the textbook softmax backward
 * (dS = P ∘ (dP − rowsum(dP ∘ P))). It uses neither the saved output nor the log-sum-exp, so it
 * checks both. Kept as the oracle of every backward path; too slow for anything else.
 */
import type { SavedForward } from './backward-problem.js';
import { normalizeBackward } from './backward-problem.js';
import { dropoutKey, dropoutRowFactors } from './dropout_hash.js';
import { referenceRowLogits } from './reference-logits.js';
import type { BackwardProblem, BackwardResult } from './types.js';

/**
 * Gradients of attention with respect to query, key and value, by plain loops.
 *
 * @example
 * ```ts
 * import { attentionBackwardReference } from 'grouped-query-attention/engine';
 * const problem = {
 *   batch: 1, queryLength: 1, keyLength: 2, numQueryHeads: 1, numKeyValueHeads: 1, headDim: 2,
 *   query: new Float32Array([1, 0]), key: new Float32Array([1, 0, 0, 1]), value: new Float32Array([1, 2, 3, 4]),
 * };
 * const { dQuery } = attentionBackwardReference({
 *   ...problem, output: new Float32Array(2), logSumExp: new Float32Array(1), gradOutput: new Float32Array([1, 0]),
 * });
 * ```
 */
export function attentionBackwardReference(problem: BackwardProblem): BackwardResult {
  const { p, saved } = normalizeBackward('attentionBackwardReference', problem);
  return backwardNaive(p, saved);
}

function backwardNaive(p: ReturnType<typeof normalizeBackward>['p'], saved: SavedForward): BackwardResult {
  const { B, T, S, C, U, V, H, G } = p;
  const dQ = new Float64Array(B * T * U * H);
  const dK = new Float64Array(B * S * V * H);
  const dV = new Float64Array(B * S * V * H);
  const P = new Float64Array(S);
  const dP = new Float64Array(S);
  const z = new Float32Array(S);
  const qs = new Float32Array(H);
  for (let b = 0; b < B; b++) {
    for (let u = 0; u < U; u++) {
      const kvh = Math.floor(u / G);
      for (let t = 0; t < T; t++) {
        const qb = ((b * T + t) * U + u) * H;
        const max = referenceRowLogits(p, b, u, t, qs, P);
        let sum = 0;
        for (let j = 0; j < S; j++) sum += (P[j] = Math.exp(P[j]! - max));
        for (let j = 0; j < S; j++) P[j] = P[j]! / sum;
        if (p.dropoutRate > 0) dropoutRowFactors(z, dropoutKey(p.dropoutSeed), p.dropoutRate, b, u, t);
        else z.fill(1);
        let D = 0;
        for (let j = 0; j < S; j++) {
          const vb = ((b * C + j) * V + kvh) * H;
          let d = 0;
          for (let h = 0; h < H; h++) d += saved.gradOutput[qb + h]! * p.value[vb + h]!;
          dP[j] = d * z[j]!;
          D += dP[j]! * P[j]!;
        }
        for (let j = 0; j < S; j++) {
          const kb = ((b * C + j) * V + kvh) * H;
          const gb = ((b * S + j) * V + kvh) * H;
          const dS = P[j]! * (dP[j]! - D);
          for (let h = 0; h < H; h++) {
            dV[gb + h]! += P[j]! * z[j]! * saved.gradOutput[qb + h]!;
            dK[gb + h]! += dS * qs[h]!;
            dQ[qb + h]! += dS * p.key[kb + h]! * p.scale;
          }
        }
      }
    }
  }
  return { dQuery: Float32Array.from(dQ), dKey: Float32Array.from(dK), dValue: Float32Array.from(dV) };
}
