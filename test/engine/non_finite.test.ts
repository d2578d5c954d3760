/**
 * Non-finite inputs (issue 12 item 1): every engine path gives NaN/±Inf exactly where the composite
 * does (Keras computes all T×S logits, masked keys included, and multiplies all probabilities by
 * all values), and the finite values elsewhere unchanged.
 *
 * Oracles: `attentionReference` (float32, the engines' per-row routine) and, for the class of every
 * element, the independent float64 oracle of helpers.ts (whose Math.max propagates NaN as tfjs's max
 * reduction does).
 */
import fc from 'fast-check';
import { afterAll, describe, expect, test } from 'vitest';
import type { AttentionProblem, AttentionResult } from '../../src/engine/index.js';
import { findExactRows, SAFE_MAGNITUDE } from '../../src/engine/exact-rows.js';
import { normalizeProblem } from '../../src/engine/problem.js';
import { attentionReference, buildProblem, expectSameClassAndClose, float64Attention, makeEngines, problemSpec, randomArray } from './helpers.js';

const engines = makeEngines();
afterAll(() => {
  for (const { engine } of engines) engine.dispose();
});

function expectEnginesMatchReference(p: AttentionProblem, what: string): AttentionResult {
  const ref = attentionReference(p);
  for (const { name, engine } of engines) {
    const got = engine.attention(p);
    expectSameClassAndClose(got.output, ref.output, p.headDim, `${what} (${name}) output`);
    if (p.returnProbabilities) expectSameClassAndClose(got.probabilities!, ref.probabilities!, p.keyLength, `${what} (${name}) probabilities`);
  }
  return ref;
}

function base(T: number, S: number, U: number, V: number, H: number, seed: number): AttentionProblem {
  return {
    batch: 1, queryLength: T, keyLength: S, numQueryHeads: U, numKeyValueHeads: V, headDim: H,
    query: randomArray(T * U * H, seed), key: randomArray(S * V * H, seed + 1), value: randomArray(S * V * H, seed + 2),
  };
}

const isNaNRow = (a: Float32Array, from: number, n: number): boolean => Array.from(a.subarray(from, from + n)).every(Number.isNaN);
const isFiniteRow = (a: Float32Array, from: number, n: number): boolean => Array.from(a.subarray(from, from + n)).every(Number.isFinite);

describe('non-finite inputs: the reproductions', () => {
  test('NaN in the query: that row is NaN, the others finite', () => {
    const p = { ...base(3, 4, 2, 1, 4, 1), returnProbabilities: true };
    p.query = p.query.slice();
    p.query[(1 * 2 + 1) * 4] = Number.NaN; // row t = 1, head u = 1
    const ref = expectEnginesMatchReference(p, 'query NaN');
    expect(isNaNRow(ref.output, (1 * 2 + 1) * 4, 4)).toBe(true);
    expect(isNaNRow(ref.probabilities!, (1 * 3 + 1) * 4, 4)).toBe(true);
    expect(isFiniteRow(ref.output, 0, 4)).toBe(true);
    expect(isFiniteRow(ref.output, (1 * 2 + 0) * 4, 4)).toBe(true);
  });

  test('NaN or +Inf in the key at a causally masked key: every row of the kv head is NaN', () => {
    for (const bad of [Number.NaN, Infinity]) {
      const p = { ...base(4, 4, 2, 2, 4, 2), causal: true };
      p.key = p.key.slice();
      p.key[(3 * 2 + 0) * 4 + 1] = bad; // key j = 3 of kv head 0: rows t < 3 never attend it
      const ref = expectEnginesMatchReference(p, `key ${bad} at a masked key`);
      for (let t = 0; t < 4; t++) {
        // Head 0 (kv head 0) is NaN on every row: s_j - 1e9 is NaN or +Inf, and then the softmax.
        if (Number.isNaN(bad)) expect(isNaNRow(ref.output, (t * 2 + 0) * 4, 4), `t=${t}`).toBe(true);
        expect(isFiniteRow(ref.output, (t * 2 + 1) * 4, 4), `t=${t} head 1`).toBe(true);
      }
      // A NaN logit poisons every row; +Inf·q is ±Inf, and a +Inf logit makes the row NaN.
      const f64 = float64Attention(p);
      expectSameClassAndClose(ref.output, f64.output, 4, `reference vs float64 (key ${bad})`, 1e-4);
    }
  });

  test('Inf in the value at a masked key: 0·Inf = NaN in that column of every row', () => {
    const p = { ...base(3, 5, 1, 1, 4, 3), causal: true };
    p.value = p.value.slice();
    p.value[4 * 4 + 2] = Infinity; // key 4, column 2
    const ref = expectEnginesMatchReference(p, 'value Inf at a masked key');
    for (let t = 0; t < 3; t++) {
      expect(ref.output[t * 4 + 2], `t=${t}`).toBeNaN();
      expect(isFiniteRow(ref.output, t * 4, 2), `t=${t}`).toBe(true);
    }
  });

  test('additive mask: NaN, +Inf, a row of -Inf give NaN rows; -Inf entries and 1e30 stay finite', () => {
    const T = 5, S = 4, H = 3;
    const data = new Float32Array(T * S);
    data[0 * S + 2] = Number.NaN;
    data[1 * S + 0] = Infinity;
    data.fill(-Infinity, 2 * S, 3 * S);
    data[3 * S + 1] = -Infinity;
    data[4 * S + 3] = 1e30;
    const p: AttentionProblem = { ...base(T, S, 1, 1, H, 4), mask: { kind: 'additive', data, shape: [1, 1, T, S] }, returnProbabilities: true };
    const ref = expectEnginesMatchReference(p, 'additive non-finite');
    for (const t of [0, 1, 2]) expect(isNaNRow(ref.output, t * H, H), `t=${t}`).toBe(true);
    expect(isFiniteRow(ref.output, 3 * H, H)).toBe(true);
    expect(ref.probabilities![3 * S + 1]).toBe(0);
    expect(isFiniteRow(ref.output, 4 * H, H)).toBe(true);
    expect(ref.probabilities![4 * S + 3]).toBe(1);
  });

  test('finite inputs whose logits overflow float32 give what the reference gives', () => {
    const p = { ...base(2, 3, 1, 1, 2, 5), query: new Float32Array([1e20, 1, 1, 1]), key: new Float32Array([1e20, 0, -1, 1, 2, 0]) };
    const ref = expectEnginesMatchReference(p, 'overflowing logits');
    expect(isNaNRow(ref.output, 0, 2)).toBe(true); // logit 1e40·scale → +Inf → NaN row
    expect(isFiniteRow(ref.output, 2, 2)).toBe(true);
  });

  test('finite inputs select no extra exact rows (the fast path stays the fast path)', () => {
    const p = { ...base(6, 9, 4, 2, 8, 6), causal: true };
    expect(findExactRows(normalizeProblem('test', p))).toEqual([]);
    const q = p.query.slice();
    q[3] = SAFE_MAGNITUDE;
    expect(findExactRows(normalizeProblem('test', { ...p, query: q }))).toEqual([0]);
  });
});

describe('non-finite inputs: decoding over many keys (key chunks reduced across threads)', () => {
  test('NaN/Inf in K or V, an additive chunk of -Inf over an Inf value, all -Inf, huge logits', () => {
    const S = 700, V = 2, G = 4, H = 16, U = V * G;
    const cases: Array<[string, (p: { key: Float32Array; value: Float32Array; mask: Float32Array; query: Float32Array }) => void]> = [
      ['V NaN', (p) => { p.value[(650 * V + 1) * H + 3] = Number.NaN; }],
      ['K +Inf', (p) => { p.key[(10 * V + 0) * H + 5] = Infinity; }],
      ['-Inf chunk over an Inf value', (p) => { p.mask.fill(-Infinity, 0, 300); p.value[(5 * V) * H] = Infinity; }],
      ['all -Inf', (p) => { p.mask.fill(-Infinity); }],
      ['huge logit', (p) => { p.query[3] = 3e37; }],
      ['huge negative logits', (p) => { p.mask.fill(-3e38); }],
    ];
    for (const [what, inject] of cases) {
      for (const causal of [false, true]) {
        const arrays = { query: randomArray(U * H, 1), key: randomArray(S * V * H, 2), value: randomArray(S * V * H, 3), mask: new Float32Array(S) };
        inject(arrays);
        const p: AttentionProblem = {
          batch: 1, queryLength: 1, keyLength: S, numQueryHeads: U, numKeyValueHeads: V, headDim: H,
          query: arrays.query, key: arrays.key, value: arrays.value, causal, queryOffset: S - 1,
          ...(causal ? {} : { mask: { kind: 'additive' as const, data: arrays.mask, shape: [1, 1, 1, S] as [number, number, number, number] } }),
        };
        if (causal && what.includes('-Inf')) continue; // the additive mask needs causal off (Keras's rule)
        const ref = expectEnginesMatchReference(p, `${what}, causal ${causal}`);
        expect(ref.output.some((x) => !Number.isFinite(x)) || what.startsWith('huge'), what).toBe(true);
      }
    }
  });
});

const BAD = [Number.NaN, Infinity, -Infinity, 1e30, -1e30, 3e38] as const;

const injections = fc.array(
  fc.record({
    tensor: fc.constantFrom('query', 'key', 'value', 'mask'),
    at: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
    value: fc.constantFrom(...BAD),
  }),
  { minLength: 1, maxLength: 4 },
);

describe('non-finite inputs: property', () => {
  test('NaN/±Inf/huge values at random positions of Q, K, V and the additive mask: same class as the reference everywhere', () => {
    const seen = { nan: 0, finiteRowsNextToNaN: 0 };
    fc.assert(
      fc.property(problemSpec, injections, (spec, inj) => {
        const sp = { ...spec, T: Math.min(spec.T, 9), S: Math.min(spec.S, 11), H: Math.min(spec.H, 8) };
        const p = buildProblem(sp);
        const arrays = { query: (p.query as Float32Array).slice(), key: (p.key as Float32Array).slice(), value: (p.value as Float32Array).slice() };
        let mask = p.mask;
        if (mask?.kind === 'additive') mask = { ...mask, data: (mask.data as Float32Array).slice() };
        for (const { tensor, at, value } of inj) {
          const target = tensor === 'mask' ? (mask?.kind === 'additive' ? (mask.data as Float32Array) : arrays.value) : arrays[tensor];
          target[Math.floor(at * target.length)] = value;
        }
        const q: AttentionProblem = { ...p, ...arrays, ...(mask ? { mask } : {}) };
        const ref = expectEnginesMatchReference(q, `spec ${JSON.stringify(sp)} injections ${JSON.stringify(inj)}`);
        const hasNaN = ref.output.some(Number.isNaN);
        if (hasNaN) seen.nan++;
        if (hasNaN && ref.output.some(Number.isFinite)) seen.finiteRowsNextToNaN++;
        // Without huge finite values (whose overflow depends on the order of summation), the
        // independent float64 oracle agrees on the class of every element.
        if (inj.every((x) => !Number.isFinite(x.value))) {
          expectSameClassAndClose(ref.output, float64Attention(q).output, q.headDim, 'reference vs float64', 1e-3);
        }
      }),
      { numRuns: 150, seed: 12 },
    );
    // The generator reaches both regimes: NaN results, and NaN next to finite rows.
    expect(seen.nan).toBeGreaterThan(10);
    expect(seen.finiteRowsNextToNaN).toBeGreaterThan(5);
  });
});
