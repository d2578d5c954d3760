/**
 * Builds the engine's AttentionProblem from a GroupedQueryAttention kernel call, for backends whose
 * tensors live in typed arrays (cpu: JS arrays; wasm: views of the wasm heap).
 */
import type { TensorInfo } from '@tensorflow/tfjs-core';
import { getDefaultEngine } from '../../engine/index.js';
import type { AttentionEngine, EngineMask, EngineProblem } from '../../engine/types.js';
import { ValueError } from '../../errors.js';
import type { GroupedQueryAttentionAttrs } from '../kernel_names.js';
import { EngineKVStorage } from './engine_kv_storage.js';

export interface KernelArrays {
  query: Float32Array;
  key: Float32Array;
  value: Float32Array;
  mask: Uint8Array | Float32Array | Int32Array;
}

/** The cache's engine storage of a cached call, or null. */
function engineStorage(attrs: GroupedQueryAttentionAttrs): EngineKVStorage | null {
  const storage = attrs.cache?.storage;
  if (storage == null) return null;
  // The op passes a storage only to backends it reads in place (KVStorage.readsInPlace).
  if (!(storage instanceof EngineKVStorage)) {
    throw new ValueError(`GroupedQueryAttention kernel: a '${storage.kind}' KV cache storage is not engine memory`);
  }
  return storage;
}

/** The engine a call runs on: a cache's own engine (it holds the cache), else the default engine. */
export function engineFor(attrs: GroupedQueryAttentionAttrs): AttentionEngine {
  return engineStorage(attrs)?.engine ?? getDefaultEngine();
}

export function engineProblem(
  shapes: { query: TensorInfo; key: TensorInfo; mask: TensorInfo },
  arrays: KernelArrays,
  attrs: GroupedQueryAttentionAttrs,
): EngineProblem {
  const [b, t, u, h] = shapes.query.shape as [number, number, number, number];
  const [, inputS, v] = shapes.key.shape as [number, number, number, number];
  const storage = engineStorage(attrs);
  // Cached: keys and values 0..keyLength-1 read in place from the (B, C, V, H) storage.
  const cached = storage == null ? null : { ...storage.engineBuffers(), capacity: storage.capacity };
  const s = attrs.cache?.keyLength ?? inputS;
  let mask: EngineMask | undefined;
  if (attrs.maskKind !== 'none') {
    const [mb, mu, mt, ms] = shapes.mask.shape as [number, number, number, number];
    mask = {
      kind: attrs.maskKind,
      data: attrs.maskKind === 'bool' ? toBytes(arrays.mask) : (arrays.mask as Float32Array),
      shape: [mb, mu, mt, ms],
    };
  }
  return {
    batch: b,
    queryLength: t,
    keyLength: s,
    numQueryHeads: u,
    numKeyValueHeads: v,
    headDim: h,
    query: arrays.query,
    key: cached?.keys ?? arrays.key,
    value: cached?.values ?? arrays.value,
    ...(cached ? { keyCapacity: cached.capacity } : {}),
    ...(mask ? { mask } : {}),
    causal: attrs.causal,
    queryOffset: attrs.queryOffset,
    ...(attrs.slidingWindow > 0 ? { slidingWindow: attrs.slidingWindow } : {}),
    scale: attrs.scale,
    returnProbabilities: attrs.returnScores,
    ...(attrs.dropoutRate > 0 ? { dropoutRate: attrs.dropoutRate, dropoutSeed: attrs.dropoutSeed } : {}),
  };
}

/** Bool tensors are bytes on cpu and wasm; anything else is compared with zero. */
function toBytes(a: Uint8Array | Float32Array | Int32Array): Uint8Array {
  if (a instanceof Uint8Array) return a;
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] !== 0 ? 1 : 0;
  return out;
}
