/** `resultInto`: the engines write their results into the caller's arrays, bit for bit what they return fresh. */
import fc from 'fast-check';
import { afterAll, describe, expect, test } from 'vitest';
import type { AttentionProblem } from '../../src/engine/index.js';
import { ValueError } from '../../src/errors.js';
import { buildProblem, makeEngines, problemSpec, randomArray } from './helpers.js';

const engines = makeEngines();
afterAll(() => engines.forEach(({ engine }) => engine.dispose()));

/** An array of n floats filled with a sentinel, so that entries left unwritten show. */
const stale = (n: number): Float32Array => new Float32Array(n).fill(12345.5);

describe('resultInto', () => {
  test('random problems: the given arrays are returned and hold the fresh result bit for bit', () => {
    fc.assert(
      fc.property(problemSpec, fc.boolean(), fc.boolean(), (sp, wantP, wantL) => {
        const problem: AttentionProblem = { ...buildProblem(sp), returnProbabilities: wantP, returnLogSumExp: wantL };
        const { batch: B, queryLength: T, keyLength: S, numQueryHeads: U, headDim: H } = problem;
        for (const { name, engine } of engines) {
          const fresh = engine.attention(problem);
          const output = stale(B * T * U * H);
          const probabilities = wantP ? stale(B * U * T * S) : undefined;
          const logSumExp = wantL ? stale(B * U * T) : undefined;
          const got = engine.attention({
            ...problem,
            resultInto: { output, ...(probabilities ? { probabilities } : {}), ...(logSumExp ? { logSumExp } : {}) },
          });
          expect(got.output, name).toBe(output);
          expect(output, name).toEqual(fresh.output);
          if (wantP) {
            expect(got.probabilities, name).toBe(probabilities);
            expect(probabilities, name).toEqual(fresh.probabilities);
          }
          if (wantL) {
            expect(got.logSumExp, name).toBe(logSumExp);
            expect(logSumExp, name).toEqual(fresh.logSumExp);
          }
        }
      }),
      { numRuns: 25 },
    );
  });

  const base: AttentionProblem = {
    batch: 1, queryLength: 3, keyLength: 5, numQueryHeads: 2, numKeyValueHeads: 1, headDim: 4,
    query: randomArray(24, 1), key: randomArray(20, 2), value: randomArray(20, 3),
  };

  test.each([
    ['a missing output', { resultInto: {} }, /problem\.resultInto\.output` must be a Float32Array; received undefined/],
    ['a wrong output length', { resultInto: { output: new Float32Array(23) } }, /resultInto\.output` must have length B\*T\*U\*H \(1\*3\*2\*4\) = 24; received length 23/],
    ['probabilities not requested', { resultInto: { output: new Float32Array(24), probabilities: new Float32Array(30) } }, /resultInto\.probabilities` must be given exactly when returnProbabilities is true/],
    ['requested probabilities missing', { returnProbabilities: true, resultInto: { output: new Float32Array(24) } }, /resultInto\.probabilities` must be a Float32Array; received undefined/],
    ['an output over the query', { resultInto: { output: base.query } }, /resultInto\.output` must not overlap problem\.query/],
    ['a non-object', { resultInto: 3 }, /problem\.resultInto` must be an object/],
  ])('refuses %s before any work, naming the argument', (_what, extra, message) => {
    for (const { name, engine } of engines) {
      const before = engine.memoryBytes();
      expect(() => engine.attention({ ...base, ...(extra as object) } as AttentionProblem), name).toThrow(ValueError);
      expect(() => engine.attention({ ...base, ...(extra as object) } as AttentionProblem), name).toThrow(message);
      expect(engine.memoryBytes(), name).toBe(before);
    }
  });

  test('refuses output and log-sum-exp sharing bytes', () => {
    const shared = new Float32Array(30);
    const problem = { ...base, returnLogSumExp: true, resultInto: { output: shared.subarray(0, 24), logSumExp: shared.subarray(20, 26) } };
    for (const { name, engine } of engines) expect(() => engine.attention(problem), name).toThrow(/must hold arrays that do not overlap each other/);
  });

  test("refuses views of the engine's own memory", () => {
    const { engine } = engines[0]!;
    const buffer = engine.allocate(24);
    try {
      expect(() => engine.attention({ ...base, resultInto: { output: buffer.view() } })).toThrow(/must not be a view of the engine's own memory/);
    } finally {
      buffer.free();
    }
  });
});
