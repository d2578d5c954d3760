/**
 * Property (issue 12 item 1, op side of the engine fix): with NaN/±Inf/huge values injected at random
 * positions of Q, K, V and a numeric `attentionMask`, the fused op (`groupedQueryAttention`, which runs
 * the engine on cpu and wasm) gives NaN/±Inf exactly where its composite reference
 * (`groupedQueryAttentionReference`, tfjs ops as Keras computes them) does, and the same finite values
 * elsewhere; with and without scores, bool or numeric masks, causal or not.
 *
 * A numeric mask value m enters as the float32 adder (1 - m)·(-1e9): NaN stays NaN, +Inf or 1e30
 * becomes +Inf (overflow), -Inf becomes -Inf. Huge values are 1e30, at most one per tensor among Q and
 * K, so no dot product sums two overflowing terms of opposite sign (where the composite's float64
 * accumulation on cpu and float32 disagree about NaN vs a finite value).
 */
import * as fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, test } from 'vitest';
import { groupedQueryAttention, groupedQueryAttentionReference } from '../../src/index.js';
import { BACKENDS, useBackend } from '../helpers/backends.js';
import { rng, uniform } from './random.js';
import { compareSameClass, countClasses, injectValues } from './same_class.js';

const params = fc.record({
  b: fc.integer({ min: 1, max: 2 }),
  v: fc.constantFrom(1, 2),
  g: fc.constantFrom(1, 2, 7),
  h: fc.constantFrom(1, 4, 8),
  t: fc.constantFrom(1, 3, 5),
  s: fc.constantFrom(1, 4, 7),
  mask: fc.constantFrom('none', 'numeric', 'bool'),
  causal: fc.boolean(),
  scores: fc.boolean(),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  inject: fc.record({
    query: fc.option(fc.tuple(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), fc.constantFrom(Number.NaN, Infinity, -Infinity, 1e30))),
    key: fc.option(fc.tuple(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), fc.constantFrom(Number.NaN, Infinity, -Infinity, -1e30))),
    value: fc.option(fc.tuple(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), fc.constantFrom(Number.NaN, Infinity, -Infinity, 1e30))),
    mask: fc.option(fc.tuple(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), fc.constantFrom(Number.NaN, Infinity, -Infinity, 1e30))),
  }),
});

/** Same class everywhere; finite values within 1e-5 relative to the largest finite value of their row. */
const compare = (got: Float32Array, want: Float32Array, row: number) => compareSameClass(got, want, row, 1e-5);

describe.each(BACKENDS)('groupedQueryAttention with non-finite inputs vs its composite reference on %s', (backend) => {
  beforeAll(() => useBackend(backend));

  test('the issue reproductions: NaN query, numeric mask of NaN, +Inf and 1e30, a row of -Inf', () => {
    const [b, t, s, u, h] = [1, 4, 3, 2, 2];
    const q = uniform(rng(1), b * t * u * h, 1);
    q[0] = Number.NaN;
    const k = uniform(rng(2), b * s * h, 1);
    const v = uniform(rng(3), b * s * h, 1);
    const m = new Float32Array(t * s).fill(1);
    m[1 * s + 0] = Number.NaN;
    m[2 * s + 1] = 1e30;
    m.fill(Infinity, 3 * s, 4 * s); // (1 - Inf)·(-1e9) = +Inf
    tf.tidy(() => {
      const args = [tf.tensor4d(q, [b, t, u, h]), tf.tensor4d(k, [b, s, 1, h]), tf.tensor4d(v, [b, s, 1, h])] as const;
      const options = { attentionMask: tf.tensor2d(m, [t, s]), returnScores: true as const };
      const [out, scores] = groupedQueryAttention(...args, options);
      const [refOut, refScores] = groupedQueryAttentionReference(...args, options);
      const o = out.dataSync() as Float32Array;
      expect(compare(o, refOut.dataSync() as Float32Array, h)).toBeNull();
      expect(compare(scores.dataSync() as Float32Array, refScores.dataSync() as Float32Array, s)).toBeNull();
      // Row t=0 head 0 (NaN query), rows 1-3 (NaN, 1e30 and +Inf adders) are NaN; t=0 head 1 is finite.
      expect(Number.isNaN(o[0]!)).toBe(true);
      expect(Number.isFinite(o[2]!)).toBe(true);
      for (let tt = 1; tt < 4; tt++) expect(Number.isNaN(o[tt * u * h]!), `t=${tt}`).toBe(true);
    });
  });

  test('random injections into Q, K, V and the mask: same non-finite class at the same positions', () => {
    const seen = { nonFinite: 0, mixed: 0 };
    fc.assert(
      fc.property(params, (p) => {
        const u = p.v * p.g;
        const next = rng(p.seed);
        const q = uniform(next, p.b * p.t * u * p.h, 1.5);
        const k = uniform(next, p.b * p.s * p.v * p.h, 1.5);
        const v = uniform(next, p.b * p.s * p.v * p.h, 1);
        const maskData = new Float32Array(p.b * p.t * p.s);
        for (let i = 0; i < maskData.length; i++) maskData[i] = next() < 0.7 ? 1 : 0;
        const targets = { query: q, key: k, value: v, mask: maskData };
        injectValues(targets, p.inject);
        const what = JSON.stringify(p);
        const before = tf.memory().numTensors;
        tf.tidy(() => {
          const mask =
            p.mask === 'none' ? null : p.mask === 'numeric' ? tf.tensor3d(maskData, [p.b, p.t, p.s]) : tf.notEqual(tf.tensor3d(maskData, [p.b, p.t, p.s]), 0);
          const options = { attentionMask: mask, causal: p.causal, returnScores: p.scores };
          const args = [tf.tensor4d(q, [p.b, p.t, u, p.h]), tf.tensor4d(k, [p.b, p.s, p.v, p.h]), tf.tensor4d(v, [p.b, p.s, p.v, p.h])] as const;
          const got = groupedQueryAttention(...args, options) as tf.Tensor | tf.Tensor[];
          const want = groupedQueryAttentionReference(...args, options) as tf.Tensor | tf.Tensor[];
          const [go, gs] = Array.isArray(got) ? got : [got];
          const [wo, ws] = Array.isArray(want) ? want : [want];
          const wantOut = wo!.dataSync() as Float32Array;
          expect(compare(go!.dataSync() as Float32Array, wantOut, p.h), `${what}: output`).toBeNull();
          if (p.scores) expect(compare(gs!.dataSync() as Float32Array, ws!.dataSync() as Float32Array, p.s), `${what}: scores`).toBeNull();
          countClasses(seen, wantOut);
        });
        expect(tf.memory().numTensors, `${what}: tensors leaked`).toBe(before);
      }),
      { numRuns: 150, seed: 12 },
    );
    expect(seen.nonFinite).toBeGreaterThan(20);
    expect(seen.mixed).toBeGreaterThan(5);
  });
});
