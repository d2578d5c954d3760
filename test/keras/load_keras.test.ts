/**
 * Keras 3 files written by real Keras (3.6 and 3.16) load into tfjs and reproduce Keras's outputs;
 * weights round-trip through saveKerasWeights / saveKerasModel exactly. cpu and wasm.
 */
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { strFromU8, unzipSync } from 'fflate';
import { beforeAll, describe, expect, test } from 'vitest';
import { GroupedQueryAttention } from '../../src/index.js';
import {
  kerasModelConfig,
  kerasWeightPaths,
  loadKerasModel,
  loadKerasWeights,
  saveKerasModel,
  saveKerasWeights,
} from '../../src/keras/index.js';
import { readH5 } from '../../src/keras/h5.js';
import { kerasWeightLayout } from '../../src/keras/weights.js';
import { BACKENDS, useBackend } from '../helpers/backends.js';
import { expectClose } from '../helpers/close.js';
import { fixtureInputs, fixtureStems, predict, readFixture } from './fixtures.js';

const STEMS = fixtureStems();

function weightValues(model: tfl.LayersModel): Float32Array[] {
  return model.getWeights().map((w) => w.dataSync() as Float32Array);
}

describe.each(BACKENDS)('Keras fixtures on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });

  test.each(STEMS)('$stem: loadKerasModel reproduces Keras\'s output', async ({ stem, dir }) => {
    const fx = readFixture(dir, stem);
    const before = tf.memory().numTensors;
    // Path on one backend, bytes on the other: both sources.
    const source = backend === 'cpu' ? join(dir, `${stem}.keras`) : new Uint8Array(readFileSync(join(dir, `${stem}.keras`)));
    const model = await loadKerasModel(source);
    expect(model.name).toBe(fx.model.name);
    expect(model.inputNames).toEqual(fx.model.inputs.map((i) => i.name));
    // Weights: Keras's paths, get_weights order and exact values.
    const paths = kerasWeightPaths(model);
    expect(paths.map((p) => [p.path, p.name, p.shape])).toEqual(
      fx.h5_layout.map((l) => [l.h5_dataset, l.weight_path, l.shape]));
    // In Keras's get_weights order (not tfjs's getWeights order, which differs for keyword calls).
    const values = kerasWeightLayout(model).weights.map((w) => w.variable.read().dataSync() as Float32Array);
    fx.weights.forEach((w, i) => {
      expect(Array.from(values[i]!), w.path).toEqual(w.data);
    });
    const inputs = fixtureInputs(fx, model);
    const y = predict(model, inputs);
    expect(y.shape).toEqual(fx.expected.output.shape);
    expectClose(y.dataSync(), fx.expected.output.data as number[], `${stem} output on ${backend}`);
    // The eager call gives the same numbers.
    const eager = model.apply(inputs.length === 1 ? inputs[0]! : inputs) as tf.Tensor;
    expectClose(eager.dataSync(), fx.expected.output.data as number[], `${stem} eager output on ${backend}`);
    tf.dispose([y, eager, ...inputs]);
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  test.each(STEMS.filter(({ stem, dir }) => existsSync(join(dir, `${stem}.weights.h5`))))(
    '$stem: loadKerasWeights reads the .weights.h5 file into a model', async ({ stem, dir }) => {
      const fx = readFixture(dir, stem);
      const model = await loadKerasModel(join(dir, `${stem}.keras`));
      // Scramble, then load the bare weights file.
      model.setWeights(model.getWeights().map((w) => tf.zerosLike(w)));
      await loadKerasWeights(model, join(dir, `${stem}.weights.h5`));
      const inputs = fixtureInputs(fx, model);
      const y = predict(model, inputs);
      expectClose(y.dataSync(), fx.expected.output.data as number[], `${stem} after loadKerasWeights`);
      tf.dispose([y, ...inputs]);
      model.dispose();
    });
});

describe('round trips', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  test.each(STEMS)('$stem: saveKerasWeights writes Keras\'s HDF5 layout and round-trips exactly', async ({ stem, dir }) => {
    const fx = readFixture(dir, stem);
    const model = await loadKerasModel(join(dir, `${stem}.keras`));
    const bytes = await saveKerasWeights(model);
    // Same datasets, shapes and `name` attributes as the file Keras wrote.
    const ours = await readH5(bytes, 'ours');
    const keras = await readH5(unzipSync(readFileSync(join(dir, `${stem}.keras`)))['model.weights.h5']!, 'keras');
    // The model's weights; an optimizer's variables (a file saved after fit) are not the model's.
    const modelPaths = (paths: Iterable<string>) => [...paths].filter((p) => !/^\/optimizer(\/|$)/.test(p)).sort();
    expect([...ours.datasets.keys()].sort()).toEqual(modelPaths(keras.datasets.keys()));
    for (const path of modelPaths(keras.datasets.keys())) {
      const ds = keras.datasets.get(path)!;
      expect(ours.datasets.get(path)!.shape, path).toEqual(ds.shape);
      expect(Array.from(ours.datasets.get(path)!.data!), path).toEqual(Array.from(ds.data!));
    }
    expect([...ours.groups.keys()].sort()).toEqual(modelPaths(keras.groups.keys()));
    for (const path of modelPaths(keras.groups.keys())) {
      const attrs = keras.groups.get(path);
      if (/_softmax|_dropout_layer/.test(path)) continue; // process-global counters in Keras
      expect(ours.groups.get(path), path).toEqual(attrs);
    }
    for (const layout of fx.h5_layout) {
      const group = layout.h5_dataset.slice(0, layout.h5_dataset.lastIndexOf('/'));
      expect(ours.groups.get(group)?.['name']).toBe(layout.group_attr_name);
    }
    // Into a second copy of the model with other weights: identical afterwards.
    const other = await loadKerasModel(join(dir, `${stem}.keras`));
    other.setWeights(other.getWeights().map((w) => tf.onesLike(w)));
    await loadKerasWeights(other, bytes);
    expect(weightValues(other).map((v) => Array.from(v))).toEqual(weightValues(model).map((v) => Array.from(v)));
    model.dispose();
    other.dispose();
  });

  test.each(STEMS)('$stem: saveKerasModel writes Keras\'s config and loads back with the same outputs', async ({ stem, dir }) => {
    const fx = readFixture(dir, stem);
    const original = readFileSync(join(dir, `${stem}.keras`));
    const model = await loadKerasModel(original);
    const archive = await saveKerasModel(model);
    const entries = unzipSync(archive);
    expect(Object.keys(entries)).toEqual(['metadata.json', 'config.json', 'model.weights.h5']);
    expect(JSON.parse(strFromU8(entries['metadata.json']!))).toHaveProperty('keras_version');
    // Our config.json equals Keras's, apart from what Keras itself varies between versions.
    const normalize = (value: unknown): unknown => {
      if (Array.isArray(value)) return value.map(normalize);
      if (value == null || typeof value !== 'object') return value;
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        if (k === 'shared_object_id' || k === 'compile_config' || k === 'ragged' || k === 'optional') continue;
        if (v === null && /_mask$/.test(k)) continue; // Keras 3.6 records absent masks as null
        if (v === null && k === 'quantization_config') continue; // later Keras writes the default
        if (k === 'config' && v != null && typeof v === 'object' && 'input_axes' in v) {
          const { input_axes: _a, output_axes: _b, ...rest } = v as Record<string, unknown>;
          out[k] = normalize(rest);
          continue;
        }
        if (['use_gate', 'sliding_window', 'seed'].includes(k) && (v === null || v === false) && 'head_dim' in value) continue;
        out[k] = normalize(v);
      }
      return out;
    };
    const kerasConfig = JSON.parse(strFromU8(unzipSync(original)['config.json']!)) as {
      config: { input_layers: unknown; output_layers: unknown };
    };
    const asList = (x: unknown) => (Array.isArray(x) && typeof x[0] === 'string' ? [x] : x);
    kerasConfig.config.input_layers = asList(kerasConfig.config.input_layers);
    kerasConfig.config.output_layers = asList(kerasConfig.config.output_layers);
    expect(normalize(JSON.parse(strFromU8(entries['config.json']!)))).toEqual(normalize(kerasConfig));

    const reloaded = await loadKerasModel(archive);
    const inputs = fixtureInputs(fx, reloaded);
    const y = predict(reloaded, inputs);
    expectClose(y.dataSync(), fx.expected.output.data as number[], `${stem} after saveKerasModel`);
    expect(kerasModelConfig(reloaded)).toEqual(kerasModelConfig(model));
    tf.dispose([y, ...inputs]);
    model.dispose();
    reloaded.dispose();
  });

  test('a model built in TypeScript (gate, sliding window, key input, masks, scores) round-trips', async () => {
    const query = tfl.input({ shape: [5, 8], name: 'query' });
    const value = tfl.input({ shape: [7, 8], name: 'value' });
    const key = tfl.input({ shape: [7, 6], name: 'key' });
    const valueMask = tfl.input({ shape: [7], dtype: 'bool', name: 'value_mask' });
    const gqa = new GroupedQueryAttention({
      headDim: 4, numQueryHeads: 4, numKeyValueHeads: 2, useGate: true, slidingWindow: 3, seed: 7, name: 'gqa',
    });
    const [out, scores] = gqa.apply(query, {
      value, key, valueMask, useCausalMask: true, returnAttentionScores: true,
    }) as tfl.SymbolicTensor[];
    const dense = tfl.layers.dense({ units: 3, activation: 'relu', name: 'head' }).apply(out!) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: [query, value, key, valueMask], outputs: [dense, scores!], name: 'built_in_ts' });
    // biome-ignore lint/suspicious/noExplicitAny: the test reads Keras's config JSON freely
    const config = kerasModelConfig(model) as { config: { layers: Array<Record<string, any>> } };
    const gqaEntry = config.config.layers.find((l) => l['name'] === 'gqa')!;
    expect(gqaEntry['class_name']).toBe('GroupQueryAttention');
    expect(gqaEntry['config']).toMatchObject({ use_gate: true, sliding_window: 3, seed: 7 });
    expect(Object.keys(gqaEntry['inbound_nodes'][0].kwargs)).toEqual(
      ['key', 'value_mask', 'use_causal_mask', 'return_attention_scores']);
    expect(gqaEntry['build_config']).toEqual({
      shapes_dict: { query_shape: [null, 5, 8], value_shape: [null, 7, 8], key_shape: [null, 7, 6] },
    });
    expect(kerasWeightPaths(model).map((w) => w.path)).toContain('/layers/grouped_query_attention/_gate_dense/vars/0');

    const reloaded = await loadKerasModel(await saveKerasModel(model));
    const inputs = [
      tf.randomUniform([2, 5, 8], -1, 1, 'float32', 1), tf.randomUniform([2, 7, 8], -1, 1, 'float32', 2),
      tf.randomUniform([2, 7, 6], -1, 1, 'float32', 3), tf.tensor([[1, 1, 1, 0, 1, 1, 0], [1, 0, 1, 1, 1, 1, 1]], [2, 7], 'bool'),
    ];
    const a = model.predict(inputs) as tf.Tensor[];
    const b = reloaded.predict(inputs) as tf.Tensor[];
    expect(Array.from(b[0]!.dataSync())).toEqual(Array.from(a[0]!.dataSync()));
    expect(Array.from(b[1]!.dataSync())).toEqual(Array.from(a[1]!.dataSync()));
    tf.dispose([...a, ...b, ...inputs]);
    model.dispose();
    reloaded.dispose();
  });
});

describe('training state', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  test('a model saved after fit loads its weights and says that its optimizer state was not loaded', async () => {
    const dir = join(import.meta.dirname, '..', 'data', 'fixtures');
    const messages: string[] = [];
    const model = await loadKerasModel(join(dir, 'fit_adam_v36.keras'), { warn: (m) => messages.push(m) });
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatch(/its compile_config \(optimizer Adam, loss and metrics\) and \d+ optimizer variables were not loaded/);
    await loadKerasWeights(model, join(dir, 'fit_adam_v36.weights.h5'), { warn: (m) => messages.push(m) });
    expect(messages[1]).toMatch(/\d+ optimizer variables were not loaded/);
    model.dispose();
    const quiet: string[] = [];
    (await loadKerasModel(join(dir, 'gqa_layer_v36.keras'), { warn: (m) => quiet.push(m) })).dispose();
    expect(quiet).toEqual([]);
  });
});
