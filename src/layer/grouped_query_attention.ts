/**
 * Port of keras/src/layers/attention/grouped_query_attention.py @ v3.6.0
 * (7004f526cfd0933f407f1b4f530b865079aa9bef), public Keras name `keras.layers.GroupQueryAttention`,
 * plus the later options `useGate` (3.14), `slidingWindow` (3.15), `seed` and `flashAttention` (3.7).
 * The Keras behaviour it reproduces is described in docs/keras-3.6-behaviour.md.
 *
 * Shape letters:
 *   B batch · T query length · S key/value length · Dq, Dk, Dv feature sizes of query, key, value
 *   U query heads · V key/value heads · H head size · G = U / V query heads per key/value head.
 *
 * Weights (Keras names, shapes and order, so `getWeights`/`setWeights` exchange arrays with Keras):
 *   query/kernel (Dq,U,H)  query/bias (U,H)   key/kernel (Dk,V,H)  key/bias (V,H)
 *   [gate/kernel (Dq,U,H)  gate/bias (U,H)]   value/kernel (Dv,V,H) value/bias (V,H)
 *   attention_output/kernel (U,H,Dq)  attention_output/bias (Dq)
 *
 * Around this file: args.ts (arguments and their validation), inputs.ts (input packing and the
 * per-call plan), attention_mask.ts (Keras's mask rule), cached_attention.ts (what a cached call
 * adds), projection.ts (the projections and the gate), losses.ts (regularization losses).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { LayerVariable, Shape, SymbolicTensor } from '@tensorflow/tfjs-layers';
import { check, formatShape, formatValue, ValueError } from '../errors.js';
import { groupedQueryAttention, groupedQueryAttentionReference } from '../op/grouped_query_attention.js';
import {
  MAX_WEIGHT_ELEMENTS,
  resolveArgs,
  type GroupedQueryAttentionArgs,
  type GroupedQueryAttentionCallArgs,
} from './args.js';
import { checkLayerMasks, checkMaskDtypes, computeAttentionMask, type LayerMasks } from './attention_mask.js';
import { checkCachedMasks, newKeyBits } from './cached_attention.js';
import { constrainOnAssign } from './constraints.js';
import { cloneInitializer, serialize, type Constraint, type Initializer, type Regularizer } from './identifiers.js';
import { CallPlans, checkFlag, unpack } from './inputs.js';
import { KVCache, type KVCacheOptions } from './kv_cache.js';
import { LayerLosses } from './losses.js';
import { applyGate, projectAttentionOutput, projectQkv } from './projection.js';

type Kwargs = Record<string, unknown>;

/** Feature sizes fixed by the weights. */
interface BuiltDims {
  queryDim: number;
  valueDim: number;
  keyDim: number;
}

const LAYER = 'GroupedQueryAttention';

/** Keras's automatic names: grouped_query_attention, grouped_query_attention_1, ... */
let autoNames = 0;
function nextAutoName(): string {
  const n = autoNames++;
  return n === 0 ? 'grouped_query_attention' : `grouped_query_attention_${n}`;
}

function isPositiveInteger(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x > 0;
}

/**
 * Grouped-query attention (Ainslie et al., 2023) as a TensorFlow.js layer, with Keras 3.6's numbers:
 * U query heads share V key/value heads in groups of G = U / V (U = V is multi-head attention,
 * V = 1 multi-query attention).
 *
 * Eager call: `layer.apply(query, {value, key, queryMask, valueMask, keyMask, attentionMask,
 * returnAttentionScores, training, useCausalMask})` gives the output (B, T, Dq), or
 * `[output, scores (B, U, T, S)]` with `returnAttentionScores`. The same call on SymbolicTensors
 * builds a functional model; the layer then remembers its input layout and options, since tfjs
 * passes no per-node options at predict/fit time (one set of options per layer instance).
 *
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import '@tensorflow/tfjs-backend-cpu';
 * import { GroupedQueryAttention } from 'grouped-query-attention';
 *
 * const layer = new GroupedQueryAttention({ headDim: 8, numQueryHeads: 4, numKeyValueHeads: 2 });
 * const query = tf.randomNormal([2, 5, 16]);
 * const value = tf.randomNormal([2, 7, 16]);
 * const y = layer.apply(query, { value }) as tf.Tensor;          // (2, 5, 16)
 * const [out, scores] = layer.apply(query, { value, returnAttentionScores: true }) as tf.Tensor[];
 * console.log(scores.shape);                                     // [2, 4, 5, 7]
 * ```
 */
export class GroupedQueryAttention extends tfl.layers.Layer {
  /** @nocollapse */
  static readonly className: string = LAYER;

  readonly headDim: number;
  readonly numQueryHeads: number;
  readonly numKeyValueHeads: number;
  /** G = numQueryHeads / numKeyValueHeads. */
  readonly numRepeats: number;
  readonly dropout: number;
  readonly useBias: boolean;
  readonly useGate: boolean;
  readonly slidingWindow: number | null;
  readonly seed: number | null;
  readonly flashAttention: boolean | null;
  readonly kernelInitializer: Initializer;
  readonly biasInitializer: Initializer;
  readonly kernelRegularizer: Regularizer | null;
  readonly biasRegularizer: Regularizer | null;
  /** Kept apart from tfjs's `activityRegularizer`, which makes the base `apply` throw. */
  readonly activityRegularizerKeras: Regularizer | null;
  readonly kernelConstraint: Constraint | null;
  readonly biasConstraint: Constraint | null;

  private dims: BuiltDims | null = null;
  private buildShapes: { queryShape: Shape; valueShape: Shape; keyShape?: Shape } | null = null;
  private weightsByName = new Map<string, LayerVariable>();
  private readonly plans = new CallPlans(() => this.where);
  private readonly lossList = new LayerLosses();
  private insideApply = false;
  private lastReturnedScores = false;
  private dropoutCalls = 0;

  constructor(args: GroupedQueryAttentionArgs) {
    const { activityRegularizer: _activity, ...base } = args ?? ({} as GroupedQueryAttentionArgs);
    super({ ...base, name: base.name ?? nextAutoName() });
    const a = resolveArgs(`${LAYER} '${this.name}'`, args);
    this.headDim = a.headDim;
    this.numQueryHeads = a.numQueryHeads;
    this.numKeyValueHeads = a.numKeyValueHeads;
    this.numRepeats = a.numQueryHeads / a.numKeyValueHeads;
    this.dropout = a.dropout;
    this.useBias = a.useBias;
    this.useGate = a.useGate;
    this.slidingWindow = a.slidingWindow;
    this.seed = a.seed;
    this.flashAttention = a.flashAttention;
    this.kernelInitializer = a.kernelInitializer;
    this.biasInitializer = a.biasInitializer;
    this.kernelRegularizer = a.kernelRegularizer;
    this.biasRegularizer = a.biasRegularizer;
    this.activityRegularizerKeras = a.activityRegularizer;
    this.kernelConstraint = a.kernelConstraint;
    this.biasConstraint = a.biasConstraint;
    this.supportsMasking = true;
  }

  private get where(): string {
    return `${LAYER} '${this.name}'`;
  }

  // ---------------------------------------------------------------------------------------------
  // apply: every tensor becomes a positional input; the plan says which slot holds what.

  /**
   * Calls the layer: `apply(query, {value, key, ...masks, returnAttentionScores, training,
   * useCausalMask})`, or `apply([query, value, key?])`. See {@link GroupedQueryAttentionCallArgs}.
   */
  override apply(
    inputs: tf.Tensor | tf.Tensor[] | SymbolicTensor | SymbolicTensor[],
    kwargs?: Kwargs,
  ): tf.Tensor | tf.Tensor[] | SymbolicTensor | SymbolicTensor[] {
    const opts = (kwargs ?? {}) as Kwargs & Partial<GroupedQueryAttentionCallArgs>;
    const { list, plan, symbolic } = this.plans.plan<tf.Tensor | SymbolicTensor>(inputs, opts);
    const training = checkFlag(this.where, 'training', opts.training);
    if (plan.returnAttentionScores && this.flashAttention === true) {
      throw new ValueError(
        `${this.where}: Returning attention scores is not supported when flash attention is enabled. Please ` +
        'disable flash attention to access attention scores (received returnAttentionScores=true, flashAttention=true)');
    }
    if (opts.cache != null) {
      check(!symbolic, this.where, () => 'a KV cache works in eager calls only; received SymbolicTensor inputs');
      check(opts.cache instanceof KVCache, this.where, () =>
        `cache must come from layer.createCache; received ${formatValue(opts.cache)}`);
    }
    if (symbolic) this.plans.record(plan);
    const forward: Kwargs = {
      inputLayout: [...plan.layout],
      useCausalMask: plan.useCausalMask,
      returnAttentionScores: plan.returnAttentionScores,
    };
    if (training != null) forward['training'] = training;
    if (opts.cache != null) forward['cache'] = opts.cache;
    this.insideApply = true;
    try {
      return this.plans.during(plan, () => super.apply(list as tf.Tensor[], forward));
    } finally {
      this.insideApply = false;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // build: the weights, with Keras's names, shapes and order.

  /**
   * Creates the weights from the input shapes `[queryShape, valueShape, keyShape?]` (Keras's
   * `build(query_shape, value_shape, key_shape=None)`). Only the feature sizes matter. A build that
   * fails leaves the layer unbuilt, with no weight, loss or tensor left behind.
   */
  override build(inputShape: Shape | Shape[]): void {
    const shapes = (Array.isArray(inputShape[0]) ? inputShape : [inputShape]) as Shape[];
    const named = unpack(shapes, this.plans.current(shapes.length).layout);
    const queryShape = named.query;
    const valueShape = named.value;
    check(queryShape != null && valueShape != null, this.where, () =>
      `build needs [queryShape, valueShape, keyShape?]; received ${formatValue(inputShape)}`);
    const keyShape = named.key ?? valueShape;
    for (const [name, s] of [['query', queryShape], ['value', valueShape], ['key', keyShape]] as const) {
      check(s.length === 3 && isPositiveInteger(s[2]), this.where, () =>
        `${name} must have shape (batch, length, features) with a known feature size; received ${formatShape(s)}`);
    }
    const dq = queryShape[2]!;
    const dv = valueShape[2]!;
    const dk = keyShape[2]!;
    const [u, v, h] = [this.numQueryHeads, this.numKeyValueHeads, this.headDim];
    // Keras's sub-layer order: query, key, (gate,) value, attention_output; kernel then bias.
    const projections: Array<[string, number[], number[], string]> = [
      ['query', [dq, u, h], [u, h], 'the query features'],
      ['key', [dk, v, h], [v, h], 'the key features'],
      ...(this.useGate ? [['gate', [dq, u, h], [u, h], 'the query features'] as [string, number[], number[], string]] : []),
      ['value', [dv, v, h], [v, h], 'the value features'],
      ['attention_output', [u, h, dq], [dq], 'the query features'],
    ];
    for (const [sub, kernelShape, , features] of projections) {
      const size = kernelShape.reduce((x, y) => x * y, 1);
      check(size <= MAX_WEIGHT_ELEMENTS, this.where, () =>
        `${sub}/kernel ${formatShape(kernelShape)} would hold ${size} elements, more than a tensor can ` +
        `(${MAX_WEIGHT_ELEMENTS}): reduce numQueryHeads, numKeyValueHeads, headDim or ${features}`);
    }
    this.rollbackOnFailure(() => {
      for (const [sub, kernelShape, biasShape] of projections) this.addProjection(sub, kernelShape, biasShape);
    });
    this.dims = { queryDim: dq, valueDim: dv, keyDim: dk };
    this.buildShapes = { queryShape, valueShape, ...(named.key != null ? { keyShape: named.key } : {}) };
    this.built = true;
  }

  /** Runs `addWeights`; if it throws, removes and frees every weight and loss it added, then rethrows. */
  private rollbackOnFailure(addWeights: () => void): void {
    // tfjs's addWeight records the name (rejecting duplicates later), then makes the variable, then
    // registers its regularizer loss, then lists it as trainable (every weight of this layer is).
    const names = (this as unknown as { _addedWeightNames: string[] })._addedWeightNames;
    const marks = { names: names.length, weights: this._trainableWeights.length, losses: this.lossList.weightLossCount };
    try {
      addWeights();
    } catch (e) {
      names.length = marks.names;
      for (const w of this._trainableWeights.splice(marks.weights)) w.dispose();
      this.lossList.dropWeightLossesAfter(marks.losses);
      this.weightsByName.clear();
      throw e;
    }
  }

  private addProjection(sub: string, kernelShape: number[], biasShape: number[]): void {
    // Inside apply, tfjs's name scope prefixes the layer name; a direct build() call adds it here.
    const prefix = this.insideApply ? '' : `${this.name}/`;
    const kernel = this.addWeight(
      `${prefix}${sub}/kernel`, kernelShape, 'float32', cloneInitializer(this.where, this.kernelInitializer),
      this.kernelRegularizer ?? undefined, true, this.kernelConstraint ?? undefined);
    this.weightsByName.set(`${sub}/kernel`, kernel);
    constrainOnAssign(kernel, this.kernelConstraint);
    if (!this.useBias) return;
    const bias = this.addWeight(
      `${prefix}${sub}/bias`, biasShape, 'float32', cloneInitializer(this.where, this.biasInitializer),
      this.biasRegularizer ?? undefined, true, this.biasConstraint ?? undefined);
    this.weightsByName.set(`${sub}/bias`, bias);
    constrainOnAssign(bias, this.biasConstraint);
  }

  private readonly weight = (name: string): tf.Tensor | null => this.weightsByName.get(name)?.read() ?? null;

  // ---------------------------------------------------------------------------------------------
  // call: one path for calls with and without a KV cache.

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor | tf.Tensor[] {
    const list = Array.isArray(inputs) ? inputs : [inputs];
    const plan = this.plans.current(list.length);
    const named = unpack(list, plan.layout);
    const query = named.query!;
    const value = named.value!;
    const key = named.key ?? null;
    // Masks carried on the inputs fill the explicit masks that were not given (Keras's Layer.__call__).
    const masks = {
      queryMask: named.queryMask ?? query.kerasMask ?? null,
      valueMask: named.valueMask ?? value.kerasMask ?? null,
      keyMask: named.keyMask ?? (key != null ? key.kerasMask ?? null : null),
      attentionMask: named.attentionMask ?? null,
    };
    const training = kwargs['training'] === true;
    const cache = (kwargs['cache'] as KVCache | undefined) ?? null;
    // Checks, then the cache's key-mask bits for this call's positions (read before any work).
    const t = query.shape[1]!;
    let bits: Uint8Array | null = null;
    checkMaskDtypes(this.where, masks);
    if (cache == null) {
      this.checkCall(query, value, key, masks);
    } else {
      this.checkCall(query, value, key, {});
      this.checkCachedCall(cache, query, value, masks, training);
      bits = newKeyBits(masks);
    }

    this.lastReturnedScores = plan.returnAttentionScores;
    const activity = this.activityRegularizerKeras;
    const result = tf.tidy(() => {
      // Keras's mask rule; with a cache, its key-mask bits stand for the value/key masks of every position.
      const mask = computeAttentionMask(cache == null ? masks : {
        queryMask: masks.queryMask,
        valueMask: cache.keyMaskWith(bits, t),
        attentionMask: masks.attentionMask,
      });
      const { q, k, v } = projectQkv(this.weight, query, value, key);
      const attend = this.flashAttention === false ? groupedQueryAttentionReference : groupedQueryAttention;
      const dropoutActive = training && this.dropout > 0;
      const attended = attend(q, k, v, {
        attentionMask: mask,
        causal: plan.useCausalMask,
        slidingWindow: this.slidingWindow,
        returnScores: plan.returnAttentionScores,
        dropout: this.dropout,
        training,
        seed: dropoutActive ? this.nextDropoutSeed() : null,
        cache: cache == null ? null : { storage: cache.storage(), length: cache.length },
      }) as tf.Tensor4D | [tf.Tensor4D, tf.Tensor4D];
      const [o, scores] = Array.isArray(attended) ? attended : [attended, null];
      const { gated, gate } = applyGate(this.weight, this.useGate, query, o);
      const output = projectAttentionOutput(this.weight, gated);
      const returned = scores == null ? [output] : [output, scores];
      if (activity == null) return returned;
      // Keras: each EinsumDense's output (query, key, gate, value, attention_output), then every
      // tensor the layer returns.
      const regularized = [q, k, ...(gate ? [gate] : []), v, output, output, ...(scores ? [scores] : [])];
      return [...returned, ...regularized.map((x) => activity.apply(x))];
    });
    cache?.advance(t, bits);
    const [output, ...rest] = result;
    const scores = plan.returnAttentionScores ? rest.shift()! : null;
    if (activity != null) this.lossList.setActivityLosses(rest as tf.Scalar[]);
    return scores == null ? output! : [output!, scores];
  }

  /**
   * A KV cache for incremental decoding with this layer: projected keys and values for `maxLength`
   * positions of `batchSize` sequences, allocated once under the active backend and bound to this
   * layer. See {@link KVCache}.
   */
  createCache(options: KVCacheOptions): KVCache {
    return new KVCache(this.where, this.numKeyValueHeads, this.headDim, options, this);
  }

  private nextDropoutSeed(): number | null {
    if (this.seed == null) return null;
    // A fresh, reproducible stream per call, like Keras's SeedGenerator.
    return (this.seed * 1_000_003 + this.dropoutCalls++) % 2_147_483_647;
  }

  /** The checks a cached call adds, before any work (the op checks the storage again). */
  private checkCachedCall(
    cache: KVCache,
    query: tf.Tensor,
    value: tf.Tensor,
    masks: Parameters<typeof checkCachedMasks>[1],
    training: boolean,
  ): void {
    const where = this.where;
    const [b, t] = query.shape as [number, number];
    cache.checkCall(where, this, this, b, t);
    check(value.shape[1] === t, where, () =>
      `with a KV cache, value (and key) hold the new positions of the query: their length must be T=${t}; ` +
      `received query ${formatShape(query.shape)}, value ${formatShape(value.shape)}`);
    checkCachedMasks(where, masks, b, t, cache.length + t, this.numQueryHeads);
    check(!(training && this.dropout > 0), where, () =>
      `a KV cache is for inference; received training=true with dropout=${this.dropout}`);
    cache.storage().checkUsable(where, tf.getBackend());
  }

  private checkCall(query: tf.Tensor, value: tf.Tensor, key: tf.Tensor | null, masks: LayerMasks): void {
    const where = this.where;
    for (const [name, t] of [['query', query], ['value', value], ['key', key]] as const) {
      if (t == null) continue;
      check(t.rank === 3, where, () =>
        `${name} must have rank 3 (batch, length, features); received shape ${formatShape(t.shape)}`);
      check(t.dtype !== 'string' && t.dtype !== 'complex64', where, () =>
        `${name} must be a numeric tensor; received dtype ${t.dtype}`);
    }
    const [b, t] = query.shape;
    const s = value.shape[1]!;
    check(value.shape[0] === b && (key == null || key.shape[0] === b), where, () =>
      `query, value and key must have the same batch size; received query ${formatShape(query.shape)}, ` +
      `value ${formatShape(value.shape)}${key ? `, key ${formatShape(key.shape)}` : ''}`);
    check(key == null || key.shape[1] === s, where, () =>
      `key and value must have the same length; received value ${formatShape(value.shape)}, key ${formatShape(key!.shape)}`);
    const dims = this.dims!;
    const feature = (name: string, x: tf.Tensor, expected: number) =>
      check(x.shape[2] === expected, where, () =>
        `${name} has ${x.shape[2]} features but the layer was built for ${expected}; received ${name} ` +
        `${formatShape(x.shape)} (the weights fix the feature sizes)`);
    feature('query', query, dims.queryDim);
    feature('value', value, dims.valueDim);
    feature('key', key ?? value, key == null ? dims.valueDim : dims.keyDim);
    if (key == null) {
      check(dims.keyDim === dims.valueDim, where, () =>
        `the layer was built with a key of ${dims.keyDim} features; pass \`key\` (received none)`);
    }
    checkLayerMasks(where, masks, b!, t!, s, this.numQueryHeads);
  }

  /**
   * Regularization losses: one per regularized weight, plus, with `activityRegularizer`, one per
   * projection output and per returned tensor of the last call (Keras's count: 5, or 6 with scores).
   */
  override get losses(): Array<() => tf.Scalar> {
    return this.lossList.all();
  }

  /** tfjs's addWeight registers regularizer losses here (its own list is behind `losses`). */
  override addLoss(losses: (() => tf.Scalar) | Array<() => tf.Scalar>): void {
    this.lossList.addWeightLosses(losses);
  }

  // ---------------------------------------------------------------------------------------------
  // masks and shapes

  /** The output carries the query's Keras mask; the scores carry none. */
  override computeMask(inputs: tf.Tensor | tf.Tensor[], mask?: tf.Tensor | tf.Tensor[]): tf.Tensor | tf.Tensor[] {
    const list = Array.isArray(inputs) ? inputs : [inputs];
    const fromArgs = Array.isArray(mask) ? mask[0] : mask;
    const carried = fromArgs ?? list[0]?.kerasMask ?? null;
    // A clone: tfjs disposes a tensor's kerasMask with the tensor, and the query keeps its own.
    const queryMask = carried == null ? null : tf.clone(carried);
    return (this.lastReturnedScores ? [queryMask, null] : queryMask) as tf.Tensor | tf.Tensor[];
  }

  /**
   * Output shape for input shapes `[queryShape, valueShape, keyShape?]`: the query's shape, plus the
   * scores' (B, U, T, S) when scores are returned. Raises Keras's errors when the query and value
   * feature sizes differ or when value and key differ in anything but their last dimension.
   */
  override computeOutputShape(inputShape: Shape | Shape[]): Shape | Shape[] {
    const shapes = (Array.isArray(inputShape[0]) ? inputShape : [inputShape]) as Shape[];
    const plan = this.plans.current(shapes.length);
    const named = unpack(shapes, plan.layout);
    const queryShape = named.query!;
    const valueShape = named.value!;
    const keyShape = named.key ?? valueShape;
    if (queryShape[queryShape.length - 1] !== valueShape[valueShape.length - 1]) {
      throw new ValueError(
        `${this.where}: The last dimension of \`query_shape\` and \`value_shape\` must be equal, but are ` +
        `${queryShape[queryShape.length - 1]}, ${valueShape[valueShape.length - 1]}. Received: ` +
        `query_shape=${formatShape(queryShape)}, value_shape=${formatShape(valueShape)}`);
    }
    const middle = (s: Shape) => s.slice(1, -1).map((d) => (d == null ? 'null' : d)).join();
    if (middle(valueShape) !== middle(keyShape)) {
      throw new ValueError(
        `${this.where}: All dimensions of \`value\` and \`key\`, except the last one, must be equal. ` +
        `Received: value_shape=${formatShape(valueShape)} and key_shape=${formatShape(keyShape)}`);
    }
    const output = queryShape.slice();
    if (!plan.returnAttentionScores) return output;
    return [output, [queryShape[0] ?? null, this.numQueryHeads, queryShape[1] ?? null, valueShape[1] ?? null]];
  }

  // ---------------------------------------------------------------------------------------------
  // config

  /**
   * Keras's config keys in camelCase (snake_case once saved by tfjs), plus the build shapes so that
   * `fromConfig` recreates the weights before they are loaded. `flashAttention` is not saved.
   */
  override getConfig(): tf.serialization.ConfigDict {
    const config: tf.serialization.ConfigDict = {
      headDim: this.headDim,
      numQueryHeads: this.numQueryHeads,
      numKeyValueHeads: this.numKeyValueHeads,
      useBias: this.useBias,
      dropout: this.dropout,
      kernelInitializer: serialize(this.kernelInitializer) as unknown as tf.serialization.ConfigDictValue,
      biasInitializer: serialize(this.biasInitializer) as unknown as tf.serialization.ConfigDictValue,
      kernelRegularizer: serialize(this.kernelRegularizer) as unknown as tf.serialization.ConfigDictValue,
      biasRegularizer: serialize(this.biasRegularizer) as unknown as tf.serialization.ConfigDictValue,
      activityRegularizer: serialize(this.activityRegularizerKeras) as unknown as tf.serialization.ConfigDictValue,
      kernelConstraint: serialize(this.kernelConstraint) as unknown as tf.serialization.ConfigDictValue,
      biasConstraint: serialize(this.biasConstraint) as unknown as tf.serialization.ConfigDictValue,
      useGate: this.useGate,
      slidingWindow: this.slidingWindow,
      seed: this.seed,
    };
    if (this.buildShapes != null) {
      config['queryShape'] = this.buildShapes.queryShape;
      config['valueShape'] = this.buildShapes.valueShape;
      if (this.buildShapes.keyShape != null) config['keyShape'] = this.buildShapes.keyShape;
    }
    return { ...super.getConfig(), ...config };
  }

  /** Rebuilds a layer from {@link getConfig}, with its weights created when the config has shapes. */
  static override fromConfig<T extends tf.serialization.Serializable>(
    cls: tf.serialization.SerializableConstructor<T>,
    config: tf.serialization.ConfigDict,
  ): T {
    const { queryShape, valueShape, keyShape, ...args } = config;
    const layer = new cls(args) as unknown as GroupedQueryAttention;
    if (queryShape != null && valueShape != null) {
      const shapes = [queryShape, valueShape, ...(keyShape != null ? [keyShape] : [])] as Shape[];
      layer.build(shapes);
    }
    return layer as unknown as T;
  }

  /** Frees the weights (also of a layer that was only built, never applied). */
  override dispose(): ReturnType<tfl.layers.Layer['dispose']> {
    if (this.built && this._refCount === null) this._refCount = 1; // built directly: one owner
    const result = super.dispose();
    if (result.refCountAfterDispose === 0) this.lossList.dispose();
    return result;
  }
}

tf.serialization.registerClass(GroupedQueryAttention);

/**
 * Keras's public name, `keras.layers.GroupQueryAttention`, so configs written under it load too.
 *
 * @example
 * ```ts
 * import { GroupQueryAttention } from 'grouped-query-attention';
 *
 * const layer = new GroupQueryAttention({ headDim: 8, numQueryHeads: 4, numKeyValueHeads: 2 });
 * console.log(layer.getClassName());   // 'GroupQueryAttention'
 * ```
 */
export class GroupQueryAttention extends GroupedQueryAttention {
  /** @nocollapse */
  static override readonly className: string = 'GroupQueryAttention';
}
tf.serialization.registerClass(GroupQueryAttention);
