/**
 * Property: the layer `GroupedQueryAttention` (random weights set with setWeights) equals the
 * independent float64 reference (test/reference/float64.ts) for random shapes, groupings, masks of
 * every supported shape, query/value/key masks, causal masks, a key with its own feature size and
 * useBias false — on the cpu and wasm backends.
 *
 * Tolerance (stated once, used everywhere): |got − want| ≤ 1e-5·max(1, max|want|) + 1e-5·|want|.
 *
 * Fully masked rows: the reference rounds masked logits as float32 Keras does (fl32(s − 1e9)). The
 * data here is scaled so that every |logit| < 20 by construction (|x| ≤ 1, |W|, |b| ≤ w with
 * sqrt(H)·(D+1)²·w² ≤ 20), so such rows are exactly uniform in float32 Keras and nowhere near the
 * grid's rounding ties at ±32; the test asserts that bound rather than trusting it.
 */
import * as fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, test } from 'vitest';
import { GroupedQueryAttention } from '../../src/index.js';
import { BACKENDS, useBackend } from '../helpers/backends.js';
import { compare64, gqaLayer64, tensor64, type LayerWeights64 } from '../reference/float64.js';
import { attentionMaskShape, boolMask, MASK_SHAPES, rng, uniform } from './random.js';

const params = fc.record({
  b: fc.integer({ min: 1, max: 3 }),
  v: fc.constantFrom(1, 2),
  g: fc.constantFrom(1, 2, 7),
  h: fc.constantFrom(1, 80, 3),
  t: fc.constantFrom(1, 2, 4),
  s: fc.constantFrom(1, 3, 5),
  dq: fc.integer({ min: 1, max: 5 }),
  dvSame: fc.boolean(),
  dv: fc.integer({ min: 1, max: 5 }),
  keyGiven: fc.boolean(),
  dk: fc.integer({ min: 1, max: 5 }),
  useBias: fc.boolean(),
  attn: fc.constantFrom(...MASK_SHAPES),
  queryMask: fc.boolean(),
  valueMask: fc.boolean(),
  keyMask: fc.boolean(),
  causal: fc.boolean(),
  scores: fc.boolean(),
  pTrue: fc.constantFrom<number>(0.3, 0.8),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
});

type Params = typeof params extends fc.Arbitrary<infer P> ? P : never;

/** What the generated cases exercised, so a test can assert its coverage. */
const seen = { raised: 0, fullyMaskedRows: 0, partiallyMasked: 0, groups7: 0, head80: 0, noBias: 0, keyGiven: 0 };

function runCase(p: Params): void {
  const u = p.v * p.g;
  const dv = p.dvSame ? p.dq : p.dv;
  const dk = p.keyGiven ? p.dk : dv;
  const next = rng(p.seed);
  const dmax = Math.max(p.dq, dv, dk);
  const w = Math.sqrt(20 / Math.sqrt(p.h)) / (dmax + 1);
  const query = uniform(next, p.b * p.t * p.dq, 1);
  const value = uniform(next, p.b * p.s * dv, 1);
  const key = p.keyGiven ? uniform(next, p.b * p.s * dk, 1) : null;
  const shapes: Array<[string, number[]]> = [
    ['queryKernel', [p.dq, u, p.h]],
    ['queryBias', [u, p.h]],
    ['keyKernel', [dk, p.v, p.h]],
    ['keyBias', [p.v, p.h]],
    ['valueKernel', [dv, p.v, p.h]],
    ['valueBias', [p.v, p.h]],
    ['outputKernel', [u, p.h, p.dq]],
    ['outputBias', [p.dq]],
  ];
  const weights = shapes
    .filter(([name]) => p.useBias || !name.endsWith('Bias'))
    .map(([name, shape]) => ({ name, shape, data: uniform(next, shape.reduce((a, c) => a * c, 1), w) }));
  const ref64 = Object.fromEntries(shapes.map(([name]) => [name, null])) as unknown as LayerWeights64;
  for (const x of weights) (ref64 as unknown as Record<string, Float64Array>)[x.name] = Float64Array.from(x.data);

  const attnShape = attentionMaskShape(p.attn, p.b, u, p.t, p.s);
  const attn = attnShape ? boolMask(next, attnShape, p.pTrue) : null;
  const qMask = p.queryMask ? boolMask(next, [p.b, p.t], p.pTrue) : null;
  const vMask = p.valueMask ? boolMask(next, [p.b, p.s], p.pTrue) : null;
  const kMask = p.keyMask ? boolMask(next, [p.b, p.s], p.pTrue) : null;

  let want: ReturnType<typeof gqaLayer64> | null = null;
  let refError: unknown = null;
  try {
    want = gqaLayer64({
      query: tensor64([p.b, p.t, p.dq], query),
      value: tensor64([p.b, p.s, dv], value),
      key: key ? tensor64([p.b, p.s, dk], key) : null,
      numQueryHeads: u,
      numKeyValueHeads: p.v,
      headDim: p.h,
      weights: ref64,
      queryMask: qMask?.ref ?? null,
      valueMask: vMask?.ref ?? null,
      keyMask: kMask?.ref ?? null,
      attentionMask: attn?.ref ?? null,
      useCausalMask: p.causal,
    });
  } catch (e) {
    refError = e; // Keras raises too: a (B,U,T,S) mask AND-ed with a (B,T,1) auto mask, B ∉ {1, U}.
  }

  const layer = new GroupedQueryAttention({
    headDim: p.h,
    numQueryHeads: u,
    numKeyValueHeads: p.v,
    useBias: p.useBias,
  });
  const what = JSON.stringify(p);
  try {
    layer.build([[p.b, p.t, p.dq], [p.b, p.s, dv], ...(key ? [[p.b, p.s, dk]] : [])]);
    tf.tidy(() => layer.setWeights(weights.map((x) => tf.tensor(x.data, x.shape))));
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const q = tf.tensor3d(query, [p.b, p.t, p.dq]);
      const val = tf.tensor3d(value, [p.b, p.s, dv]);
      const k = key ? tf.tensor3d(key, [p.b, p.s, dk]) : null;
      const call = () =>
        layer.apply(q, {
          value: val,
          ...(k ? { key: k } : {}),
          ...(qMask ? { queryMask: qMask.tensor() } : {}),
          ...(vMask ? { valueMask: vMask.tensor() } : {}),
          ...(kMask ? { keyMask: kMask.tensor() } : {}),
          ...(attn ? { attentionMask: attn.tensor() } : {}),
          useCausalMask: p.causal,
          returnAttentionScores: p.scores,
        }) as tf.Tensor | tf.Tensor[];
      if (refError != null) {
        expect(call, `${what}: Keras raises (${String(refError)}), so must the layer`).toThrow(/attentionMask/);
        seen.raised++;
        return;
      }
      seen.fullyMaskedRows += want!.fullyMaskedRows > 0 ? 1 : 0;
      seen.partiallyMasked += p.attn !== 'none' || p.queryMask || p.valueMask || p.keyMask || p.causal ? 1 : 0;
      seen.groups7 += p.g === 7 ? 1 : 0;
      seen.head80 += p.h === 80 ? 1 : 0;
      seen.noBias += p.useBias ? 0 : 1;
      seen.keyGiven += p.keyGiven && dk !== dv ? 1 : 0;
      const got = call();
      const [out, scores] = Array.isArray(got) ? got : [got];
      expect(out!.shape, what).toEqual([p.b, p.t, p.dq]);
      expect(want!.maxFullyMaskedLogit, `${what}: logit bound of the generator`).toBeLessThan(20);
      expect(compare64(out!.dataSync(), want!.layerOutput), `${what}: output`).toBeNull();
      if (p.scores) {
        expect(scores!.shape, what).toEqual([p.b, u, p.t, p.s]);
        expect(compare64(scores!.dataSync(), want!.scores), `${what}: scores`).toBeNull();
      } else {
        expect(Array.isArray(got), `${what}: a single output without returnAttentionScores`).toBe(false);
      }
    });
    expect(tf.memory().numTensors, `${what}: tensors leaked`).toBe(before);
  } finally {
    layer.dispose();
  }
}

describe.each(BACKENDS)('layer vs float64 reference on %s', (backend) => {
  beforeAll(() => useBackend(backend));

  test('random shapes, groupings (G = 1, 2, 7), head sizes (1, 3, 80), masks, causal, key, no bias', () => {
    for (const k of Object.keys(seen) as Array<keyof typeof seen>) seen[k] = 0;
    fc.assert(fc.property(params, runCase), { numRuns: 300, seed: 20240601 });
    // Every interesting region was visited (fast-check's seed is fixed, so this is deterministic).
    for (const [k, n] of Object.entries(seen)) expect(n, `cases with ${k}`).toBeGreaterThan(0);
  });

  test('edge shapes: T = 1, S = 1, T ≠ S, batch 1 and 3, every mask shape with every auto mask', () => {
    const edges: Array<Partial<Params>> = [];
    for (const attn of MASK_SHAPES) {
      for (const [t, s] of [[1, 1], [1, 5], [4, 1], [4, 3]] as const) {
        edges.push({ attn, t, s, queryMask: true, valueMask: true, keyMask: true, keyGiven: true, causal: t > 1 });
      }
    }
    const base: Params = {
      b: 3, v: 2, g: 7, h: 80, t: 2, s: 3, dq: 3, dvSame: false, dv: 4, keyGiven: false, dk: 2, useBias: true,
      attn: 'none', queryMask: false, valueMask: false, keyMask: false, causal: false, scores: true, pTrue: 0.6, seed: 1,
    };
    edges.forEach((e, i) => runCase({ ...base, ...e, b: i % 2 === 0 ? 1 : 3, seed: 1000 + i }));
  });
});
