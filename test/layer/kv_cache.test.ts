/**
 * KV-cache decoding: feeding a sequence through the cache in any chunks gives the outputs of one full
 * call with `useCausalMask: true`; capacity, batch, head and disposal errors leave the cache unchanged.
 */
import * as fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, test } from 'vitest';
import { GroupedQueryAttention, KVCache } from '../../src/index.js';
import { BACKENDS, useBackend } from '../helpers/backends.js';
import { expectClose } from '../helpers/close.js';

interface Setup {
  u: number;
  v: number;
  h: number;
  window: number | null;
  gate: boolean;
}

function makeLayer({ u, v, h, window, gate }: Setup, d: number, seed: number): GroupedQueryAttention {
  const layer = new GroupedQueryAttention({
    headDim: h,
    numQueryHeads: u,
    numKeyValueHeads: v,
    slidingWindow: window,
    useGate: gate,
    biasInitializer: 'randomNormal',
  });
  layer.build([[null, null, d], [null, null, d]]);
  layer.setWeights(layer.getWeights().map((w, i) => tf.randomNormal(w.shape, 0, 0.5, 'float32', seed + i)));
  return layer;
}

/** Splits [0, total) into the given chunk sizes (the last chunk takes the rest). */
function chunks(total: number, sizes: number[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let at = 0;
  for (const size of sizes) {
    if (at >= total) break;
    const end = Math.min(total, at + Math.max(1, size));
    out.push([at, end]);
    at = end;
  }
  if (at < total) out.push([at, total]);
  return out;
}

describe.each(BACKENDS)('KV cache on %s', (backend) => {
  beforeAll(() => useBackend(backend));

  test('any chunking equals one full causal call (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<[number, number]>([4, 2], [7, 1], [6, 6], [14, 2]),
        fc.constantFrom(1, 5, 16),
        fc.constantFrom<number | null>(null, 1, 3),
        fc.boolean(),
        fc.integer({ min: 1, max: 2 }),
        fc.integer({ min: 1, max: 12 }),
        fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 0, max: 1000 }),
        ([u, v], h, window, gate, batch, total, sizes, seed) => {
          const d = 6;
          const layer = makeLayer({ u, v, h, window, gate }, d, seed);
          const before = tf.memory().numTensors;
          const x = tf.randomNormal([batch, total, d], 0, 1, 'float32', seed);
          const full = layer.apply(x, { value: x, useCausalMask: true }) as tf.Tensor;
          const cache = layer.createCache({ batchSize: batch, maxLength: total + 3 });
          const parts = chunks(total, sizes).map(([a, b]) => {
            const xs = tf.slice(x, [0, a, 0], [batch, b - a, d]);
            const y = layer.apply(xs, { value: xs, cache, useCausalMask: true }) as tf.Tensor;
            xs.dispose();
            return y;
          });
          expect(cache.length).toBe(total);
          const stitched = tf.concat(parts, 1);
          expectClose(stitched.dataSync(), full.dataSync(), `U=${u} V=${v} H=${h} w=${window} gate=${gate}`);
          tf.dispose([x, full, stitched, ...parts]);
          cache.dispose();
          expect(tf.memory().numTensors).toBe(before);
          layer.dispose();
        },
      ),
      { numRuns: 25, seed: 7 },
    );
  });

  test('ragged batch through the value mask of each chunk equals the full call with valueMask', () => {
    const layer = makeLayer({ u: 4, v: 2, h: 8, window: null, gate: false }, 8, 3);
    const lengths = [7, 4]; // right padding: sequence 1 has 3 padded positions
    const total = 7;
    const x = tf.randomNormal([2, total, 8], 0, 1, 'float32', 11);
    const mask = tf.tensor2d(lengths.flatMap((n) => Array.from({ length: total }, (_, i) => (i < n ? 1 : 0))), [2, total], 'bool');
    const full = layer.apply(x, { value: x, valueMask: mask, useCausalMask: true }) as tf.Tensor;
    const cache = layer.createCache({ batchSize: 2, maxLength: 16 });
    const parts = [[0, 3], [3, 4], [4, 7]].map(([a, b]) => {
      const xs = tf.slice(x, [0, a!, 0], [2, b! - a!, 8]);
      const ms = tf.slice(mask, [0, a!], [2, b! - a!]);
      return layer.apply(xs, { value: xs, valueMask: ms, cache, useCausalMask: true }) as tf.Tensor;
    });
    expectClose(tf.concat(parts, 1).dataSync(), full.dataSync(), 'ragged');
    cache.dispose();
  });

  test('truncate rolls back: re-feeding the same tokens gives the same outputs', () => {
    const layer = makeLayer({ u: 4, v: 1, h: 4, window: null, gate: false }, 6, 5);
    const x = tf.randomNormal([1, 6, 6], 0, 1, 'float32', 2);
    const cache = layer.createCache({ batchSize: 1, maxLength: 8 });
    const prefix = tf.slice(x, [0, 0, 0], [1, 4, 6]);
    const tail = tf.slice(x, [0, 4, 0], [1, 2, 6]);
    layer.apply(prefix, { value: prefix, cache, useCausalMask: true });
    const first = (layer.apply(tail, { value: tail, cache, useCausalMask: true }) as tf.Tensor).dataSync();
    expect(cache.length).toBe(6);
    cache.truncate(4);
    expect(cache.length).toBe(4);
    const again = (layer.apply(tail, { value: tail, cache, useCausalMask: true }) as tf.Tensor).dataSync();
    expect(Array.from(again)).toEqual(Array.from(first));
    cache.reset();
    expect(cache.length).toBe(0);
    expect(() => cache.truncate(1)).toThrow(/n must be an integer in \[0, 0\].*received 1/);
    cache.dispose();
  });

  test('bad input: capacity, batch, heads, disposal; the cache is left unchanged', () => {
    const layer = makeLayer({ u: 4, v: 2, h: 4, window: null, gate: false }, 6, 9);
    const other = makeLayer({ u: 4, v: 1, h: 4, window: null, gate: false }, 6, 9);
    const cache = layer.createCache({ batchSize: 1, maxLength: 5 });
    const x4 = tf.randomNormal([1, 4, 6]);
    const x2 = tf.randomNormal([1, 2, 6]);
    const expected = (layer.apply(x2, { value: x2, useCausalMask: true }) as tf.Tensor).dataSync();
    layer.apply(x4, { value: x4, cache, useCausalMask: true });
    const before = tf.memory().numTensors;
    expect(() => layer.apply(x2, { value: x2, cache, useCausalMask: true })).toThrow(
      /capacity maxLength=5 and holds 4 positions; a call of 2 more would need 6/);
    expect(cache.length).toBe(4);
    expect(tf.memory().numTensors).toBe(before);
    const x2b = tf.randomNormal([2, 1, 6]);
    expect(() => layer.apply(x2b, { value: x2b, cache })).toThrow(/batch size 1; received a call with batch size 2/);
    expect(() => other.apply(x2, { value: x2, cache })).toThrow(/2 key\/value heads of size 4, this layer has 1/);
    expect(cache.length).toBe(4);
    // still usable: a fresh prefill after reset reproduces the full call
    cache.reset();
    const y = layer.apply(x2, { value: x2, cache, useCausalMask: true }) as tf.Tensor;
    expectClose(y.dataSync(), expected, 'after errors');
    cache.dispose();
    expect(cache.disposed).toBe(true);
    expect(() => layer.apply(x2, { value: x2, cache })).toThrow(/disposed/);
    expect(() => layer.createCache({ batchSize: 0, maxLength: 4 })).toThrow(/batchSize must be a positive integer; received 0/);
    expect(cache).toBeInstanceOf(KVCache);
  });

  test('returns scores over the cached length and decode steps leak nothing', () => {
    const layer = makeLayer({ u: 4, v: 2, h: 4, window: 2, gate: true }, 6, 1);
    const cache = layer.createCache({ batchSize: 1, maxLength: 12 });
    const prompt = tf.randomNormal([1, 5, 6]);
    layer.apply(prompt, { value: prompt, cache, useCausalMask: true });
    const step = tf.randomNormal([1, 1, 6]);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) {
      const [y, p] = layer.apply(step, { value: step, cache, useCausalMask: true, returnAttentionScores: true }) as tf.Tensor[];
      expect(p!.shape).toEqual([1, 4, 1, 6 + i]);
      // window 2 with causal: the last two positions only
      const probs = p!.dataSync();
      for (let j = 0; j < 4 + i; j++) expect(probs[j]).toBe(0);
      tf.dispose([y!, p!]);
    }
    expect(tf.memory().numTensors).toBe(before);
    cache.dispose();
  });
});
