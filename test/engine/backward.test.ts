/**
 * The engine backward (and the forward statistics and dropout it relies on) against the naive
 * backward oracle, on every engine path, over fast-check problems covering every mask kind, fully
 * masked rows, windows, causal with offsets, G in {1, 2, 7}, T != S and T = 1.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  attentionBackwardReference,
  attentionReference,
  createAttentionEngineSync,
  type AttentionProblem,
} from '../../src/engine/index.js';
import { expectClose } from '../helpers/close.js';
import { buildProblem, makeEngines, problemSpec, randomArray } from './helpers.js';

const engines = makeEngines();
afterAll(() => engines.forEach(({ engine }) => engine.dispose()));

/** Capacity rows beyond S are dropped: the backward speaks of (B, S, V, H). */
function withoutCapacity(p: AttentionProblem): AttentionProblem {
  const C = p.keyCapacity ?? p.keyLength;
  if (C === p.keyLength) return p;
  const { batch: B, keyLength: S, numKeyValueHeads: V, headDim: H } = p;
  const cut = (a: Float32Array) => {
    const out = new Float32Array(B * S * V * H);
    for (let b = 0; b < B; b++) out.set(a.subarray(b * C * V * H, (b * C + S) * V * H), b * S * V * H);
    return out;
  };
  return { ...p, keyCapacity: undefined, key: cut(p.key), value: cut(p.value) };
}

describe('engine forward: log-sum-exp and dropout', () => {
  it('every path returns the reference log-sum-exp, and P = exp(s − lse) sums to 1', () => {
    fc.assert(
      fc.property(problemSpec, (sp) => {
        const problem = { ...buildProblem(sp), returnLogSumExp: true, returnProbabilities: false };
        const ref = attentionReference(problem);
        for (const { name, engine } of engines) {
          const got = engine.attention(problem);
          expect(got.logSumExp, name).toBeDefined();
          // Rows whose logits sit near −1e9 carry a float32 lse with absolute error up to ~32.
          for (let i = 0; i < ref.logSumExp!.length; i++) {
            const want = ref.logSumExp![i]!;
            expect(Math.abs(got.logSumExp![i]! - want), `${name} lse[${i}]`).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(want)) + (Math.abs(want) > 1e6 ? 64 : 0));
          }
          expectClose(got.output, ref.output, `${name} output`, 1e-5, 1e-5);
        }
      }),
      { numRuns: 25, seed: 11 },
    );
  });

  it('with dropout every path gives the reference output; rate 0 equals no dropout', () => {
    fc.assert(
      fc.property(problemSpec, fc.constantFrom(0.1, 0.5), fc.integer({ min: 0, max: 0xffffffff }), (sp, rate, seed) => {
        const problem = { ...buildProblem(sp), dropoutRate: rate, dropoutSeed: seed };
        const ref = attentionReference(problem);
        const plain = attentionReference({ ...problem, dropoutRate: 0 });
        if (ref.probabilities) expect(ref.probabilities).toEqual(plain.probabilities); // taken before dropout
        for (const { name, engine } of engines) {
          const got = engine.attention(problem);
          expectClose(got.output, ref.output, `${name} dropout output`, 1e-5, 1e-5);
        }
      }),
      { numRuns: 20, seed: 12 },
    );
  });
});

describe('engine forward statistics on split keys', () => {
  it('decode over long keys (key chunks reduced at the end) returns the reference lse and dropout output', () => {
    for (const staging of [undefined, 64 * 1024]) {
      const engine = createAttentionEngineSync({ threads: 2, ...(staging ? { testing: { stagingBytes: staging } } : {}) });
      for (const T of [1, 3]) {
        const S = 2100;
        const problem: AttentionProblem = {
          batch: 1, queryLength: T, keyLength: S, numQueryHeads: 4, numKeyValueHeads: 2, headDim: 16,
          query: randomArray(T * 64, 1), key: randomArray(S * 32, 2), value: randomArray(S * 32, 3),
          dropoutRate: 0.3, dropoutSeed: 77, returnLogSumExp: true,
        };
        const ref = attentionReference(problem);
        const got = engine.attention(problem);
        expectClose(got.output, ref.output, `output T=${T} staging=${staging}`, 1e-5, 1e-5);
        expectClose(got.logSumExp!, ref.logSumExp!, `lse T=${T} staging=${staging}`, 1e-5, 1e-5);
      }
      engine.dispose();
    }
  });
});

describe('engine backward', () => {
  it('every path equals the naive backward (dQ, dK, dV), with and without dropout', () => {
    fc.assert(
      fc.property(problemSpec, fc.constantFrom(0, 0, 0.2), fc.integer({ min: 0, max: 0xffffffff }), (sp, rate, seed) => {
        const problem = { ...withoutCapacity(buildProblem(sp)), returnProbabilities: false, dropoutRate: rate, dropoutSeed: seed };
        const fwd = attentionReference({ ...problem, returnLogSumExp: true });
        const gradOutput = randomArray(fwd.output.length, sp.seed + 5);
        const saved = { output: fwd.output, logSumExp: fwd.logSumExp!, gradOutput };
        const ref = attentionBackwardReference({ ...problem, ...saved });
        for (const { name, engine } of engines) {
          const f = engine.attention({ ...problem, returnLogSumExp: true });
          // With the forward's log-sum-exp, and without it (the backward computes it).
          for (const logSumExp of [f.logSumExp!, undefined]) {
            const what = `${name} (${logSumExp ? 'saved' : 'recomputed'} lse)`;
            const got = engine.attentionBackward({ ...problem, output: f.output, logSumExp, gradOutput });
            expectClose(got.dQuery, ref.dQuery, `${what} dQuery`, 1e-4, 1e-4);
            expectClose(got.dKey, ref.dKey, `${what} dKey`, 1e-4, 1e-4);
            expectClose(got.dValue, ref.dValue, `${what} dValue`, 1e-4, 1e-4);
          }
        }
      }),
      { numRuns: 30, seed: 13 },
    );
  });

  it('long keys: several key-tile chunks per group (dQ partials), G = 7 tiles with padding rows, H not a multiple of 4', () => {
    const cases = [
      { B: 1, T: 40, S: 300, U: 7, V: 1, H: 10, causal: true, slidingWindow: undefined, queryOffset: 260 },
      { B: 2, T: 23, S: 200, U: 4, V: 2, H: 8, causal: false, slidingWindow: 70, queryOffset: 90 },
      { B: 1, T: 130, S: 140, U: 14, V: 2, H: 5, causal: true, slidingWindow: undefined, queryOffset: 10 },
    ];
    cases.forEach(({ B, T, S, U, V, H, causal, slidingWindow, queryOffset }, i) => {
      for (const rate of [0, 0.25]) {
        const problem: AttentionProblem = {
          batch: B, queryLength: T, keyLength: S, numQueryHeads: U, numKeyValueHeads: V, headDim: H,
          query: randomArray(B * T * U * H, 10 + i), key: randomArray(B * S * V * H, 20 + i), value: randomArray(B * S * V * H, 30 + i),
          causal, queryOffset, ...(slidingWindow ? { slidingWindow } : {}), dropoutRate: rate, dropoutSeed: 9,
        };
        const fwd = attentionReference({ ...problem, returnLogSumExp: true });
        const gradOutput = randomArray(fwd.output.length, 40 + i);
        const ref = attentionBackwardReference({ ...problem, output: fwd.output, logSumExp: fwd.logSumExp!, gradOutput });
        for (const { name, engine } of engines) {
          const f = engine.attention({ ...problem, returnLogSumExp: true });
          for (const logSumExp of [f.logSumExp!, undefined]) {
            const what = `case ${i} rate ${rate} ${name} (${logSumExp ? 'saved' : 'recomputed'} lse)`;
            const got = engine.attentionBackward({ ...problem, output: f.output, logSumExp, gradOutput });
            expectClose(got.dQuery, ref.dQuery, `${what} dQuery`, 1e-4, 1e-4);
            expectClose(got.dKey, ref.dKey, `${what} dKey`, 1e-4, 1e-4);
            expectClose(got.dValue, ref.dValue, `${what} dValue`, 1e-4, 1e-4);
          }
          // Into the caller's arrays: the same numbers, no fresh arrays.
          const into = { dQuery: new Float32Array(ref.dQuery.length), dKey: new Float32Array(ref.dKey.length), dValue: new Float32Array(ref.dValue.length) };
          const again = engine.attentionBackward({ ...problem, output: f.output, logSumExp: f.logSumExp!, gradOutput, into });
          expect(again.dQuery).toBe(into.dQuery);
          expect(again.dKey).toBe(into.dKey);
          expect(again.dValue).toBe(into.dValue);
          expectClose(into.dQuery, ref.dQuery, `case ${i} ${name} into dQuery`, 1e-4, 1e-4);
          expectClose(into.dKey, ref.dKey, `case ${i} ${name} into dKey`, 1e-4, 1e-4);
          expect(() => engine.attentionBackward({ ...problem, output: f.output, gradOutput, into: { ...into, dKey: new Float32Array(3) } }))
            .toThrow(/problem\.into\.dKey` must have length/);
        }
      }
    });
  });

  it('the naive backward equals float64 finite differences of the reference forward', () => {
    const problem: AttentionProblem = {
      batch: 1, queryLength: 3, keyLength: 4, numQueryHeads: 2, numKeyValueHeads: 1, headDim: 3,
      query: randomArray(18, 1), key: randomArray(12, 2), value: randomArray(12, 3),
      mask: { kind: 'bool', data: new Uint8Array([1, 1, 0, 1]), shape: [1, 1, 1, 4] }, causal: true, queryOffset: 1,
    };
    const w = randomArray(18, 4);
    const loss = (q: Float32Array, k: Float32Array, v: Float32Array): number => {
      // float64 forward of the same semantics (the reference rounds to float32; finite differences need more)
      const o = float64Forward({ ...problem, query: q, key: k, value: v });
      let s = 0;
      for (let i = 0; i < o.length; i++) s += o[i]! * w[i]!;
      return s;
    };
    const fwd = attentionReference({ ...problem, returnLogSumExp: true });
    const g = attentionBackwardReference({ ...problem, output: fwd.output, logSumExp: fwd.logSumExp!, gradOutput: w });
    for (const [name, arr, grad] of [['query', problem.query, g.dQuery], ['key', problem.key, g.dKey], ['value', problem.value, g.dValue]] as const) {
      for (let i = 0; i < arr.length; i++) {
        const a = Float64Array.from(arr);
        const eps = 1e-3;
        const at = (d: number) => {
          const c = Float64Array.from(a);
          c[i] = c[i]! + d;
          const x = (n: string) => (n === name ? c : n === 'query' ? problem.query : n === 'key' ? problem.key : problem.value);
          return loss(x('query') as never, x('key') as never, x('value') as never);
        };
        const fd = (at(eps) - at(-eps)) / (2 * eps);
        expect(Math.abs(fd - grad[i]!), `${name}[${i}]`).toBeLessThan(1e-4);
      }
    }
  });
});

/** A float64 forward (no float32 rounding) for finite differences: bool mask, causal, offset. */
function float64Forward(p: AttentionProblem): Float64Array {
  const { batch: B, queryLength: T, keyLength: S, numQueryHeads: U, numKeyValueHeads: V, headDim: H } = p;
  const G = U / V;
  const scale = Math.fround(1 / Math.fround(Math.sqrt(H)));
  const out = new Float64Array(B * T * U * H);
  const m = p.mask!;
  for (let b = 0; b < B; b++)
    for (let u = 0; u < U; u++)
      for (let t = 0; t < T; t++) {
        const kv = Math.floor(u / G);
        const x: number[] = [];
        for (let j = 0; j < S; j++) {
          let s = 0;
          for (let h = 0; h < H; h++) s += p.query[((b * T + t) * U + u) * H + h]! * scale * p.key[((b * S + j) * V + kv) * H + h]!;
          const allowed = j <= (p.queryOffset ?? 0) + t && m.data[j] !== 0;
          x.push(allowed ? s : -Infinity);
        }
        const mx = Math.max(...x);
        const e = x.map((v) => Math.exp(v - mx));
        const sum = e.reduce((a, c) => a + c, 0);
        for (let h = 0; h < H; h++) {
          let o = 0;
          for (let j = 0; j < S; j++) o += (e[j]! / sum) * p.value[((b * S + j) * V + kv) * H + h]!;
          out[((b * T + t) * U + u) * H + h] = o;
        }
      }
  return out;
}
