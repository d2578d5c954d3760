/**
 * Options from later Keras releases: slidingWindow (3.15), useGate (3.14), seed and flashAttention
 * (3.7), with Keras's validation, config keys and errors.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, test } from 'vitest';
import { GroupedQueryAttention } from '../../src/index.js';
import { BACKENDS, useBackend } from '../helpers/backends.js';
import { expectClose } from '../helpers/close.js';
import { readJson } from '../helpers/golden.js';

const base = { headDim: 2, numQueryHeads: 4, numKeyValueHeads: 2 };

interface MetaConfig {
  constructor_errors: Array<{ case: string; raised: boolean; message?: string }>;
  v36_config_compat: { input_config: Record<string, unknown> };
}
const meta = readJson<MetaConfig>('golden_head', 'meta_config.json');

function withWeights(layer: GroupedQueryAttention, d: number, seed: number): GroupedQueryAttention {
  layer.build([[null, null, d], [null, null, d]]);
  layer.setWeights(layer.getWeights().map((w, i) => tf.randomNormal(w.shape, 0, 0.5, 'float32', seed + i)));
  return layer;
}

describe.each(BACKENDS)('later Keras options on %s', (backend) => {
  beforeAll(() => useBackend(backend));

  test('slidingWindow is validated as Keras does (same cases as Keras 3.16)', () => {
    const values: Record<string, unknown> = { 'sliding_window=0': 0, 'sliding_window=-1': -1, 'sliding_window=2.5': 2.5,
      "sliding_window='3'": '3', 'sliding_window=False': false };
    for (const [name, value] of Object.entries(values)) {
      const keras = meta.constructor_errors.find((e) => e.case === name);
      expect(keras?.raised, `Keras raises for ${name}`).toBe(true);
      expect(() => new GroupedQueryAttention({ ...base, slidingWindow: value as number })).toThrow(
        new RegExp(`slidingWindow must be null or a positive integer; received ${value === '3' ? "'3'" : String(value)}`));
    }
    expect(new GroupedQueryAttention({ ...base, slidingWindow: 3 }).slidingWindow).toBe(3);
    // Keras accepts True (a bool is an int there) as a window of 1.
    expect(new GroupedQueryAttention({ ...base, slidingWindow: true as unknown as number }).slidingWindow).toBe(1);
  });

  test('flashAttention: true forbids dropout and scores with Keras messages, false changes no number', () => {
    expect(() => new GroupedQueryAttention({ ...base, flashAttention: true, dropout: 0.1 })).toThrow(
      /Dropout is not supported when flash attention is enabled\. Please set dropout to 0\.0 to use flash attention/);
    const flash = withWeights(new GroupedQueryAttention({ ...base, flashAttention: true }), 6, 1);
    const q = tf.randomNormal([2, 3, 6], 0, 1, 'float32', 4);
    expect(() => flash.apply(q, { value: q, returnAttentionScores: true })).toThrow(
      /Returning attention scores is not supported when flash attention is enabled\. Please disable flash attention/);
    const composite = withWeights(new GroupedQueryAttention({ ...base, flashAttention: false }), 6, 1);
    const a = flash.apply(q, { value: q, useCausalMask: true }) as tf.Tensor;
    const b = composite.apply(q, { value: q, useCausalMask: true }) as tf.Tensor;
    expectClose(a.dataSync(), b.dataSync(), 'fused vs composite');
    expect(flash.getConfig()).not.toHaveProperty('flashAttention');
  });

  test('seed: same seed and inputs give the same dropout pattern, a new call a new one', () => {
    const make = (seed: number | null) => withWeights(new GroupedQueryAttention({ ...base, dropout: 0.5, seed }), 6, 2);
    const q = tf.randomNormal([2, 4, 6], 0, 1, 'float32', 5);
    const run = (layer: GroupedQueryAttention) => (layer.apply(q, { value: q, training: true }) as tf.Tensor).dataSync();
    const [a, b, c] = [make(7), make(7), make(8)];
    const a1 = run(a);
    expect(Array.from(run(b))).toEqual(Array.from(a1));
    expect(Array.from(run(c))).not.toEqual(Array.from(a1));
    expect(Array.from(run(a))).not.toEqual(Array.from(a1)); // the layer's stream advances, as Keras's SeedGenerator
    const inference = (a.apply(q, { value: q }) as tf.Tensor).dataSync();
    expect(Array.from(inference)).not.toEqual(Array.from(a1));
  });

  test('config keys of current Keras; a Keras 3.6 config loads with 3.6 behaviour', () => {
    const layer = new GroupedQueryAttention({ ...base, useGate: true, slidingWindow: 2, seed: 3 });
    const config = layer.getConfig();
    expect(config).toMatchObject({ useGate: true, slidingWindow: 2, seed: 3, headDim: 2 });
    const v36 = meta.v36_config_compat.input_config;
    expect(v36).not.toHaveProperty('use_gate');
    const loaded = new GroupedQueryAttention({
      headDim: v36['head_dim'] as number,
      numQueryHeads: v36['num_query_heads'] as number,
      numKeyValueHeads: v36['num_key_value_heads'] as number,
    });
    expect([loaded.useGate, loaded.slidingWindow, loaded.seed]).toEqual([false, null, null]);
    const round = GroupedQueryAttention.fromConfig(GroupedQueryAttention, config) as GroupedQueryAttention;
    expect(round.getConfig()).toEqual(config);
  });

  test('the gate multiplies the attention output: gate weights of zero and bias -inf-like give a bias-only output', () => {
    const layer = withWeights(new GroupedQueryAttention({ ...base, useGate: true }), 6, 3);
    expect(layer.weights.map((w) => w.name.split('/').slice(-2).join('/'))).toEqual([
      'query/kernel', 'query/bias', 'key/kernel', 'key/bias', 'gate/kernel', 'gate/bias',
      'value/kernel', 'value/bias', 'attention_output/kernel', 'attention_output/bias',
    ]);
    const weights = layer.getWeights();
    weights[4] = tf.zerosLike(weights[4]!);
    weights[5] = tf.fill(weights[5]!.shape, -100); // sigmoid(-100) = 3.7e-44: the gate closes
    layer.setWeights(weights);
    const q = tf.randomNormal([1, 3, 6], 0, 1, 'float32', 6);
    const y = (layer.apply(q, { value: q }) as tf.Tensor).dataSync();
    const bias = weights[9]!.dataSync();
    expectClose(y, Array.from({ length: 18 }, (_, i) => bias[i % 6]!), 'closed gate leaves the output bias');
  });
});
