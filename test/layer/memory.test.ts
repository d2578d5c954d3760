/**
 * `tf.memory().numTensors` is unchanged after every call path of the layer (beyond the tensors the
 * caller receives and disposes): eager, with scores, every mask kind, causal, training with dropout,
 * a call that raised, a symbolic model's predict, a layer with an activity regularizer called
 * repeatedly. On cpu and wasm. Each path is warmed up once first (weights are made on the first call).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { GroupedQueryAttention } from '../../src/index.js';
import { BACKENDS, useBackend } from '../helpers/backends.js';

const [B, T, S, D, U, V, H] = [2, 3, 5, 4, 4, 2, 2];

describe.each(BACKENDS)('no tensor leaks on %s', (backend) => {
  let layer: GroupedQueryAttention;
  let dropoutLayer: GroupedQueryAttention;
  let q: tf.Tensor;
  let v: tf.Tensor;
  let k: tf.Tensor;
  const masks: Record<string, tf.Tensor> = {};

  beforeAll(async () => {
    await useBackend(backend);
    layer = new GroupedQueryAttention({ headDim: H, numQueryHeads: U, numKeyValueHeads: V });
    dropoutLayer = new GroupedQueryAttention({ headDim: H, numQueryHeads: U, numKeyValueHeads: V, dropout: 0.4 });
    q = tf.randomNormal([B, T, D], 0, 1, 'float32', 1);
    v = tf.randomNormal([B, S, D], 0, 1, 'float32', 2);
    k = tf.randomNormal([B, S, D + 2], 0, 1, 'float32', 3);
    const bits = (shape: number[], seed: number) => tf.less(tf.randomUniform(shape, 0, 1, 'float32', seed), 0.6);
    Object.assign(masks, {
      queryMask: bits([B, T], 4),
      valueMask: bits([B, S], 5),
      keyMask: bits([B, S], 6),
      BTS: bits([B, T, S], 7),
      '1TS': bits([1, T, S], 8),
      TS: bits([T, S], 9),
      B1S: bits([B, 1, S], 10),
      BUTS: bits([B, U, T, S], 11),
      int01: tf.cast(bits([B, T, S], 12), 'int32'),
      float: tf.cast(bits([B, T, S], 13), 'float32'),
    });
    tf.tidy(() => {
      layer.apply(q, { value: v, key: k });
      dropoutLayer.apply(q, { value: v, key: k });
    });
  });
  afterAll(() => {
    tf.dispose([q, v, k, ...Object.values(masks)]);
    layer.dispose();
    dropoutLayer.dispose();
  });

  function flat(what: string, call: () => tf.Tensor | tf.Tensor[]): void {
    const before = tf.memory().numTensors;
    const out = call();
    const outs = Array.isArray(out) ? out : [out];
    // The output carries its own copy of the query's Keras mask (disposed with it).
    const carried = outs.filter((o) => o.kerasMask != null).length;
    expect(tf.memory().numTensors, `${what}: only the returned tensors (and their masks) are new`).toBe(before + outs.length + carried);
    tf.dispose(outs);
    expect(tf.memory().numTensors, `${what}: nothing left after disposing the result`).toBe(before);
  }

  test('eager call, with and without key, with scores', () => {
    flat('eager', () => layer.apply(q, { value: v, key: k }) as tf.Tensor);
    flat('scores', () => layer.apply(q, { value: v, key: k, returnAttentionScores: true }) as tf.Tensor[]);
    flat('training without dropout', () => layer.apply(q, { value: v, key: k, training: true }) as tf.Tensor);
  });

  test.each(['queryMask', 'valueMask', 'keyMask'])('%s', (name) => {
    flat(name, () => layer.apply(q, { value: v, key: k, [name]: masks[name], returnAttentionScores: true }) as tf.Tensor[]);
  });

  test.each(['BTS', '1TS', 'TS', 'B1S', 'BUTS', 'int01', 'float'])('attentionMask %s', (name) => {
    flat(name, () => layer.apply(q, { value: v, key: k, attentionMask: masks[name] }) as tf.Tensor);
    // (A (B,U,T,S) mask with a (B,1,S) value mask does not broadcast for B=2, U=4, as in Keras.)
    flat(`${name} + causal${name === 'BUTS' ? '' : ' + value mask'}`, () => layer.apply(q, {
      value: v, key: k, attentionMask: masks[name], ...(name === 'BUTS' ? {} : { valueMask: masks['valueMask'] }),
      useCausalMask: true, returnAttentionScores: true,
    }) as tf.Tensor[]);
  });

  test('causal', () => {
    flat('causal', () => layer.apply(q, { value: v, key: k, useCausalMask: true }) as tf.Tensor);
  });

  test('Keras masks carried by the inputs; disposing the output leaves the query\'s mask alive', () => {
    const mq = tf.clone(q);
    const mask = tf.clone(masks['queryMask']!);
    mq.kerasMask = mask;
    flat('kerasMask', () => layer.apply(mq, { value: v, key: k }) as tf.Tensor);
    // tfjs's Tensor.dispose also disposes its kerasMask: the output must own its mask, not share the
    // query's, or disposing the output destroys the caller's mask.
    expect(mask.isDisposed, "the query's mask survives disposing the output").toBe(false);
    expect(Array.from(mq.kerasMask!.dataSync())).toEqual(Array.from(masks['queryMask']!.dataSync()));
    mq.kerasMask = undefined;
    tf.dispose([mq, mask]);
  });

  test('training with dropout, with and without scores', () => {
    flat('dropout', () => dropoutLayer.apply(q, { value: v, key: k, training: true }) as tf.Tensor);
    flat('dropout + scores', () => dropoutLayer.apply(q, { value: v, key: k, training: true, returnAttentionScores: true }) as tf.Tensor[]);
    flat('dropout + masks', () => dropoutLayer.apply(q, {
      value: v, key: k, training: true, attentionMask: masks['BTS'], useCausalMask: true,
    }) as tf.Tensor);
  });

  test('calls that raised', () => {
    const badQuery = tf.ones([B, T, D + 1]);
    const badMask = tf.ones([B, T, S + 1], 'bool');
    const before = tf.memory().numTensors;
    expect(() => layer.apply(badQuery, { value: v, key: k })).toThrow();
    expect(() => layer.apply(q, { value: v, key: k, attentionMask: badMask })).toThrow();
    expect(() => layer.apply(q, { value: v, key: k, queryMask: badMask })).toThrow();
    expect(() => layer.apply(q, { value: tf.ones([B + 1, S, D]), key: k })).toThrow();
    // The inline tf.ones above is the caller's: 1 tensor.
    expect(tf.memory().numTensors).toBe(before + 1);
    tf.dispose([badQuery, badMask]);
  });

  test('symbolic model predict (with scores and mask inputs)', () => {
    const query = tfl.input({ shape: [T, D] });
    const value = tfl.input({ shape: [S, D] });
    const attentionMask = tfl.input({ shape: [T, S], dtype: 'bool' });
    const outs = new GroupedQueryAttention({ headDim: H, numQueryHeads: U, numKeyValueHeads: V })
      .apply(query, { value, attentionMask, useCausalMask: true, returnAttentionScores: true }) as tfl.SymbolicTensor[];
    const model = tfl.model({ inputs: [query, value, attentionMask], outputs: outs });
    tf.dispose(model.predict([q, v, masks['BTS']!]) as tf.Tensor[]);
    flat('predict', () => model.predict([q, v, masks['BTS']!]) as tf.Tensor[]);
    model.dispose();
  });

  test('activity regularizer: repeated calls keep the tensor count flat', () => {
    const reg = new GroupedQueryAttention({
      headDim: H, numQueryHeads: U, numKeyValueHeads: V, activityRegularizer: tfl.regularizers.l2(),
    });
    tf.dispose(reg.apply(q, { value: v }) as tf.Tensor);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) tf.dispose(reg.apply(q, { value: v }) as tf.Tensor);
    expect(tf.memory().numTensors).toBe(before);
    reg.dispose();
  });
});
