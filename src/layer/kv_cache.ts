/**
 * A key/value cache for incremental decoding with `GroupedQueryAttention`.
 *
 * Shape letters: B batch · C capacity (maxLength) · L positions held · T positions of a call ·
 * V key/value heads · H head size.
 *
 * The projected keys and values, (B, C, V, H), live in a storage that the active backend provides
 * when the cache is created (engine memory on cpu and wasm; see `op/kv_storage.ts`), allocated once,
 * so that a decode step attends over the cached positions where they are. The cache adds what the
 * layer's mask rule needs: one key-mask bit per position, (B, C), from the value and key masks of the
 * call that wrote it.
 *
 * A cache is bound to the layer that created it. A cache dropped without `dispose()` is reclaimed
 * when it is garbage-collected (a FinalizationRegistry frees its storage); `dispose()` frees it at
 * once, which is what a program that makes many caches should do.
 */
import * as tf from '@tensorflow/tfjs-core';
import { check, formatValue, ValueError } from '../errors.js';
import { createKVStorage, type KVStorage } from '../op/kv_storage.js';

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

/** Frees the storage of caches that were garbage-collected without `dispose()`. */
const reclaim = new FinalizationRegistry<KVStorage>((storage) => storage.dispose());

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
  /** The layer the cache is bound to (identity only). */
  private readonly ownerLayer: object;
  private store: KVStorage | null;
  /** (B, C) key-mask bits: 1 attends, 0 is a padded position (from the value/key masks of a call). */
  readonly keyMask: Uint8Array;
  /** Whether any call wrote a value or key mask since the cache was last emptied. */
  private masked = false;
  private filled = 0;

  /** @internal Use `layer.createCache`. */
  constructor(owner: string, numKeyValueHeads: number, headDim: number, options: KVCacheOptions, ownerLayer?: object) {
    const where = `${owner}.createCache`;
    check(options != null && typeof options === 'object', where, () =>
      `expects {batchSize, maxLength}; received ${formatValue(options)}`);
    const { batchSize, maxLength } = options;
    check(Number.isInteger(batchSize) && batchSize > 0, where, () =>
      `batchSize must be a positive integer; received ${formatValue(batchSize)}`);
    check(Number.isInteger(maxLength) && maxLength > 0, where, () =>
      `maxLength must be a positive integer; received ${formatValue(maxLength)}`);
    this.owner = owner;
    this.ownerLayer = ownerLayer ?? this;
    this.batchSize = batchSize;
    this.maxLength = maxLength;
    this.numKeyValueHeads = numKeyValueHeads;
    this.headDim = headDim;
    this.keyMask = new Uint8Array(batchSize * maxLength);
    try {
      this.store = createKVStorage({ batchSize, capacity: maxLength, numKeyValueHeads, headDim });
    } catch (e) {
      // The storage frees what it allocated before rethrowing; name the size that did not fit.
      throw new ValueError(
        `${where}: could not allocate the cache's keys and values, (B, C, V, H) = (${batchSize}, ${maxLength}, ` +
        `${numKeyValueHeads}, ${headDim}) floats each (received batchSize=${batchSize}, maxLength=${maxLength}): ` +
        `${e instanceof Error ? e.message : String(e)}`);
    }
    reclaim.register(this, this.store, this);
  }

  /** Positions currently held. */
  get length(): number {
    return this.filled;
  }

  get disposed(): boolean {
    return this.store == null || this.store.disposed;
  }

  private usable(what: string): KVStorage {
    if (this.store == null) {
      throw new ValueError(`${this.owner}: ${what} a KV cache that was disposed; create a new one with layer.createCache`);
    }
    return this.store;
  }

  /** @internal The storage, for the op's `cache` option. */
  storage(): KVStorage {
    return this.usable('cannot use');
  }

  /**
   * @internal Every check of a call by `layer` with batch size `batch` and `t` new positions, before
   * any work: the cache is alive, was made by this layer, and has room.
   */
  checkCall(where: string, layer: object, dims: { numKeyValueHeads: number; headDim: number }, batch: number, t: number): void {
    this.usable('cannot use');
    check(layer === this.ownerLayer, where, () =>
      `a KV cache is bound to the layer that created it; this one was created by ${this.owner} (it holds ` +
      `${this.numKeyValueHeads} key/value heads of size ${this.headDim}, this layer has ${dims.numKeyValueHeads} ` +
      `of size ${dims.headDim}); create one with this layer's createCache`);
    check(batch === this.batchSize, where, () =>
      `the cache holds batch size ${this.batchSize}; received a call with batch size ${batch}`);
    check(this.filled + t <= this.maxLength, where, () =>
      `the cache has capacity maxLength=${this.maxLength} and holds ${this.filled} positions; a call of ` +
      `${t} more would need ${this.filled + t}`);
  }

  /**
   * @internal The key-mask bits of positions 0..L+T-1 as a bool (B, L+T) tensor, with `bits` (B, T)
   * for the call's new positions (null: all attend); null when no position of the cache or the call
   * was ever masked (the layer then has no value/key mask, as an uncached call without one).
   */
  keyMaskWith(bits: Uint8Array | null, t: number): tf.Tensor2D | null {
    if (!this.masked && bits == null) return null;
    const s = this.filled + t;
    const data = new Uint8Array(this.batchSize * s);
    for (let b = 0; b < this.batchSize; b++) {
      data.set(this.keyMask.subarray(b * this.maxLength, b * this.maxLength + this.filled), b * s);
      data.fill(1, b * s + this.filled, (b + 1) * s);
      if (bits != null) data.set(bits.subarray(b * t, (b + 1) * t), b * s + this.filled);
    }
    return tf.tensor2d(data, [this.batchSize, s], 'bool');
  }

  /** @internal After a successful call: records the new positions' bits (null: all attend) and holds them. */
  advance(t: number, bits: Uint8Array | null): void {
    for (let b = 0; b < this.batchSize; b++) {
      const at = b * this.maxLength + this.filled;
      if (bits == null) this.keyMask.fill(1, at, at + t);
      else this.keyMask.set(bits.subarray(b * t, (b + 1) * t), at);
    }
    if (bits != null) this.masked = true;
    this.filled += t;
  }

  /** Keeps the first `n` positions (rolls back speculative tokens). */
  truncate(n: number): void {
    this.usable('cannot truncate');
    check(Number.isInteger(n) && n >= 0 && n <= this.filled, `${this.owner}: KVCache.truncate`, () =>
      `n must be an integer in [0, ${this.filled}] (the current length); received ${formatValue(n)}`);
    this.filled = n;
    if (n === 0) this.masked = false;
  }

  /** Empties the cache (keeps its memory). */
  reset(): void {
    this.usable('cannot reset');
    this.filled = 0;
    this.masked = false;
  }

  /** Frees the cache's memory; using it afterwards raises. */
  dispose(): void {
    if (this.store == null) return;
    reclaim.unregister(this);
    this.store.dispose();
    this.store = null;
    this.filled = 0;
  }
}
