/**
 * A key/value cache for incremental decoding with `GroupedQueryAttention`.
 *
 * It holds the projected keys and values, (B, C, V, H) with C = maxLength, and one key-mask bit per
 * position, (B, C), allocated once inside the attention engine's memory, so that a decode step
 * attends over the cached positions where they are, with no per-step copy of the cache.
 */
import { getDefaultEngine } from '../engine/index.js';
import type { EngineBuffer } from '../engine/types.js';
import { check, formatValue, ValueError } from '../errors.js';

/**
 * Options of `layer.createCache`.
 *
 * @example
 * ```ts
 * import { GroupedQueryAttention, type KVCacheOptions } from 'grouped-query-attention';
 *
 * const layer = new GroupedQueryAttention({ headDim: 8, numQueryHeads: 4, numKeyValueHeads: 1 });
 * const options: KVCacheOptions = { batchSize: 2, maxLength: 128 };
 * const cache = layer.createCache(options);   // 2·128·1·8 floats each for keys and values
 * cache.dispose();
 * ```
 */
export interface KVCacheOptions {
  /** Batch size B of every call that uses the cache. */
  batchSize: number;
  /** Capacity C: the most positions the cache can hold. */
  maxLength: number;
}

/**
 * Projected keys and values of the positions seen so far. Create one with `layer.createCache` and
 * pass it to `layer.apply(query, {value, cache, useCausalMask: true})`.
 *
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import '@tensorflow/tfjs-backend-cpu';
 * import { GroupedQueryAttention } from 'grouped-query-attention';
 *
 * const layer = new GroupedQueryAttention({ headDim: 8, numQueryHeads: 4, numKeyValueHeads: 1 });
 * const prompt = tf.randomNormal([1, 6, 16]);
 * layer.build([prompt.shape, prompt.shape]);
 * const cache = layer.createCache({ batchSize: 1, maxLength: 32 });
 * layer.apply(prompt, { value: prompt, cache, useCausalMask: true });   // prefill: cache.length = 6
 * const next = tf.randomNormal([1, 1, 16]);
 * const y = layer.apply(next, { value: next, cache, useCausalMask: true }) as tf.Tensor; // (1, 1, 16)
 * cache.truncate(6);   // roll back the speculative token
 * cache.dispose();
 * ```
 */
export class KVCache {
  readonly batchSize: number;
  readonly maxLength: number;
  readonly numKeyValueHeads: number;
  readonly headDim: number;
  /** Name of the layer that created the cache (for messages). */
  readonly owner: string;
  private keyStore: EngineBuffer | null;
  private valueStore: EngineBuffer | null;
  /** (B, C) key-mask bits: 1 attends, 0 is a padded position (from the call's value mask). */
  readonly keyMask: Uint8Array;
  private filled = 0;

  /** @internal Use `layer.createCache`. */
  constructor(owner: string, numKeyValueHeads: number, headDim: number, options: KVCacheOptions) {
    const where = `${owner}.createCache`;
    check(options != null && typeof options === 'object', where, () =>
      `expects {batchSize, maxLength}; received ${formatValue(options)}`);
    const { batchSize, maxLength } = options;
    check(Number.isInteger(batchSize) && batchSize > 0, where, () =>
      `batchSize must be a positive integer; received ${formatValue(batchSize)}`);
    check(Number.isInteger(maxLength) && maxLength > 0, where, () =>
      `maxLength must be a positive integer; received ${formatValue(maxLength)}`);
    this.owner = owner;
    this.batchSize = batchSize;
    this.maxLength = maxLength;
    this.numKeyValueHeads = numKeyValueHeads;
    this.headDim = headDim;
    const floats = batchSize * maxLength * numKeyValueHeads * headDim;
    const engine = getDefaultEngine();
    this.keyStore = engine.allocate(floats);
    this.valueStore = engine.allocate(floats);
    this.keyMask = new Uint8Array(batchSize * maxLength);
  }

  /** Positions currently held. */
  get length(): number {
    return this.filled;
  }

  get disposed(): boolean {
    return this.keyStore == null;
  }

  private assertUsable(what: string): void {
    if (this.keyStore == null) {
      throw new ValueError(`${this.owner}: ${what} a KV cache that was disposed; create a new one with layer.createCache`);
    }
  }

  /**
   * @internal The (B, C, V, H) key and value storage in engine memory, which the engine reads in
   * place. Views of it must be re-taken after any engine call (its memory can grow).
   */
  buffers(): { keys: EngineBuffer; values: EngineBuffer } {
    this.assertUsable('cannot use');
    return { keys: this.keyStore!, values: this.valueStore! };
  }

  /** @internal Checks that `t` more positions fit, before any work of a call. */
  checkAppend(t: number, batch: number, where: string): void {
    this.assertUsable('cannot use');
    check(batch === this.batchSize, where, () =>
      `the cache holds batch size ${this.batchSize}; received a call with batch size ${batch}`);
    check(this.filled + t <= this.maxLength, where, () =>
      `the cache has capacity maxLength=${this.maxLength} and holds ${this.filled} positions; a call of ` +
      `${t} more would need ${this.filled + t}`);
  }

  /**
   * @internal Writes T new positions in place at the current length: keys/values (B, T, V, H),
   * bits (B, T) or null (all attend). Call `checkAppend` first.
   */
  write(newKeys: Float32Array, newValues: Float32Array, bits: Uint8Array | null, t: number): void {
    const row = this.numKeyValueHeads * this.headDim;
    const { keys, values: vals } = this.buffers();
    const kc = keys.view();
    const vc = vals.view();
    for (let b = 0; b < this.batchSize; b++) {
      const dst = (b * this.maxLength + this.filled) * row;
      const src = b * t * row;
      kc.set(newKeys.subarray(src, src + t * row), dst);
      vc.set(newValues.subarray(src, src + t * row), dst);
      for (let i = 0; i < t; i++) this.keyMask[b * this.maxLength + this.filled + i] = bits == null ? 1 : bits[b * t + i]!;
    }
  }

  /** @internal Marks `t` written positions as held. */
  advance(t: number): void {
    this.filled += t;
  }

  /** Keeps the first `n` positions (rolls back speculative tokens). */
  truncate(n: number): void {
    this.assertUsable('cannot truncate');
    check(Number.isInteger(n) && n >= 0 && n <= this.filled, `${this.owner}: KVCache.truncate`, () =>
      `n must be an integer in [0, ${this.filled}] (the current length); received ${formatValue(n)}`);
    this.filled = n;
  }

  /** Empties the cache (keeps its memory). */
  reset(): void {
    this.assertUsable('cannot reset');
    this.filled = 0;
  }

  /** Frees the cache's engine memory; using it afterwards raises. */
  dispose(): void {
    if (this.keyStore == null) return;
    this.keyStore.free();
    this.valueStore!.free();
    this.keyStore = null;
    this.valueStore = null;
    this.filled = 0;
  }
}
