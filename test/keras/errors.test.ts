/**
 * Errors of the Keras importer: truncated, corrupted and foreign files, unsupported classes and
 * options, weights of the wrong shape. Loading is all or nothing and leaks no tensor.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { strFromU8, strToU8, unzipSync, zipSync } from 'fflate';
import { beforeAll, describe, expect, test } from 'vitest';
import { GroupedQueryAttention } from '../../src/index.js';
import {
  KerasConfigError,
  KerasFileError,
  KerasWeightsError,
  loadKerasModel,
  loadKerasWeights,
  saveKerasWeights,
} from '../../src/keras/index.js';
import { readH5, writeH5 } from '../../src/keras/h5.js';
import { useBackend } from '../helpers/backends.js';
import { FIXTURE_DIR } from './fixtures.js';

const GQA_KERAS = readFileSync(join(FIXTURE_DIR, 'gqa_layer_v36.keras'));
const GQA_H5 = readFileSync(join(FIXTURE_DIR, 'gqa_layer_v36.weights.h5'));
const DECODER_KERAS = readFileSync(join(FIXTURE_DIR, 'tiny_decoder_v36.keras'));

function snapshot(model: tfl.LayersModel): number[][] {
  return model.getWeights().map((w) => Array.from(w.dataSync()));
}

/** The archive with config.json rewritten. */
// biome-ignore lint/suspicious/noExplicitAny: tests edit Keras's config JSON freely
function withConfig(archive: Uint8Array, edit: (config: any) => void): Uint8Array {
  const entries = unzipSync(archive);
  const config = JSON.parse(strFromU8(entries['config.json']!));
  edit(config);
  entries['config.json'] = strToU8(JSON.stringify(config));
  return zipSync(entries, { level: 0 });
}

// biome-ignore lint/suspicious/noExplicitAny: tests edit Keras's config JSON freely
function layerEntry(config: any, name: string): any {
  // biome-ignore lint/suspicious/noExplicitAny: as above
  return config.config.layers.find((l: any) => l.name === name);
}

/** A GQA model like the fixture's, with other dimensions when asked. */
function gqaModel(headDim = 4): tfl.LayersModel {
  const query = tfl.input({ shape: [5, 8], name: 'query' });
  const value = tfl.input({ shape: [7, 8], name: 'value' });
  const gqa = new GroupedQueryAttention({ headDim, numQueryHeads: 4, numKeyValueHeads: 2, name: 'grouped_query_attention' });
  return tfl.model({ inputs: [query, value], outputs: gqa.apply(query, { value }) as tfl.SymbolicTensor, name: 'm' });
}

async function expectRejects(p: Promise<unknown>, cls: new (...args: never[]) => Error, ...patterns: RegExp[]): Promise<Error> {
  let error: unknown = null;
  try {
    await p;
  } catch (e) {
    error = e;
  }
  expect(error, 'expected an error').toBeInstanceOf(cls);
  for (const pattern of patterns) expect((error as Error).message).toMatch(pattern);
  return error as Error;
}

describe('Keras file errors', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  test('a truncated .keras archive says so, and allocates nothing', async () => {
    const before = tf.memory().numTensors;
    await expectRejects(loadKerasModel(GQA_KERAS.subarray(0, GQA_KERAS.length >> 1)), KerasFileError,
      /truncated or corrupted zip/);
    await expectRejects(loadKerasModel(GQA_KERAS.subarray(0, GQA_KERAS.length - 30)), KerasFileError, /truncated|corrupted/);
    expect(tf.memory().numTensors).toBe(before);
  });

  test('a truncated weights file says so and leaves the model unchanged', async () => {
    const model = gqaModel();
    const weights = snapshot(model);
    await expectRejects(loadKerasWeights(model, GQA_H5.subarray(0, 5000)), KerasFileError,
      /truncated HDF5 file/, /29176 bytes, received 5000/);
    await expectRejects(loadKerasWeights(model, GQA_H5.subarray(0, 40)), KerasFileError, /truncated/);
    expect(snapshot(model)).toEqual(weights);
    model.dispose();
  });

  test('a .keras archive whose weights are truncated says so', async () => {
    const entries = unzipSync(GQA_KERAS);
    entries['model.weights.h5'] = entries['model.weights.h5']!.subarray(0, 10000);
    await expectRejects(loadKerasModel(zipSync(entries, { level: 0 })), KerasFileError,
      /model\.weights\.h5: truncated HDF5 file/);
  });

  test('corrupted HDF5 bytes and foreign files say what they are', async () => {
    const model = gqaModel();
    const weights = snapshot(model);
    const corrupted = new Uint8Array(GQA_H5);
    corrupted.fill(0xab, 96, 2000); // the root group's structures
    await expectRejects(loadKerasWeights(model, corrupted), KerasFileError, /HDF5|truncated|corrupted/);
    await expectRejects(loadKerasWeights(model, strToU8('{"not": "hdf5"}')), KerasFileError,
      /neither an HDF5 \.weights\.h5 file nor a \.keras zip archive/);
    await expectRejects(loadKerasModel(strToU8('hello')), KerasFileError, /not a \.keras archive \(not a zip file\)/);
    await expectRejects(loadKerasModel(GQA_H5), KerasFileError, /this is an HDF5 file, use loadKerasWeights/);
    await expectRejects(loadKerasModel(zipSync({ 'a.txt': strToU8('x') })), KerasFileError, /has no config\.json/);
    await expectRejects(loadKerasModel('/nonexistent/model.keras'), KerasFileError, /cannot read the file/);
    expect(snapshot(model)).toEqual(weights);
    model.dispose();
  });

  test('an unknown layer class names the layer and the class; nothing is allocated', async () => {
    const before = tf.memory().numTensors;
    const archive = withConfig(DECODER_KERAS, (c) => {
      layerEntry(c, 'layer_norm').class_name = 'RMSNormalization';
    });
    await expectRejects(loadKerasModel(archive), KerasConfigError,
      /Layer 'layer_norm' \(RMSNormalization\): unsupported layer class RMSNormalization/);
    const custom = withConfig(GQA_KERAS, (c) => {
      layerEntry(c, 'grouped_query_attention').module = 'my_project.layers';
    });
    await expectRejects(loadKerasModel(custom), KerasConfigError, /custom layer class from module 'my_project\.layers'/);
    expect(tf.memory().numTensors).toBe(before);
  });

  test('an unsupported option names the layer and the option', async () => {
    const before = tf.memory().numTensors;
    // biome-ignore lint/suspicious/noExplicitAny: tests edit Keras's config JSON freely
    const cases: Array<[(c: any) => void, RegExp]> = [
      [(c) => { layerEntry(c, 'layer_norm').config.beta_constraint = 'non_neg'; }, /Layer 'layer_norm' \(LayerNormalization\): unsupported option beta_constraint="non_neg"/],
      [(c) => { layerEntry(c, 'logits').config.activation = 'hard_sigmoid'; }, /Layer 'logits' \(Dense\): unsupported activation 'hard_sigmoid'/],
      [(c) => { layerEntry(c, 'gqa').config.flux_capacitor = 3; }, /Layer 'gqa' \(GroupQueryAttention\): unsupported option flux_capacitor=3/],
      [(c) => { layerEntry(c, 'gqa').config.dtype.config.name = 'mixed_float16'; }, /Layer 'gqa' .*unsupported dtype policy "mixed_float16"/],
      [(c) => { layerEntry(c, 'gqa').config.kernel_initializer.class_name = 'STFT'; }, /Layer 'gqa' .*unsupported kernel_initializer class 'STFT'/],
      [(c) => { layerEntry(c, 'gqa').config.num_key_value_heads = 3; }, /Layer 'gqa' .*divisible/],
      [(c) => { layerEntry(c, 'gqa').inbound_nodes[0].kwargs.use_causal_mask = 'yes'; }, /Layer 'gqa' .*unsupported call argument use_causal_mask="yes"/],
      [(c) => { layerEntry(c, 'embedding').config.sparse = true; }, /Layer 'embedding' \(Embedding\): unsupported option sparse=true/],
      [(c) => { c.class_name = 'Sequential'; }, /unsupported model class Sequential/],
    ];
    for (const [edit, pattern] of cases) {
      await expectRejects(loadKerasModel(withConfig(DECODER_KERAS, edit)), KerasConfigError, pattern);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  test('an option holding a huge value is echoed capped (a million-element list, a long string)', async () => {
    // biome-ignore lint/suspicious/noExplicitAny: tests edit Keras's config JSON freely
    const cases: Array<[(c: any) => void, RegExp]> = [
      [(c) => { layerEntry(c, 'embedding').config.sparse = new Array(1e6).fill(1); }, /unsupported option sparse=\[1,1,1,1,1,1,1,1,\.\.\.\] \(1000000 elements\)/],
      [(c) => { layerEntry(c, 'layer_norm').config.beta_constraint = 'x'.repeat(1e5); }, /unsupported option beta_constraint="x{80}\.\.\." \(100000 characters\)/],
      [(c) => { layerEntry(c, 'embedding').config.output_dim = new Array(1e6).fill('y'); }, /option output_dim must be a number; received \["y","y","y","y","y","y","y","y",\.\.\.\] \(1000000 elements\)/],
    ];
    for (const [edit, pattern] of cases) {
      const error = await expectRejects(loadKerasModel(withConfig(DECODER_KERAS, edit)), KerasConfigError, pattern);
      expect(error.message.length).toBeLessThan(400);
    }
  });

  test('a weight of the wrong shape names its path, the expected and the received shape; nothing changes', async () => {
    const model = gqaModel(2);
    const weights = snapshot(model);
    const before = tf.memory().numTensors;
    const error = await expectRejects(loadKerasWeights(model, GQA_H5), KerasWeightsError,
      /\/layers\/grouped_query_attention\/_query_dense\/vars\/0 \(grouped_query_attention\/query\/kernel\): expected shape \[8,4,2\], received \[8,4,4\]/,
      /nothing was loaded/);
    expect(error.message).toMatch(/_output_dense\/vars\/0 .*expected shape \[4,2,8\], received \[4,4,8\]/);
    expect(snapshot(model)).toEqual(weights);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  test('all or nothing: only the last weight is wrong, and no weight is loaded', async () => {
    const contents = await readH5(new Uint8Array(GQA_H5), 'fixture');
    const datasets = [...contents.datasets.values()].map((d) => ({ path: d.path, shape: d.shape, data: d.data! }));
    const last = datasets.find((d) => d.path.endsWith('_output_dense/vars/1'))!;
    last.shape = [9];
    last.data = new Float32Array(9);
    const groups = [...contents.groups.entries()].filter(([p]) => p !== '/').map(([path, attrs]) => ({ path, attrs }));
    const bad = await writeH5(groups, datasets);
    const model = await loadKerasModel(GQA_KERAS);
    const weights = snapshot(model);
    await expectRejects(loadKerasWeights(model, bad), KerasWeightsError,
      /_output_dense\/vars\/1 \(grouped_query_attention\/attention_output\/bias\): expected shape \[8\], received \[9\]/);
    expect(snapshot(model)).toEqual(weights);
    model.dispose();
  });

  test('missing and extra weights are reported; nothing changes', async () => {
    const contents = await readH5(new Uint8Array(GQA_H5), 'fixture');
    const groups = [...contents.groups.entries()].filter(([p]) => p !== '/').map(([path, attrs]) => ({ path, attrs }));
    const datasets = [...contents.datasets.values()]
      .filter((d) => !d.path.endsWith('_key_dense/vars/1'))
      .map((d) => ({ path: d.path, shape: d.shape, data: d.data! }));
    datasets.push({ path: '/layers/dense/vars/0', shape: [2, 2], data: new Float32Array(4) });
    groups.push({ path: '/layers/dense/vars', attrs: { name: 'dense' } });
    const model = gqaModel();
    const weights = snapshot(model);
    await expectRejects(loadKerasWeights(model, await writeH5(groups, datasets)), KerasWeightsError,
      /_key_dense\/vars\/1 \(grouped_query_attention\/key\/bias\): missing; expected shape \[2,4\]/,
      /\/layers\/dense\/vars\/0: unexpected weight \(the model has no layer stored at \/layers\/dense\)/);
    expect(snapshot(model)).toEqual(weights);
    model.dispose();
  });

  test('load and dispose leave tf.memory().numTensors unchanged, also after a failed load', async () => {
    const before = tf.memory().numTensors;
    for (const bytes of [GQA_KERAS, DECODER_KERAS]) {
      const model = await loadKerasModel(bytes);
      await loadKerasWeights(model, bytes);
      await saveKerasWeights(model);
      model.dispose();
    }
    const model = gqaModel(2);
    const allocated = tf.memory().numTensors;
    await expect(loadKerasWeights(model, GQA_H5)).rejects.toThrow(KerasWeightsError);
    expect(tf.memory().numTensors).toBe(allocated);
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  test('loading weights does not apply constraints (Keras assigns the saved values)', async () => {
    const query = tfl.input({ shape: [5, 8], name: 'query' });
    const value = tfl.input({ shape: [7, 8], name: 'value' });
    const gqa = new GroupedQueryAttention({
      headDim: 4, numQueryHeads: 4, numKeyValueHeads: 2, name: 'grouped_query_attention',
      kernelConstraint: tfl.constraints.maxNorm({ maxValue: 0.01 }),
    });
    const model = tfl.model({ inputs: [query, value], outputs: gqa.apply(query, { value }) as tfl.SymbolicTensor });
    await loadKerasWeights(model, GQA_H5);
    const reference = await loadKerasModel(GQA_KERAS);
    expect(snapshot(model)).toEqual(snapshot(reference));
    model.dispose();
    reference.dispose();
  });
});

describe('Keras config variants', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  test('the decoder in the later Keras key set (bare triples, no null masks, input_axes) gives the same output', async () => {
    const headStyle = withConfig(DECODER_KERAS, (c) => {
      c.config.input_layers = c.config.input_layers[0];
      c.config.output_layers = c.config.output_layers[0];
      c.compile_config = {};
      for (const layer of c.config.layers) {
        if (layer.class_name === 'InputLayer') Object.assign(layer.config, { ragged: false, optional: false });
        for (const node of layer.inbound_nodes) {
          for (const k of Object.keys(node.kwargs)) if (node.kwargs[k] === null) delete node.kwargs[k];
        }
        if (layer.class_name === 'GroupQueryAttention') {
          Object.assign(layer.config, { use_gate: false, sliding_window: null, seed: null });
          Object.assign(layer.config.kernel_initializer.config, { input_axes: null, output_axes: null });
        }
      }
    });
    const a = await loadKerasModel(DECODER_KERAS);
    const b = await loadKerasModel(headStyle);
    const tokens = tf.tensor2d([[22, 8, 38, 30, 3, 2, 1, 17, 9, 0, 16, 28]], [1, 12], 'int32');
    const ya = a.predict(tokens) as tf.Tensor;
    const yb = b.predict(tokens) as tf.Tensor;
    expect(Array.from(yb.dataSync())).toEqual(Array.from(ya.dataSync()));
    tf.dispose([tokens, ya, yb]);
    a.dispose();
    b.dispose();
  });

  test('Embedding(mask_zero=True) masks reach the attention as Keras\'s query and value masks', async () => {
    const masked = withConfig(DECODER_KERAS, (c) => {
      layerEntry(c, 'embedding').config.mask_zero = true;
    });
    const before = tf.memory().numTensors;
    const model = await loadKerasModel(masked);
    const tokens = tf.tensor2d([[5, 7, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0], [5, 7, 9, 11, 0, 0, 0, 0, 0, 0, 0, 0]], [2, 12], 'int32');
    const y = model.predict(tokens) as tf.Tensor;
    // The same layers called eagerly with the masks given explicitly.
    const emb = model.getLayer('embedding').apply(tokens) as tf.Tensor;
    const mask = tf.notEqual(tokens, 0);
    const attn = model.getLayer('gqa').apply(emb, { value: emb, queryMask: mask, valueMask: mask, useCausalMask: true }) as tf.Tensor;
    const x = tf.add(emb, attn);
    const ln = model.getLayer('layer_norm').apply(x) as tf.Tensor;
    const z = model.getLayer('logits').apply(ln) as tf.Tensor;
    expect(Array.from(y.dataSync())).toEqual(Array.from(z.dataSync()));
    // Eager layer calls leave Keras masks on their outputs (tfjs does not free them with the tensor).
    const carried = [emb, attn, x, ln, z].map((t) => t.kerasMask).filter((m): m is tf.Tensor => m != null);
    tf.dispose([tokens, y, emb, mask, attn, x, ln, z, ...carried]);
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
