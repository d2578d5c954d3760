/**
 * Kernel names of this package, with their inputs and attributes, declared once.
 * Backends, the op, the gradient and the tests import them from here.
 */
import type { TensorInfo } from '@tensorflow/tfjs-core';

/**
 * Fused grouped-query attention on projected heads.
 * Inputs: query (B,T,U,H), key (B,S,V,H), value (B,S,V,H), optional mask broadcastable to
 * (B,U,T,S) as a rank-4 tensor (dtype bool for a boolean mask, float32 for an additive one).
 * Outputs: [output (B,T,U,H)] or, with `returnScores`, [output, probabilities (B,U,T,S)].
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
  /** Present only when `maskKind !== 'none'`. */
  mask?: TensorInfo;
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
  maskKind: 'none' | 'bool' | 'additive';
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
}

/**
 * Backends whose registered {@link GroupedQueryAttention} kernel applies `dropoutRate` itself; on
 * the others the op takes its composite path when dropout is active (same hash, same result).
 */
export const DROPOUT_KERNEL_BACKENDS: ReadonlySet<string> = new Set(['cpu', 'wasm']);
