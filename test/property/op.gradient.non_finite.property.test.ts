/**
 * Property (issue 11 with issue 12's non-finite rule, backward side): with NaN or ±Inf injected at
 * random positions of Q, K, V, the output gradient dO and a numeric `attentionMask`, the op's
 * registered gradient (`groupedQueryAttention`: the engine's fused backward on cpu and wasm) gives
 * NaN/±Inf exactly where autodiff of its composite reference (`groupedQueryAttentionReference`)
 * does, and the same finite values elsewhere (within 1e-4 of the row's largest value); with and
 * without dropout, bool or numeric masks, causal or not, G in {1, 2, 7}.
 */
import * as fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, test } from 'vitest';
import { groupedQueryAttention, groupedQueryAttentionReference, type GroupedQueryAttentionOptions } from '../../src/index.js';
import { BACKENDS, useBackend } from '../helpers/backends.js';
import { rng, uniform } from './random.js';
import { compareSameClass, countClasses, injectValues } from './same_class.js';

const position = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
const nonFinite = fc.constantFrom(Number.NaN, Infinity, -Infinity);
const params = fc.record({
  b: fc.integer({ min: 1, max: 2 }),
  v: fc.constantFrom(1, 2),
  g: fc.constantFrom(1, 2, 7),
  h: fc.constantFrom(1, 4, 8),
  t: fc.constantFrom(1, 3, 5),
  s: fc.constantFrom(1, 4, 7),
  mask: fc.constantFrom('none', 'numeric', 'bool'),
  causal: fc.boolean(),
  dropout: fc.constantFrom(0, 0, 0.3),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  inject: fc.record({
    query: fc.option(fc.tuple(position, nonFinite)),
    key: fc.option(fc.tuple(position, nonFinite)),
    value: fc.option(fc.tuple(position, nonFinite)),
    gradOutput: fc.option(fc.tuple(position, nonFinite)),
    mask: fc.option(fc.tuple(position, nonFinite)),
  }),
});

/** Same class everywhere; finite values within 1e-4 relative to the largest finite value of their row. */
const compare = (got: Float32Array, want: Float32Array, row: number) => compareSameClass(got, want, row, 1e-4);

describe.each(BACKENDS)('gradient of groupedQueryAttention with non-finite values vs autodiff of its composite on %s', (backend) => {
  beforeAll(() => useBackend(backend));

  test('random NaN/±Inf in Q, K, V, dO and the mask: same non-finite class at the same positions, finite values agree', () => {
    const seen = { nonFinite: 0, mixed: 0 };
    fc.assert(
      fc.property(params, (p) => {
        const u = p.v * p.g;
        const next = rng(p.seed);
        const q = uniform(next, p.b * p.t * u * p.h, 1.5);
        const k = uniform(next, p.b * p.s * p.v * p.h, 1.5);
        const v = uniform(next, p.b * p.s * p.v * p.h, 1);
        const dO = uniform(next, p.b * p.t * u * p.h, 1);
        const maskData = new Float32Array(p.b * p.t * p.s);
        for (let i = 0; i < maskData.length; i++) maskData[i] = next() < 0.7 ? 1 : 0;
        const targets = { query: q, key: k, value: v, gradOutput: dO, mask: maskData };
        injectValues(targets, p.inject);
        const what = JSON.stringify(p);
        const before = tf.memory().numTensors;
        tf.tidy(() => {
          const mask =
            p.mask === 'none' ? null : p.mask === 'numeric' ? tf.tensor3d(maskData, [p.b, p.t, p.s]) : tf.notEqual(tf.tensor3d(maskData, [p.b, p.t, p.s]), 0);
          const options: GroupedQueryAttentionOptions = {
            attentionMask: mask, causal: p.causal, dropout: p.dropout, training: p.dropout > 0, seed: p.seed,
          };
          const args = [tf.tensor4d(q, [p.b, p.t, u, p.h]), tf.tensor4d(k, [p.b, p.s, p.v, p.h]), tf.tensor4d(v, [p.b, p.s, p.v, p.h])];
          const r = tf.tensor4d(dO, [p.b, p.t, u, p.h]);
          const gradsOf = (f: typeof groupedQueryAttention) =>
            tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(f(a, b, c, options), r)))(args);
          const got = gradsOf(groupedQueryAttention);
          const want = gradsOf(groupedQueryAttentionReference);
          want.forEach((w, i) => {
            const wantData = w.dataSync() as Float32Array;
            expect(compare(got[i]!.dataSync() as Float32Array, wantData, p.h), `${what}: gradient ${i}`).toBeNull();
            countClasses(seen, wantData);
          });
        });
        expect(tf.memory().numTensors, `${what}: tensors leaked`).toBe(before);
      }),
      { numRuns: 80, seed: 21 },
    );
    expect(seen.nonFinite).toBeGreaterThan(20);
    expect(seen.mixed).toBeGreaterThan(5);
  });
});
