/**
 * KV-cache storage in attention-engine memory: the `cpu` and `wasm` kernels hand it to the engine,
 * which reads the cached keys and values where they are (no per-step copy of the cache).
 *
 * Shape letters: B batch · C capacity · T new positions · V key/value heads · H head size.
 *
 * The storage keeps the engine that allocated it, so a cache works after `setDefaultEngine()`; the
 * cpu/wasm kernels run cached calls on `storage.engine`, not on the default engine.
 */
import * as tf from '@tensorflow/tfjs-core';
import { getDefaultEngine } from '../../engine/index.js';
import type { AttentionEngine, EngineBuffer } from '../../engine/types.js';
import { ValueError } from '../../errors.js';
import type { KVStorage, KVStorageSpec } from '../kv_storage.js';

/** Backends whose fused kernel runs on the engine and so reads engine storage in place. */
const IN_PLACE_BACKENDS: ReadonlySet<string> = new Set(['cpu', 'wasm']);

export class EngineKVStorage implements KVStorage {
  readonly kind = 'engine';
  readonly batchSize: number;
  readonly capacity: number;
  readonly numKeyValueHeads: number;
  readonly headDim: number;
  /** The engine whose memory holds the storage; cached calls run on it. */
  readonly engine: AttentionEngine;
  private buffers: { keys: EngineBuffer; values: EngineBuffer } | null;

  private constructor(spec: KVStorageSpec, engine: AttentionEngine, keys: EngineBuffer, values: EngineBuffer) {
    this.batchSize = spec.batchSize;
    this.capacity = spec.capacity;
    this.numKeyValueHeads = spec.numKeyValueHeads;
    this.headDim = spec.headDim;
    this.engine = engine;
    this.buffers = { keys, values };
  }

  /**
   * Allocates (B, C, V, H) keys and values in `engine` (default: the default engine). When the
   * second allocation fails the first is freed before the error propagates.
   */
  static allocate(spec: KVStorageSpec, engine: AttentionEngine = getDefaultEngine()): EngineKVStorage {
    const floats = spec.batchSize * spec.capacity * spec.numKeyValueHeads * spec.headDim;
    const keys = engine.allocate(floats);
    let values: EngineBuffer;
    try {
      values = engine.allocate(floats);
    } catch (e) {
      keys.free();
      throw e;
    }
    return new EngineKVStorage(spec, engine, keys, values);
  }

  get disposed(): boolean {
    return this.buffers == null;
  }

  /** The (B, C, V, H) buffers for the engine; views of them go stale when engine memory grows. */
  engineBuffers(): { keys: EngineBuffer; values: EngineBuffer } {
    if (this.buffers == null) throw new ValueError('EngineKVStorage: the storage was disposed');
    return this.buffers;
  }

  checkUsable(where: string, backendName: string): void {
    if (this.buffers == null) {
      throw new ValueError(`${where}: the KV cache's storage was disposed; create a new cache with layer.createCache`);
    }
    if (this.buffers.keys.freed || this.buffers.values.freed) {
      throw new ValueError(
        `${where}: the attention engine that holds this KV cache was disposed, and the cache with it; ` +
        'create a new cache with layer.createCache');
    }
    // Writing reads the new keys synchronously (dataSync), which tfjs-webgpu does not support (it
    // loses the device in Chromium): refuse before any work instead.
    if (backendName === 'webgpu') {
      throw new ValueError(
        `${where}: a KV cache in engine memory cannot be used on the webgpu backend (it reads tensors ` +
        'synchronously); create the cache under webgpu (import \'grouped-query-attention/webgpu\' keeps it in ' +
        'GPU buffers) or use wasm, cpu or webgl (received backend webgpu)');
    }
  }

  readsInPlace(backendName: string): boolean {
    return IN_PLACE_BACKENDS.has(backendName);
  }

  write(keys: tf.Tensor4D, values: tf.Tensor4D, position: number): void {
    const t = keys.shape[1];
    const row = this.numKeyValueHeads * this.headDim;
    const newKeys = keys.dataSync() as Float32Array; // (B, T, V, H)
    const newValues = values.dataSync() as Float32Array;
    // Views after the reads: nothing between here and the copies can grow engine memory.
    const { keys: kb, values: vb } = this.engineBuffers();
    const kc = kb.view();
    const vc = vb.view();
    for (let b = 0; b < this.batchSize; b++) {
      const src = b * t * row;
      const dst = (b * this.capacity + position) * row; // (B, C, V, H): row `position` of batch b
      kc.set(newKeys.subarray(src, src + t * row), dst);
      vc.set(newValues.subarray(src, src + t * row), dst);
    }
  }

  read(length: number): [tf.Tensor4D, tf.Tensor4D] {
    const row = this.numKeyValueHeads * this.headDim;
    const { keys: kb, values: vb } = this.engineBuffers();
    const copy = (buffer: EngineBuffer): tf.Tensor4D => {
      const all = buffer.view();
      const out = new Float32Array(this.batchSize * length * row);
      for (let b = 0; b < this.batchSize; b++) {
        const src = b * this.capacity * row;
        out.set(all.subarray(src, src + length * row), b * length * row);
      }
      return tf.tensor4d(out, [this.batchSize, length, this.numKeyValueHeads, this.headDim]);
    };
    return [copy(kb), copy(vb)];
  }

  dispose(): void {
    if (this.buffers == null) return;
    const { keys, values } = this.buffers;
    this.buffers = null;
    keys.free();
    values.free();
  }
}
