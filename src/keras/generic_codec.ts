/**
 * One codec, read and write, for every Keras layer class that tfjs-layers implements with the same
 * numbers and weight order (Conv1D, pooling, BatchNormalization, Flatten, Reshape, Permute, Softmax,
 * activations, …): tfjs-layers' own class (found in tfjs's serialization registry) is built from the
 * Keras config with keys renamed snake_case → camelCase, objects (initializers, regularizers,
 * constraints, activations) translated by `objects.ts`, and per-class adapters only where Keras 3's
 * key differs ({@link RENAMES}).
 *
 * Nothing is trusted silently: after building, every option read from the file is compared with
 * what the tfjs layer reports in `getConfig()`; an option tfjs does not have is accepted only at
 * Keras's default value (`layer_defaults.ts`), so a file that needs behaviour tfjs lacks is refused
 * with the option's name instead of loading with other numbers. Writing emits exactly the keys
 * Keras's `get_config()` has.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { formatJson } from '../errors.js';
import { KerasConfigError } from './errors.js';
import { KERAS_LAYER_DEFAULTS } from './layer_defaults.js';
import {
  activationFromKeras,
  activationToKeras,
  constraintFromKeras,
  constraintToKeras,
  initializerFromKeras,
  initializerToKeras,
  own,
  regularizerFromKeras,
  regularizerToKeras,
  type Dict,
} from './objects.js';

type Layer = tfl.LayersModel['layers'][number];

/** Keras 3 keys whose tfjs name is not the camelCase of the Keras name. */
const RENAMES: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  LeakyReLU: { negative_slope: 'alpha' },
};

/**
 * Option values tfjs-layers accepts in a config but cannot compute (it throws at call time, or would
 * compute something else): refused when the file is read.
 */
const UNSUPPORTED_VALUES: Readonly<Record<string, ReadonlyArray<readonly [key: string, value: unknown, why: string]>>> = {
  Conv1D: [['padding', 'causal', 'tfjs-layers 4.22 does not implement causal padding in Conv1D; use ZeroPadding1D((k-1)*d, 0) then padding="valid"']],
};

const DATA_FORMATS: Readonly<Record<string, string>> = { channels_last: 'channelsLast', channels_first: 'channelsFirst' };

function camel(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

function tfKey(className: string, key: string): string {
  return own(RENAMES[className] ?? {}, key) ?? camel(key);
}

/** The Keras classes this codec reads and writes. */
export function genericClasses(): string[] {
  return Object.keys(KERAS_LAYER_DEFAULTS);
}

export function hasGenericCodec(className: string): boolean {
  return own(KERAS_LAYER_DEFAULTS, className) != null && tfjsClass(className) != null;
}

type Constructor = new (args: Dict) => Layer;

function tfjsClass(className: string): Constructor | undefined {
  const map = tf.serialization.SerializationMap.getMap().classNameMap as Record<string, [unknown, unknown]>;
  return own(map, className)?.[0] as Constructor | undefined;
}

/** `3` and `[3]` are the same size option (tfjs stores some 1-D sizes as numbers). */
function sameValue(a: unknown, b: unknown): boolean {
  const unwrap = (x: unknown) => (Array.isArray(x) && x.length === 1 ? x[0] : x);
  return JSON.stringify(unwrap(a)) === JSON.stringify(unwrap(b));
}

function objectFromKeras(where: string, key: string, value: unknown): { value: unknown; object: boolean } {
  if (key.endsWith('_initializer')) return { value: initializerFromKeras(where, key, value), object: true };
  if (key.endsWith('_regularizer')) return { value: regularizerFromKeras(where, key, value), object: true };
  if (key.endsWith('_constraint')) return { value: constraintFromKeras(where, key, value), object: true };
  if (key === 'activation') return { value: activationFromKeras(where, value), object: false };
  if (key === 'data_format') {
    const v = own(DATA_FORMATS, value);
    if (v == null) throw new KerasConfigError(`${where}: unsupported option data_format=${formatJson(value)}`);
    return { value: v, object: false };
  }
  if (value != null && typeof value === 'object' && !Array.isArray(value)) {
    throw new KerasConfigError(`${where}: unsupported option ${key}=${formatJson(value)}`);
  }
  return { value, object: false };
}

/**
 * Builds the tfjs-layers layer for a Keras layer config, or refuses with the option that tfjs cannot
 * reproduce.
 */
export function genericFromKeras(
  className: string, config: Dict, where: string, base: { name: string; trainable: boolean },
): Layer {
  const defaults = own(KERAS_LAYER_DEFAULTS, className);
  const cls = tfjsClass(className);
  if (defaults == null || cls == null) throw new KerasConfigError(`${where}: unsupported layer class ${className}`);
  const args: Dict = { ...base };
  const check: Array<[string, string, unknown, unknown]> = [];
  for (const [key, raw] of Object.entries(config)) {
    if (key === 'name' || key === 'trainable' || key === 'dtype' || raw == null) continue;
    if (!Object.hasOwn(defaults, key)) {
      throw new KerasConfigError(`${where}: unsupported option ${key}=${formatJson(raw)} (not a Keras 3 ${className} option)`);
    }
    const refused = (UNSUPPORTED_VALUES[className] ?? []).find(([k, v]) => k === key && v === raw);
    if (refused != null) throw new KerasConfigError(`${where}: unsupported option ${key}=${formatJson(raw)} (${refused[2]})`);
    const { value, object } = objectFromKeras(where, key, raw);
    if (value === undefined) continue;
    const tk = tfKey(className, key);
    args[tk] = value;
    if (!object) check.push([key, tk, value, raw]);
  }
  let layer: Layer;
  try {
    layer = new cls(args);
  } catch (e) {
    throw new KerasConfigError(`${where}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const back = layer.getConfig() as Dict;
  for (const [key, tk, value, raw] of check) {
    if (Object.hasOwn(back, tk) ? sameValue(back[tk], value) : sameValue(raw, defaults[key])) continue;
    throw new KerasConfigError(
      `${where}: unsupported option ${key}=${formatJson(raw)} (TensorFlow.js's ${className} ` +
      `${Object.hasOwn(back, tk) ? `would use ${JSON.stringify(back[tk])}` : 'has no such option'})`);
  }
  return layer;
}

function objectToKeras(where: string, key: string, value: unknown, fallback: unknown): unknown {
  if (key.endsWith('_initializer')) return initializerToKeras(where, key, value);
  if (key.endsWith('_regularizer')) return regularizerToKeras(where, key, value);
  if (key.endsWith('_constraint')) return constraintToKeras(where, key, value);
  if (key === 'activation') return activationToKeras(where, String(value ?? 'linear'));
  if (key === 'data_format') {
    const entry = Object.entries(DATA_FORMATS).find(([, v]) => v === value);
    return entry?.[0] ?? 'channels_last';
  }
  // Keras writes 1-D sizes as lists.
  if (Array.isArray(fallback) && typeof value === 'number') return [value];
  return value;
}

/** The Keras config keys of a tfjs-layers layer (the class's base keys are added by the caller). */
export function genericToKeras(layer: Layer, where: string): Dict {
  const className = layer.getClassName();
  const defaults = own(KERAS_LAYER_DEFAULTS, className);
  if (defaults == null) throw new KerasConfigError(`${where}: layer class ${className} cannot be saved in Keras format`);
  const c = layer.getConfig() as Dict;
  const out: Dict = {};
  for (const [key, fallback] of Object.entries(defaults)) {
    const tk = tfKey(className, key);
    if (!Object.hasOwn(c, tk)) {
      if (fallback != null && typeof fallback === 'object' && !Array.isArray(fallback)) {
        throw new KerasConfigError(`${where}: ${key} has no value to write`);
      }
      out[key] = fallback;
      continue;
    }
    out[key] = objectToKeras(where, key, c[tk], fallback);
  }
  return out;
}
