/**
 * Keras ⇄ tfjs translation of the small objects inside layer configs: dtype policies, initializers,
 * regularizers, constraints and activations.
 */
import * as tfl from '@tensorflow/tfjs-layers';
import { formatJson } from '../errors.js';
import { KerasConfigError } from './errors.js';

export type Dict = Record<string, unknown>;
type Initializer = ReturnType<typeof tfl.initializers.zeros>;
type Regularizer = ReturnType<typeof tfl.regularizers.l2>;
type Constraint = ReturnType<typeof tfl.constraints.maxNorm>;

export function isDict(x: unknown): x is Dict {
  return x != null && typeof x === 'object' && !Array.isArray(x);
}

/**
 * A table entry by a name read from a file, own properties only: `constructor`, `toString`,
 * `__proto__` and the like name nothing.
 */
export function own<T>(table: Readonly<Record<string, T>>, key: unknown): T | undefined {
  return typeof key === 'string' && Object.hasOwn(table, key) ? table[key] : undefined;
}

/** 'glorot_uniform' → 'GlorotUniform'. */
function pascal(id: string): string {
  return id.split('_').map((p) => p.charAt(0).toUpperCase() + p.slice(1)).join('');
}

/** Keras's `naming.to_snake_case`: 'GroupedQueryAttention' → 'grouped_query_attention'. */
export function toSnakeCase(name: string): string {
  let s = name.replace(/\W+/g, '');
  s = s.replace(/(.)([A-Z][a-z]+)/g, '$1_$2');
  s = s.replace(/([a-z])([A-Z])/g, '$1_$2');
  return s.toLowerCase();
}

/** Splits a serialized Keras object into its class name and config; strings are identifiers. */
function parseObject(where: string, key: string, value: unknown): { className: string; config: Dict } {
  if (typeof value === 'string') return { className: pascal(value), config: {} };
  if (isDict(value) && typeof value['class_name'] === 'string') {
    const module = value['module'];
    if (typeof module === 'string' && !module.startsWith('keras')) {
      throw new KerasConfigError(
        `${where}: unsupported ${key}: custom class '${value['class_name']}' from module '${module}'`);
    }
    return { className: value['class_name'], config: isDict(value['config']) ? value['config'] : {} };
  }
  throw new KerasConfigError(`${where}: cannot read ${key} ${formatJson(value)}`);
}

function num(where: string, key: string, config: Dict, field: string, fallback: number): number {
  const v = config[field];
  if (v == null) return fallback;
  if (typeof v !== 'number') throw new KerasConfigError(`${where}: ${key}.${field} must be a number; received ${formatJson(v)}`);
  return v;
}

function seedOf(config: Dict): number | undefined {
  return typeof config['seed'] === 'number' ? config['seed'] : undefined;
}

const INITIALIZER_ALIASES: Record<string, string> = {
  Uniform: 'RandomUniform',
  Normal: 'RandomNormal',
  IdentityInitializer: 'Identity',
  OrthogonalInitializer: 'Orthogonal',
  Zero: 'Zeros',
  One: 'Ones',
};

/** A Keras initializer (identifier or serialized) as a tfjs initializer; undefined for null. */
export function initializerFromKeras(where: string, key: string, value: unknown): Initializer | undefined {
  if (value == null) return undefined;
  const { className: raw, config: c } = parseObject(where, key, value);
  const className = own(INITIALIZER_ALIASES, raw) ?? raw;
  const seed = seedOf(c);
  const I = tfl.initializers;
  switch (className) {
    case 'Zeros': return I.zeros();
    case 'Ones': return I.ones();
    case 'Constant': return I.constant({ value: num(where, key, c, 'value', 0) });
    case 'RandomUniform':
      return I.randomUniform({ minval: num(where, key, c, 'minval', -0.05), maxval: num(where, key, c, 'maxval', 0.05), seed });
    case 'RandomNormal':
      return I.randomNormal({ mean: num(where, key, c, 'mean', 0), stddev: num(where, key, c, 'stddev', 0.05), seed });
    case 'TruncatedNormal':
      return I.truncatedNormal({ mean: num(where, key, c, 'mean', 0), stddev: num(where, key, c, 'stddev', 0.05), seed });
    case 'GlorotUniform': return I.glorotUniform({ seed });
    case 'GlorotNormal': return I.glorotNormal({ seed });
    case 'HeUniform': return I.heUniform({ seed });
    case 'HeNormal': return I.heNormal({ seed });
    case 'LecunUniform': return I.leCunUniform({ seed });
    case 'LecunNormal': return I.leCunNormal({ seed });
    case 'Identity': return I.identity({ gain: num(where, key, c, 'gain', 1) });
    case 'Orthogonal': return I.orthogonal({ gain: num(where, key, c, 'gain', 1), seed });
    case 'VarianceScaling': {
      const mode = String(c['mode'] ?? 'fan_in');
      const distribution = String(c['distribution'] ?? 'truncated_normal');
      const modes: Record<string, 'fanIn' | 'fanOut' | 'fanAvg'> = { fan_in: 'fanIn', fan_out: 'fanOut', fan_avg: 'fanAvg' };
      const dists: Record<string, 'normal' | 'uniform' | 'truncatedNormal'> = {
        truncated_normal: 'truncatedNormal', untruncated_normal: 'normal', normal: 'normal', uniform: 'uniform',
      };
      const m = own(modes, mode);
      const d = own(dists, distribution);
      if (m == null || d == null) {
        throw new KerasConfigError(`${where}: unsupported ${key} VarianceScaling mode '${mode}' / distribution '${distribution}'`);
      }
      return I.varianceScaling({ scale: num(where, key, c, 'scale', 1), mode: m, distribution: d, seed });
    }
    default:
      throw new KerasConfigError(`${where}: unsupported ${key} class '${raw}'`);
  }
}

/** A Keras regularizer as a tfjs regularizer; undefined for null. */
export function regularizerFromKeras(where: string, key: string, value: unknown): Regularizer | undefined {
  if (value == null) return undefined;
  const { className, config: c } = parseObject(where, key, value);
  const R = tfl.regularizers;
  switch (className) {
    case 'L1': return R.l1({ l1: num(where, key, c, 'l1', 0.01) });
    case 'L2': return R.l2({ l2: num(where, key, c, 'l2', 0.01) });
    case 'L1L2': return R.l1l2({ l1: num(where, key, c, 'l1', 0), l2: num(where, key, c, 'l2', 0) });
    default: throw new KerasConfigError(`${where}: unsupported ${key} class '${className}'`);
  }
}

/** A Keras constraint as a tfjs constraint; undefined for null. */
export function constraintFromKeras(where: string, key: string, value: unknown): Constraint | undefined {
  if (value == null) return undefined;
  const { className, config: c } = parseObject(where, key, value);
  const C = tfl.constraints;
  switch (className) {
    case 'MaxNorm': return C.maxNorm({ maxValue: num(where, key, c, 'max_value', 2), axis: num(where, key, c, 'axis', 0) });
    case 'MinMaxNorm':
      return C.minMaxNorm({
        minValue: num(where, key, c, 'min_value', 0), maxValue: num(where, key, c, 'max_value', 1),
        rate: num(where, key, c, 'rate', 1), axis: num(where, key, c, 'axis', 0),
      });
    case 'NonNeg': return C.nonNeg();
    case 'UnitNorm': return C.unitNorm({ axis: num(where, key, c, 'axis', 0) });
    default: throw new KerasConfigError(`${where}: unsupported ${key} class '${className}'`);
  }
}

/** Keras activation names with the same function in tfjs. */
const ACTIVATIONS: Record<string, string> = {
  linear: 'linear', relu: 'relu', relu6: 'relu6', elu: 'elu', selu: 'selu', sigmoid: 'sigmoid', tanh: 'tanh',
  softmax: 'softmax', softplus: 'softplus', softsign: 'softsign', swish: 'swish', silu: 'swish', mish: 'mish',
  gelu: 'gelu', log_softmax: 'logSoftmax',
};

/** A Keras activation name as a tfjs activation identifier. */
export function activationFromKeras(where: string, value: unknown): string {
  if (value == null) return 'linear';
  const name = typeof value === 'string' ? value : isDict(value) ? String(value['class_name'] ?? value['config']) : String(value);
  const id = own(ACTIVATIONS, name);
  if (id == null) {
    throw new KerasConfigError(
      `${where}: unsupported activation '${name}' (supported: ${Object.keys(ACTIVATIONS).join(', ')})`);
  }
  return id;
}

/** A tfjs activation identifier as a Keras activation name. */
export function activationToKeras(where: string, id: string): string {
  const entry = Object.entries(ACTIVATIONS).find(([, v]) => v === id);
  if (entry == null) throw new KerasConfigError(`${where}: activation '${id}' has no Keras equivalent`);
  return entry[0];
}

/** Checks a Keras dtype policy: only float32 computes the same in TensorFlow.js. */
export function checkDtypePolicy(where: string, dtype: unknown): void {
  if (dtype == null) return;
  const name = typeof dtype === 'string' ? dtype : isDict(dtype) && isDict(dtype['config']) ? dtype['config']['name'] : undefined;
  if (name !== 'float32') {
    throw new KerasConfigError(
      `${where}: unsupported dtype policy ${formatJson(name ?? dtype)} (TensorFlow.js layers compute in float32)`);
  }
}

/** Keras's serialized float32 policy. */
export const KERAS_FLOAT32_POLICY = {
  module: 'keras', class_name: 'DTypePolicy', config: { name: 'float32' }, registered_name: null,
};

function kerasObject(module: string, className: string, config: Dict): Dict {
  return { module, class_name: className, config, registered_name: null };
}

type Serialized = { className: string; config: Dict } | null | undefined;

function serializeTf(obj: unknown): Serialized {
  if (obj == null) return null;
  if (isDict(obj) && typeof obj['className'] === 'string') return obj as { className: string; config: Dict };
  const s = obj as { getClassName(): string; getConfig(): Dict; constructor: { className?: string } };
  return { className: s.constructor.className ?? s.getClassName(), config: s.getConfig() };
}

/** A tfjs initializer (instance or {className, config}) as a Keras serialized initializer. */
export function initializerToKeras(where: string, key: string, obj: unknown): Dict | null {
  const s = serializeTf(obj);
  if (s == null) return null;
  const c = s.config ?? {};
  const seed = typeof c['seed'] === 'number' ? c['seed'] : null;
  const m = 'keras.initializers';
  switch (s.className) {
    case 'Zeros': case 'Ones': return kerasObject(m, s.className, {});
    case 'Constant': return kerasObject(m, 'Constant', { value: c['value'] ?? 0 });
    case 'RandomUniform': return kerasObject(m, 'RandomUniform', { seed, minval: c['minval'] ?? -0.05, maxval: c['maxval'] ?? 0.05 });
    case 'RandomNormal': case 'TruncatedNormal':
      return kerasObject(m, s.className, { seed, mean: c['mean'] ?? 0, stddev: c['stddev'] ?? 0.05 });
    case 'GlorotUniform': case 'GlorotNormal': case 'HeUniform': case 'HeNormal':
      return kerasObject(m, s.className, { seed });
    case 'LeCunUniform': return kerasObject(m, 'LecunUniform', { seed });
    case 'LeCunNormal': return kerasObject(m, 'LecunNormal', { seed });
    case 'Identity': return kerasObject(m, 'Identity', { gain: c['gain'] ?? 1 });
    case 'Orthogonal': return kerasObject(m, 'Orthogonal', { seed, gain: c['gain'] ?? 1 });
    case 'VarianceScaling': {
      // tfjs serializes its Glorot/He/LeCun initializers as VarianceScaling; Keras names them.
      const named: Record<string, string> = {
        '1/fanAvg/uniform': 'GlorotUniform', '1/fanAvg/normal': 'GlorotNormal', '1/fanAvg/truncatedNormal': 'GlorotNormal',
        '2/fanIn/uniform': 'HeUniform', '2/fanIn/normal': 'HeNormal', '2/fanIn/truncatedNormal': 'HeNormal',
        '1/fanIn/uniform': 'LecunUniform', '1/fanIn/normal': 'LecunNormal', '1/fanIn/truncatedNormal': 'LecunNormal',
      };
      const alias = named[`${c['scale'] ?? 1}/${c['mode']}/${c['distribution']}`];
      if (alias != null) return kerasObject(m, alias, { seed });
      const modes: Record<string, string> = { fanIn: 'fan_in', fanOut: 'fan_out', fanAvg: 'fan_avg' };
      const dists: Record<string, string> = { truncatedNormal: 'truncated_normal', normal: 'untruncated_normal', uniform: 'uniform' };
      return kerasObject(m, 'VarianceScaling', {
        seed, scale: c['scale'] ?? 1, mode: modes[String(c['mode'])] ?? 'fan_in',
        distribution: dists[String(c['distribution'])] ?? 'truncated_normal',
      });
    }
    default: throw new KerasConfigError(`${where}: ${key} class '${s.className}' has no Keras equivalent`);
  }
}

/** A tfjs regularizer as a Keras serialized regularizer. */
export function regularizerToKeras(where: string, key: string, obj: unknown): Dict | null {
  const s = serializeTf(obj);
  if (s == null) return null;
  if (s.className !== 'L1L2') throw new KerasConfigError(`${where}: ${key} class '${s.className}' has no Keras equivalent`);
  const l1 = Number(s.config['l1'] ?? 0);
  const l2 = Number(s.config['l2'] ?? 0);
  const m = 'keras.regularizers';
  if (l2 === 0 && l1 !== 0) return kerasObject(m, 'L1', { l1 });
  if (l1 === 0 && l2 !== 0) return kerasObject(m, 'L2', { l2 });
  return kerasObject(m, 'L1L2', { l1, l2 });
}

/** A tfjs constraint as a Keras serialized constraint. */
export function constraintToKeras(where: string, key: string, obj: unknown): Dict | null {
  const s = serializeTf(obj);
  if (s == null) return null;
  const c = s.config ?? {};
  const m = 'keras.constraints';
  switch (s.className) {
    case 'MaxNorm': return kerasObject(m, 'MaxNorm', { max_value: c['maxValue'] ?? 2, axis: c['axis'] ?? 0 });
    case 'MinMaxNorm':
      return kerasObject(m, 'MinMaxNorm', {
        min_value: c['minValue'] ?? 0, max_value: c['maxValue'] ?? 1, rate: c['rate'] ?? 1, axis: c['axis'] ?? 0,
      });
    case 'NonNeg': return kerasObject(m, 'NonNeg', {});
    case 'UnitNorm': return kerasObject(m, 'UnitNorm', { axis: c['axis'] ?? 0 });
    default: throw new KerasConfigError(`${where}: ${key} class '${s.className}' has no Keras equivalent`);
  }
}

/** Which kind of object a weight option holds, from its Keras key's suffix. */
type WeightObjectKind = 'initializer' | 'regularizer' | 'constraint';

/**
 * The weight objects (initializers, regularizers, constraints) each translated layer class reads and
 * writes, as Keras config keys in Keras's order: `<weight>_<kind>`. tfjs's argument is the same key in
 * camel case (`kernel_initializer` → `kernelInitializer`). One table for both directions.
 */
export const WEIGHT_OBJECT_KEYS = {
  Dense: ['kernel_initializer', 'bias_initializer', 'kernel_regularizer', 'bias_regularizer', 'kernel_constraint', 'bias_constraint'],
  Embedding: ['embeddings_initializer', 'embeddings_regularizer'],
  EmbeddingConstraint: ['embeddings_constraint'],
  LayerNormalization: ['beta_initializer', 'gamma_initializer', 'beta_regularizer', 'gamma_regularizer'],
  GroupedQueryAttention: [
    'kernel_initializer', 'bias_initializer', 'kernel_regularizer', 'bias_regularizer', 'activity_regularizer',
    'kernel_constraint', 'bias_constraint',
  ],
} as const satisfies Record<string, readonly `${string}_${WeightObjectKind}`[]>;

function weightKeyParts(key: string): { kind: WeightObjectKind; tfjs: string } {
  const kind = key.slice(key.lastIndexOf('_') + 1) as WeightObjectKind;
  return { kind, tfjs: key.replace(/_([a-z])/g, (_m, ch: string) => ch.toUpperCase()) };
}

/**
 * tfjs arguments of the Keras weight options `keys` (see {@link WEIGHT_OBJECT_KEYS}), read with `get`;
 * options that are null or absent are left out.
 *
 * @example
 * ```ts
 * import { weightObjectsFromKeras } from './objects.js';
 * const config: Record<string, unknown> = { kernel_initializer: 'zeros', bias_initializer: null };
 * weightObjectsFromKeras('Layer d (Dense)', ['kernel_initializer', 'bias_initializer'], (k) => config[k]);
 * // { kernelInitializer: Zeros }
 * ```
 */
export function weightObjectsFromKeras(where: string, keys: readonly string[], get: (key: string) => unknown): Dict {
  const out: Dict = {};
  for (const key of keys) {
    const { kind, tfjs } = weightKeyParts(key);
    const value = get(key);
    const v = kind === 'initializer' ? initializerFromKeras(where, key, value)
      : kind === 'regularizer' ? regularizerFromKeras(where, key, value)
      : constraintFromKeras(where, key, value);
    if (v !== undefined) out[tfjs] = v;
  }
  return out;
}

/**
 * Keras config entries of the weight options `keys` (see {@link WEIGHT_OBJECT_KEYS}) from a tfjs config.
 *
 * @example
 * ```ts
 * import { WEIGHT_OBJECT_KEYS, weightObjectsToKeras } from './objects.js';
 * weightObjectsToKeras('Layer d (Dense)', WEIGHT_OBJECT_KEYS.Dense, {}); // every key, null
 * ```
 */
export function weightObjectsToKeras(where: string, keys: readonly string[], config: Dict): Dict {
  const out: Dict = {};
  for (const key of keys) {
    const { kind, tfjs } = weightKeyParts(key);
    const toKeras = kind === 'initializer' ? initializerToKeras : kind === 'regularizer' ? regularizerToKeras : constraintToKeras;
    out[key] = toKeras(where, key, config[tfjs]);
  }
  return out;
}
