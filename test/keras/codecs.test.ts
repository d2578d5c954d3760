/**
 * The generic codec (tfjs-layers' own classes) and this package's Keras layers: configs written by
 * hand in Keras 3's format load or are refused with the option's name; what loads saves back to the
 * same keys; op layers that Keras records name their origin.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { strFromU8, strToU8, unzipSync, zipSync } from 'fflate';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, test } from 'vitest';
import { KerasConfigError, kerasModelConfig, loadKerasModel, saveKerasModel } from '../../src/keras/index.js';
import { modelFromKerasConfig } from '../../src/keras/from_keras.js';
import { KerasGlobalAveragePooling1D } from '../../src/keras/keras_layers.js';
import { useBackend } from '../helpers/backends.js';

const tensor = (layer: string, shape: Array<number | null>, dtype = 'float32') => ({
  class_name: '__keras_tensor__', config: { shape, dtype, keras_history: [layer, 0, 0] },
});

/** A Keras 3 functional config: input (None, 8, 4) → one layer. */
function oneLayer(className: string, config: Record<string, unknown>, module = 'keras.layers') {
  return {
    module: 'keras.src.models.functional', class_name: 'Functional', registered_name: 'Functional',
    config: {
      name: 'm', trainable: true,
      layers: [
        { module: 'keras.layers', class_name: 'InputLayer', config: { batch_shape: [null, 8, 4], dtype: 'float32', sparse: false, name: 'x' }, name: 'x', inbound_nodes: [] },
        { module, class_name: className, config: { name: 'l', trainable: true, dtype: 'float32', ...config }, name: 'l',
          inbound_nodes: [{ args: [tensor('x', [null, 8, 4])], kwargs: {} }] },
      ],
      input_layers: [['x', 0, 0]], output_layers: [['l', 0, 0]],
    },
  };
}

beforeAll(async () => {
  await useBackend('cpu');
});

describe('generic codec', () => {
  test.each([
    ['Conv1D', { filters: 3, kernel_size: [3], strides: [1], padding: 'same', data_format: 'channels_last', dilation_rate: [2], groups: 1, activation: 'relu', use_bias: true }],
    ['MaxPooling1D', { pool_size: [2], strides: [2], padding: 'valid', data_format: 'channels_last' }],
    ['AveragePooling1D', { pool_size: [2], strides: [1], padding: 'same', data_format: 'channels_last' }],
    ['GlobalMaxPooling1D', { data_format: 'channels_last', keepdims: false }],
    ['BatchNormalization', { axis: -1, momentum: 0.9, epsilon: 0.01, center: true, scale: true, synchronized: false }],
    ['Flatten', { data_format: 'channels_last' }],
    ['Reshape', { target_shape: [4, 8] }],
    ['Permute', { dims: [2, 1] }],
    ['Softmax', { axis: -1 }],
    ['LeakyReLU', { negative_slope: 0.25 }],
  ])('%s loads through tfjs-layers\' class and saves back to the same options', (className, config) => {
    const model = modelFromKerasConfig(oneLayer(className, config));
    const saved = kerasModelConfig(model) as { config: { layers: Array<{ class_name: string; config: Record<string, unknown> }> } };
    const entry = saved.config.layers[1]!;
    expect(entry.class_name).toBe(className);
    expect(entry.config).toMatchObject(config);
    model.dispose();
  });

  test.each([
    ['Conv1D', { filters: 3, kernel_size: [3], groups: 2 }, /Layer 'l' \(Conv1D\): unsupported option groups=2 \(TensorFlow.js's Conv1D has no such option\)/],
    ['GlobalMaxPooling1D', { keepdims: true }, /unsupported option keepdims=true/],
    ['BatchNormalization', { renorm: true }, /unsupported option renorm=true/],
    ['Conv1D', { filters: 3, kernel_size: [3], flux: 1 }, /unsupported option flux=1 \(not a Keras 3 Conv1D option\)/],
    ['ReLU', { threshold: 0.5 }, /Layer 'l' \(ReLU\): unsupported option threshold=0.5/],
  ])('%s with an option tfjs lacks is refused by name', (className, config, pattern) => {
    const before = tf.memory().numTensors;
    expect(() => modelFromKerasConfig(oneLayer(className, config))).toThrow(pattern);
    expect(() => modelFromKerasConfig(oneLayer(className, config))).toThrow(KerasConfigError);
    expect(tf.memory().numTensors).toBe(before);
  });

  test('an op layer Keras recorded names itself and where it comes from', () => {
    expect(() => modelFromKerasConfig(oneLayer('Equal', {}, 'keras.src.ops.numpy'))).toThrow(
      /Layer 'l' \(Equal\): unsupported op layer Equal from keras.src.ops.numpy: Keras saves a call of a keras.ops function .*mask_zero/);
  });
});

describe('layers of this package', () => {
  test('masked GlobalAveragePooling1D is the mean over unmasked steps; fully masked rows are NaN, as in Keras', () => {
    const layer = new KerasGlobalAveragePooling1D({});
    const x = tf.tensor3d([[[1, 2], [3, 4], [5, 6]], [[1, 1], [2, 2], [3, 3]]]);
    const mask = tf.tensor2d([[1, 0, 1], [0, 0, 0]], [2, 3], 'bool');
    const y = layer.apply([x, mask]) as tf.Tensor;
    expect(Array.from(y.dataSync())).toEqual([3, 4, NaN, NaN]);
    const plain = layer.apply(x) as tf.Tensor;
    expect(Array.from(plain.dataSync())).toEqual([3, 4, 2, 2]);
    tf.dispose([x, mask, y, plain]);
  });

  test('a model with NotEqual, RMS LayerNormalization and masked pooling round-trips through saveKerasModel', async () => {
    const tokens = tfl.input({ shape: [5], dtype: 'int32', name: 'tokens' });
    const config = {
      module: 'keras.src.models.functional', class_name: 'Functional',
      config: {
        name: 'm', trainable: true, input_layers: [['tokens', 0, 0]], output_layers: [['pool', 0, 0]],
        layers: [
          { module: 'keras.layers', class_name: 'InputLayer', config: { batch_shape: [null, 5], dtype: 'int32', sparse: false, name: 'tokens' }, name: 'tokens', inbound_nodes: [] },
          { module: 'keras.layers', class_name: 'Embedding', config: { name: 'embed', input_dim: 10, output_dim: 4 }, name: 'embed', inbound_nodes: [{ args: [tensor('tokens', [null, 5], 'int32')], kwargs: {} }] },
          { module: 'keras.layers', class_name: 'LayerNormalization', config: { name: 'ln', axis: [-1], rms_scaling: true, epsilon: 1e-3 }, name: 'ln', inbound_nodes: [{ args: [tensor('embed', [null, 5, 4])], kwargs: {} }] },
          { module: 'keras.src.ops.numpy', class_name: 'NotEqual', config: { name: 'not_equal' }, name: 'not_equal', inbound_nodes: [{ args: [tensor('tokens', [null, 5], 'int32'), 0], kwargs: {} }] },
          { module: 'keras.layers', class_name: 'GlobalAveragePooling1D', config: { name: 'pool', data_format: 'channels_last', keepdims: false }, name: 'pool', inbound_nodes: [{ args: [tensor('ln', [null, 5, 4])], kwargs: { mask: tensor('not_equal', [null, 5], 'bool') } }] },
        ],
      },
    };
    void tokens;
    const model = modelFromKerasConfig(config);
    const reloaded = await loadKerasModel(await saveKerasModel(model));
    const input = tf.tensor2d([[1, 2, 0, 3, 0], [0, 0, 4, 0, 0]], [2, 5], 'int32');
    const a = model.predict(input) as tf.Tensor;
    const b = reloaded.predict(input) as tf.Tensor;
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
    // Independent check: the masked mean of x * rsqrt(var(x) + eps) over the non-zero tokens.
    const emb = (model.getLayer('embed').getWeights()[0]!.arraySync() as number[][]);
    const row = (t: number) => {
      const x = emb[t]!;
      const mean = x.reduce((s, v) => s + v, 0) / x.length;
      const variance = x.reduce((s, v) => s + (v - mean) ** 2, 0) / x.length;
      return x.map((v) => v / Math.sqrt(variance + 1e-3));
    };
    const expected = [[1, 2, 3], [4]].map((ts) => [0, 1, 2, 3].map((d) => ts.reduce((s, t) => s + row(t)[d]!, 0) / ts.length));
    const got = a.arraySync() as number[][];
    expected.forEach((r, i) => r.forEach((v, d) => expect(got[i]![d]).toBeCloseTo(v, 5)));
    tf.dispose([input, a, b]);
    model.dispose();
    reloaded.dispose();
  });
});

test('Conv1D padding="causal", which tfjs-layers accepts but cannot compute, is refused when read', () => {
  expect(() => modelFromKerasConfig(oneLayer('Conv1D', { filters: 3, kernel_size: [3], padding: 'causal' }))).toThrow(
    /Layer 'l' \(Conv1D\): unsupported option padding="causal" \(tfjs-layers 4.22 does not implement causal padding/);
});

describe('shared layers', () => {
  const dir = join(import.meta.dirname, '..', 'data', 'fixtures');

  test('a GQA layer called at two nodes is freed by model.dispose()', async () => {
    const before = tf.memory().numTensors;
    const model = await loadKerasModel(join(dir, 'shared_gqa_v36.keras'));
    expect(model.getLayer('shared').inboundNodes.length).toBe(2);
    expect(tf.memory().numTensors).toBeGreaterThan(before);
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  test('a shared GQA layer called with other inputs or options per node is refused with the layer\'s name', async () => {
    const entries = unzipSync(readFileSync(join(dir, 'shared_gqa_v36.keras')));
    const config = JSON.parse(strFromU8(entries['config.json']!));
    const shared = config.config.layers.find((l: { name: string }) => l.name === 'shared');
    shared.inbound_nodes[1].kwargs.use_causal_mask = true;
    entries['config.json'] = strToU8(JSON.stringify(config));
    const before = tf.memory().numTensors;
    await expect(loadKerasModel(zipSync(entries, { level: 0 }))).rejects.toThrow(
      /Layer 'shared' \(GroupQueryAttention\): .*must be called with the same inputs and options at every node/);
    expect(tf.memory().numTensors).toBe(before);
  });
});
