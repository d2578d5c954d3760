/**
 * Constructor and call arguments of the `GroupedQueryAttention` layer, with Keras's defaults.
 * Shape letters: B batch · T query length · S key/value length · Dq/Dk/Dv feature sizes ·
 * U query heads · V key/value heads · H head size.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { SymbolicTensor } from '@tensorflow/tfjs-layers';
import type { LayerArgs } from '@tensorflow/tfjs-layers/dist/engine/topology.js';
import { check, formatValue, ValueError } from '../errors.js';
import type { KVCache } from './kv_cache.js';
import {
  resolveConstraint,
  resolveInitializer,
  resolveRegularizer,
  type Constraint,
  type ConstraintIdentifier,
  type Initializer,
  type InitializerIdentifier,
  type Regularizer,
  type RegularizerIdentifier,
} from './identifiers.js';
import { checkFlag } from './inputs.js';

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

/** The constructor arguments after validation, with Keras's defaults filled in and identifiers resolved. */
export interface ResolvedArgs {
  headDim: number;
  numQueryHeads: number;
  numKeyValueHeads: number;
  dropout: number;
  useBias: boolean;
  useGate: boolean;
  slidingWindow: number | null;
  seed: number | null;
  flashAttention: boolean | null;
  kernelInitializer: Initializer;
  biasInitializer: Initializer;
  kernelRegularizer: Regularizer | null;
  biasRegularizer: Regularizer | null;
  activityRegularizer: Regularizer | null;
  kernelConstraint: Constraint | null;
  biasConstraint: Constraint | null;
}

/** Most elements a tfjs tensor (and so a weight) can have: its typed array's length is an int32. */
export const MAX_WEIGHT_ELEMENTS = 2 ** 31 - 1;

function isPositiveInteger(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x > 0;
}

/**
 * Validates the constructor arguments, Keras's rules and errors, each naming the argument and the
 * value received, before the layer exists.
 */
export function resolveArgs(where: string, args: GroupedQueryAttentionArgs): ResolvedArgs {
  check(args != null && typeof args === 'object', where, () => `expects an arguments object; received ${formatValue(args)}`);
  const { headDim, numQueryHeads, numKeyValueHeads } = args;
  check(isPositiveInteger(headDim), where, () => `headDim must be a positive integer; received ${formatValue(headDim)}`);
  check(isPositiveInteger(numQueryHeads), where, () =>
    `numQueryHeads must be a positive integer; received ${formatValue(numQueryHeads)}`);
  check(isPositiveInteger(numKeyValueHeads), where, () =>
    `numKeyValueHeads must be a positive integer; received ${formatValue(numKeyValueHeads)}`);
  check(numQueryHeads % numKeyValueHeads === 0, where, () =>
    `numQueryHeads must be divisible by numKeyValueHeads; received numQueryHeads=${numQueryHeads}, ` +
    `numKeyValueHeads=${numKeyValueHeads}`);
  // The (U, H) query bias and every kernel hold U·H elements at least.
  check(numQueryHeads * headDim <= MAX_WEIGHT_ELEMENTS, where, () =>
    `numQueryHeads × headDim must be at most ${MAX_WEIGHT_ELEMENTS} (the most elements a tensor can hold); ` +
    `received numQueryHeads=${numQueryHeads}, headDim=${headDim} (${numQueryHeads * headDim})`);
  const dropout = args.dropout ?? 0;
  check(typeof dropout === 'number' && dropout >= 0 && dropout < 1, where, () =>
    `dropout must be a number in [0, 1); received ${formatValue(dropout)}`);
  // Keras accepts True as a window of 1 (a Python bool is an int); False and non-integers raise.
  const slidingWindow = (args.slidingWindow as unknown) === true ? 1 : args.slidingWindow ?? null;
  check(slidingWindow === null || (Number.isInteger(slidingWindow) && slidingWindow > 0), where, () =>
    `slidingWindow must be null or a positive integer; received ${formatValue(args.slidingWindow)}`);
  const seed = args.seed ?? null;
  check(seed === null || Number.isInteger(seed), where, () => `seed must be null or an integer; received ${formatValue(seed)}`);
  const flashAttention = checkFlag(where, 'flashAttention', args.flashAttention) ?? null;
  const useBias = checkFlag(where, 'useBias', args.useBias) ?? true;
  const useGate = checkFlag(where, 'useGate', args.useGate) ?? false;
  if (flashAttention === true && dropout > 0) {
    throw new ValueError(
      `${where}: Dropout is not supported when flash attention is enabled. Please set dropout to 0.0 to use ` +
      `flash attention (received dropout=${dropout}, flashAttention=true)`);
  }
  return {
    headDim,
    numQueryHeads,
    numKeyValueHeads,
    dropout,
    useBias,
    useGate,
    slidingWindow,
    seed,
    flashAttention,
    kernelInitializer: resolveInitializer(where, 'kernelInitializer', args.kernelInitializer ?? 'glorotUniform'),
    biasInitializer: resolveInitializer(where, 'biasInitializer', args.biasInitializer ?? 'zeros'),
    kernelRegularizer: resolveRegularizer(where, 'kernelRegularizer', args.kernelRegularizer),
    biasRegularizer: resolveRegularizer(where, 'biasRegularizer', args.biasRegularizer),
    activityRegularizer: resolveRegularizer(where, 'activityRegularizer', args.activityRegularizer),
    kernelConstraint: resolveConstraint(where, 'kernelConstraint', args.kernelConstraint),
    biasConstraint: resolveConstraint(where, 'biasConstraint', args.biasConstraint),
  };
}
