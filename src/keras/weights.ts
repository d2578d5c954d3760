/**
 * The Keras 3 HDF5 weights layout of a tfjs model, and loading/saving weights by it.
 *
 * Keras stores each layer of `model.layers` under `/layers/<snake_case Python class name>` (`_1`,
 * `_2`, … for repeats, in layer order), its own variables as `vars/0`, `vars/1`, … in creation order,
 * and sub-layers under their Python attribute names (GroupedQueryAttention: `_query_dense`,
 * `_key_dense`, `_gate_dense`, `_value_dense`, `_output_dense`, `_softmax`, `_dropout_layer`). Every
 * `vars` group carries a `name` attribute (layer, sub-layer or model name).
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { formatShape } from '../errors.js';
import { KerasConfigError, KerasWeightsError } from './errors.js';
import { isNumericDtype, type H5Contents, type H5DatasetInfo, type H5DatasetSpec, type H5GroupSpec } from './h5.js';
import { KerasNotEqual } from './keras_layers.js';
import { kerasLayerOrder } from './layer_order.js';
import { toSnakeCase } from './objects.js';

type Layer = tfl.LayersModel['layers'][number];
type LayerVariable = Layer['weights'][number];

/**
 * One weight of the model and where Keras stores it (an entry of {@link KerasWeightLayout}).
 *
 * @example
 * ```ts
 * import '@tensorflow/tfjs-backend-cpu';
 * import { kerasWeightPaths, loadKerasModel } from 'grouped-query-attention/keras';
 *
 * const model = await loadKerasModel('test/data/fixtures/gqa_layer_v36.keras');
 * const [first] = kerasWeightPaths(model);
 * console.log(first);   // the HDF5 path of query/kernel, its Keras name and shape
 * ```
 */
export interface KerasWeightEntry {
  /** HDF5 dataset path, e.g. `/layers/grouped_query_attention/_query_dense/vars/0`. */
  path: string;
  /** Keras's weight path, e.g. `gqa/query/kernel`. */
  name: string;
  shape: number[];
  variable: LayerVariable;
}

/**
 * The groups and weights of a model's Keras weights file.
 *
 * @example
 * ```ts
 * import '@tensorflow/tfjs-backend-cpu';
 * import { kerasWeightPaths, loadKerasModel } from 'grouped-query-attention/keras';
 *
 * const model = await loadKerasModel('test/data/fixtures/tiny_decoder_v36.keras');
 * for (const w of kerasWeightPaths(model)) console.log(w);
 * ```
 */
export interface KerasWeightLayout {
  groups: H5GroupSpec[];
  weights: KerasWeightEntry[];
}

/** The Python class name Keras uses for a tfjs layer class (for the group name). */
function kerasClassName(layer: Layer): string {
  const cls = layer.getClassName();
  if (cls === 'GroupQueryAttention' || cls === 'GroupedQueryAttention') return 'GroupedQueryAttention';
  if (cls === 'KerasRmsLayerNormalization') return 'LayerNormalization';
  if (cls === 'KerasGlobalAveragePooling1D') return 'GlobalAveragePooling1D';
  return cls;
}

/** GroupedQueryAttention's sub-layers: weight prefix → (attribute, sub-layer name). */
const GQA_SUBLAYERS: Array<[string, string, string]> = [
  ['query', '_query_dense', 'query'],
  ['key', '_key_dense', 'key'],
  ['gate', '_gate_dense', 'gate'],
  ['value', '_value_dense', 'value'],
  ['attention_output', '_output_dense', 'attention_output'],
];

function isGqa(layer: Layer): boolean {
  return kerasClassName(layer) === 'GroupedQueryAttention';
}

/** Short weight name: 'gqa/query/kernel' → 'query/kernel' relative to its layer. */
function relativeName(layer: Layer, variable: LayerVariable): string {
  const full = variable.originalName ?? variable.name;
  const prefix = `${layer.name}/`;
  const at = full.lastIndexOf(prefix);
  return at >= 0 ? full.slice(at + prefix.length) : full;
}

/**
 * The Keras HDF5 layout of a model: every group (with its `name` attribute) and every weight with
 * its dataset path, in Keras's `get_weights` order.
 */
export function kerasWeightLayout(model: tfl.LayersModel): KerasWeightLayout {
  const groups: H5GroupSpec[] = [{ path: '/layers' }, { path: '/vars', attrs: { name: model.name } }];
  const weights: KerasWeightEntry[] = [];
  const used = new Map<string, number>();
  // Keras's layer order, not tfjs's: they differ when a layer is called with keyword tensors.
  for (const layer of kerasLayerOrder(model)) {
    // Op layers (keras.ops calls) are not in Keras's `model.layers` and have no group.
    if (layer instanceof KerasNotEqual) continue;
    const snake = toSnakeCase(kerasClassName(layer));
    const count = used.get(snake);
    used.set(snake, count == null ? 0 : count + 1);
    const root = `/layers/${count == null ? snake : `${snake}_${count + 1}`}`;
    groups.push({ path: root }, { path: `${root}/vars`, attrs: { name: layer.name } });
    const add = (path: string, variable: LayerVariable) => {
      weights.push({ path, name: `${layer.name}/${relativeName(layer, variable)}`, shape: variable.shape as number[], variable });
    };
    if (isGqa(layer)) {
      const byName = new Map(layer.weights.map((v) => [relativeName(layer, v), v]));
      const matched = new Set<LayerVariable>();
      const useGate = (layer as unknown as { useGate?: boolean }).useGate === true;
      for (const [prefix, attr, subName] of GQA_SUBLAYERS) {
        if (prefix === 'gate' && !useGate) continue;
        groups.push({ path: `${root}/${attr}` }, { path: `${root}/${attr}/vars`, attrs: { name: subName } });
        ['kernel', 'bias'].forEach((kind, i) => {
          const v = byName.get(`${prefix}/${kind}`);
          if (v == null) return;
          matched.add(v);
          add(`${root}/${attr}/vars/${i}`, v);
        });
      }
      groups.push(
        { path: `${root}/_softmax` }, { path: `${root}/_softmax/vars`, attrs: { name: 'softmax' } },
        { path: `${root}/_dropout_layer` }, { path: `${root}/_dropout_layer/vars`, attrs: { name: 'dropout' } });
      const extra = layer.weights.find((v) => !matched.has(v));
      if (extra != null) {
        throw new KerasConfigError(
          `Layer '${layer.name}' (GroupedQueryAttention): weight '${extra.originalName}' has no Keras counterpart`);
      }
    } else {
      // Keras: trainable then non-trainable variables in creation order, as tfjs's `weights`.
      layer.weights.forEach((v, i) => add(`${root}/vars/${i}`, v));
    }
  }
  return { groups, weights };
}

/** A weight's new value, checked and ready to assign. */
interface Planned {
  entry: KerasWeightEntry;
  data: Float32Array;
}

/**
 * Checks a weights file against the model: every weight present with the expected shape, no extra
 * weight under `/layers`. Collects every problem into one error.
 */
function plan(model: tfl.LayersModel, contents: H5Contents, what: string): Planned[] {
  const layout = kerasWeightLayout(model);
  const problems: string[] = [];
  const planned: Planned[] = [];
  const consumed = new Set<string>();
  for (const entry of layout.weights) {
    const ds = contents.datasets.get(entry.path);
    consumed.add(entry.path);
    if (ds == null) {
      problems.push(`${entry.path} (${entry.name}): missing; expected shape ${formatShape(entry.shape)}`);
      continue;
    }
    const same = ds.shape.length === entry.shape.length && ds.shape.every((d, i) => d === entry.shape[i]);
    if (!same) {
      problems.push(
        `${entry.path} (${entry.name}): expected shape ${formatShape(entry.shape)}, received ${formatShape(ds.shape)}`);
      continue;
    }
    if (!isNumericDtype(ds.dtype)) {
      problems.push(`${entry.path} (${entry.name}): not a numeric dataset (dtype ${ds.dtype})`);
      continue;
    }
    if (entry.variable.dtype !== 'float32' && entry.variable.dtype !== 'int32') {
      problems.push(`${entry.path} (${entry.name}): cannot load into a ${entry.variable.dtype} variable`);
      continue;
    }
    try {
      entry.variable.read();
    } catch (e) {
      problems.push(`${entry.path} (${entry.name}): the model's variable is not usable (${e instanceof Error ? e.message : String(e)})`);
      continue;
    }
    if (ds.data == null) {
      problems.push(`${entry.path} (${entry.name}): its data was not read`);
      continue;
    }
    planned.push({ entry, data: ds.data });
  }
  const layerGroups = new Set(layout.groups.map((g) => g.path));
  for (const path of contents.datasets.keys()) {
    if (!path.startsWith('/layers/') || consumed.has(path)) continue;
    // Only datasets of a `vars` group are Keras variables (e.g. a seed generator's state is elsewhere).
    const parent = path.slice(0, path.lastIndexOf('/'));
    if (!parent.endsWith('/vars')) continue;
    problems.push(layerGroups.has(parent)
      ? `${path}: unexpected weight (the model's layer there has fewer weights)`
      : `${path}: unexpected weight (the model has no layer stored at ${parent.slice(0, -'/vars'.length)})`);
  }
  if (problems.length > 0) {
    throw new KerasWeightsError(
      `${what}: the weights do not fit the model '${model.name}', nothing was loaded:\n  ${problems.join('\n  ')}`);
  }
  return planned;
}

/**
 * Which datasets of a weights file are worth reading for this model: those at one of its weight
 * paths with the expected shape (checked from the file's metadata, before any data is read).
 */
export function datasetSelector(model: tfl.LayersModel): (info: H5DatasetInfo) => boolean {
  const shapes = new Map(kerasWeightLayout(model).weights.map((w) => [w.path, w.shape]));
  return ({ path, shape, dtype }) => {
    const expected = shapes.get(path);
    return expected != null && isNumericDtype(dtype) && expected.length === shape.length &&
      expected.every((d, i) => d === shape[i]);
  };
}

/**
 * Loads the weights of an HDF5 file read by {@link readH5} into a model: everything is checked
 * first, then every variable is assigned (as Keras assigns, without applying constraints).
 */
export function assignWeights(model: tfl.LayersModel, contents: H5Contents, what: string): void {
  const planned = plan(model, contents, what);
  for (const { entry, data } of planned) {
    const variable = entry.variable.read() as tf.Variable;
    const value = tf.tensor(data, entry.shape, 'float32');
    const typed = variable.dtype === 'float32' ? value : tf.cast(value, variable.dtype);
    // The prototype's assign: no constraint wrapper, like Keras's load (and LayerVariable.write's).
    tf.Variable.prototype.assign.call(variable, typed);
    if (typed !== value) typed.dispose();
    value.dispose();
  }
}

/** Reads a model's weights into the datasets of its Keras weights file. */
export function collectWeights(model: tfl.LayersModel): { groups: H5GroupSpec[]; datasets: H5DatasetSpec[] } {
  const layout = kerasWeightLayout(model);
  const datasets = layout.weights.map((w) => {
    const data = w.variable.read().dataSync();
    return {
      path: w.path,
      shape: w.shape,
      data: data instanceof Float32Array ? new Float32Array(data) : Float32Array.from(data as ArrayLike<number>),
    };
  });
  return { groups: layout.groups, datasets };
}
