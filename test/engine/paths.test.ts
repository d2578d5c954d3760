/** Every engine path against the naive reference and an independent float64 oracle, over random problems. */
import fc from 'fast-check';
import { afterAll, describe, expect, test } from 'vitest';
import { expectClose } from '../helpers/close.js';
import { createAttentionEngineSync, createJsEngine } from '../../src/engine/index.js';
import { relaxedSimdSupported } from '../../src/engine/kernel-module.js';
import { attentionReference, buildProblem, expectedKernel, expectMatchesReference, float64Attention, makeEngines, problemSpec } from './helpers.js';

const engines = makeEngines();
afterAll(() => engines.forEach(({ engine }) => engine.dispose()));

describe('engine paths match the reference', () => {
  test('engines report their path', () => {
    expect(engines.slice(0, 4).map(({ engine }) => [engine.kind, engine.threads, engine.sharedMemory])).toEqual([
      ['wasm', 2, true],
      ['wasm', 1, true],
      ['wasm', 1, false],
      ['js', 1, false],
    ]);
  });

  test('engines report their kernel build: relaxed SIMD exactly where the runtime validates it', () => {
    const build = relaxedSimdSupported() ? 'wasm-relaxed-simd' : 'wasm-simd';
    const expected = expectedKernel();
    if (expected !== undefined) expect(build).toBe(expected);
    expect(engines.map(({ engine }) => engine.kernel)).toEqual([
      build, build, build, 'js', ...(build === 'wasm-relaxed-simd' ? ['wasm-simd'] : []),
    ]);
    const plain = createAttentionEngineSync({ threads: 1, relaxedSimd: false });
    expect(plain.kernel).toBe('wasm-simd');
    plain.dispose();
    expect(createJsEngine().kernel).toBe('js');
  });

  test.runIf(relaxedSimdSupported())('workers run the same build as the calling thread', () => {
    // Enough query tiles that no key chunking happens: every tile is computed the same way whichever
    // thread runs it, so a threaded relaxed engine equals a one-thread relaxed engine bit for bit,
    // while the plain build (two roundings per multiply-add) differs.
    const problem = buildProblem({
      B: 1, T: 256, S: 256, V: 2, G: 4, H: 128, extraCapacity: 0, causal: true, offset: 0, window: 0,
      maskKind: 'none', maskDims: [false, false, false, false], density: 1, magnitude: 1, probs: false, seed: 16,
    });
    const made = [engines[0]!.engine, engines[1]!.engine, engines[4]!.engine];
    const [threaded, single, plain] = made.map((e) => e.attention(problem).output);
    expect(made.map((e) => [e.kernel, e.threads])).toEqual([['wasm-relaxed-simd', 2], ['wasm-relaxed-simd', 1], ['wasm-simd', 2]]);
    expect(threaded).toEqual(single);
    expect(plain).not.toEqual(single);
    expectMatchesReference({ output: plain! }, attentionReference(problem), 'plain build');
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
