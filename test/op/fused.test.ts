/**
 * The fused kernels (cpu and wasm) against the composite reference, for every mask kind, causal and
 * window masks, scores, lengths 1 and T ≠ S, groupings 1, 2 and 7, head sizes 1 and 80, rows with no
 * allowed key with small and large logits; and the registered gradient against autodiff of the reference.
 */
import * as fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, test } from 'vitest';
import {
  groupedQueryAttention,
  groupedQueryAttentionReference,
  hasFusedKernel,
  type GroupedQueryAttentionOptions,
} from '../../src/index.js';
import { getDefaultEngine } from '../../src/engine/index.js';
import { BACKENDS, useBackend } from '../helpers/backends.js';
import { expectClose } from '../helpers/close.js';
import { makeMask, type MaskKind } from '../helpers/masks.js';

const KINDS: MaskKind[] = ['none', 'BTS', 'TS', 'B1S', 'BUTS', '1TS', 'numeric', 'numeric+causal', 'fullyMaskedRows'];

describe.each(BACKENDS)('fused groupedQueryAttention on %s', (backend) => {
  beforeAll(() => useBackend(backend));

  test('a fused kernel is registered', () => {
    expect(hasFusedKernel(backend)).toBe(true);
  });

  test('equals the composite reference (property over shapes, masks and options)', () => {
    fc.assert(
      fc.property(
        fc.record({
          b: fc.integer({ min: 1, max: 2 }),
          v: fc.integer({ min: 1, max: 2 }),
          g: fc.constantFrom(1, 2, 7),
          h: fc.constantFrom(1, 3, 80),
          t: fc.constantFrom(1, 2, 5, 9),
          s: fc.constantFrom(1, 3, 5, 11),
          kind: fc.constantFrom(...KINDS),
          causal: fc.boolean(),
          window: fc.constantFrom(0, 0, 1, 2),
          offset: fc.constantFrom(0, 0, 3),
          scores: fc.boolean(),
          logitScale: fc.constantFrom(1, 1, 40),
          seed: fc.integer({ min: 0, max: 10_000 }),
        }),
        (p) => {
          const u = p.v * p.g;
          const before = tf.memory().numTensors;
          tf.tidy(() => {
            // logitScale 40 makes |logits| >> 32 so rows with no allowed key land on the 64-spaced grid.
            const q = tf.mul(tf.randomNormal([p.b, p.t, u, p.h], 0, 1, 'float32', p.seed), p.logitScale);
            const k = tf.randomNormal([p.b, p.s, p.v, p.h], 0, 1, 'float32', p.seed + 1);
            const v = tf.randomNormal([p.b, p.s, p.v, p.h], 0, 1, 'float32', p.seed + 2);
            const mask = makeMask(p.kind, p.b, u, p.t, p.s, p.seed + 3);
            const options: GroupedQueryAttentionOptions = {
              attentionMask: mask,
              causal: p.causal || p.kind === 'numeric+causal',
              slidingWindow: p.window || null,
              queryOffset: p.offset,
              returnScores: p.scores,
            };
            const got = groupedQueryAttention(q, k, v, options) as tf.Tensor | tf.Tensor[];
            const want = groupedQueryAttentionReference(q, k, v, options) as tf.Tensor | tf.Tensor[];
            const [go, gs] = Array.isArray(got) ? got : [got];
            const [wo, ws] = Array.isArray(want) ? want : [want];
            expect(go!.shape).toEqual([p.b, p.t, u, p.h]);
            const what = JSON.stringify(p);
            expectClose(go!.dataSync(), wo!.dataSync(), `${what} output`, 1e-5, 1e-5);
            if (p.scores) expectClose(gs!.dataSync(), ws!.dataSync(), `${what} probabilities`, 1e-6, 1e-5);
          });
          expect(tf.memory().numTensors).toBe(before);
        },
      ),
      { numRuns: 150, seed: 42 },
    );
  });

  test('rows with no allowed key follow Keras 3.6 float32: uniform for small logits, the 64-grid for large ones', () => {
    // Logits [-34.6, -5.9, 34.7, 59.3] in a row with no allowed key give [0, 8.0e-29, 0.5, 0.5] (docs/keras-3.6-behaviour.md §6).
    const logits = [-34.6, -5.9, 34.7, 59.3];
    const q = tf.tensor4d([1], [1, 1, 1, 1]);
    const k = tf.tensor4d(logits, [1, 4, 1, 1]);
    const v = tf.tensor4d([1, 2, 3, 4], [1, 4, 1, 1]);
    const mask = tf.zeros([1, 1, 4], 'bool');
    const [, p] = groupedQueryAttention(q, k, v, { attentionMask: mask, returnScores: true });
    const probs = Array.from(p.dataSync());
    expect(probs[0]).toBe(0);
    expect(probs[1]! / 8.03e-29).toBeCloseTo(1, 2); // exp(-64) / 2
    expect(probs[2]).toBeCloseTo(0.5, 6);
    expect(probs[3]).toBeCloseTo(0.5, 6);
    const [, small] = groupedQueryAttention(q, tf.tensor4d([1, -2, 3, 30], [1, 4, 1, 1]), v, {
      attentionMask: mask,
      returnScores: true,
    });
    expect(Array.from(small.dataSync())).toEqual([0.25, 0.25, 0.25, 0.25]);
  });

  test('the registered gradient equals autodiff of the composite reference', () => {
    for (const [options, seed] of [
      [{}, 1],
      [{ causal: true }, 2],
      [{ attentionMask: tf.less(tf.randomUniform([2, 3, 5], 0, 1, 'float32', 9), 0.6) }, 3],
      [{ causal: true, slidingWindow: 2, queryOffset: 2 }, 4],
    ] as Array<[GroupedQueryAttentionOptions, number]>) {
      const q = tf.randomNormal([2, 3, 6, 4], 0, 1, 'float32', seed);
      const k = tf.randomNormal([2, 5, 2, 4], 0, 1, 'float32', seed + 1);
      const v = tf.randomNormal([2, 5, 2, 4], 0, 1, 'float32', seed + 2);
      const r = tf.randomNormal([2, 3, 6, 4], 0, 1, 'float32', seed + 3);
      const loss = (f: typeof groupedQueryAttention) => (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
        tf.sum(tf.mul(f(a, b, c, options), r));
      const fused = tf.grads(loss(groupedQueryAttention))([q, k, v]);
      const reference = tf.grads(loss(groupedQueryAttentionReference))([q, k, v]);
      for (const [i, g] of fused.entries()) {
        expectClose(g.dataSync(), reference[i]!.dataSync(), `grad ${i} ${JSON.stringify(Object.keys(options))}`, 1e-5, 1e-4);
      }
    }
  });

  test('the gradient with returnScores includes the scores path', () => {
    const q = tf.randomNormal([1, 2, 2, 3], 0, 1, 'float32', 5);
    const k = tf.randomNormal([1, 4, 1, 3], 0, 1, 'float32', 6);
    const loss = (f: typeof groupedQueryAttention) => (a: tf.Tensor, b: tf.Tensor) => {
      const [o, p] = f(a, b, b, { returnScores: true });
      return tf.add(tf.sum(o), tf.sum(tf.mul(p, p)));
    };
    const fused = tf.grads(loss(groupedQueryAttention))([q, k]);
    const reference = tf.grads(loss(groupedQueryAttentionReference))([q, k]);
    for (const [i, g] of fused.entries()) expectClose(g.dataSync(), reference[i]!.dataSync(), `grad ${i}`, 1e-5, 1e-4);
  });

  test('inputs are not modified and interleaved shapes stay correct', () => {
    const shapes = [
      [1, 7, 4, 2, 16, 8],
      [2, 1, 7, 1, 33, 5],
      [1, 64, 8, 2, 64, 32],
    ];
    for (let round = 0; round < 3; round++) {
      for (const [b, t, u, v, s, h] of shapes) {
        const q = tf.randomNormal([b!, t!, u!, h!], 0, 1, 'float32', round);
        const k = tf.randomNormal([b!, s!, v!, h!], 0, 1, 'float32', round + 1);
        const qBefore = q.dataSync().slice();
        const got = groupedQueryAttention(q, k, k, { causal: true });
        const want = groupedQueryAttentionReference(q, k, k, { causal: true });
        expectClose(got.dataSync(), want.dataSync(), `round ${round} shape ${[b, t, u, v, s, h]}`);
        expect(Array.from(q.dataSync())).toEqual(Array.from(qBefore));
        tf.dispose([q, k, got, want]);
      }
    }
  });

  test('nothing grows over 1000 calls of varying shapes (tensors, engine memory, tfjs bytes)', () => {
    const shapes = [
      [1, 1, 8, 2, 300, 16],
      [2, 9, 7, 1, 9, 5],
      [1, 40, 4, 4, 40, 32],
      [1, 3, 6, 3, 17, 80],
    ];
    const inputs = shapes.map(([b, t, u, v, s, h], i) => [
      tf.randomNormal([b!, t!, u!, h!], 0, 1, 'float32', i),
      tf.randomNormal([b!, s!, v!, h!], 0, 1, 'float32', i + 10),
      tf.less(tf.randomUniform([b!, 1, s!], 0, 1, 'float32', i + 20), 0.8),
    ]);
    const call = (i: number) => {
      const [q, k, m] = inputs[i % inputs.length]!;
      const opts = i % 3 === 0 ? { causal: true } : i % 3 === 1 ? { attentionMask: m } : { returnScores: true as const };
      tf.dispose(groupedQueryAttention(q!, k!, k!, opts) as tf.Tensor | tf.Tensor[]);
    };
    for (let i = 0; i < 24; i++) call(i); // warm-up: every shape and option once
    const engine = getDefaultEngine();
    const before = { tensors: tf.memory().numTensors, bytes: tf.memory().numBytes, engine: engine.memoryBytes() };
    for (let i = 0; i < 1000; i++) call(i);
    expect({ tensors: tf.memory().numTensors, bytes: tf.memory().numBytes, engine: engine.memoryBytes() }).toEqual(before);
    tf.dispose(inputs.flat());
  });

  test('bad input raises named errors before any work and leaks nothing', () => {
    const q = tf.zeros([1, 2, 4, 3]);
    const k = tf.zeros([1, 5, 2, 3]);
    const k3 = tf.zeros([1, 5, 3, 3]);
    const v4 = tf.zeros([1, 4, 2, 3]);
    const q3 = tf.zeros([1, 2, 4]);
    const badMask = tf.ones([3, 5], 'bool');
    const qInt = tf.zeros([1, 2, 4, 3], 'int32');
    const before = tf.memory().numTensors;
    expect(() => groupedQueryAttention(q, k3, k3)).toThrow(
      /groupedQueryAttention: the query heads U must be a multiple of the key\/value heads V; received U=4, V=3/);
    expect(() => groupedQueryAttention(q, k, v4)).toThrow(/key and value must agree in length S/);
    expect(() => groupedQueryAttention(q3, k, k)).toThrow(/query must have rank 4.*received shape \[1,2,4\]/);
    expect(() => groupedQueryAttention(q, k, k, { attentionMask: badMask })).toThrow(
      /attentionMask of shape \[3,5\].*does not broadcast to the attention scores \(B, U, T, S\) = \[1,4,2,5\]/);
    expect(() => groupedQueryAttention(q, k, k, { dropout: 1 })).toThrow(/dropout must be a number in \[0, 1\); received 1/);
    expect(() => groupedQueryAttention(q, k, k, { slidingWindow: 1.5 })).toThrow(/slidingWindow must be null or a positive integer; received 1.5/);
    expect(() => groupedQueryAttention(qInt, k, k)).toThrow(/query must be float32; received dtype int32/);
    expect(tf.memory().numTensors).toBe(before);
  });

  test('dropout in training takes the composite path; training without dropout stays exact', () => {
    const q = tf.randomNormal([1, 4, 2, 8], 0, 1, 'float32', 1);
    const k = tf.randomNormal([1, 6, 1, 8], 0, 1, 'float32', 2);
    const plain = groupedQueryAttention(q, k, k);
    const noDrop = groupedQueryAttention(q, k, k, { training: true, dropout: 0 });
    expectClose(noDrop.dataSync(), plain.dataSync(), 'training without dropout');
    const [dropped, scores] = groupedQueryAttention(q, k, k, { training: true, dropout: 0.5, seed: 3, returnScores: true });
    const [, plainScores] = groupedQueryAttention(q, k, k, { returnScores: true });
    expect(Array.from(dropped.dataSync())).not.toEqual(Array.from(plain.dataSync()));
    expectClose(scores.dataSync(), plainScores.dataSync(), 'scores are taken before dropout');
    const again = groupedQueryAttention(q, k, k, { training: true, dropout: 0.5, seed: 3 });
    expect(Array.from(again.dataSync())).toEqual(Array.from(dropped.dataSync()));
    const inference = groupedQueryAttention(q, k, k, { training: false, dropout: 0.5 });
    expectClose(inference.dataSync(), plain.dataSync(), 'dropout off outside training');
  });
});
