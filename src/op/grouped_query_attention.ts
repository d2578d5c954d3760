/**
 * `groupedQueryAttention`: attention on projected heads, with Keras 3.6's exact numbers.
 *
 * Shape letters:
 *   B batch · T query length · S key/value length · U query heads · V key/value heads · H head size
 *   G = U / V query heads per key/value head; query head u reads key/value head floor(u / G).
 *
 * Checks come first (shapes, dtypes, options, mask broadcast), then one dispatch: the fused kernel of
 * the active backend when one is registered, else the composite path built from public tfjs ops.
 * Both compute the same thing. Dropout in training runs inside the fused kernel where the backend's
 * kernel applies it (DROPOUT_KERNEL_BACKENDS), else on the composite path, with the same hash.
 */
import * as tf from '@tensorflow/tfjs-core';
import { defaultScale as engineDefaultScale } from '../engine/index.js';
import { check, formatShape, formatValue } from '../errors.js';
import { compositeAttention } from './composite.js';
import { randomDropoutSeed } from '../engine/dropout_hash.js';
import {
  DROPOUT_KERNEL_BACKENDS,
  GroupedQueryAttention,
  type GroupedQueryAttentionAttrs,
  type GroupedQueryAttentionInputs,
} from './kernel_names.js';
import type { KVStorage } from './kv_storage.js';
import { maskKindOf, maskShapeRank4 } from './mask_rule.js';
import { combinedAdder, expandMaskToRank4, normalizeMask, type KernelMask } from './masks.js';

/**
 * A KV cache for one call of the op: its storage and the positions it already holds.
 *
 * @example
 * ```ts
 * import type { GroupedQueryAttentionCache } from 'grouped-query-attention';
 *
 * // layer.createCache() makes and tracks these; the op only needs the storage and its length.
 * const describe = (c: GroupedQueryAttentionCache) => `${c.length} of ${c.storage.capacity} positions held`;
 * ```
 */
export interface GroupedQueryAttentionCache {
  /** Where keys and values live (B, C, V, H); see kv_storage.ts for the contract. */
  storage: KVStorage;
  /** Positions already held, L: this call writes positions L..L+T-1 and attends over 0..L+T-1. */
  length: number;
}

/**
 * Options of {@link groupedQueryAttention}.
 *
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import '@tensorflow/tfjs-backend-cpu';
 * import { groupedQueryAttention, type GroupedQueryAttentionOptions } from 'grouped-query-attention';
 *
 * const q = tf.randomNormal([1, 4, 6, 8]);   // (B,T,U,H)
 * const kv = tf.randomNormal([1, 9, 3, 8]);  // (B,S,V,H)
 * const options: GroupedQueryAttentionOptions = {
 *   attentionMask: tf.ones([4, 9], 'bool'),  // (T,S), broadcast over batch and heads
 *   causal: true, queryOffset: 5,            // the 4 queries sit at positions 5..8
 *   slidingWindow: 3,
 * };
 * groupedQueryAttention(q, kv, kv, options).print();
 * ```
 */
export interface GroupedQueryAttentionOptions {
  /**
   * Mask broadcastable to (B, U, T, S) after Keras's rank expansion ((T,S), (B,T,S), (1,T,S), (B,1,S),
   * (B,U,T,S), ...). Bool: true attends. Numeric: used as `(1 - mask) * -1e9` (Keras 3.6's non-binary
   * quirk) unless `causal` or `slidingWindow` is set, in which case nonzero attends.
   */
  attentionMask?: tf.Tensor | null;
  /** Causal mask, top-left aligned as in Keras: query i sees keys j <= i + queryOffset. Default false. */
  causal?: boolean;
  /** Absolute position of query row 0 for causal and window masks (a KV cache's length). Default 0. */
  queryOffset?: number;
  /** Sliding window w (Keras 3.15): query at position p sees keys with |p - j| < w. Default none. */
  slidingWindow?: number | null;
  /** Multiplies the query before Q·Kᵀ. Default: float32 1/sqrt(H) as Keras computes it. */
  scale?: number;
  /** Also return the attention probabilities (B, U, T, S), taken before dropout. Default false. */
  returnScores?: boolean;
  /** Dropout rate on the probabilities, in [0, 1). Acts only when `training`. Default 0. */
  dropout?: number;
  /** Default false. */
  training?: boolean;
  /**
   * Seeds the dropout pattern: the shared hash's u32 seed is `Math.floor(seed) >>> 0`, so the same
   * seed drops the same probabilities on every backend and path. Without a seed each call draws a
   * random pattern.
   */
  seed?: number | null;
  /**
   * A KV cache: key and value hold this call's T new positions (B, T, V, H), written in place at
   * `cache.length`; the queries attend over the cache's positions 0..length+T-1 (S = length + T),
   * query row i at absolute position length + i (so `causal` is aligned bottom-right), and
   * `attentionMask` broadcasts to (B, U, T, length + T). The caller advances its length after the
   * call. Inference only: no gradient flows into the cache.
   */
  cache?: GroupedQueryAttentionCache | null;
}

/**
 * Keras's query scale in float32: `1 / sqrt(float32(H))`, each step rounded to float32. The engine's
 * definition, under the package root.
 *
 * @example
 * ```ts
 * import { defaultScale } from 'grouped-query-attention';
 *
 * console.log(defaultScale(6));   // 0.40824827551841736 (Keras 3.6; 1 ulp from fround(1/sqrt(6)))
 * ```
 */
export const defaultScale: (headDim: number) => number = engineDefaultScale;

interface Prepared {
  attrs: GroupedQueryAttentionAttrs;
  cache: GroupedQueryAttentionCache | null;
  scoresShape: [number, number, number, number];
  dropout: number;
  training: boolean;
}

function isInteger(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x);
}

/** Every check of the op, before any tensor is made. */
function prepare(
  where: string,
  query: tf.Tensor,
  key: tf.Tensor,
  value: tf.Tensor,
  options: GroupedQueryAttentionOptions,
): Prepared {
  for (const [name, t] of [['query', query], ['key', key], ['value', value]] as const) {
    check(t instanceof tf.Tensor, where, () => `${name} must be a tf.Tensor; received ${formatValue(t)}`);
    check(t.rank === 4, where, () =>
      `${name} must have rank 4 (${name === 'query' ? '(B, T, U, H)' : '(B, S, V, H)'}); received shape ${formatShape(t.shape)}`);
    check(t.dtype === 'float32', where, () => `${name} must be float32; received dtype ${t.dtype}`);
    check(t.size > 0, where, () => `${name} must not be empty; received shape ${formatShape(t.shape)}`);
  }
  const [b, t, u, h] = query.shape as [number, number, number, number];
  const [kb, s, v, kh] = key.shape as [number, number, number, number];
  check(kb === b && value.shape[0] === b, where, () =>
    `query, key and value must have the same batch size; received query ${formatShape(query.shape)}, ` +
    `key ${formatShape(key.shape)}, value ${formatShape(value.shape)}`);
  check(value.shape[1] === s && value.shape[2] === v, where, () =>
    `key and value must agree in length S and heads V; received key ${formatShape(key.shape)}, value ${formatShape(value.shape)}`);
  check(kh === h && value.shape[3] === h, where, () =>
    `query, key and value must have the same head size H; received query ${formatShape(query.shape)}, ` +
    `key ${formatShape(key.shape)}, value ${formatShape(value.shape)}`);
  check(u % v === 0, where, () =>
    `the query heads U must be a multiple of the key/value heads V; received U=${u}, V=${v}`);
  const cache = options.cache ?? null;
  if (cache != null) checkCache(where, cache, query.shape, key.shape, options.queryOffset);
  // With a cache the queries attend over the L positions held plus the T of this call.
  const keyLength = cache == null ? s : cache.length + t;

  const causal = options.causal ?? false;
  check(typeof causal === 'boolean', where, () => `causal must be a boolean; received ${formatValue(causal)}`);
  const queryOffset = cache?.length ?? options.queryOffset ?? 0;
  check(isInteger(queryOffset) && queryOffset >= 0, where, () =>
    `queryOffset must be an integer >= 0; received ${formatValue(queryOffset)}`);
  const slidingWindow = options.slidingWindow ?? 0;
  check(isInteger(slidingWindow) && slidingWindow >= 0, where, () =>
    `slidingWindow must be null or a positive integer; received ${formatValue(options.slidingWindow)}`);
  const scale = options.scale ?? defaultScale(h);
  check(typeof scale === 'number' && Number.isFinite(scale), where, () =>
    `scale must be a finite number; received ${formatValue(scale)}`);
  const returnScores = options.returnScores ?? false;
  check(typeof returnScores === 'boolean', where, () =>
    `returnScores must be a boolean; received ${formatValue(returnScores)}`);
  const dropout = options.dropout ?? 0;
  check(typeof dropout === 'number' && dropout >= 0 && dropout < 1, where, () =>
    `dropout must be a number in [0, 1); received ${formatValue(dropout)}`);
  const training = options.training ?? false;
  check(typeof training === 'boolean', where, () => `training must be a boolean; received ${formatValue(training)}`);
  const seed = options.seed ?? undefined;
  check(seed === undefined || Number.isFinite(seed), where, () => `seed must be a number; received ${formatValue(seed)}`);

  const scoresShape: [number, number, number, number] = [b, u, t, keyLength];
  const mask = options.attentionMask;
  if (mask != null) {
    check(mask instanceof tf.Tensor, where, () => `attentionMask must be a tf.Tensor; received ${formatValue(mask)}`);
    check(mask.dtype !== 'string' && mask.dtype !== 'complex64', where, () =>
      `attentionMask must be a bool or numeric tensor; received dtype ${mask.dtype}`);
    maskShapeRank4(mask.shape, scoresShape, where, 'attentionMask');
  }
  const maskKind = maskKindOf(mask?.dtype ?? null, { causal, queryOffset, slidingWindow });
  const dropoutRate = training ? dropout : 0;
  const dropoutSeed = dropoutRate === 0 ? 0 : seed === undefined ? randomDropoutSeed() : Math.floor(seed) >>> 0;
  return {
    attrs: { maskKind, causal, queryOffset, slidingWindow, scale, returnScores, dropoutRate, dropoutSeed },
    cache,
    scoresShape,
    dropout,
    training,
  };
}

/** The checks of the `cache` option: a usable storage with room for this call's positions. */
function checkCache(
  where: string,
  cache: GroupedQueryAttentionCache,
  queryShape: readonly number[],
  keyShape: readonly number[],
  queryOffset: number | undefined,
): void {
  const { storage, length } = cache as Partial<GroupedQueryAttentionCache>;
  check(storage != null && typeof storage.write === 'function' && typeof storage.checkUsable === 'function', where, () =>
    `cache.storage must be a KV cache storage (from layer.createCache); received ${formatValue(storage)}`);
  check(isInteger(length) && length >= 0, where, () =>
    `cache.length must be an integer >= 0; received ${formatValue(length)}`);
  check(queryOffset == null || queryOffset === length, where, () =>
    `queryOffset is the cache's length with a cache; received queryOffset=${formatValue(queryOffset)}, cache.length=${length}`);
  storage.checkUsable(where, tf.getBackend());
  const [b, t] = queryShape as [number, number];
  const [, tk, v, h] = keyShape as [number, number, number, number];
  check(tk === t, where, () =>
    `with a cache, key and value hold the call's new positions: their length must be the query's T=${t}; ` +
    `received key ${formatShape(keyShape)}`);
  check(b === storage.batchSize && v === storage.numKeyValueHeads && h === storage.headDim, where, () =>
    `the cache holds (B, C, V, H) = ${formatShape([storage.batchSize, storage.capacity, storage.numKeyValueHeads, storage.headDim])}; ` +
    `received key ${formatShape(keyShape)}`);
  check(length + t <= storage.capacity, where, () =>
    `the cache has capacity maxLength=${storage.capacity} and holds ${length} positions; a call of ${t} more ` +
    `would need ${length + t}`);
}

function normalize(mask: tf.Tensor | null | undefined, p: Prepared, where: string): KernelMask | null {
  if (mask == null) return null;
  return normalizeMask(expandMaskToRank4(mask, p.scoresShape, where, 'attentionMask'), p.attrs);
}

/**
 * Whether a backend (default: the active one) has a fused kernel for this op; without one the op
 * runs its composite path, with the same results.
 *
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import '@tensorflow/tfjs-backend-cpu';
 * import { hasFusedKernel } from 'grouped-query-attention';
 *
 * await tf.setBackend('cpu');
 * console.log(hasFusedKernel());           // true
 * console.log(hasFusedKernel('webgpu'));   // true only after import 'grouped-query-attention/webgpu'
 * ```
 */
export function hasFusedKernel(backendName: string = tf.getBackend()): boolean {
  return tf.getKernel(GroupedQueryAttention, backendName) != null;
}

function run(
  where: string,
  query: tf.Tensor,
  key: tf.Tensor,
  value: tf.Tensor,
  options: GroupedQueryAttentionOptions,
  forceComposite: boolean,
): tf.Tensor4D | [tf.Tensor4D, tf.Tensor4D] {
  const p = prepare(where, query, key, value, options);
  const q = query as tf.Tensor4D;
  const k = key as tf.Tensor4D;
  const v = value as tf.Tensor4D;
  const { cache } = p;
  const kernelLacksDropout = p.attrs.dropoutRate > 0 && !DROPOUT_KERNEL_BACKENDS.has(tf.getBackend());
  const composite = forceComposite || kernelLacksDropout || !hasFusedKernel();
  return tf.tidy(() => {
    let attrs = p.attrs;
    // With a cache: write this call's positions in place, then either let the kernel read the
    // storage in place, or attend over copies of positions 0..S-1 like any uncached call.
    let [keys, values] = [k, v];
    if (cache != null) {
      const keyLength = p.scoresShape[3];
      cache.storage.write(k, v, cache.length);
      if (!composite && cache.storage.readsInPlace(tf.getBackend())) {
        attrs = { ...attrs, cache: { storage: cache.storage, keyLength } };
      } else {
        [keys, values] = cache.storage.read(keyLength);
      }
    }
    const mask = normalize(options.attentionMask, p, where);
    if (composite) {
      const adder = combinedAdder(mask, p.scoresShape[2], p.scoresShape[3], attrs);
      const [out, scores] = compositeAttention(q, keys, values, adder, {
        scale: attrs.scale,
        returnScores: attrs.returnScores,
        dropout: p.dropout,
        training: p.training,
        dropoutSeed: attrs.dropoutSeed,
      });
      return scores == null ? out : [out, scores];
    }
    // While a gradient is being recorded, the cpu and wasm kernels also return the rows'
    // log-sum-exp (a hidden last output the gradient saves); inference calls do not compute it.
    // With scores (the composite gradient) or a cache (no gradient) it would go unused.
    if (tf.engine().isTapeOn() && !attrs.returnScores && attrs.cache == null) attrs = { ...attrs, returnLogSumExp: true };
    // The kernel always receives a mask input so that its gradient can save it; with
    // maskKind 'none' this (1,1,1,1) placeholder is ignored.
    const inputs: GroupedQueryAttentionInputs = {
      query: q, key: keys, value: values, mask: mask?.mask ?? tf.zeros([1, 1, 1, 1]),
    };
    const outs = tf.engine().runKernel(
      GroupedQueryAttention,
      inputs as unknown as tf.NamedTensorMap,
      attrs as unknown as tf.NamedAttrMap,
    ) as tf.Tensor4D[];
    return attrs.returnScores ? [outs[0]!, outs[1]!] : outs[0]!;
  });
}

/**
 * Grouped-query attention on projected heads, as Keras 3.6 `GroupQueryAttention` computes it after
 * its projections: the query scaled by `scale`, each key/value head shared by G = U / V query heads
 * (no copies on fused backends), a masked softmax, dropout, and the weighted sum of values.
 *
 * Differentiable with respect to query, key and value.
 *
 * @param query (B, T, U, H) float32.
 * @param key (B, S, V, H) float32.
 * @param value (B, S, V, H) float32.
 * @returns output (B, T, U, H), or `[output, probabilities (B, U, T, S)]` with `returnScores`.
 *
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import '@tensorflow/tfjs-backend-cpu';
 * import { groupedQueryAttention } from 'grouped-query-attention';
 *
 * const q = tf.randomNormal([1, 5, 4, 8]) as tf.Tensor4D;   // 4 query heads
 * const k = tf.randomNormal([1, 5, 2, 8]) as tf.Tensor4D;   // 2 key/value heads
 * const v = tf.randomNormal([1, 5, 2, 8]) as tf.Tensor4D;
 * const y = groupedQueryAttention(q, k, v, { causal: true });  // (1, 5, 4, 8)
 * const [y2, p] = groupedQueryAttention(q, k, v, { returnScores: true }); // p: (1, 4, 5, 5)
 * ```
 */
export function groupedQueryAttention(
  query: tf.Tensor,
  key: tf.Tensor,
  value: tf.Tensor,
  options: GroupedQueryAttentionOptions & { returnScores: true },
): [tf.Tensor4D, tf.Tensor4D];
export function groupedQueryAttention(
  query: tf.Tensor,
  key: tf.Tensor,
  value: tf.Tensor,
  options?: GroupedQueryAttentionOptions,
): tf.Tensor4D;
export function groupedQueryAttention(
  query: tf.Tensor,
  key: tf.Tensor,
  value: tf.Tensor,
  options: GroupedQueryAttentionOptions = {},
): tf.Tensor4D | [tf.Tensor4D, tf.Tensor4D] {
  return run('groupedQueryAttention', query, key, value, options, false);
}

/**
 * The composite reference of {@link groupedQueryAttention}: the same checks and results, computed the
 * Keras way from public tfjs ops (K/V heads repeated, the (B, U, T, S) scores materialised). Kept as
 * the oracle for every fused kernel.
 *
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import '@tensorflow/tfjs-backend-cpu';
 * import { groupedQueryAttention, groupedQueryAttentionReference } from 'grouped-query-attention';
 *
 * const q = tf.randomNormal([2, 3, 6, 4]);
 * const kv = tf.randomNormal([2, 7, 3, 4]);
 * const fused = groupedQueryAttention(q, kv, kv);
 * const reference = groupedQueryAttentionReference(q, kv, kv);
 * tf.max(tf.abs(tf.sub(fused, reference))).print(); // ~1e-7
 * ```
 */
export function groupedQueryAttentionReference(
  query: tf.Tensor,
  key: tf.Tensor,
  value: tf.Tensor,
  options: GroupedQueryAttentionOptions & { returnScores: true },
): [tf.Tensor4D, tf.Tensor4D];
export function groupedQueryAttentionReference(
  query: tf.Tensor,
  key: tf.Tensor,
  value: tf.Tensor,
  options?: GroupedQueryAttentionOptions,
): tf.Tensor4D;
export function groupedQueryAttentionReference(
  query: tf.Tensor,
  key: tf.Tensor,
  value: tf.Tensor,
  options: GroupedQueryAttentionOptions = {},
): tf.Tensor4D | [tf.Tensor4D, tf.Tensor4D] {
  return run('groupedQueryAttentionReference', query, key, value, options, true);
}
