/** Keras mask semantics: fully masked rows (the float32 64-grid), causal offset, windows, additive, capacity. */
import { afterAll, describe, expect, test } from 'vitest';
import type { AttentionProblem } from '../../src/engine/index.js';
import { attentionReference, buildProblem, expectMatchesReference, float64Attention, makeEngines, randomArray } from './helpers.js';
import { expectClose } from '../helpers/close.js';

const engines = makeEngines();
afterAll(() => engines.forEach(({ engine }) => engine.dispose()));

function base(T: number, S: number, U: number, V: number, H: number, seed: number, mag = 1): AttentionProblem {
  return {
    batch: 1, queryLength: T, keyLength: S, numQueryHeads: U, numKeyValueHeads: V, headDim: H,
    query: randomArray(T * U * H, seed, mag), key: randomArray(S * V * H, seed + 1, mag), value: randomArray(S * V * H, seed + 2),
  };
}

describe('fully masked rows', () => {
  test('small logits: uniform weights 1/S over all keys, masked ones included', () => {
    const p: AttentionProblem = { ...base(3, 5, 2, 1, 4, 1), mask: { kind: 'bool', data: new Uint8Array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1]), shape: [1, 1, 3, 5] }, returnProbabilities: true };
    for (const { name, engine } of engines) {
      const r = engine.attention(p);
      for (let u = 0; u < 2; u++) for (let j = 0; j < 5; j++) expect(r.probabilities![(u * 3 + 1) * 5 + j], name).toBe(Math.fround(0.2));
    }
  });

  test('large logits: softmax over the 64-grid, bit-exact with the reference', () => {
    // Logits of tens to hundreds: fround(s - 1e9) = -1e9 + 64·round(s/64).
    for (const H of [1, 8, 128]) {
      const T = 6, S = 37, U = 4, V = 2;
      const p = base(T, S, U, V, H, H, H === 1 ? 40 : 12);
      const data = new Uint8Array(T * S);
      for (let j = 0; j < S; j++) data[2 * S + j] = 0; // row 2 fully masked
      for (const t of [0, 1, 3, 4, 5]) for (let j = 0; j < S; j++) data[t * S + j] = j % 3 === 0 ? 1 : 0;
      const problem = { ...p, mask: { kind: 'bool' as const, data, shape: [1, 1, T, S] as [number, number, number, number] }, returnProbabilities: true };
      const ref = attentionReference(problem);
      const f64 = float64Attention(problem);
      // the fully masked row is not uniform with these logits
      const row = ref.probabilities!.subarray(2 * S, 3 * S);
      expect(Math.max(...row)).toBeGreaterThan(2 / S);
      for (const { name, engine } of engines) {
        const r = engine.attention(problem);
        for (let u = 0; u < U; u++) {
          const o = ((0 * T + 2) * U + u) * H;
          expect(Array.from(r.output.subarray(o, o + H)), `${name} H=${H} output row`).toEqual(Array.from(ref.output.subarray(o, o + H)));
          const pr = (u * T + 2) * S;
          expect(Array.from(r.probabilities!.subarray(pr, pr + S)), `${name} H=${H} probs row`).toEqual(Array.from(ref.probabilities!.subarray(pr, pr + S)));
        }
      }
      // the independent float64 oracle agrees on the fully masked rows
      for (let u = 0; u < U; u++) {
        const pr = (u * T + 2) * S;
        expectClose(f64.probabilities!.subarray(pr, pr + S), ref.probabilities!.subarray(pr, pr + S), `float64 H=${H}`, 1e-5, 1e-4);
      }
    }
  });

  test('rows emptied by causal ∧ mask, window beyond the keys, padding masks (B,1,1,S) and (B,U,T,1)', () => {
    const cases: Array<Partial<AttentionProblem>> = [
      { causal: true, mask: { kind: 'bool', data: new Uint8Array([0, 0, 1, 1, 1, 1, 1, 1]), shape: [1, 1, 1, 8] } },
      { slidingWindow: 2, queryOffset: 9 }, // T rows at positions 9.. see nothing of S=8 keys
      { slidingWindow: 3, causal: true, queryOffset: 4 },
      { mask: { kind: 'bool', data: new Uint8Array([1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 0]), shape: [1, 2, 6, 1] } },
    ];
    for (const c of cases) {
      const problem = { ...base(6, 8, 2, 1, 16, 5, 8), ...c, returnProbabilities: true } as AttentionProblem;
      const ref = attentionReference(problem);
      for (const { name, engine } of engines) expectMatchesReference(engine.attention(problem), ref, `${name} ${JSON.stringify(c, (k, v) => (k === 'data' ? Array.from(v) : v))}`);
    }
  });
});

describe('positions and bounds', () => {
  test('causal with offset (bottom-right alignment) sees keys j <= p0 + i', () => {
    const problem = { ...base(4, 10, 2, 2, 8, 9), causal: true, queryOffset: 6, returnProbabilities: true };
    const ref = attentionReference(problem);
    for (let u = 0; u < 2; u++) for (let t = 0; t < 4; t++) for (let j = 0; j < 10; j++) {
      const pr = ref.probabilities![(u * 4 + t) * 10 + j]!;
      if (j > 6 + t) expect(pr).toBe(0);
      else expect(pr).toBeGreaterThan(0);
    }
    for (const { name, engine } of engines) expectMatchesReference(engine.attention(problem), ref, name);
  });

  test('symmetric window |p - j| < w, with and without causal', () => {
    for (const causal of [false, true]) {
      const problem = { ...base(12, 12, 3, 1, 4, 3), causal, slidingWindow: 3, returnProbabilities: true };
      const ref = attentionReference(problem);
      for (const { name, engine } of engines) expectMatchesReference(engine.attention(problem), ref, `${name} causal=${causal}`);
    }
  });

  test('keyCapacity > keyLength: rows past keyLength are never read', () => {
    const p = buildProblem({ B: 2, T: 3, S: 5, V: 2, G: 2, H: 8, extraCapacity: 3, causal: false, offset: 0, window: 0, maskKind: 'none', maskDims: [false, false, false, false], density: 1, magnitude: 1, probs: true, seed: 4 });
    const poisoned = { ...p, key: p.key.slice(), value: p.value.slice() };
    for (let b = 0; b < 2; b++) for (let j = 5; j < 8; j++) for (let x = 0; x < 16; x++) {
      poisoned.key[(b * 8 + j) * 16 + x] = NaN;
      poisoned.value[(b * 8 + j) * 16 + x] = NaN;
    }
    const ref = attentionReference(p);
    for (const { name, engine } of engines) expectMatchesReference(engine.attention(poisoned), ref, name);
  });

  test('additive masks: fround(s + a), -1e9 rows over the 64-grid, broadcast over keys', () => {
    const T = 4, S = 9;
    const data = new Float32Array(T * S);
    for (let j = 0; j < S; j++) {
      data[j] = j * 0.25;
      data[S + j] = -1e9; // a row of -1e9: the 64-grid
      data[2 * S + j] = j < 4 ? -1e9 : 0;
      data[3 * S + j] = 1e9 * (j === 3 ? 1 : 0); // Keras's +1e9 quirk
    }
    const problem = { ...base(T, S, 2, 1, 4, 11, 6), mask: { kind: 'additive' as const, data, shape: [1, 1, T, S] as [number, number, number, number] }, returnProbabilities: true };
    const ref = attentionReference(problem);
    for (const { name, engine } of engines) expectMatchesReference(engine.attention(problem), ref, name);
    const perRow = { ...base(T, S, 2, 1, 4, 12), mask: { kind: 'additive' as const, data: new Float32Array([0.5, -2, 0, 3]), shape: [1, 1, T, 1] as [number, number, number, number] } };
    const ref2 = attentionReference(perRow);
    for (const { name, engine } of engines) expectMatchesReference(engine.attention(perRow), ref2, `${name} (1,1,T,1)`);
  });

  test('S = 1 and T = 1', () => {
    for (const [T, S] of [[1, 1], [5, 1], [1, 9]] as const) {
      const problem = { ...base(T, S, 7, 1, 80, T * 10 + S), returnProbabilities: true };
      const ref = attentionReference(problem);
      for (const { name, engine } of engines) expectMatchesReference(engine.attention(problem), ref, `${name} T=${T} S=${S}`);
    }
  });
});
