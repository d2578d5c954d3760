/**
 * The plain-JS engine path, for environments without WebAssembly SIMD. Same semantics as the
 * WebAssembly kernel: per (b, kv head, t) the G query heads of the group read each key/value row
 * once; keys outside causal/window bounds are skipped; the rows computed exactly (exact-rows.ts: no
 * allowed key, or inputs that may make the row non-finite) take the per-row reference routine. Only O(S) scratch per row, never a (T, S) buffer.
 */
import { findExactRows } from './exact-rows.js';
import { keyBand, maskRowBase } from './mask-rule.js';
import type { NormalizedProblem } from './problem.js';
import { dropoutKey, dropoutKeepScale, dropoutThreshold, mix32 } from './dropout_hash.js';
import { referenceRow } from './reference.js';
import type { AttentionResult } from './types.js';

/** Runs a validated problem on the plain-JS path, into the caller's arrays when given. */
export function attentionJs(p: NormalizedProblem, into?: AttentionResult): AttentionResult {
  const { B, T, S, C, U, V, H, G } = p;
  // Arrays given by the caller are cleared: the loops below write only the entries that are not 0.
  const output = into?.output.fill(0) ?? new Float32Array(B * T * U * H);
  const probabilities = p.wantProbabilities ? (into?.probabilities?.fill(0) ?? new Float32Array(B * U * T * S)) : undefined;
  const logSumExp = p.wantLogSumExp ? (into?.logSumExp?.fill(0) ?? new Float32Array(B * U * T)) : undefined;
  const dropping = p.dropoutRate > 0;
  const key = dropoutKey(p.dropoutSeed);
  const threshold = dropoutThreshold(p.dropoutRate);
  const keepScale = dropping ? dropoutKeepScale(p.dropoutRate) : 1;
  const exact = findExactRows(p);
  const exactSet = new Set(exact);
  const qs = new Float32Array(G * H);
  const logits = new Float32Array(G * S);
  const acc = new Float64Array(G * H);
  const m = p.mask;
  const isBool = m !== null && m.kind === 'bool';
  const isAdd = m !== null && m.kind === 'additive';
  for (let b = 0; b < B; b++) {
    for (let kvh = 0; kvh < V; kvh++) {
      for (let t = 0; t < T; t++) {
        const [lo0, hi0] = keyBand(p, p.p0 + t);
        const lo = Math.max(0, lo0);
        const hi = Math.min(S - 1, hi0);
        for (let g = 0; g < G; g++) {
          const src = ((b * T + t) * U + kvh * G + g) * H;
          for (let h = 0; h < H; h++) qs[g * H + h] = p.query[src + h]! * p.scale;
        }
        // logits for the allowed range (others stay -inf)
        logits.fill(-Infinity);
        for (let j = lo; j <= hi; j++) {
          const kb = ((b * C + j) * V + kvh) * H;
          for (let g = 0; g < G; g++) {
            let s = 0;
            const qb = g * H;
            for (let h = 0; h < H; h++) s += qs[qb + h]! * p.key[kb + h]!;
            logits[g * S + j] = s;
          }
        }
        for (let g = 0; g < G; g++) {
          const u = kvh * G + g;
          const row = (b * U + u) * T + t;
          if (exactSet.has(row)) continue;
          const base = g * S;
          if (m !== null) {
            const mb = maskRowBase(m, b, u, t);
            const ss = m.strides[3];
            for (let j = lo; j <= hi; j++) {
              if (isBool) {
                if (m.data[mb + j * ss] === 0) logits[base + j] = -Infinity;
              } else if (isAdd) {
                logits[base + j] = logits[base + j]! + m.data[mb + j * ss]!;
              }
            }
          }
          let max = -Infinity;
          for (let j = lo; j <= hi; j++) if (logits[base + j]! > max) max = logits[base + j]!;
          let sum = 0;
          for (let j = lo; j <= hi; j++) {
            const x = logits[base + j]!;
            const e = x === -Infinity ? 0 : Math.exp(x - max);
            logits[base + j] = e;
            sum += e;
          }
          if (logSumExp) logSumExp[row] = Math.fround(max + Math.log(sum));
          const ab = g * H;
          for (let h = 0; h < H; h++) acc[ab + h] = 0;
          // Dropout after the softmax: the hash of the row's prefix (key, b, u, t) once, then one
          // round per key (dropout_hash.ts); kept weights are scaled by keepScale at the end.
          const rowHash = dropping ? mix32((mix32((mix32((key ^ b) >>> 0) ^ u) >>> 0) ^ t) >>> 0) : 0;
          for (let j = lo; j <= hi; j++) {
            const e = logits[base + j]!;
            if (e === 0) continue;
            if (dropping && mix32((rowHash ^ j) >>> 0) >>> 8 < threshold) continue;
            const vb = ((b * C + j) * V + kvh) * H;
            for (let h = 0; h < H; h++) acc[ab + h]! += e * p.value[vb + h]!;
          }
          const dst = ((b * T + t) * U + u) * H;
          const norm = keepScale / sum;
          for (let h = 0; h < H; h++) output[dst + h] = sum > 0 ? acc[ab + h]! * norm : 0;
          if (probabilities) {
            const pb = row * S;
            for (let j = lo; j <= hi; j++) probabilities[pb + j] = sum > 0 ? logits[base + j]! / sum : 0;
          }
        }
      }
    }
  }
  if (exact.length > 0) writeExactRows(p, exact, output, probabilities, logSumExp);
  return { output, ...(probabilities ? { probabilities } : {}), ...(logSumExp ? { logSumExp } : {}) };
}

/** Overwrites the rows computed exactly (findExactRows) with the per-row reference. */
export function writeExactRows(
  p: NormalizedProblem,
  rows: readonly number[],
  output: Float32Array,
  probabilities: Float32Array | undefined,
  logSumExp?: Float32Array,
): void {
  const scratch = new Float64Array(p.S);
  for (const row of rows) {
    const t = row % p.T;
    const bu = (row - t) / p.T;
    const u = bu % p.U;
    const b = (bu - u) / p.U;
    referenceRow(p, b, u, t, output, probabilities, scratch, logSumExp);
  }
}
