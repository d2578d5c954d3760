/**
 * Careless use of the engine that must still give the right answer or a clear error: raw views of
 * engine memory across memory growth, many (batch × kv head) groups with probabilities, buffer
 * accounting of the JS engine.
 */
import { describe, expect, test } from 'vitest';
import { createJsEngine, type AttentionProblem } from '../../src/engine/index.js';
import { attentionReference, disposedAfterAll, expectMatchesReference, randomArray } from './helpers.js';

const engine = disposedAfterAll();

describe('raw views of engine memory while the memory grows', () => {
  // Key/value given as `buffer.view()` (plain Float32Arrays over engine memory) rather than the
  // EngineBuffers; the call's own staging grows the memory, which detaches views of a non-shared
  // memory. Rows with no allowed key are computed after the kernel and must still read the inputs.
  for (const opts of [{ sharedMemory: false }, { threads: 2 }, { threads: 1 }]) {
    test(`${JSON.stringify(opts)}: a row with no allowed key, probabilities forcing growth`, () => {
      const e = engine(opts);
      const B = 1, T = 64, S = 3000, U = 2, V = 1, H = 64;
      const kb = e.allocate(B * S * V * H);
      const vb = e.allocate(B * S * V * H);
      kb.view().set(randomArray(B * S * V * H, 1));
      vb.view().set(randomArray(B * S * V * H, 2));
      const data = new Uint8Array(T * S).fill(1);
      for (let j = 0; j < S; j++) data[3 * S + j] = 0; // row 3 sees no key
      const problem: AttentionProblem = {
        batch: B, queryLength: T, keyLength: S, numQueryHeads: U, numKeyValueHeads: V, headDim: H,
        query: randomArray(B * T * U * H, 3), key: kb.view(), value: vb.view(),
        mask: { kind: 'bool', data, shape: [1, 1, T, S] }, returnProbabilities: true,
      };
      const ref = attentionReference({ ...problem, key: kb.view().slice(), value: vb.view().slice() });
      const before = e.memoryBytes();
      expectMatchesReference(e.attention(problem), ref, JSON.stringify(opts));
      expect(e.memoryBytes(), 'the call grew the memory').toBeGreaterThan(before);
      kb.free();
      vb.free();
    });
  }
});

describe('many (batch × kv head) groups', () => {
  test('probabilities do not make a problem "too large" that runs without them (jobs split by groups)', () => {
    const e = engine({ threads: 2 });
    // 2^20 groups of one query row and one key: 1M tasks in one job would overflow the task counter.
    const B = 65536, V = 16, U = 16, H = 1, T = 1, S = 1;
    const problem: AttentionProblem = {
      batch: B, queryLength: T, keyLength: S, numQueryHeads: U, numKeyValueHeads: V, headDim: H,
      query: randomArray(B * T * U * H, 4), key: randomArray(B * S * V * H, 5), value: randomArray(B * S * V * H, 6),
    };
    const withScores = e.attention({ ...problem, returnProbabilities: true });
    // One key: every weight is 1 and every output row is its head's value row (G = 1).
    expect(Array.from(withScores.output)).toEqual(Array.from(problem.value as Float32Array));
    expect(withScores.probabilities!.every((x) => x === 1)).toBe(true);
  });
});

describe('JS engine buffer accounting', () => {
  test('memoryBytes() goes down when buffers are freed (once per buffer)', () => {
    const e = createJsEngine();
    const a = e.allocate(1000);
    const b = e.allocate(24);
    expect(e.memoryBytes()).toBe(4096);
    a.free();
    expect(e.memoryBytes()).toBe(96);
    a.free();
    expect(e.memoryBytes()).toBe(96);
    b.free();
    expect(e.memoryBytes()).toBe(0);
  });
});
