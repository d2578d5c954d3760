/** Key/value staging per (batch, kv head) group: results match the reference, memory stays bounded. */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { AttentionEngine, EngineProblem } from '../../src/engine/index.js';
import { attentionReference, buildProblem, disposedAfterAll, expectMatchesReference, problemSpec } from './helpers.js';

const engine = disposedAfterAll();

/** A copy of `a` in engine memory. */
function toBuffer(e: AttentionEngine, a: Float32Array) {
  const b = e.allocate(a.length);
  b.view().set(a);
  return b;
}

describe('key/value staged per group (bounded staging)', () => {
  // 64 bytes: one group per job and one query tile per block; 3000: a few groups per job.
  const small = [
    engine({ threads: 2, testing: { stagingBytes: 64 } }),
    engine({ threads: 1, testing: { stagingBytes: 3000 } }),
    engine({ sharedMemory: false, testing: { stagingBytes: 3000 } }),
    engine({ threads: 2, testing: { stagingBytes: 20000 } }),
  ];

  test('random problems, plain arrays and every mix of in-place EngineBuffers, match the reference', () => {
    fc.assert(
      fc.property(problemSpec, fc.integer({ min: 0, max: 7 }), (sp, inPlace) => {
        const problem = buildProblem(sp);
        const ref = attentionReference(problem);
        for (const e of small) {
          const bufs = [];
          const q = inPlace & 1 ? toBuffer(e, problem.query) : problem.query;
          const k = inPlace & 2 ? toBuffer(e, problem.key) : problem.key;
          const v = inPlace & 4 ? toBuffer(e, problem.value) : problem.value;
          for (const x of [q, k, v]) if (!(x instanceof Float32Array)) bufs.push(x);
          const p: EngineProblem = { ...problem, query: q, key: k, value: v };
          expectMatchesReference(e.attention(p), ref, `stagingBytes ${JSON.stringify(sp)} inPlace=${inPlace}`);
          bufs.forEach((b) => b.free());
        }
      }),
      { numRuns: 30, seed: 20261127 },
    );
  });

  test('key and value the same array; decode split over keys per group', () => {
    for (const [T, S] of [[1, 1500], [3, 700], [40, 90]] as const) {
      const p = buildProblem({
        B: 2, T, S, V: 3, G: 2, H: 32, extraCapacity: 2, causal: T > 1, offset: S - T, window: 0,
        maskKind: 'none', maskDims: [false, false, false, false], density: 1, magnitude: 1, probs: false, seed: S,
      });
      const same = { ...p, value: p.key };
      const ref = attentionReference(same);
      for (const e of small) expectMatchesReference(e.attention(same), ref, `T=${T} S=${S}`);
    }
  });

  test('short queries: key chunks of every head staged in turn, partials reduced at the end', () => {
    // (B, V, H) = (2, 3, 32): 1536 staged bytes per key row; 200 kB holds 64-row chunks,
    // 1 MiB 256-row chunks (two 128-key sub-chunks per job with 2 threads).
    const chunked = [
      engine({ threads: 2, testing: { stagingBytes: 200_000 } }),
      engine({ threads: 1, testing: { stagingBytes: 200_000 } }),
      engine({ threads: 2, testing: { stagingBytes: 1 << 20 } }),
      engine({ sharedMemory: false, testing: { stagingBytes: 1 << 20 } }),
    ];
    const cases = [
      [1, 1500, false, 0, 'none'], [2, 1500, true, 0, 'additive'], [3, 700, true, 300, 'bool'], [1, 1000, false, 0, 'bool'],
    ] as const;
    for (const [T, S, causal, window, maskKind] of cases) {
      const p = buildProblem({
        B: 2, T, S, V: 3, G: 2, H: 32, extraCapacity: 3, causal, offset: S - T, window,
        maskKind, maskDims: [true, true, false, true], density: 0.7, magnitude: 1, probs: false, seed: S + T,
      });
      const ref = attentionReference(p);
      for (const e of chunked) {
        expectMatchesReference(e.attention(p), ref, `T=${T} S=${S} ${maskKind}`);
        const kb = toBuffer(e, p.key);
        expectMatchesReference(e.attention({ ...p, key: kb }), ref, `T=${T} S=${S} key in place`);
        kb.free();
      }
    }
  });

  test('EngineBuffer key/value of a long query (a KV cache being prefilled) are staged per group: the same floats as plain arrays', () => {
    // G = 4: 16 query rows per tile, so T = 100 has 7 query tiles (staged); T = 40 has 3 (read in place).
    // The last case puts a NaN in one key row and an Inf in one value row: the rows they reach are
    // recomputed from the buffers themselves (exact rows), so they must still agree.
    for (const [T, sameKeyValue, nonFinite] of [[100, false, false], [100, true, false], [40, false, false], [100, false, true]] as const) {
      const p = buildProblem({
        B: 2, T, S: 150, V: 3, G: 4, H: 20, extraCapacity: 10, causal: true, offset: 50, window: 0,
        maskKind: 'bool', maskDims: [true, false, true, true], density: 0.8, magnitude: 1, probs: false, seed: T,
      });
      if (nonFinite) {
        p.key[(1 * 160 + 70) * 3 * 20 + 1 * 20 + 5] = Number.NaN;
        p.value[(0 * 160 + 120) * 3 * 20 + 2 * 20] = Number.POSITIVE_INFINITY;
      }
      const problem = sameKeyValue ? { ...p, value: p.key } : p;
      for (const e of [...small, engine({ threads: 2 })]) {
        const plain = e.attention(problem).output;
        const kb = toBuffer(e, problem.key);
        const vb = sameKeyValue ? kb : toBuffer(e, problem.value);
        const before = e.memoryBytes();
        const cached = e.attention({ ...problem, key: kb, value: vb }).output;
        expect(Array.from(cached), `T=${T} same=${sameKeyValue} nonFinite=${nonFinite}`).toEqual(Array.from(plain));
        if (nonFinite) expect(cached.some(Number.isNaN)).toBe(true);
        // The buffers are untouched (staging copies them; the kernel never writes them).
        expect(Array.from(kb.view())).toEqual(Array.from(problem.key));
        expect(e.memoryBytes() - before).toBeLessThanOrEqual(2 * 2 ** 20);
        kb.free();
        if (!sameKeyValue) vb.free();
      }
    }
  });

  // Groups of key/value within 16 MiB (WHOLE_KEY_VALUE_BUDGETS: all 8 at S = 2048, 2 at S = 8192)
  // plus a 4 MiB query/output block.
  test.each([
    [2048, 21 * 2 ** 20],
    [8192, 21 * 2 ** 20],
  ])('memory growth at T = 2048, S = %i, (U, V, H) = (32, 8, 128) stays within %i bytes', (S, limit) => {
    const [B, T, U, V, H] = [1, 2048, 32, 8, 128];
    const q = new Float32Array(B * T * U * H).fill(0.01);
    const k = new Float32Array(B * S * V * H).fill(0.02);
    const v = new Float32Array(B * S * V * H);
    for (let i = 0; i < v.length; i++) v[i] = (i % 7) - 3;
    for (const e of [engine({ threads: 2 }), engine({ sharedMemory: false })]) {
      const before = e.memoryBytes();
      // A narrow causal window keeps the work small; staging is the same as for full causal.
      const { output } = e.attention({
        batch: B, queryLength: T, keyLength: S, numQueryHeads: U, numKeyValueHeads: V, headDim: H,
        query: q, key: k, value: v, causal: true, slidingWindow: 64, queryOffset: S - T,
      });
      const growth = e.memoryBytes() - before;
      expect(growth).toBeLessThanOrEqual(limit);
      // Uniform logits: row t averages value rows max(0, t-63)..t; spot-check the last row of head 31.
      const row = (T - 1) * U * H + 31 * H;
      for (const h of [0, 1, 127]) {
        let sum = 0;
        for (let j = S - 64; j < S; j++) sum += v[(j * V + 7) * H + h]!;
        expect(output[row + h]).toBeCloseTo(sum / 64, 4);
      }
    }
  });
});
