/**
 * The KV cache through the op: one mask rule with and without a cache (numeric masks included), a
 * cache that keeps its engine and its layer, no leak when allocation fails, reclaim of dropped caches,
 * and the default engine made afresh after it is disposed. On cpu and wasm.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import {
  createAttentionEngineSync,
  getDefaultEngine,
  setDefaultEngine,
  type AttentionEngine,
  type EngineBuffer,
} from '../../src/engine/index.js';
import { groupedQueryAttention, GroupedQueryAttention } from '../../src/index.js';
import { EngineKVStorage } from '../../src/op/kernels/engine_kv_storage.js';
import { BACKENDS, useBackend } from '../helpers/backends.js';
import { expectClose } from '../helpers/close.js';

function makeLayer(d: number, seed: number, u = 4, v = 2, h = 4): GroupedQueryAttention {
  const layer = new GroupedQueryAttention({ headDim: h, numQueryHeads: u, numKeyValueHeads: v, biasInitializer: 'randomNormal' });
  layer.build([[null, null, d], [null, null, d]]);
  layer.setWeights(layer.getWeights().map((w, i) => tf.randomNormal(w.shape, 0, 0.5, 'float32', seed + i)));
  return layer;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** An engine that records its allocations and can fail the n-th one. */
function recordingEngine(base: AttentionEngine, failOn = -1): { engine: AttentionEngine; buffers: EngineBuffer[] } {
  const buffers: EngineBuffer[] = [];
  const engine: AttentionEngine = Object.create(base) as AttentionEngine;
  engine.allocate = (floats: number) => {
    if (buffers.length === failOn) throw new RangeError('out of engine memory (test)');
    const b = base.allocate(floats);
    buffers.push(b);
    return b;
  };
  engine.attention = (p) => base.attention(p);
  return { engine, buffers };
}

describe.each(BACKENDS)('KV cache through the op on %s', (backend) => {
  const original = getDefaultEngine();
  beforeAll(() => useBackend(backend));
  afterEach(() => {
    // Every test leaves the process's default engine as it found it.
    const current = getDefaultEngine();
    if (current !== original) {
      setDefaultEngine(original);
      current.dispose();
    }
  });

  test('a numeric (non-binary) attentionMask gives the same outputs with and without a cache (Keras 3.6 additive rule)', () => {
    const layer = makeLayer(6, 1);
    const [B, T] = [2, 5];
    const x = tf.randomNormal([B, T, 6], 0, 1, 'float32', 3);
    // Values Keras 3.6 adds as (1 - m) * -1e9: 1 attends, 0 masks, 0.5 and 2 shift the logits hugely.
    const m = tf.tensor3d(Array.from({ length: B * T * T }, (_, i) => [1, 0.5, 2, 1, 0, 1, 1][i % 7]!), [B, T, T]);
    const full = layer.apply(x, { value: x, attentionMask: m }) as tf.Tensor;
    const cache = layer.createCache({ batchSize: B, maxLength: 8 });
    const cached = layer.apply(x, { value: x, attentionMask: m, cache }) as tf.Tensor;
    expect(maxAbsDiff(cached.dataSync(), full.dataSync())).toBeLessThan(1e-5);
    // With scores: the same probabilities (over S = cache.length + T keys).
    cache.reset();
    const [, pCached] = layer.apply(x, { value: x, attentionMask: m, cache, returnAttentionScores: true }) as tf.Tensor[];
    const [, pFull] = layer.apply(x, { value: x, attentionMask: m, returnAttentionScores: true }) as tf.Tensor[];
    expect(maxAbsDiff(pCached!.dataSync(), pFull!.dataSync())).toBeLessThan(1e-6);
    tf.dispose([x, m, full, cached, pCached!, pFull!]);
    cache.dispose();
    layer.dispose();
  });

  test('a numeric attentionMask with causal decoding: chunks equal the full call (nonzero attends, as Keras)', () => {
    const layer = makeLayer(6, 2);
    const [B, L] = [1, 7];
    const x = tf.randomNormal([B, L, 6], 0, 1, 'float32', 5);
    const values = Array.from({ length: L * L }, (_, i) => [1, 0.5, 0, 3][i % 4]!);
    const m = tf.tensor3d(values, [1, L, L]);
    const full = layer.apply(x, { value: x, attentionMask: m, useCausalMask: true }) as tf.Tensor;
    const cache = layer.createCache({ batchSize: B, maxLength: L });
    const parts = [[0, 3], [3, 4], [4, 7]].map(([a, b]) => {
      const xs = tf.slice(x, [0, a!, 0], [B, b! - a!, 6]);
      const ms = tf.slice(m, [0, a!, 0], [1, b! - a!, b!]); // rows of this chunk over keys 0..b-1
      return layer.apply(xs, { value: xs, attentionMask: ms, cache, useCausalMask: true }) as tf.Tensor;
    });
    expectClose(tf.concat(parts, 1).dataSync(), full.dataSync(), 'numeric causal chunks');
    cache.dispose();
    layer.dispose();
  });

  test('a cached call dispatches once through the op: the fused kernel reads the cache in place', async () => {
    const layer = makeLayer(6, 10);
    const cache = layer.createCache({ batchSize: 1, maxLength: 8 });
    const x = tf.randomNormal([1, 3, 6]);
    tf.dispose(layer.apply(x, { value: x, cache, useCausalMask: true }) as tf.Tensor);
    const step = tf.randomNormal([1, 1, 6]);
    const info = await tf.profile(() => layer.apply(step, { value: step, cache, useCausalMask: true }) as tf.Tensor);
    const attention = info.kernels.filter((k) => k.name === 'GroupedQueryAttention');
    expect(attention).toHaveLength(1);
    // The kernel got this step's key (B, T=1, V, H) and reads the 4 positions from the storage.
    expect(attention[0]!.inputShapes[1]).toEqual([1, 1, 2, 4]);
    expect(attention[0]!.outputShapes[0]).toEqual([1, 1, 4, 4]);
    cache.dispose();
    layer.dispose();
  });

  test('flashAttention: false (the composite path) reads copies of the cache and gives the same numbers', () => {
    const fused = makeLayer(6, 11);
    const composite = new GroupedQueryAttention({ headDim: 4, numQueryHeads: 4, numKeyValueHeads: 2, flashAttention: false });
    composite.build([[null, null, 6], [null, null, 6]]);
    composite.setWeights(fused.getWeights());
    const x = tf.randomNormal([2, 5, 6], 0, 1, 'float32', 12);
    const mask = tf.tensor2d([[1, 1, 1, 1, 0], [1, 0, 1, 1, 1]], [2, 5], 'bool');
    const full = fused.apply(x, { value: x, valueMask: mask, useCausalMask: true }) as tf.Tensor;
    const cache = composite.createCache({ batchSize: 2, maxLength: 5 });
    const parts = [[0, 2], [2, 5]].map(([a, b]) => {
      const xs = tf.slice(x, [0, a!, 0], [2, b! - a!, 6]);
      const ms = tf.slice(mask, [0, a!], [2, b! - a!]);
      return composite.apply(xs, { value: xs, valueMask: ms, cache, useCausalMask: true }) as tf.Tensor;
    });
    expectClose(tf.concat(parts, 1).dataSync(), full.dataSync(), 'composite with cache');
    cache.dispose();
    fused.dispose();
    composite.dispose();
  });

  test('a cache keeps the engine that allocated it: it works after setDefaultEngine()', () => {
    const layer = makeLayer(6, 4);
    const x = tf.randomNormal([1, 4, 6], 0, 1, 'float32', 7);
    const full = (layer.apply(x, { value: x, useCausalMask: true }) as tf.Tensor).dataSync();
    const cache = layer.createCache({ batchSize: 1, maxLength: 4 });
    const head = tf.slice(x, [0, 0, 0], [1, 3, 6]);
    const tail = tf.slice(x, [0, 3, 0], [1, 1, 6]);
    const y0 = layer.apply(head, { value: head, cache, useCausalMask: true }) as tf.Tensor;
    const other = createAttentionEngineSync({ threads: 1 });
    const before = getDefaultEngine();
    setDefaultEngine(other);
    try {
      const y1 = layer.apply(tail, { value: tail, cache, useCausalMask: true }) as tf.Tensor;
      expectClose(tf.concat([y0, y1], 1).dataSync(), full, 'after setDefaultEngine');
    } finally {
      setDefaultEngine(before);
      other.dispose();
    }
    cache.dispose();
    layer.dispose();
  });

  test('getDefaultEngine().dispose(): later calls get a fresh default engine; caches in the old one say so', () => {
    const layer = makeLayer(6, 5);
    const x = tf.randomNormal([1, 3, 6], 0, 1, 'float32', 9);
    const expected = (layer.apply(x, { value: x }) as tf.Tensor).dataSync();
    const own = createAttentionEngineSync({ threads: 1 });
    setDefaultEngine(own);
    const cache = layer.createCache({ batchSize: 1, maxLength: 4 });
    getDefaultEngine().dispose();
    expect(getDefaultEngine()).not.toBe(own);
    // The op (fused kernels on cpu and wasm) runs on the fresh engine.
    expectClose((layer.apply(x, { value: x }) as tf.Tensor).dataSync(), expected, 'after dispose');
    const q = tf.randomNormal([1, 2, 4, 4]);
    const kv = tf.randomNormal([1, 3, 2, 4]);
    expect(groupedQueryAttention(q, kv, kv).shape).toEqual([1, 2, 4, 4]);
    const n = tf.memory().numTensors;
    expect(() => layer.apply(x, { value: x, cache })).toThrow(/engine that holds this KV cache was disposed/);
    expect(tf.memory().numTensors).toBe(n);
    expect(cache.length).toBe(0);
    cache.dispose();
    layer.dispose();
  });

  test('a cache is bound to the layer that created it, even when another layer has the same sizes', () => {
    const a = makeLayer(6, 6);
    const b = makeLayer(6, 6);
    const cache = a.createCache({ batchSize: 1, maxLength: 4 });
    const x = tf.randomNormal([1, 2, 6]);
    const n = tf.memory().numTensors;
    expect(() => b.apply(x, { value: x, cache })).toThrow(
      new RegExp(`KV cache is bound to the layer that created it; this one was created by GroupedQueryAttention '${a.name}'`));
    expect(tf.memory().numTensors).toBe(n);
    expect(cache.length).toBe(0);
    a.apply(x, { value: x, cache });
    expect(cache.length).toBe(2);
    cache.dispose();
    a.dispose();
    b.dispose();
  });

  test('createCache failing on its second buffer frees the first and names the cause', () => {
    const layer = makeLayer(6, 7);
    const before = getDefaultEngine();
    const { engine, buffers } = recordingEngine(before, 1);
    setDefaultEngine(engine);
    try {
      expect(() => layer.createCache({ batchSize: 1, maxLength: 64 })).toThrow(
        /createCache: could not allocate the cache's keys and values.*\(1, 64, 2, 4\).*out of engine memory/);
    } finally {
      setDefaultEngine(before);
    }
    expect(buffers).toHaveLength(1);
    expect(buffers[0]!.freed).toBe(true);
    // The storage class itself: same rule with an explicit engine.
    const again = recordingEngine(before, 1);
    expect(() => EngineKVStorage.allocate({ batchSize: 1, capacity: 8, numKeyValueHeads: 2, headDim: 4 }, again.engine))
      .toThrow(/out of engine memory/);
    expect(again.buffers[0]!.freed).toBe(true);
    layer.dispose();
  });

  test('a cache dropped without dispose() is reclaimed by garbage collection', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const layer = makeLayer(6, 8);
    const before = getDefaultEngine();
    const { engine, buffers } = recordingEngine(before);
    setDefaultEngine(engine);
    try {
      (() => {
        const dropped = layer.createCache({ batchSize: 1, maxLength: 32 });
        const x = tf.randomNormal([1, 2, 6]);
        tf.dispose(layer.apply(x, { value: x, cache: dropped }) as tf.Tensor);
        x.dispose();
      })();
    } finally {
      setDefaultEngine(before);
    }
    expect(buffers).toHaveLength(2);
    for (let i = 0; i < 50 && !buffers.every((b) => b.freed); i++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(buffers.map((b) => b.freed)).toEqual([true, true]);
    layer.dispose();
  });

  test('the op with a cache: checks before any work, and the same numbers as the op on the full keys', () => {
    const layer = makeLayer(6, 9);
    const cache = layer.createCache({ batchSize: 1, maxLength: 5 });
    const storage = cache.storage();
    const q = tf.randomNormal([1, 3, 4, 4], 0, 1, 'float32', 1);
    const k = tf.randomNormal([1, 3, 2, 4], 0, 1, 'float32', 2);
    const v = tf.randomNormal([1, 3, 2, 4], 0, 1, 'float32', 3);
    const full = groupedQueryAttention(q, k, v, { causal: true });
    const first = groupedQueryAttention(tf.slice(q, [0, 0, 0, 0], [1, 2, 4, 4]), tf.slice(k, [0, 0, 0, 0], [1, 2, 2, 4]),
      tf.slice(v, [0, 0, 0, 0], [1, 2, 2, 4]), { causal: true, cache: { storage, length: 0 } });
    const second = groupedQueryAttention(tf.slice(q, [0, 2, 0, 0], [1, 1, 4, 4]), tf.slice(k, [0, 2, 0, 0], [1, 1, 2, 4]),
      tf.slice(v, [0, 2, 0, 0], [1, 1, 2, 4]), { causal: true, cache: { storage, length: 2 } });
    expectClose(tf.concat([first, second], 1).dataSync(), full.dataSync(), 'op with cache');
    const [k2, v2] = [tf.slice(k, [0, 0, 0, 0], [1, 2, 2, 4]), tf.slice(v, [0, 0, 0, 0], [1, 2, 2, 4])];
    const n = tf.memory().numTensors;
    expect(() => groupedQueryAttention(q, k, v, { cache: { storage, length: 3 } })).toThrow(
      /groupedQueryAttention: the cache has capacity maxLength=5 and holds 3 positions; a call of 3 more would need 6/);
    expect(() => groupedQueryAttention(q, k2, v2, { cache: { storage, length: 0 } })).toThrow(/their length must be the query's T=3; received key \[1,2,2,4\]/);
    expect(() => groupedQueryAttention(q, k, v, { cache: { storage, length: 0 }, queryOffset: 4 })).toThrow(
      /queryOffset is the cache's length with a cache; received queryOffset=4, cache.length=0/);
    expect(() => groupedQueryAttention(q, k, v, { cache: { storage: {} as never, length: 0 } })).toThrow(
      /cache.storage must be a KV cache storage.*received \{\}/);
    expect(tf.memory().numTensors).toBe(n);
    cache.dispose();
    expect(() => groupedQueryAttention(q, k, v, { cache: { storage, length: 0 } })).toThrow(/storage was disposed/);
    layer.dispose();
  });
});
