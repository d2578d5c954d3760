/**
 * A port of Keras's `run_layer_test` (keras/src/testing/test_case.py @ v3.6.0) for
 * `GroupedQueryAttention`, with the parts that exist in TensorFlow.js:
 *   1. config round trip: getConfig → fromConfig → getConfig gives a JSON-equal config, directly and
 *      through the serialization registry (Keras's serialize/deserialize), with the same own fields;
 *   2. an explicit `build([queryShape, valueShape, keyShape?])`, then the weight counts;
 *   3. a symbolic call (SymbolicTensors from tfjs-layers `input`) and its output shape;
 *   4. an eager call: output shape and number of losses;
 *   5. supportsMasking.
 * (Seed generators and mixed precision have no tfjs counterpart.)
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { expect } from 'vitest';
import { GroupedQueryAttention, type GroupedQueryAttentionArgs } from '../../src/index.js';

export interface LayerTestSpec {
  initKwargs: GroupedQueryAttentionArgs;
  inputShapes: { queryShape: number[]; valueShape: number[]; keyShape?: number[] };
  expectedOutputShape: number[];
  expectedNumTrainableWeights: number;
  expectedNumNonTrainableWeights: number;
  expectedNumLosses: number;
  supportsMasking: boolean;
}

function json(x: unknown): unknown {
  return JSON.parse(JSON.stringify(x));
}

function shapesList(s: LayerTestSpec['inputShapes']): number[][] {
  return [s.queryShape, s.valueShape, ...(s.keyShape ? [s.keyShape] : [])];
}

export function runLayerTest(spec: LayerTestSpec): void {
  const made: GroupedQueryAttention[] = [];
  const make = () => {
    const layer = new GroupedQueryAttention(spec.initKwargs);
    made.push(layer);
    return layer;
  };
  try {
    // 1. Config round trip (Keras: get_config/from_config and serialize/deserialize, same dir()).
    const layer = make();
    const config = layer.getConfig();
    const revived = GroupedQueryAttention.fromConfig(GroupedQueryAttention, config) as unknown as GroupedQueryAttention;
    made.push(revived);
    expect(json(revived.getConfig()), 'fromConfig(getConfig()) round trip').toEqual(json(config));
    const entry = tf.serialization.SerializationMap.getMap().classNameMap[layer.getClassName()];
    expect(entry, `${layer.getClassName()} is registered`).toBeDefined();
    const deserialized = entry![1](entry![0], json(config) as tf.serialization.ConfigDict) as unknown as GroupedQueryAttention;
    made.push(deserialized);
    expect(deserialized).toBeInstanceOf(GroupedQueryAttention);
    expect(json(deserialized.getConfig()), 'registry deserialize round trip').toEqual(json(config));
    expect(Object.keys(revived).sort(), 'same own fields (Keras: same dir())').toEqual(Object.keys(layer).sort());

    // 2. Explicit build, then the weight counts.
    const built = make();
    expect(built.weights.length, 'no weights before build').toBe(0);
    built.build(shapesList(spec.inputShapes));
    expect(built.built).toBe(true);
    expect(built.trainableWeights.length, 'trainable weights after build').toBe(spec.expectedNumTrainableWeights);
    expect(built.nonTrainableWeights.length, 'non-trainable weights after build').toBe(spec.expectedNumNonTrainableWeights);

    // 3. Symbolic call.
    const symbolic = make();
    const sq = tfl.input({ batchShape: spec.inputShapes.queryShape });
    const sv = tfl.input({ batchShape: spec.inputShapes.valueShape });
    const sk = spec.inputShapes.keyShape ? tfl.input({ batchShape: spec.inputShapes.keyShape }) : null;
    const sOut = symbolic.apply(sq, { value: sv, ...(sk ? { key: sk } : {}) });
    expect(sOut).toBeInstanceOf(tfl.SymbolicTensor);
    expect((sOut as tfl.SymbolicTensor).shape, 'symbolic output shape').toEqual(spec.expectedOutputShape);
    expect(symbolic.trainableWeights.length, 'trainable weights after a symbolic call').toBe(spec.expectedNumTrainableWeights);

    // 4. Eager call: output shape and losses.
    const eager = make();
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const q = tf.randomNormal(spec.inputShapes.queryShape, 0, 1, 'float32', 1);
      const v = tf.randomNormal(spec.inputShapes.valueShape, 0, 1, 'float32', 2);
      const k = spec.inputShapes.keyShape ? tf.randomNormal(spec.inputShapes.keyShape, 0, 1, 'float32', 3) : null;
      const out = eager.apply(q, { value: v, ...(k ? { key: k } : {}) }) as tf.Tensor;
      expect(out).toBeInstanceOf(tf.Tensor);
      expect(out.shape, 'eager output shape').toEqual(spec.expectedOutputShape);
      expect(Array.from(out.dataSync()).every(Number.isFinite), 'eager output is finite').toBe(true);
    });
    const weightsMade = eager.weights.length;
    expect(tf.memory().numTensors - weightsMade, 'eager call leaks nothing').toBe(before);
    expect(eager.trainableWeights.length, 'trainable weights after an eager call').toBe(spec.expectedNumTrainableWeights);
    expect(eager.losses.length, 'losses after an eager call').toBe(spec.expectedNumLosses);

    // 5. Masking support.
    expect(layer.supportsMasking, 'supportsMasking').toBe(spec.supportsMasking);
  } finally {
    for (const l of made) if (l.built) l.dispose();
  }
}
