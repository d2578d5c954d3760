/**
 * Rebuilds a Keras 3 functional model config (`config.json` of a `.keras` archive) as a tfjs
 * `LayersModel`: `tf.input` for each InputLayer, `tf.layers.*` or the GroupedQueryAttention layer for
 * each layer, called as Keras recorded the calls in `inbound_nodes`.
 *
 * Every layer config is translated (and every unsupported class or option reported) before any layer
 * is called, so a config error allocates nothing.
 */
import * as tfl from '@tensorflow/tfjs-layers';
import type { SymbolicTensor } from '@tensorflow/tfjs-layers';
import { GroupedQueryAttention } from '../layer/grouped_query_attention.js';
import { formatJson } from '../errors.js';
import { KerasConfigError } from './errors.js';
import { genericClasses, genericFromKeras, hasGenericCodec } from './generic_codec.js';
import { KerasGlobalAveragePooling1D, KerasNotEqual, KerasRmsLayerNormalization } from './keras_layers.js';
import { recordKerasCall } from './layer_order.js';
import {
  activationFromKeras,
  checkDtypePolicy,
  initializerFromKeras,
  isDict,
  own,
  WEIGHT_OBJECT_KEYS,
  weightObjectsFromKeras,
  type Dict,
} from './objects.js';

type Layer = InstanceType<typeof tfl.layers.Layer>;
type Output = SymbolicTensor | SymbolicTensor[];

/** Keys every layer config has, handled for all classes. */
const BASE_KEYS = new Set(['name', 'trainable', 'dtype']);

/** Reads a layer config, remembering which keys were read so that the rest can be checked. */
class Options {
  private readonly used = new Set<string>();
  constructor(readonly where: string, readonly config: Dict) {}

  get(key: string): unknown {
    this.used.add(key);
    return this.config[key];
  }

  /** tfjs arguments of the weight options `keys` (objects.ts WEIGHT_OBJECT_KEYS); null ones left out. */
  weightObjects(keys: readonly string[]): Dict {
    return weightObjectsFromKeras(this.where, keys, (key) => this.get(key));
  }

  number(key: string, fallback?: number): number {
    const v = this.get(key) ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new KerasConfigError(`${this.where}: option ${key} must be a number; received ${formatJson(v)}`);
    }
    return v;
  }

  integerOrNull(key: string): number | null {
    const v = this.get(key);
    if (v == null) return null;
    if (v === true) return 1;
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      throw new KerasConfigError(`${this.where}: option ${key} must be an integer or null; received ${formatJson(v)}`);
    }
    return v;
  }

  boolean(key: string, fallback: boolean): boolean {
    const v = this.get(key) ?? fallback;
    if (typeof v !== 'boolean') {
      throw new KerasConfigError(`${this.where}: option ${key} must be true or false; received ${formatJson(v)}`);
    }
    return v;
  }

  /** Accepts the option only with one of the values TensorFlow.js can reproduce. */
  only(key: string, allowed: unknown[], why: string): void {
    const v = this.get(key);
    if (v != null && !allowed.includes(v)) {
      throw new KerasConfigError(`${this.where}: unsupported option ${key}=${formatJson(v)} (${why})`);
    }
  }

  /** Ignores an option that does not change what the model computes. */
  ignore(...keys: string[]): void {
    for (const k of keys) this.used.add(k);
  }

  /** Any other option with a value is unsupported. */
  finish(): void {
    for (const [key, value] of Object.entries(this.config)) {
      if (this.used.has(key) || BASE_KEYS.has(key) || value == null) continue;
      throw new KerasConfigError(`${this.where}: unsupported option ${key}=${formatJson(value)}`);
    }
  }

  /** Refuses Keras's LoRA and quantization options (Dense, Embedding): plain float weights only. */
  onlyPlainWeights(): void {
    this.only('lora_rank', [null, 0], 'LoRA is not supported');
    this.ignore('lora_alpha');
    this.only('quantization_config', [null], 'quantized layers are not supported');
  }

  /** {@link finish}, then the translation of a layer called on one input (`list`: a list of inputs). */
  finishWith(layer: Layer, list: boolean): Translated {
    this.finish();
    return { layer, call: (a, k) => layer.apply(singleInput(this.where, a, k, list)) as Output };
  }
}

/** A translated layer: its tfjs layer and how to call it with Keras's recorded args and kwargs. */
interface Translated {
  layer: Layer | null; // null for InputLayer
  input?: SymbolicTensor;
  call(args: unknown[], kwargs: Dict): Output;
}

function isSymbolic(x: unknown): x is SymbolicTensor {
  return x instanceof tfl.SymbolicTensor;
}

/** The call arguments of a layer that takes one tensor (or, for merge layers, a list of tensors). */
function singleInput(where: string, args: unknown[], kwargs: Dict, list: boolean): SymbolicTensor | SymbolicTensor[] {
  for (const [key, value] of Object.entries(kwargs)) {
    if (value == null) continue;
    if (key === 'training' && value === false) continue;
    throw new KerasConfigError(`${where}: unsupported call argument ${key}=${describe(value)}`);
  }
  if (args.length !== 1) {
    throw new KerasConfigError(`${where}: expected one positional call argument; received ${args.length}`);
  }
  const x = args[0];
  if (list) {
    if (!Array.isArray(x) || !x.every(isSymbolic)) {
      throw new KerasConfigError(`${where}: expected a list of tensors as the call argument`);
    }
    return x;
  }
  if (!isSymbolic(x)) throw new KerasConfigError(`${where}: expected a tensor as the call argument; received ${describe(x)}`);
  return x;
}

function describe(value: unknown): string {
  if (isSymbolic(value)) return `tensor ${value.name}`;
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text;
}

function baseArgs(o: Options, name: string): { name: string; trainable: boolean } {
  checkDtypePolicy(o.where, o.config['dtype']);
  return { name, trainable: o.boolean('trainable', true) };
}

type Translator = (o: Options, name: string) => Translated;

/** Keras dtype names as tfjs input dtypes. */
function inputDtype(where: string, dtype: unknown): 'float32' | 'int32' | 'bool' {
  const name = typeof dtype === 'string' ? dtype : isDict(dtype) && isDict(dtype['config']) ? dtype['config']['name'] : 'float32';
  if (name == null || name === 'float32') return 'float32';
  if (typeof name === 'string' && /^u?int(8|16|32|64)$/.test(name)) return 'int32';
  if (name === 'bool') return 'bool';
  throw new KerasConfigError(`${where}: unsupported input dtype ${formatJson(name)} (use float32, an integer type or bool)`);
}

const TRANSLATORS: Record<string, Translator> = {
  InputLayer(o, name) {
    const shape = o.get('batch_shape') ?? o.get('batch_input_shape');
    if (!Array.isArray(shape)) throw new KerasConfigError(`${o.where}: batch_shape is missing`);
    o.only('sparse', [false], 'TensorFlow.js has no sparse inputs');
    o.only('ragged', [false], 'TensorFlow.js has no ragged inputs');
    o.only('optional', [false], 'TensorFlow.js has no optional inputs');
    o.ignore('input_tensor');
    const dtype = inputDtype(o.where, o.get('dtype'));
    o.finish();
    const input = tfl.input({ batchShape: shape as Array<number | null>, dtype, name });
    return {
      layer: null,
      input,
      call: () => {
        throw new KerasConfigError(`${o.where}: an InputLayer cannot be called`);
      },
    };
  },

  Dense(o, name) {
    const base = baseArgs(o, name);
    o.onlyPlainWeights();
    o.only('activity_regularizer', [null], 'TensorFlow.js Dense has no activity regularizer');
    const layer = tfl.layers.dense({
      ...base,
      units: o.number('units'),
      activation: activationFromKeras(o.where, o.get('activation')) as never,
      useBias: o.boolean('use_bias', true),
      ...o.weightObjects(WEIGHT_OBJECT_KEYS.Dense),
    });
    return o.finishWith(layer, false);
  },

  Embedding(o, name) {
    const base = baseArgs(o, name);
    o.onlyPlainWeights();
    o.only('sparse', [false], 'sparse embeddings are not supported');
    o.only('activity_regularizer', [null], 'TensorFlow.js Embedding has no activity regularizer');
    o.ignore('input_length');
    const layer = tfl.layers.embedding({
      ...base,
      inputDim: o.number('input_dim'),
      outputDim: o.number('output_dim'),
      ...o.weightObjects([...WEIGHT_OBJECT_KEYS.Embedding, ...WEIGHT_OBJECT_KEYS.EmbeddingConstraint]),
      maskZero: o.boolean('mask_zero', false),
    });
    return o.finishWith(layer, false);
  },

  LayerNormalization(o, name) {
    const base = baseArgs(o, name);
    o.only('beta_constraint', [null], 'TensorFlow.js LayerNormalization has no constraints');
    o.only('gamma_constraint', [null], 'TensorFlow.js LayerNormalization has no constraints');
    const axisRaw = o.get('axis') ?? -1;
    const axis = Array.isArray(axisRaw) ? axisRaw : [axisRaw];
    if (!axis.every((a) => typeof a === 'number' && Number.isInteger(a))) {
      throw new KerasConfigError(`${o.where}: unsupported option axis=${formatJson(axisRaw)}`);
    }
    if (o.boolean('rms_scaling', false)) {
      // Keras: gamma only (center is ignored), scaled by the variance; our layer reproduces it.
      o.ignore('center', 'scale', 'beta_initializer', 'beta_regularizer');
      o.only('gamma_regularizer', [null], 'regularizers on RMS-scaled LayerNormalization are not supported');
      const layer = new KerasRmsLayerNormalization({
        ...base, axis: axis as number[], epsilon: o.number('epsilon', 1e-3),
        gammaInitializer: initializerFromKeras(o.where, 'gamma_initializer', o.get('gamma_initializer')),
      });
      return o.finishWith(layer, false);
    }
    const layer = tfl.layers.layerNormalization({
      ...base,
      axis: axis.length === 1 ? (axis[0] as number) : (axis as number[]),
      epsilon: o.number('epsilon', 1e-3),
      center: o.boolean('center', true),
      scale: o.boolean('scale', true),
      ...o.weightObjects(WEIGHT_OBJECT_KEYS.LayerNormalization),
    });
    return o.finishWith(layer, false);
  },

  GlobalAveragePooling1D(o, name) {
    const base = baseArgs(o, name);
    o.only('data_format', ['channels_last'], 'only channels_last is supported');
    const layer = new KerasGlobalAveragePooling1D({ ...base, keepdims: o.boolean('keepdims', false) });
    o.finish();
    return {
      layer,
      call: (a, k) => {
        const { mask, ...rest } = k;
        const x = singleInput(o.where, a, rest, false);
        if (mask == null) return layer.apply(x) as Output;
        if (!isSymbolic(mask)) throw new KerasConfigError(`${o.where}: unsupported call argument mask=${describe(mask)}`);
        return layer.apply([x as SymbolicTensor, mask]) as Output;
      },
    };
  },

  // An op layer: Keras records `keras.ops.not_equal(x, c)` this way, e.g. for the mask that
  // Embedding(mask_zero=True) propagates (tokens != 0).
  NotEqual(o, name) {
    o.ignore('trainable', 'dtype');
    o.finish();
    let layer: KerasNotEqual | null = null;
    const translated: Translated = {
      layer: null,
      call: (a, k) => {
        if (Object.values(k).some((v) => v != null) || a.length !== 2 || !isSymbolic(a[0]) || typeof a[1] !== 'number') {
          throw new KerasConfigError(
            `${o.where}: only not_equal(tensor, number) is supported; received args ${describe(a)}`);
        }
        if (layer != null && layer.constant !== a[1]) {
          throw new KerasConfigError(`${o.where}: called with different constants (${layer.constant}, ${a[1]})`);
        }
        layer ??= new KerasNotEqual({ name, constant: a[1] });
        translated.layer = layer;
        return layer.apply(a[0]) as Output;
      },
    };
    return translated;
  },

  Dropout(o, name) {
    const base = baseArgs(o, name);
    const noiseShape = o.get('noise_shape');
    const seed = o.integerOrNull('seed');
    const layer = tfl.layers.dropout({
      ...base,
      rate: o.number('rate'),
      ...(Array.isArray(noiseShape) ? { noiseShape: noiseShape as number[] } : {}),
      ...(seed != null ? { seed } : {}),
    });
    return o.finishWith(layer, false);
  },

  Activation(o, name) {
    const base = baseArgs(o, name);
    const layer = tfl.layers.activation({ ...base, activation: activationFromKeras(o.where, o.get('activation')) as never });
    return o.finishWith(layer, false);
  },

  Add: merge((args) => tfl.layers.add(args)),
  Multiply: merge((args) => tfl.layers.multiply(args)),
  Average: merge((args) => tfl.layers.average(args)),
  Maximum: merge((args) => tfl.layers.maximum(args)),
  Minimum: merge((args) => tfl.layers.minimum(args)),
  Concatenate(o, name) {
    const base = baseArgs(o, name);
    const layer = tfl.layers.concatenate({ ...base, axis: o.number('axis', -1) });
    return o.finishWith(layer, true);
  },

  GroupQueryAttention: translateGqa,
  GroupedQueryAttention: translateGqa,
};

function merge(make: (args: { name: string; trainable: boolean }) => Layer): Translator {
  return (o, name) => {
    const layer = make(baseArgs(o, name));
    return o.finishWith(layer, true);
  };
}

/** Keras's `GroupedQueryAttention.call` signature, for positional arguments. */
const GQA_CALL = [
  'query', 'value', 'key', 'query_mask', 'value_mask', 'key_mask', 'attention_mask',
  'return_attention_scores', 'training', 'use_causal_mask',
] as const;

function translateGqa(o: Options, name: string): Translated {
  const base = baseArgs(o, name);
  o.ignore('flash_attention'); // never saved by Keras; the numbers are the same either way
  let layer: GroupedQueryAttention;
  const dropout = o.number('dropout', 0);
  try {
    layer = new GroupedQueryAttention({
      ...base,
      headDim: o.number('head_dim'),
      numQueryHeads: o.number('num_query_heads'),
      numKeyValueHeads: o.number('num_key_value_heads'),
      dropout,
      useBias: o.boolean('use_bias', true),
      useGate: o.boolean('use_gate', false),
      slidingWindow: o.integerOrNull('sliding_window'),
      seed: o.integerOrNull('seed'),
      ...o.weightObjects(WEIGHT_OBJECT_KEYS.GroupedQueryAttention),
    });
  } catch (e) {
    if (e instanceof KerasConfigError) throw e;
    throw new KerasConfigError(`${o.where}: ${e instanceof Error ? e.message : String(e)}`);
  }
  o.finish();
  const call = (args: unknown[], kwargs: Dict): Output => {
    if (args.length > GQA_CALL.length) {
      throw new KerasConfigError(`${o.where}: too many positional call arguments (${args.length})`);
    }
    const named: Dict = {};
    args.forEach((value, i) => {
      named[GQA_CALL[i]!] = value;
    });
    for (const [key, value] of Object.entries(kwargs)) {
      if (!(GQA_CALL as readonly string[]).includes(key)) {
        if (value == null) continue;
        throw new KerasConfigError(`${o.where}: unsupported call argument ${key}=${describe(value)}`);
      }
      if (key in named && named[key] != null) {
        throw new KerasConfigError(`${o.where}: call argument ${key} given twice`);
      }
      named[key] = value;
    }
    const tensor = (key: string, required: boolean): SymbolicTensor | undefined => {
      const v = named[key];
      if (v == null) {
        if (required) throw new KerasConfigError(`${o.where}: the call has no ${key} tensor`);
        return undefined;
      }
      if (!isSymbolic(v)) {
        throw new KerasConfigError(
          `${o.where}: unsupported call argument ${key}=${describe(v)} (only tensors of the model can be passed)`);
      }
      return v;
    };
    const flag = (key: string): boolean => {
      const v = named[key];
      if (v == null || v === false) return false;
      if (v === true) return true;
      throw new KerasConfigError(`${o.where}: unsupported call argument ${key}=${describe(v)}`);
    };
    const training = named['training'];
    if (training === true && dropout > 0) {
      throw new KerasConfigError(`${o.where}: unsupported call argument training=true (dropout fixed on in inference)`);
    }
    if (training != null && typeof training !== 'boolean') {
      throw new KerasConfigError(`${o.where}: unsupported call argument training=${describe(training)}`);
    }
    const query = tensor('query', true)!;
    const out = layer.apply(query, {
      value: tensor('value', true),
      key: tensor('key', false),
      queryMask: tensor('query_mask', false),
      valueMask: tensor('value_mask', false),
      keyMask: tensor('key_mask', false),
      attentionMask: tensor('attention_mask', false),
      useCausalMask: flag('use_causal_mask'),
      returnAttentionScores: flag('return_attention_scores'),
    }) as Output;
    // Keras orders layers by which tensors were positional (see layer_order.ts).
    const nodes = layer.inboundNodes;
    recordKerasCall(nodes[nodes.length - 1]!, args.flatMap((value, i) => (isSymbolic(value) ? [GQA_CALL[i]!] : [])));
    return out;
  };
  return { layer, call };
}

/**
 * The Keras layer classes this importer rebuilds.
 *
 * @example
 * ```ts
 * import { SUPPORTED_KERAS_LAYERS } from 'grouped-query-attention/keras';
 *
 * console.log(SUPPORTED_KERAS_LAYERS.includes('GroupQueryAttention'));   // true
 * ```
 */
export const SUPPORTED_KERAS_LAYERS: readonly string[] = [
  ...Object.keys(TRANSLATORS), ...genericClasses().filter((c) => hasGenericCodec(c) && !Object.hasOwn(TRANSLATORS, c)),
];

/** Keras merge layers served by the generic codec: they take a list of tensors. */
const GENERIC_MERGE = new Set(['Subtract', 'Dot']);

/** The translator of a class: ours, else tfjs-layers' own class through the generic codec. */
function translatorFor(className: string): Translator | undefined {
  const ours = own(TRANSLATORS, className);
  if (ours != null) return ours;
  if (!hasGenericCodec(className)) return undefined;
  return (o, name) => {
    checkDtypePolicy(o.where, o.config['dtype']);
    const layer = genericFromKeras(className, o.config, o.where, { name, trainable: o.boolean('trainable', true) });
    const list = GENERIC_MERGE.has(className);
    return { layer, call: (a, k) => layer.apply(singleInput(o.where, a, k, list)) as Output };
  };
}

/** A `[layer_name, node_index, tensor_index]` reference. */
type History = [string, number, number];

function isHistory(x: unknown): x is History {
  return Array.isArray(x) && x.length === 3 && typeof x[0] === 'string' &&
    typeof x[1] === 'number' && typeof x[2] === 'number';
}

/** input_layers / output_layers: a list of triples, a bare triple (Keras ≥ 3.7 for one), or a dict. */
function readEndpoints(value: unknown, key: string): History[] {
  if (isHistory(value)) return [value];
  if (Array.isArray(value) && value.every(isHistory)) return value;
  if (isDict(value) && Object.values(value).every(isHistory)) return Object.values(value) as History[];
  throw new KerasConfigError(`model config: cannot read ${key} ${formatJson(value)}`);
}

class NotReady extends Error {}

interface LayerEntry {
  name: string;
  className: string;
  where: string;
  translated: Translated;
  nodes: Array<{ args: unknown; kwargs: unknown }>;
}

/** Translates every layer config of a functional model (no tensors are allocated). */
function translateLayers(config: Dict): LayerEntry[] {
  const layers = config['layers'];
  if (!Array.isArray(layers)) throw new KerasConfigError('model config: config.layers is missing');
  const seen = new Set<string>();
  return layers.map((raw: unknown, index: number) => {
    if (!isDict(raw)) throw new KerasConfigError(`model config: layers[${index}] is not an object`);
    const className = String(raw['class_name']);
    const layerConfig = isDict(raw['config']) ? raw['config'] : {};
    const name = String(raw['name'] ?? layerConfig['name'] ?? `layer_${index}`);
    const where = `Layer '${name}' (${className})`;
    if (seen.has(name)) throw new KerasConfigError(`${where}: duplicate layer name`);
    seen.add(name);
    const module = raw['module'];
    if (typeof module === 'string' && !module.startsWith('keras')) {
      throw new KerasConfigError(`${where}: unsupported custom layer class from module '${module}'`);
    }
    const translate = translatorFor(className);
    if (translate == null) {
      if (typeof module === 'string' && module.startsWith('keras.src.ops')) {
        throw new KerasConfigError(
          `${where}: unsupported op layer ${className} from ${module}: Keras saves a call of a keras.ops ` +
          'function on symbolic tensors as this op layer (Keras 3.6 does so for the mask that ' +
          'Embedding(mask_zero=True) propagates). Supported op layers: NotEqual; replace the op by a layer, ' +
          'or pass masks as model inputs');
      }
      throw new KerasConfigError(
        `${where}: unsupported layer class ${className} (supported: ${SUPPORTED_KERAS_LAYERS.join(', ')})`);
    }
    const inbound = raw['inbound_nodes'] ?? [];
    if (!Array.isArray(inbound)) throw new KerasConfigError(`${where}: inbound_nodes is not a list`);
    const nodes = inbound.map((node: unknown, i: number) => {
      if (!isDict(node)) {
        throw new KerasConfigError(
          `${where}: inbound_nodes[${i}] is not a Keras 3 node ({args, kwargs}); Keras 2 (legacy) configs are not supported`);
      }
      return { args: node['args'] ?? [], kwargs: node['kwargs'] ?? {} };
    });
    return { name, className, where, translated: undefined as unknown as Translated, nodes, raw: layerConfig };
  }).map((entry) => {
    const e = entry as LayerEntry & { raw: Dict };
    e.translated = translatorFor(e.className)!(new Options(e.where, e.raw), e.name);
    return e;
  });
}

/**
 * Builds a tfjs `LayersModel` from a Keras 3 functional model config (`config.json`). Weights are
 * initialised by the layers' initializers; load them with the weights file.
 */
export function modelFromKerasConfig(modelConfig: Dict): tfl.LayersModel {
  const className = modelConfig['class_name'];
  if (className !== 'Functional' && className !== 'Model') {
    throw new KerasConfigError(
      `model config: unsupported model class ${String(className)} (only functional models, keras.Model(inputs, outputs), are supported)`);
  }
  const config = modelConfig['config'];
  if (!isDict(config)) throw new KerasConfigError('model config: config is missing');
  const entries = translateLayers(config);
  const inputRefs = readEndpoints(config['input_layers'], 'input_layers');
  const outputRefs = readEndpoints(config['output_layers'], 'output_layers');

  const outputs = new Map<string, SymbolicTensor[][]>();
  for (const e of entries) {
    outputs.set(e.name, e.translated.input ? [[e.translated.input]] : []);
  }
  const lookup = (ref: History, where: string): SymbolicTensor => {
    const [layerName, nodeIndex, tensorIndex] = ref;
    const nodes = outputs.get(layerName);
    if (nodes == null) throw new KerasConfigError(`${where}: refers to an unknown layer '${layerName}'`);
    const node = nodes[nodeIndex];
    if (node == null) throw new NotReady();
    const t = node[tensorIndex];
    if (t == null) {
      throw new KerasConfigError(`${where}: layer '${layerName}' node ${nodeIndex} has no output ${tensorIndex}`);
    }
    return t;
  };
  const decode = (value: unknown, where: string): unknown => {
    if (Array.isArray(value)) return value.map((v) => decode(v, where));
    if (isDict(value)) {
      if (value['class_name'] === '__keras_tensor__') {
        const history = isDict(value['config']) ? value['config']['keras_history'] : undefined;
        if (!isHistory(history)) throw new KerasConfigError(`${where}: a tensor without keras_history`);
        return lookup(history, where);
      }
      if (typeof value['class_name'] === 'string' && 'config' in value) {
        throw new KerasConfigError(`${where}: unsupported call argument of class ${value['class_name']}`);
      }
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, decode(v, where)]));
    }
    return value;
  };

  const created = entries.filter((e) => e.translated.layer != null).map((e) => e.translated.layer!);
  try {
    const pending = entries.flatMap((e) => e.nodes.map((node, index) => ({ e, node, index })));
    let progress = true;
    while (pending.length > 0 && progress) {
      progress = false;
      for (let i = 0; i < pending.length;) {
        const { e, node, index } = pending[i]!;
        const done = outputs.get(e.name)!;
        if (done.length !== index) {
          i++;
          continue;
        }
        let args: unknown;
        let kwargs: unknown;
        try {
          args = decode(node.args, e.where);
          kwargs = decode(node.kwargs, e.where);
        } catch (err) {
          if (err instanceof NotReady) {
            i++;
            continue;
          }
          throw err;
        }
        if (!Array.isArray(args) || !isDict(kwargs)) {
          throw new KerasConfigError(`${e.where}: inbound node ${index} must have a list of args and a dict of kwargs`);
        }
        let out: Output;
        try {
          out = e.translated.call(args, kwargs);
        } catch (err) {
          if (err instanceof KerasConfigError) throw err;
          throw new KerasConfigError(`${e.where}: calling the layer failed: ${err instanceof Error ? err.message : String(err)}`);
        }
        const list = Array.isArray(out) ? out : [out];
        done.push(list);
        pending.splice(i, 1);
        progress = true;
      }
    }
    if (pending.length > 0) {
      const { e } = pending[0]!;
      throw new KerasConfigError(`${e.where}: its inputs cannot be resolved (a cycle or a reference to a missing node)`);
    }
    const resolve = (ref: History, key: string) => {
      try {
        return lookup(ref, `model config ${key}`);
      } catch (err) {
        if (err instanceof NotReady) throw new KerasConfigError(`model config ${key}: ${formatJson(ref)} is never computed`);
        throw err;
      }
    };
    const inputs = inputRefs.map((r) => resolve(r, 'input_layers'));
    const outs = outputRefs.map((r) => resolve(r, 'output_layers'));
    const model = tfl.model({
      inputs,
      outputs: outs.length === 1 ? outs[0]! : outs,
      name: typeof config['name'] === 'string' ? config['name'] : undefined,
    });
    // tfjs counts every symbolic call of a layer as one owner and model.dispose() releases one, so a
    // layer called at several nodes (a shared layer) would keep its weights. This model is the only
    // owner of the layers it was built from: one reference each.
    for (const layer of model.layers) {
      const owned = layer as unknown as { _refCount: number | null };
      if (owned._refCount != null && owned._refCount > 1) owned._refCount = 1;
    }
    return model;
  } catch (err) {
    for (const layer of created) {
      try {
        if (layer.built) layer.dispose();
      } catch {
        // a layer that cannot be disposed holds nothing
      }
    }
    throw err;
  }
}
