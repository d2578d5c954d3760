/**
 * Constructor and call arguments of the `GroupedQueryAttention` layer, with Keras's defaults.
 * Shape letters: B batch · T query length · S key/value length · Dq/Dk/Dv feature sizes ·
 * U query heads · V key/value heads · H head size.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { SymbolicTensor } from '@tensorflow/tfjs-layers';
import type { LayerArgs } from '@tensorflow/tfjs-layers/dist/engine/topology.js';
import type { KVCache } from './kv_cache.js';
import type {
  ConstraintIdentifier,
  InitializerIdentifier,
  RegularizerIdentifier,
} from './identifiers.js';

/**
 * Constructor arguments (Keras `GroupQueryAttention` in camelCase).
 *
 * @example
 * ```ts
 * import { GroupedQueryAttention, type GroupedQueryAttentionArgs } from 'grouped-query-attention';
 *
 * const args: GroupedQueryAttentionArgs = {
 *   headDim: 64, numQueryHeads: 8, numKeyValueHeads: 2,   // G = 4 query heads per key/value head
 *   dropout: 0.1, useBias: false, kernelInitializer: 'heNormal', kernelRegularizer: 'l2',
 *   slidingWindow: 256, useGate: true, seed: 1,
 * };
 * const layer = new GroupedQueryAttention(args);
 * ```
 */
export interface GroupedQueryAttentionArgs extends LayerArgs {
  /** Size of each attention head, H (query, key and value heads alike). */
  headDim: number;
  /** Number of query heads, U. */
  numQueryHeads: number;
  /** Number of key/value heads, V; must divide `numQueryHeads`. */
  numKeyValueHeads: number;
  /** Dropout rate on the attention probabilities, in [0, 1). Default 0. */
  dropout?: number;
  /** Biases on the query, key, value (and gate) and output projections. Default true. */
  useBias?: boolean;
  /** Default 'glorotUniform'. Each kernel gets its own clone. */
  kernelInitializer?: InitializerIdentifier;
  /** Default 'zeros'. Each bias gets its own clone. */
  biasInitializer?: InitializerIdentifier;
  kernelRegularizer?: RegularizerIdentifier | null;
  biasRegularizer?: RegularizerIdentifier | null;
  /** Applied to each projection's output and to the layer's outputs, as Keras does. */
  activityRegularizer?: RegularizerIdentifier | null;
  /** Applied after every optimizer step (as in Keras), and by `setWeights`. */
  kernelConstraint?: ConstraintIdentifier | null;
  biasConstraint?: ConstraintIdentifier | null;
  /** Keras 3.14: a sigmoid gate on the attention output, `gate/kernel (Dq,U,H)`. Default false. */
  useGate?: boolean;
  /** Keras 3.15: symmetric band |i - j| < slidingWindow AND-ed into the mask. Default null. */
  slidingWindow?: number | null;
  /** Keras 3.7: seeds the dropout pattern. Default null. */
  seed?: number | null;
  /**
   * Keras 3.7: null or true lets the layer use the fused attention kernel; false forces the composite
   * path. True forbids `dropout > 0` and `returnAttentionScores` (Keras's errors). The numbers are the
   * same either way. Not saved in the config, as in Keras.
   */
  flashAttention?: boolean | null;
}

/** Tensors of a call: all Tensors, or all SymbolicTensors in a functional model. */
export type AnyTensor = tf.Tensor | SymbolicTensor;

/**
 * The keyword arguments of `layer.apply(query, callArgs)`.
 *
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import '@tensorflow/tfjs-backend-cpu';
 * import { GroupedQueryAttention, type GroupedQueryAttentionCallArgs } from 'grouped-query-attention';
 *
 * const layer = new GroupedQueryAttention({ headDim: 4, numQueryHeads: 4, numKeyValueHeads: 2 });
 * const query = tf.randomNormal([2, 3, 8]);
 * const call: GroupedQueryAttentionCallArgs = {
 *   value: tf.randomNormal([2, 5, 8]),
 *   valueMask: tf.tensor2d([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], [2, 5], 'bool'),  // padded keys
 *   useCausalMask: true,
 *   returnAttentionScores: true,
 * };
 * const [out, scores] = layer.apply(query, call) as tf.Tensor[];   // (2,3,8), (2,4,3,5)
 * ```
 */
export interface GroupedQueryAttentionCallArgs {
  /** (B, S, Dv). Required. */
  value: AnyTensor;
  /** (B, S, Dk). Defaults to `value`. */
  key?: AnyTensor | null;
  /** (B, T): false marks padded query positions. Defaults to `query.kerasMask`. */
  queryMask?: AnyTensor | null;
  /** (B, S): false marks padded value positions. Defaults to `value.kerasMask`. */
  valueMask?: AnyTensor | null;
  /** (B, S): false marks padded key positions. Defaults to `key.kerasMask` when a key is passed. */
  keyMask?: AnyTensor | null;
  /** Broadcastable to (B, U, T, S): (B,T,S), (1,T,S), (T,S), (B,1,S), (B,U,T,S). True attends. */
  attentionMask?: AnyTensor | null;
  /** Also return the attention probabilities (B, U, T, S). Default false. */
  returnAttentionScores?: boolean;
  /** Dropout acts only when true. `fit` passes true. */
  training?: boolean;
  /** Top-left causal mask (bottom-right with a cache). Default false. */
  useCausalMask?: boolean;
  /**
   * A KV cache from `layer.createCache`: this call's keys and values are appended at `cache.length`
   * and the queries attend over every cached position (causal mask aligned bottom-right).
   */
  cache?: KVCache;
}
