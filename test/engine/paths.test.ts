/** Every engine path against the naive reference and an independent float64 oracle, over random problems. */
import fc from 'fast-check';
import { afterAll, describe, expect, test } from 'vitest';
import { expectClose } from '../helpers/close.js';
import { attentionReference, buildProblem, expectMatchesReference, float64Attention, makeEngines, problemSpec } from './helpers.js';

const engines = makeEngines();
afterAll(() => engines.forEach(({ engine }) => engine.dispose()));

describe('engine paths match the reference', () => {
  test('engines report their path', () => {
    expect(engines.map(({ engine }) => [engine.kind, engine.threads, engine.sharedMemory])).toEqual([
      ['wasm', 2, true],
      ['wasm', 1, true],
      ['wasm', 1, false],
      ['js', 1, false],
    ]);
  });

  test('random problems: every path ≈ reference, reference ≈ float64 oracle', () => {
    fc.assert(
      fc.property(problemSpec, (sp) => {
        const problem = buildProblem(sp);
        const snapshot = [problem.query.slice(), problem.key.slice(), problem.value.slice()];
        const ref = attentionReference(problem);
        const f64 = float64Attention(problem);
        expectClose(ref.output, f64.output, `reference vs float64 ${JSON.stringify(sp)}`, 2e-5, 2e-5);
        for (const { name, engine } of engines) {
          expectMatchesReference(engine.attention(problem), ref, `${name} ${JSON.stringify(sp)}`);
        }
        // inputs are never modified
        expect(problem.query).toEqual(snapshot[0]);
        expect(problem.key).toEqual(snapshot[1]);
        expect(problem.value).toEqual(snapshot[2]);
      }),
      { numRuns: 40, seed: 20261126 },
    );
  });

  test('larger tiles: several query and key tiles, G packed, causal with offset and window', () => {
    for (const [G, H, T, S, causal, offset, window] of [
      [4, 128, 150, 300, true, 150, 0],
      [7, 80, 70, 200, false, 0, 50],
      [1, 64, 200, 130, true, 0, 0],
      [2, 16, 65, 65, true, 0, 33],
    ] as const) {
      const problem = buildProblem({
        B: 1, T, S, V: 2, G, H, extraCapacity: 5, causal, offset, window,
        maskKind: 'none', maskDims: [false, false, false, false], density: 1, magnitude: 1, probs: false, seed: G * 31 + H,
      });
      const ref = attentionReference(problem);
      for (const { name, engine } of engines) expectMatchesReference(engine.attention(problem), ref, `${name} G=${G} H=${H}`);
    }
  });

  test('decode split over the key sequence (flash-decoding reduction)', () => {
    // B*V*queryTiles = 1 task < 4*threads: the threaded engine splits S into chunks.
    for (const [S, mask] of [[1500, false], [700, true]] as const) {
      const problem = buildProblem({
        B: 1, T: 1, S, V: 1, G: 4, H: 32, extraCapacity: 0, causal: false, offset: 0, window: 0,
        maskKind: mask ? 'bool' : 'none', maskDims: [true, false, false, true], density: 0.3, magnitude: 1, probs: false, seed: S,
      });
      const ref = attentionReference(problem);
      for (const { name, engine } of engines) expectMatchesReference(engine.attention(problem), ref, `${name} S=${S}`);
    }
  });
});
