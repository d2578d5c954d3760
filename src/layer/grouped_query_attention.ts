/**
 * Port of keras/src/layers/attention/grouped_query_attention.py @ v3.6.0
 * (7004f526cfd0933f407f1b4f530b865079aa9bef), public Keras name `keras.layers.GroupQueryAttention`,
 * plus the later options `useGate` (3.14), `slidingWindow` (3.15), `seed` and `flashAttention` (3.7).
 *
 * Shape letters:
 *   B batch · T query length · S key/value length · Dq, Dk, Dv feature sizes of query, key, value
 *   U query heads · V key/value heads · H head size · G = U / V query heads per key/value head.
 *
 * Weights (Keras names, shapes and order, so `getWeights`/`setWeights` exchange arrays with Keras):
 *   query/kernel (Dq,U,H)  query/bias (U,H)   key/kernel (Dk,V,H)  key/bias (V,H)
 *   [gate/kernel (Dq,U,H)  gate/bias (U,H)]   value/kernel (Dv,V,H) value/bias (V,H)
 *   attention_output/kernel (U,H,Dq)  attention_output/bias (Dq)
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { LayerVariable, Shape, SymbolicTensor } from '@tensorflow/tfjs-layers';
import { check, formatShape, formatValue, ValueError } from '../errors.js';
import { groupedQueryAttention, groupedQueryAttentionReference } from '../op/grouped_query_attention.js';
import type { AnyTensor, GroupedQueryAttentionArgs, GroupedQueryAttentionCallArgs } from './args.js';
import { checkLayerMasks, computeAttentionMask } from './attention_mask.js';
import { attendWithCache, checkCachedCall } from './cached_attention.js';
import { constrainOnAssign } from './constraints.js';
import {
  cloneInitializer,
  resolveConstraint,
  resolveInitializer,
  resolveRegularizer,
  serialize,
  type Constraint,
  type Initializer,
  type Regularizer,
} from './identifiers.js';
import { defaultLayout, pack, parseLayout, unpack, type Layout } from './inputs.js';
import { KVCache, type KVCacheOptions } from './kv_cache.js';
import { projectHeads, projectOutput } from './projection.js';

type Kwargs = Record<string, unknown>;

/** What one call needs besides its tensors: the input layout and the non-tensor options. */
interface CallPlan {
  layout: Layout;
  useCausalMask: boolean;
  returnAttentionScores: boolean;
}

/** Feature sizes fixed by the weights. */
interface BuiltDims {
  queryDim: number;
  valueDim: number;
  keyDim: number;
}

const LAYER = 'GroupedQueryAttention';

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
  /** The plan of the call in progress (set by `apply`, read by build/computeOutputShape/call). */
  private activePlan: CallPlan | null = null;
  /** The plan recorded at the first symbolic call; used when tfjs's executor calls the layer. */
  private graphPlan: CallPlan | null = null;
  private insideApply = false;
  private lastReturnedScores = false;
  private dropoutCalls = 0;
  private activityLosses: tf.Scalar[] = [];
  private weightLosses: Array<() => tf.Scalar> = [];

  constructor(args: GroupedQueryAttentionArgs) {
    const { activityRegularizer, ...base } = args ?? ({} as GroupedQueryAttentionArgs);
    super(base);
    const where = `${LAYER} '${this.name}'`;
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
    const dropout = args.dropout ?? 0;
    check(typeof dropout === 'number' && dropout >= 0 && dropout < 1, where, () =>
      `dropout must be a number in [0, 1); received ${formatValue(dropout)}`);
    // Keras accepts True as a window of 1 (a Python bool is an int); False and non-integers raise.
    const slidingWindow = (args.slidingWindow as unknown) === true ? 1 : args.slidingWindow ?? null;
    check(slidingWindow === null || (Number.isInteger(slidingWindow) && slidingWindow > 0), where, () =>
      `slidingWindow must be null or a positive integer; received ${formatValue(args.slidingWindow)}`);
    const seed = args.seed ?? null;
    check(seed === null || Number.isInteger(seed), where, () => `seed must be null or an integer; received ${formatValue(seed)}`);
    const flashAttention = args.flashAttention ?? null;
    if (flashAttention === true && dropout > 0) {
      throw new ValueError(
        `${where}: Dropout is not supported when flash attention is enabled. Please set dropout to 0.0 to use ` +
        `flash attention (received dropout=${dropout}, flashAttention=true)`);
    }

    this.headDim = headDim;
    this.numQueryHeads = numQueryHeads;
    this.numKeyValueHeads = numKeyValueHeads;
    this.numRepeats = numQueryHeads / numKeyValueHeads;
    this.dropout = dropout;
    this.useBias = args.useBias ?? true;
    this.useGate = args.useGate ?? false;
    this.slidingWindow = slidingWindow;
    this.seed = seed;
    this.flashAttention = flashAttention;
    this.kernelInitializer = resolveInitializer(where, args.kernelInitializer ?? 'glorotUniform');
    this.biasInitializer = resolveInitializer(where, args.biasInitializer ?? 'zeros');
    this.kernelRegularizer = resolveRegularizer(where, args.kernelRegularizer);
    this.biasRegularizer = resolveRegularizer(where, args.biasRegularizer);
    this.activityRegularizerKeras = resolveRegularizer(where, activityRegularizer);
    this.kernelConstraint = resolveConstraint(where, args.kernelConstraint);
    this.biasConstraint = resolveConstraint(where, args.biasConstraint);
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
    let list: AnyTensor[];
    let layout: Layout;
    // A reloaded model calls apply with the node's inputs (a single one unwrapped) and its layout.
    const packed = Array.isArray(inputs) || opts['inputLayout'] != null;
    if (packed) {
      // Packed form: the graph executor, a reloaded model, or a user's [query, value, key] list.
      list = Array.isArray(inputs) ? inputs : [inputs];
      layout = opts['inputLayout'] != null || this.graphPlan == null || !this.isExecutorCall(list)
        ? parseLayout(opts['inputLayout'], list.length, this.where)
        : this.graphPlan.layout;
    } else {
      check(opts.value != null, this.where, () => 'the `value` argument is required: apply(query, {value, ...})');
      ({ list, layout } = pack<AnyTensor>({
        query: inputs,
        value: opts.value,
        key: opts.key,
        queryMask: opts.queryMask,
        valueMask: opts.valueMask,
        keyMask: opts.keyMask,
        attentionMask: opts.attentionMask,
      }));
    }
    const symbolic = list[0] instanceof tfl.SymbolicTensor;
    const fromGraph = this.graphPlan != null && opts['inputLayout'] == null && packed && !symbolic;
    const plan: CallPlan = {
      layout,
      useCausalMask: Boolean(opts.useCausalMask ?? (fromGraph ? this.graphPlan!.useCausalMask : false)),
      returnAttentionScores: Boolean(
        opts.returnAttentionScores ?? (fromGraph ? this.graphPlan!.returnAttentionScores : false)),
    };
    if (plan.returnAttentionScores && this.flashAttention === true) {
      throw new ValueError(
        `${this.where}: Returning attention scores is not supported when flash attention is enabled. Please ` +
        'disable flash attention to access attention scores (received returnAttentionScores=true, flashAttention=true)');
    }
    if (symbolic) this.recordGraphPlan(plan);
    const forward: Kwargs = {
      inputLayout: [...plan.layout],
      useCausalMask: plan.useCausalMask,
      returnAttentionScores: plan.returnAttentionScores,
    };
    if (opts.training != null) forward['training'] = opts.training;
    if (opts.cache != null) {
      check(!symbolic, this.where, () => 'a KV cache works in eager calls only; received SymbolicTensor inputs');
      check(opts.cache instanceof KVCache, this.where, () =>
        `cache must come from layer.createCache; received ${formatValue(opts.cache)}`);
      forward['cache'] = opts.cache;
    }
    this.activePlan = plan;
    this.insideApply = true;
    try {
      return super.apply(list as tf.Tensor[], forward);
    } finally {
      this.activePlan = null;
      this.insideApply = false;
    }
  }

  /** The executor passes the node's input list, whose length matches the recorded layout. */
  private isExecutorCall(list: AnyTensor[]): boolean {
    return this.graphPlan != null && list.length === this.graphPlan.layout.length;
  }

  private recordGraphPlan(plan: CallPlan): void {
    const same = (a: CallPlan, b: CallPlan) =>
      a.layout.join() === b.layout.join() &&
      a.useCausalMask === b.useCausalMask &&
      a.returnAttentionScores === b.returnAttentionScores;
    if (this.graphPlan != null && !same(this.graphPlan, plan)) {
      throw new ValueError(
        `${this.where}: a layer instance used in a functional model must be called with the same inputs and ` +
        `options at every node (tfjs passes no per-node options at predict/fit time); first call used ` +
        `[${this.graphPlan.layout.join(', ')}] useCausalMask=${this.graphPlan.useCausalMask} ` +
        `returnAttentionScores=${this.graphPlan.returnAttentionScores}, this one [${plan.layout.join(', ')}] ` +
        `useCausalMask=${plan.useCausalMask} returnAttentionScores=${plan.returnAttentionScores}. Use a second layer.`);
    }
    this.graphPlan = plan;
  }

  private currentPlan(count: number): CallPlan {
    return this.activePlan ?? this.graphPlan ?? {
      layout: defaultLayout(count, this.where),
      useCausalMask: false,
      returnAttentionScores: false,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // build: the weights, with Keras's names, shapes and order.

  /**
   * Creates the weights from the input shapes `[queryShape, valueShape, keyShape?]` (Keras's
   * `build(query_shape, value_shape, key_shape=None)`). Only the feature sizes matter.
   */
  override build(inputShape: Shape | Shape[]): void {
    const shapes = (Array.isArray(inputShape[0]) ? inputShape : [inputShape]) as Shape[];
    const named = unpack(shapes, this.currentPlan(shapes.length).layout);
    const queryShape = named.query;
    const valueShape = named.value;
    check(queryShape != null && valueShape != null, this.where, () =>
      `build needs [queryShape, valueShape, keyShape?]; received ${JSON.stringify(inputShape)}`);
    const keyShape = named.key ?? valueShape;
    for (const [name, s] of [['query', queryShape], ['value', valueShape], ['key', keyShape]] as const) {
      check(s.length === 3 && isPositiveInteger(s[2]), this.where, () =>
        `${name} must have shape (batch, length, features) with a known feature size; received ${formatShape(s)}`);
    }
    const dq = queryShape[2]!;
    const dv = valueShape[2]!;
    const dk = keyShape[2]!;
    const [u, v, h] = [this.numQueryHeads, this.numKeyValueHeads, this.headDim];
    this.dims = { queryDim: dq, valueDim: dv, keyDim: dk };
    this.buildShapes = { queryShape, valueShape, ...(named.key != null ? { keyShape: named.key } : {}) };

    // Keras's sub-layer order: query, key, (gate,) value, attention_output; kernel then bias.
    this.addProjection('query', [dq, u, h], [u, h]);
    this.addProjection('key', [dk, v, h], [v, h]);
    if (this.useGate) this.addProjection('gate', [dq, u, h], [u, h]);
    this.addProjection('value', [dv, v, h], [v, h]);
    this.addProjection('attention_output', [u, h, dq], [dq]);
    this.built = true;
  }

  private addProjection(sub: string, kernelShape: number[], biasShape: number[]): void {
    // Inside apply, tfjs's name scope prefixes the layer name; a direct build() call adds it here.
    const prefix = this.insideApply ? '' : `${this.name}/`;
    const kernel = this.addWeight(
      `${prefix}${sub}/kernel`, kernelShape, 'float32', cloneInitializer(this.where, this.kernelInitializer),
      this.kernelRegularizer ?? undefined, true, this.kernelConstraint ?? undefined);
    constrainOnAssign(kernel, this.kernelConstraint);
    this.weightsByName.set(`${sub}/kernel`, kernel);
    if (!this.useBias) return;
    const bias = this.addWeight(
      `${prefix}${sub}/bias`, biasShape, 'float32', cloneInitializer(this.where, this.biasInitializer),
      this.biasRegularizer ?? undefined, true, this.biasConstraint ?? undefined);
    constrainOnAssign(bias, this.biasConstraint);
    this.weightsByName.set(`${sub}/bias`, bias);
  }

  private weight(name: string): tf.Tensor | null {
    return this.weightsByName.get(name)?.read() ?? null;
  }

  // ---------------------------------------------------------------------------------------------
  // call

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor | tf.Tensor[] {
    const list = Array.isArray(inputs) ? inputs : [inputs];
    const plan = this.currentPlan(list.length);
    const named = unpack(list, plan.layout);
    const query = named.query!;
    const value = named.value!;
    const key = named.key ?? null;
    // Masks carried on the inputs fill the explicit masks that were not given (Keras's Layer.__call__).
    const queryMask = named.queryMask ?? query.kerasMask ?? null;
    const valueMask = named.valueMask ?? value.kerasMask ?? null;
    const keyMask = named.keyMask ?? (key != null ? key.kerasMask ?? null : null);
    const attentionMask = named.attentionMask ?? null;
    const training = kwargs['training'] === true;
    const cache = kwargs['cache'] as KVCache | undefined;
    if (cache != null) {
      return this.callWithCache(cache, query, value, key, { queryMask, valueMask: keyMask ?? valueMask, attentionMask },
        plan, training);
    }
    this.checkCall(query, value, key, { queryMask, valueMask, keyMask, attentionMask });

    this.lastReturnedScores = plan.returnAttentionScores;
    const activity = this.activityRegularizerKeras;
    const result = tf.tidy(() => {
      const asFloat = (x: tf.Tensor) => (x.dtype === 'float32' ? x : tf.cast(x, 'float32'));
      const mask = computeAttentionMask({ queryMask, valueMask, keyMask, attentionMask });
      const q = projectHeads(asFloat(query) as tf.Tensor3D, this.weight('query/kernel')!, this.weight('query/bias'));
      const k = projectHeads(asFloat(key ?? value) as tf.Tensor3D, this.weight('key/kernel')!, this.weight('key/bias'));
      const v = projectHeads(asFloat(value) as tf.Tensor3D, this.weight('value/kernel')!, this.weight('value/bias'));
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
      }) as tf.Tensor4D | [tf.Tensor4D, tf.Tensor4D];
      let [o, scores] = Array.isArray(attended) ? attended : [attended, null];
      let gate: tf.Tensor4D | null = null;
      if (this.useGate) {
        // Keras 3.14: sigmoid(query·Wg + bg), (B,T,U,H), multiplies the attention output.
        gate = tf.sigmoid(
          projectHeads(asFloat(query) as tf.Tensor3D, this.weight('gate/kernel')!, this.weight('gate/bias')));
        o = tf.mul(o, gate) as tf.Tensor4D;
      }
      const output = projectOutput(o, this.weight('attention_output/kernel')!, this.weight('attention_output/bias'));
      const returned = scores == null ? [output] : [output, scores];
      if (activity == null) return returned;
      // Keras: each EinsumDense's output (query, key, gate, value, attention_output), then every
      // tensor the layer returns.
      const regularized = [q, k, ...(gate ? [gate] : []), v, output, output, ...(scores ? [scores] : [])];
      return [...returned, ...regularized.map((t) => activity.apply(t))];
    });
    const [output, ...rest] = result;
    const scores = plan.returnAttentionScores ? rest.shift()! : null;
    if (activity != null) this.setActivityLosses(rest as tf.Scalar[]);
    return scores == null ? output! : [output!, scores];
  }

  /**
   * A KV cache for incremental decoding with this layer: projected keys and values for `maxLength`
   * positions of `batchSize` sequences, allocated once. See {@link KVCache}.
   */
  createCache(options: KVCacheOptions): KVCache {
    return new KVCache(this.where, this.numKeyValueHeads, this.headDim, options);
  }

  private callWithCache(
    cache: KVCache,
    query: tf.Tensor,
    value: tf.Tensor,
    key: tf.Tensor | null,
    masks: { queryMask: tf.Tensor | null; valueMask: tf.Tensor | null; attentionMask: tf.Tensor | null },
    plan: CallPlan,
    training: boolean,
  ): tf.Tensor | tf.Tensor[] {
    this.checkCall(query, value, key, {});
    // The cache path reads the projected tensors synchronously (dataSync), which tfjs-webgpu does not
    // support (it loses the device in Chromium): refuse before any work instead.
    check(tf.getBackend() !== 'webgpu', this.where, () =>
      'a KV cache cannot be used on the webgpu backend (it reads tensors synchronously); use wasm, cpu or webgl ' +
      '(received backend webgpu)');
    const [b, t] = query.shape as [number, number];
    checkCachedCall(this.where, cache, this, b, t, masks);
    check(!(training && this.dropout > 0), this.where, () =>
      `a KV cache is for inference; received training=true with dropout=${this.dropout}`);
    this.lastReturnedScores = plan.returnAttentionScores;
    const result = tf.tidy(() => {
      const asFloat = (x: tf.Tensor) => (x.dtype === 'float32' ? x : tf.cast(x, 'float32'));
      const q = projectHeads(asFloat(query) as tf.Tensor3D, this.weight('query/kernel')!, this.weight('query/bias'));
      const k = projectHeads(asFloat(key ?? value) as tf.Tensor3D, this.weight('key/kernel')!, this.weight('key/bias'));
      const v = projectHeads(asFloat(value) as tf.Tensor3D, this.weight('value/kernel')!, this.weight('value/bias'));
      const { output: attended, scores } = attendWithCache(cache, q, k, v, masks, {
        causal: plan.useCausalMask,
        slidingWindow: this.slidingWindow,
        returnScores: plan.returnAttentionScores,
      });
      let o = attended;
      if (this.useGate) {
        o = tf.mul(o, tf.sigmoid(
          projectHeads(asFloat(query) as tf.Tensor3D, this.weight('gate/kernel')!, this.weight('gate/bias')))) as tf.Tensor4D;
      }
      const output = projectOutput(o, this.weight('attention_output/kernel')!, this.weight('attention_output/bias'));
      return scores == null ? [output] : [output, scores];
    });
    return plan.returnAttentionScores ? result : result[0]!;
  }

  private nextDropoutSeed(): number | null {
    if (this.seed == null) return null;
    // A fresh, reproducible stream per call, like Keras's SeedGenerator.
    return (this.seed * 1_000_003 + this.dropoutCalls++) % 2_147_483_647;
  }

  private checkCall(
    query: tf.Tensor,
    value: tf.Tensor,
    key: tf.Tensor | null,
    masks: Parameters<typeof checkLayerMasks>[1],
  ): void {
    const where = this.where;
    for (const [name, t] of [['query', query], ['value', value], ['key', key]] as const) {
      if (t == null) continue;
      check(t.rank === 3, where, () =>
        `${name} must have rank 3 (batch, length, features); received shape ${formatShape(t.shape)}`);
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

  private setActivityLosses(losses: tf.Scalar[]): void {
    // Keras keeps the activity losses of the last call; fit adds them through `losses`.
    tf.dispose(this.activityLosses);
    this.activityLosses = losses.map((l) => tf.keep(l));
  }

  /**
   * Regularization losses: one per regularized weight, plus, with `activityRegularizer`, one per
   * projection output and per returned tensor of the last call (Keras's count: 5, or 6 with scores).
   */
  override get losses(): Array<() => tf.Scalar> {
    return [...this.weightLosses, ...this.activityLosses.map((l) => () => l)];
  }

  /** tfjs's addWeight registers regularizer losses here (its own list is behind `losses`). */
  override addLoss(losses: (() => tf.Scalar) | Array<() => tf.Scalar>): void {
    this.weightLosses.push(...(Array.isArray(losses) ? losses : [losses]));
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
    const plan = this.currentPlan(shapes.length);
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
    if (result.refCountAfterDispose === 0) {
      tf.dispose(this.activityLosses);
      this.activityLosses = [];
    }
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
