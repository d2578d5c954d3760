// The forward kernel's tile max (wasm/tiles.ts): computeLogits takes each packed row's max over the
// key tile while the logits are in registers, and softmaxTile uses it when no mask or bound changed
// the logits since (wasm/forward.ts); otherwise softmaxTile takes the max by its own pass. Both must
// give the reference's softmax. Rows of very different logit scales share each packed tile (G = 7
// heads × 9 query rows, padded rows, an odd last key tile), so a max from the wrong row, a missed
// key or no max at all saturates or underflows exp and misses the reference by far.
import { afterAll, describe, test } from 'vitest';
import type { AttentionProblem, EngineMask } from '../../src/engine/index.js';
import { attentionReference, expectMatchesReference, makeEngines, randomArray } from './helpers.js';

const engines = makeEngines();
afterAll(() => engines.forEach(({ engine }) => engine.dispose()));

const T = 20, S = 149, U = 14, V = 2, H = 16; // scale 1/4: every logit is exact in float32

/**
 * Integer-valued Q and K (Q rows scaled by powers of two from 1/64 to 8, by (t, u)), so every path
 * computes the same exact logits whatever its summation order; they reach a few hundred in magnitude
 * on the large rows, two orders of magnitude beyond exp's range.
 */
function problem(extra: Partial<AttentionProblem>): AttentionProblem {
  const rowScales = [1 / 64, 1 / 4, 1, 4, 8];
  const q = randomArray(T * U * H, 11).map((x, i) => Math.round(x * 8) * rowScales[Math.floor(i / H) % rowScales.length]!);
  const k = randomArray(S * V * H, 12).map((x) => Math.round(x * 4));
  return {
    batch: 1, queryLength: T, keyLength: S, numQueryHeads: U, numKeyValueHeads: V, headDim: H,
    query: q, key: k, value: randomArray(S * V * H, 13), ...extra,
  };
}

function boolMask(shape: [number, number, number, number], keep: (i: number) => boolean): EngineMask {
  const n = shape.reduce((a, b) => a * b, 1);
  return { kind: 'bool', data: Uint8Array.from({ length: n }, (_, i) => (keep(i) ? 1 : 0)), shape };
}

describe('tile max: fused into the logits or by softmax pass, same softmax as the reference', () => {
  const density = randomArray(T * S, 14);
  const additive = randomArray(S, 15, 40).map((a, j) => (j % 3 === 0 ? a - 300 : a));
  const cases: Array<[string, Partial<AttentionProblem>]> = [
    ['no mask (fused max on every tile)', {}],
    ['key padding keeping 128 keys (fused max, last tile skipped)', { mask: boolMask([1, 1, 1, S], (j) => j < 128) }],
    ['scattered bool mask (max after masking)', { mask: boolMask([1, 1, T, S], (i) => density[i]! > -0.4) }],
    ['causal, bottom-right (fused below the diagonal, bounds on it)', { causal: true, queryOffset: S - T }],
    ['additive mask, -300 on every third key (max after the mask terms)', { mask: { kind: 'additive', data: additive, shape: [1, 1, 1, S] } }],
    ['no mask, probabilities returned', { returnProbabilities: true }],
  ];
  test.each(cases)('%s', (_, extra) => {
    const p = problem(extra);
    const ref = attentionReference(p);
    for (const { name, engine } of engines) expectMatchesReference(engine.attention(p), ref, name);
  });
});
