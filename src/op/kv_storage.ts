/**
 * Where a KV cache keeps its keys and values: a storage that a backend provides, written in place by
 * the op and read in place by that backend's fused kernel.
 *
 * Shape letters: B batch · C capacity (the cache's maxLength) · T new positions of a call ·
 * V key/value heads · H head size.
 *
 * ## The contract (for backend authors)
 *
 * A storage holds keys and values as two (B, C, V, H) float32 arrays, row-major, that live wherever
 * the backend's attention kernel reads them best: engine memory for `cpu` and `wasm` (see
 * `kernels/engine_kv_storage.ts`), GPU buffers written in place for `webgpu`/`webgl`. The op
 * (`groupedQueryAttention` with its `cache` option) uses a storage only through this interface:
 *
 * 1. before any work: `checkUsable(where, backendName)` raises a `ValueError` naming `where` when the
 *    storage is disposed, its memory is gone (e.g. its engine was disposed) or tensors of the active
 *    backend cannot be written into it;
 * 2. `write(keys, values, position)`: the call's projected keys and values (B, T, V, H), tensors of
 *    the active backend, are written in place at positions position..position+T-1 of every batch row;
 *    the op has checked that position + T <= C. Positions past the cache's length are not "held"
 *    until the caller advances its length, so a call that fails after `write` changes nothing visible;
 * 3. then, if `readsInPlace(backendName)`, the op runs the backend's fused `GroupedQueryAttention`
 *    kernel with the kernel attribute `cache = {storage, keyLength}` (see `kernel_names.ts`): the
 *    kernel must read keys and values 0..keyLength-1 of each batch row from the storage (row stride
 *    C·V·H floats per batch) and ignore its `key`/`value` inputs (the (B, T, V, H) tensors just
 *    written); query row i sits at absolute position `queryOffset + i` (bottom-right alignment), and
 *    the mask input broadcasts to (B, U, T, keyLength) as in an uncached call;
 * 4. otherwise (another backend, the composite reference path, dropout) the op calls
 *    `read(keyLength)`, which returns copies (B, keyLength, V, H) as tensors of the active backend, and
 *    runs the ordinary uncached dispatch on them. Same results, one mask rule.
 *
 * `dispose()` frees the memory; it is idempotent, and may run from a FinalizationRegistry callback (a
 * cache dropped without `dispose()`), outside any tfjs scope: it must not need one. A storage never
 * changes its engine or device: a cache keeps working after `setDefaultEngine()`.
 *
 * What stays outside the storage: the cache's length and its key-mask bits (`layer/kv_cache.ts`).
 * The layer turns the bits into a bool (B, L+T) mask tensor only when some position was masked, and
 * reads a call's value/key mask (B, T) with `dataSync` when one is given.
 *
 * The GPU storage (webgpu/webgl, `kernels/shared/device_kv_storage.ts`, registered by
 * `grouped-query-attention/webgpu` and `/webgl`) allocates two (B, C, V, H) float32 tensors of its
 * backend once; `write` runs the backend's small write program, which puts the call's (B, T, V, H)
 * rows at position..position+T-1 on the device (no readback); `readsInPlace` is true for its own
 * backend, whose fused kernel then reads the storage's buffers/textures instead of the key/value
 * inputs (row stride C) when `attrs.cache` is set; `read` slices on the device; and `checkUsable`
 * raises for any other backend.
 *
 * A backend plugs its own storage in with {@link registerKVStorage}; `layer.createCache` asks
 * {@link createKVStorage} for one under the active backend (engine storage when none is registered).
 */
import * as tf from '@tensorflow/tfjs-core';
import { EngineKVStorage } from './kernels/engine_kv_storage.js';

/** What a storage holds: (B, C, V, H). */
export interface KVStorageSpec {
  /** B. */
  readonly batchSize: number;
  /** C: positions per batch row. */
  readonly capacity: number;
  /** V. */
  readonly numKeyValueHeads: number;
  /** H. */
  readonly headDim: number;
}

/** Keys and values of a KV cache, kept where a backend's kernel reads them in place. */
export interface KVStorage extends KVStorageSpec {
  /** A short name for messages and dispatch, e.g. 'engine' or 'webgpu'. */
  readonly kind: string;
  /** True once disposed (or once the memory behind it was released). */
  readonly disposed: boolean;
  /** Raises a ValueError naming `where` unless the op can write to and read from it under `backendName`. */
  checkUsable(where: string, backendName: string): void;
  /** Whether `backendName`'s fused kernel reads this storage in place (kernel attr `cache`). */
  readsInPlace(backendName: string): boolean;
  /** Writes keys and values (B, T, V, H) at positions [position, position + T) of every batch row. */
  write(keys: tf.Tensor4D, values: tf.Tensor4D, position: number): void;
  /** Copies of positions [0, length) as (B, length, V, H) tensors of the active backend. */
  read(length: number): [tf.Tensor4D, tf.Tensor4D];
  /** Frees the memory. Idempotent. */
  dispose(): void;
}

/** Makes a storage for a spec (already validated: positive integers). May throw; must not leak then. */
export type KVStorageFactory = (spec: KVStorageSpec) => KVStorage;

const factories = new Map<string, KVStorageFactory>();

/**
 * Registers the storage that caches created under `backendName` use (a GPU backend's in-place
 * buffers, say). Replaces an earlier registration for that backend.
 */
export function registerKVStorage(backendName: string, factory: KVStorageFactory): void {
  factories.set(backendName, factory);
}

/** A storage for `spec` under `backendName` (default: the active backend); engine memory by default. */
export function createKVStorage(spec: KVStorageSpec, backendName: string = tf.getBackend()): KVStorage {
  const factory = factories.get(backendName);
  return factory != null ? factory(spec) : EngineKVStorage.allocate(spec);
}
