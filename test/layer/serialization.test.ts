/**
 * Serialization: getConfig/fromConfig round trips exactly (defaults, every argument non-default,
 * built and unbuilt, through tfjs's snake_case model JSON), both class names are registered, and
 * saved weights carry Keras's names `<layer>/<sub-layer>/<kernel|bias>` in Keras's order and shapes
 * (test/data/golden/meta_weights_layout.json).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, test } from 'vitest';
import { GroupedQueryAttention, GroupQueryAttention, type GroupedQueryAttentionArgs } from '../../src/index.js';
import { useBackend } from '../helpers/backends.js';
import { layerArgs, readJson } from '../helpers/golden.js';

interface LayoutCase {
  init_kwargs: Record<string, unknown>;
  build_shapes: { query_shape: number[]; value_shape: number[]; key_shape: number[] | null };
  num_weights_before_build: number;
  num_trainable_weights: number;
  num_non_trainable_weights: number;
  weights: Array<{ path: string; name: string; shape: number[]; dtype: string; trainable: boolean }>;
}

const layout = readJson<{ cases: LayoutCase[] }>('golden', 'meta_weights_layout.json').cases;

const json = (x: unknown) => JSON.parse(JSON.stringify(x)) as unknown;

const EVERYTHING: GroupedQueryAttentionArgs = {
  name: 'every_argument',
  headDim: 3,
  numQueryHeads: 6,
  numKeyValueHeads: 2,
  dropout: 0.25,
  useBias: false,
  kernelInitializer: tfl.initializers.truncatedNormal({ stddev: 0.03, seed: 7 }),
  biasInitializer: 'ones',
  kernelRegularizer: tfl.regularizers.l1l2({ l1: 0.001, l2: 0.002 }),
  biasRegularizer: tfl.regularizers.l2({ l2: 0.5 }),
  activityRegularizer: tfl.regularizers.l1({ l1: 0.1 }),
  kernelConstraint: tfl.constraints.maxNorm({ maxValue: 2, axis: 0 }),
  biasConstraint: tfl.constraints.nonNeg(),
  trainable: false,
};

beforeAll(() => useBackend('cpu'));

describe('getConfig / fromConfig', () => {
  test.each([
    ['defaults', { headDim: 2, numQueryHeads: 4, numKeyValueHeads: 2 } as GroupedQueryAttentionArgs],
    ['every argument non-default', EVERYTHING],
  ] as const)('%s: round trip is exact, before and after build', (_name, args) => {
    for (const build of [false, true]) {
      const layer = new GroupedQueryAttention(args);
      if (build) layer.build([[2, 3, 5], [2, 4, 5], [2, 4, 7]]);
      const config = layer.getConfig();
      const revived = GroupedQueryAttention.fromConfig(GroupedQueryAttention, json(config) as tf.serialization.ConfigDict) as unknown as GroupedQueryAttention;
      expect(json(revived.getConfig()), `build=${build}`).toEqual(json(config));
      // The values the config stands for, not just its shape.
      expect(revived.headDim).toBe(args.headDim);
      expect(revived.numQueryHeads).toBe(args.numQueryHeads);
      expect(revived.numKeyValueHeads).toBe(args.numKeyValueHeads);
      expect(revived.dropout).toBe(args.dropout ?? 0);
      expect(revived.useBias).toBe(args.useBias ?? true);
      expect(revived.trainable).toBe(args.trainable ?? true);
      expect(revived.name).toBe(layer.name);
      // A built layer's config rebuilds the weights, with the same shapes.
      expect(revived.weights.map((w) => w.shape), `build=${build}`).toEqual(layer.weights.map((w) => w.shape));
      for (const l of [layer, revived]) if (l.built) l.dispose();
    }
  });

  test('Keras config keys are present (camelCase), with serialized initializers, regularizers, constraints', () => {
    const config = new GroupedQueryAttention(EVERYTHING).getConfig();
    for (const key of [
      'name', 'trainable', 'headDim', 'numQueryHeads', 'numKeyValueHeads', 'useBias', 'dropout', 'kernelInitializer',
      'biasInitializer', 'kernelRegularizer', 'biasRegularizer', 'activityRegularizer', 'kernelConstraint', 'biasConstraint',
    ]) {
      expect(config, key).toHaveProperty(key);
    }
    expect(config['kernelInitializer']).toMatchObject({ className: 'TruncatedNormal', config: { stddev: 0.03, seed: 7 } });
    expect(config['biasInitializer']).toMatchObject({ className: 'Ones' });
    expect(config['kernelRegularizer']).toMatchObject({ className: 'L1L2', config: { l1: 0.001, l2: 0.002 } });
    // tfjs serializes l1()/l2() as L1L2.
    expect(config['activityRegularizer']).toMatchObject({ className: 'L1L2', config: { l1: 0.1, l2: 0 } });
    expect(config['biasRegularizer']).toMatchObject({ className: 'L1L2', config: { l1: 0, l2: 0.5 } });
    expect(config['kernelConstraint']).toMatchObject({ className: 'MaxNorm', config: { maxValue: 2, axis: 0 } });
    expect(config['biasConstraint']).toMatchObject({ className: 'NonNeg' });
    const defaults = new GroupedQueryAttention({ headDim: 2, numQueryHeads: 4, numKeyValueHeads: 2 }).getConfig();
    expect(defaults['kernelInitializer']).toMatchObject({ className: 'GlorotUniform' });
    expect(defaults['biasInitializer']).toMatchObject({ className: 'Zeros' });
    for (const k of ['kernelRegularizer', 'biasRegularizer', 'activityRegularizer', 'kernelConstraint', 'biasConstraint']) {
      expect(defaults[k], k).toBeNull();
    }
  });

  test('a saved model (snake_case JSON) reloads the layer with the same config', async () => {
    const query = tfl.input({ shape: [3, 5] });
    const value = tfl.input({ shape: [4, 5] });
    const layer = new GroupedQueryAttention({ ...EVERYTHING, trainable: true });
    const model = tfl.model({ inputs: [query, value], outputs: layer.apply(query, { value }) as tfl.SymbolicTensor });
    let artifacts: tf.io.ModelArtifacts | null = null;
    await model.save(tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }));
    const topology = JSON.stringify(artifacts!['modelTopology']);
    expect(topology).toContain('"class_name":"GroupedQueryAttention"');
    expect(topology).toContain('"num_query_heads":6');
    const saved = artifacts! as tf.io.ModelArtifacts;
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory({
      modelTopology: JSON.parse(topology),
      weightSpecs: saved.weightSpecs!,
      weightData: saved.weightData!,
    }));
    const revived = loaded.getLayer('every_argument') as GroupedQueryAttention;
    expect(revived).toBeInstanceOf(GroupedQueryAttention);
    expect(json(revived.getConfig())).toEqual(json(layer.getConfig()));
    model.dispose();
    loaded.dispose();
  });
});

describe('serialization registry', () => {
  test('has GroupedQueryAttention and Keras\'s public name GroupQueryAttention', () => {
    const map = tf.serialization.SerializationMap.getMap().classNameMap;
    expect(map['GroupedQueryAttention']?.[0]).toBe(GroupedQueryAttention);
    expect(map['GroupQueryAttention']?.[0]).toBe(GroupQueryAttention);
    expect(new GroupQueryAttention({ headDim: 2, numQueryHeads: 2, numKeyValueHeads: 1 })).toBeInstanceOf(GroupedQueryAttention);
  });

  test('a config written under GroupQueryAttention deserializes through the registry and computes', () => {
    const [cls, fromConfig] = tf.serialization.SerializationMap.getMap().classNameMap['GroupQueryAttention']!;
    const layer = fromConfig(cls, { headDim: 2, numQueryHeads: 4, numKeyValueHeads: 2 }) as unknown as GroupedQueryAttention;
    expect(layer).toBeInstanceOf(GroupedQueryAttention);
    expect(layer.getClassName()).toBe('GroupQueryAttention');
    const out = tf.tidy(() => (layer.apply(tf.ones([1, 2, 3]), { value: tf.ones([1, 4, 3]) }) as tf.Tensor).shape);
    expect(out).toEqual([1, 2, 3]);
    layer.dispose();
  });
});

describe('weight names, order and shapes (meta_weights_layout.json)', () => {
  test('the golden layout has its 5 cases', () => {
    expect(layout.length).toBe(5);
  });

  test.each(layout.map((c, i) => [i, JSON.stringify(c.init_kwargs), c] as const))('case %i %s', async (_i, _k, c) => {
    const args = { ...(layerArgs(c.init_kwargs) as unknown as GroupedQueryAttentionArgs), name: 'grouped_query_attention' };
    const shapes = [c.build_shapes.query_shape, c.build_shapes.value_shape, ...(c.build_shapes.key_shape ? [c.build_shapes.key_shape] : [])];
    const expected = c.weights.map((w) => ({ name: w.path, shape: w.shape }));

    // Explicit build.
    const layer = new GroupedQueryAttention(args);
    expect(layer.weights.length).toBe(c.num_weights_before_build);
    layer.build(shapes);
    expect(layer.trainableWeights.length).toBe(c.num_trainable_weights);
    expect(layer.nonTrainableWeights.length).toBe(c.num_non_trainable_weights);
    expect(layer.weights.map((w) => ({ name: w.originalName, shape: w.shape }))).toEqual(expected);
    expect(layer.getWeights().map((w) => w.shape)).toEqual(c.weights.map((w) => w.shape));
    expect(layer.weights.every((w) => w.dtype === 'float32' && w.trainable)).toBe(true);
    layer.dispose();

    // Saved by a model: the weight specs carry the same names, order and shapes. A symbolic call
    // rejects Dq ≠ Dv (Keras's compute_output_shape), so those layouts are checked on the layer only.
    if (c.build_shapes.query_shape[2] !== c.build_shapes.value_shape[2]) return;
    const inputs = shapes.map((s) => tfl.input({ batchShape: [null, ...s.slice(1)] }));
    const inModel = new GroupedQueryAttention(args);
    const out = inModel.apply(inputs[0]!, { value: inputs[1]!, ...(inputs[2] ? { key: inputs[2] } : {}) });
    // Keras's symbolic call rejects Dq ≠ Dv; the layouts with different feature sizes are checked eagerly above.
    const model = tfl.model({ inputs, outputs: out as tfl.SymbolicTensor });
    let specs: tf.io.WeightsManifestEntry[] = [];
    await model.save(tf.io.withSaveHandler(async (a) => {
      specs = a.weightSpecs ?? [];
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }));
    expect(specs.map((s) => ({ name: s.name, shape: s.shape }))).toEqual(expected);
    model.dispose();
  });
});
