/**
 * Kernel names of this package, with their inputs and attributes, declared once.
 * Backends, the op, the gradient and the tests import them from here.
 */
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { KVStorage } from './kv_storage.js';
import type { MaskKind } from './mask_rule.js';

/**
 * Fused grouped-query attention on projected heads.
 * Inputs: query (B,T,U,H), key (B,S,V,H), value (B,S,V,H), and always a rank-4 mask broadcastable
 * to (B,U,T,S) (dtype bool for a boolean mask, float32 for an additive one; with maskKind 'none' a
 * (1,1,1,1) placeholder the kernel ignores, passed so that the gradient can save it).
 * Outputs: [output (B,T,U,H)] or, with `returnScores`, [output, probabilities (B,U,T,S)]; a kernel
 * that honours `returnLogSumExp` (cpu, wasm) appends the rows' log-sum-exp (B,U,T) when it is set.
 * With the `cache` attribute, S is `cache.keyLength` and key/value are read from the cache's storage.
 *
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import '@tensorflow/tfjs-backend-cpu';
 * import { GroupedQueryAttentionKernel, type GroupedQueryAttentionAttrs } from 'grouped-query-attention';
 *
 * // A backend registers its own fused kernel under this name; the op finds it with getKernel.
 * console.log(tf.getKernel(GroupedQueryAttentionKernel, 'cpu') != null);   // true
 * const attrs: GroupedQueryAttentionAttrs = {
 *   maskKind: 'none', causal: true, queryOffset: 0, slidingWindow: 0, scale: 0.125, returnScores: false,
 *   dropoutRate: 0, dropoutSeed: 0,
 * };
 * ```
 */
export const GroupedQueryAttention = 'GroupedQueryAttention';

/**
 * Inputs of the {@link GroupedQueryAttention} kernel, for backend kernel authors.
 *
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import '@tensorflow/tfjs-backend-cpu';
 * import { GroupedQueryAttentionKernel, type GroupedQueryAttentionInputs } from 'grouped-query-attention';
 *
 * const inputs: GroupedQueryAttentionInputs = {
 *   query: tf.ones([1, 2, 4, 8]), key: tf.ones([1, 3, 2, 8]), value: tf.ones([1, 3, 2, 8]),
 *   mask: tf.zeros([1, 1, 1, 1]),   // placeholder when maskKind is 'none'
 * };
 * const attrs = {
 *   maskKind: 'none', causal: false, queryOffset: 0, slidingWindow: 0, scale: 0.35355339, returnScores: false,
 *   dropoutRate: 0, dropoutSeed: 0,
 * };
 * const [out] = tf.engine().runKernel(GroupedQueryAttentionKernel, inputs as never, attrs as never) as tf.Tensor[];
 * console.log(out.shape);   // [1, 2, 4, 8]
 * ```
 */
export type GroupedQueryAttentionInputs = {
  query: TensorInfo;
  key: TensorInfo;
  value: TensorInfo;
  /** Always passed: the mask, or a (1,1,1,1) placeholder ignored when `maskKind` is 'none'. */
  mask: TensorInfo;
};

/**
 * Attributes of the {@link GroupedQueryAttention} kernel, for backend kernel authors.
 *
 * @example
 * ```ts
 * import { defaultScale, type GroupedQueryAttentionAttrs } from 'grouped-query-attention';
 *
 * const attrs: GroupedQueryAttentionAttrs = {
 *   maskKind: 'bool', causal: true, queryOffset: 0, slidingWindow: 0, scale: defaultScale(64), returnScores: false,
 *   dropoutRate: 0, dropoutSeed: 0,
 * };
 * ```
 */
export interface GroupedQueryAttentionAttrs {
  /** 'none': no mask input; 'bool': nonzero allows (Keras bool masks); 'additive': float32 adder. */
  maskKind: MaskKind;
  causal: boolean;
  /** Absolute position of query row 0 for causal and window masks (0 = Keras top-left). */
  queryOffset: number;
  /** 0 for none, else the band width w of |p - j| < w. */
  slidingWindow: number;
  /** Multiplies the query before the dot product. */
  scale: number;
  returnScores: boolean;
  /**
   * Dropout rate on the probabilities after the softmax (0 = off; the op sets it only in training).
   * Kept probabilities are scaled by `fround(1 / fround(1 − rate))`; scores are returned before it.
   */
  dropoutRate: number;
  /** u32 seed of the shared dropout hash (src/engine/dropout_hash.ts). */
  dropoutSeed: number;
  /**
   * Set by the op when a gradient is being recorded (and no scores are returned): a kernel whose
   * backend has the engine's fused backward (cpu, wasm) then returns the rows' log-sum-exp
   * (B, U, T) as a last, hidden output, which the gradient saves and reads instead of recomputing
   * it. Other kernels ignore it. Absent or false for inference calls, which do not compute it.
   */
  returnLogSumExp?: boolean;
  /**
   * A KV cache read in place (see `KVStorage` in kv_storage.ts): keys and values 0..keyLength-1 of
   * each batch row come from `storage`, the `key`/`value` inputs (the (B,T,V,H) positions just
   * written to it) are ignored, S = keyLength and `queryOffset` = keyLength - T. Only passed to a
   * backend whose `storage.readsInPlace(backend)` is true; absent or null otherwise.
   */
  cache?: GroupedQueryAttentionCacheAttr | null;
}

/**
 * The `cache` attribute of the {@link GroupedQueryAttention} kernel: the storage and how many of its
 * positions the call attends over (the positions held plus this call's).
 *
 * @example
 * ```ts
 * import type { GroupedQueryAttentionAttrs } from 'grouped-query-attention';
 *
 * // A kernel author reads S from the attribute when it is present:
 * const keyLength = (attrs: GroupedQueryAttentionAttrs, inputS: number) => attrs.cache?.keyLength ?? inputS;
 * ```
 */
export interface GroupedQueryAttentionCacheAttr {
  storage: KVStorage;
  keyLength: number;
}

/**
 * Backends whose registered {@link GroupedQueryAttention} kernel applies `dropoutRate` itself; on
 * the others the op takes its composite path when dropout is active (same hash, same result).
 */
export const DROPOUT_KERNEL_BACKENDS: ReadonlySet<string> = new Set(['cpu', 'wasm', 'webgl', 'webgpu']);
