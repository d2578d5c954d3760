/**
 * The layer in tfjs-layers functional models: every tensor argument (query, value, key and the masks)
 * as a SymbolicTensor from `input`, two outputs with scores, predict = eager call, save/load through
 * memory with identical outputs, training under fit, Embedding(maskZero) masks in predict. cpu and wasm.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { GroupedQueryAttention } from '../../src/index.js';
import { BACKENDS, useBackend } from '../helpers/backends.js';
import { expectClose } from '../helpers/close.js';

const B = 2;
const T = 4;
const S = 3;
const DQ = 6;
const DV = 6; // a symbolic call requires Dq = Dv (Keras compute_output_shape)
const DK = 3;
const U = 4;
const V = 2;
const H = 3;

function bits(shape: number[], seed: number): tf.Tensor {
  // Deterministic pattern with no fully false row along the last axis.
  const size = shape.reduce((a, b) => a * b, 1);
  const last = shape[shape.length - 1]!;
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = i % last === 0 || (i * 7 + seed) % 3 !== 0 ? 1 : 0;
  return tf.tensor(data, shape, 'bool');
}

async function saveAndLoad(model: tfl.LayersModel): Promise<tfl.LayersModel> {
  let saved: tf.io.ModelArtifacts | null = null;
  await model.save(tf.io.withSaveHandler(async (artifacts) => {
    saved = artifacts;
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
  expect(saved).not.toBeNull();
  // A JSON round trip of the topology, as a file would give.
  const artifacts = saved! as tf.io.ModelArtifacts;
  return tfl.loadLayersModel(tf.io.fromMemory({
    modelTopology: JSON.parse(JSON.stringify(artifacts.modelTopology)),
    weightSpecs: artifacts.weightSpecs!,
    weightData: artifacts.weightData!,
  }));
}

describe.each(BACKENDS)('functional API on %s', (backend) => {
  beforeAll(() => useBackend(backend));
  const models: tfl.LayersModel[] = [];
  afterEach(() => {
    for (const m of models.splice(0)) m.dispose();
  });

  /** query, value, key, queryMask, valueMask, attentionMask all as model inputs; output and scores. */
  function fullModel(useCausalMask: boolean) {
    const query = tfl.input({ shape: [T, DQ], name: 'query' });
    const value = tfl.input({ shape: [S, DV], name: 'value' });
    const key = tfl.input({ shape: [S, DK], name: 'key' });
    const queryMask = tfl.input({ shape: [T], dtype: 'bool', name: 'query_mask' });
    const valueMask = tfl.input({ shape: [S], dtype: 'bool', name: 'value_mask' });
    const attentionMask = tfl.input({ shape: [T, S], dtype: 'bool', name: 'attention_mask' });
    const layer = new GroupedQueryAttention({ headDim: H, numQueryHeads: U, numKeyValueHeads: V, name: 'gqa' });
    const outs = layer.apply(query, {
      value, key, queryMask, valueMask, attentionMask, useCausalMask, returnAttentionScores: true,
    }) as tfl.SymbolicTensor[];
    const model = tfl.model({ inputs: [query, value, key, queryMask, valueMask, attentionMask], outputs: outs });
    models.push(model);
    return { model, layer, outs };
  }

  function feeds(seed: number): tf.Tensor[] {
    return [
      tf.randomNormal([B, T, DQ], 0, 1, 'float32', seed),
      tf.randomNormal([B, S, DV], 0, 1, 'float32', seed + 1),
      tf.randomNormal([B, S, DK], 0, 1, 'float32', seed + 2),
      bits([B, T], seed),
      bits([B, S], seed + 1),
      bits([B, T, S], seed + 2),
    ];
  }

  test('symbolic call with every tensor argument gives two outputs with the right shapes', () => {
    const { outs, layer, model } = fullModel(false);
    expect(Array.isArray(outs)).toBe(true);
    expect(outs.length).toBe(2);
    expect(outs[0]!.shape).toEqual([null, T, DQ]);
    expect(outs[1]!.shape).toEqual([null, U, T, S]);
    expect(model.outputs.map((o) => o.shape)).toEqual([[null, T, DQ], [null, U, T, S]]);
    expect(model.inputs.length).toBe(6);
    expect(layer.trainableWeights.length).toBe(8);
    // Without scores: one output.
    const q = tfl.input({ shape: [T, DQ] });
    const v = tfl.input({ shape: [S, DQ] });
    const single = new GroupedQueryAttention({ headDim: H, numQueryHeads: U, numKeyValueHeads: V }).apply(q, { value: v });
    expect(single).toBeInstanceOf(tfl.SymbolicTensor);
    expect((single as tfl.SymbolicTensor).shape).toEqual([null, T, DQ]);
  });

  test.each([false, true])('model.predict equals the eager call (useCausalMask=%s), and leaks nothing', (useCausalMask) => {
    const { model, layer } = fullModel(useCausalMask);
    const x = feeds(10);
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const predicted = model.predict(x) as tf.Tensor[];
      const [query, value, key, queryMask, valueMask, attentionMask] = x;
      const eager = layer.apply(query!, {
        value: value!, key: key!, queryMask: queryMask!, valueMask: valueMask!, attentionMask: attentionMask!,
        useCausalMask, returnAttentionScores: true,
      }) as tf.Tensor[];
      expect(predicted.length).toBe(2);
      expect(predicted[0]!.shape).toEqual([B, T, DQ]);
      expect(predicted[1]!.shape).toEqual([B, U, T, S]);
      expectClose(predicted[0]!.dataSync(), eager[0]!.dataSync(), 'predict output', 1e-6, 1e-6);
      expectClose(predicted[1]!.dataSync(), eager[1]!.dataSync(), 'predict scores', 1e-7, 1e-6);
      // The masks reached the layer in predict: some probabilities are exactly 0.
      expect(Array.from(predicted[1]!.dataSync()).some((p) => p === 0)).toBe(true);
      // The causal option recorded at the symbolic call is applied in predict.
      const other = layer.apply(query!, {
        value: value!, key: key!, queryMask: queryMask!, valueMask: valueMask!, attentionMask: attentionMask!,
        useCausalMask: !useCausalMask, returnAttentionScores: true,
      }) as tf.Tensor[];
      expect(Array.from(other[1]!.dataSync())).not.toEqual(Array.from(predicted[1]!.dataSync()));
    });
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(x);
  });

  test('model.save + loadLayersModel(fromMemory) gives identical outputs and weights', async () => {
    const { model } = fullModel(true);
    const loaded = await saveAndLoad(model);
    models.push(loaded);
    const x = feeds(20);
    const a = model.predict(x) as tf.Tensor[];
    const b = loaded.predict(x) as tf.Tensor[];
    expect(b.length).toBe(2);
    expect(Array.from(b[0]!.dataSync())).toEqual(Array.from(a[0]!.dataSync()));
    expect(Array.from(b[1]!.dataSync())).toEqual(Array.from(a[1]!.dataSync()));
    const la = model.getLayer('gqa');
    const lb = loaded.getLayer('gqa');
    expect(lb).toBeInstanceOf(GroupedQueryAttention);
    expect(lb.weights.map((w) => w.originalName)).toEqual(la.weights.map((w) => w.originalName));
    expect(la.weights.map((w) => w.originalName)).toEqual(
      ['query', 'key', 'value', 'attention_output'].flatMap((s) => [`gqa/${s}/kernel`, `gqa/${s}/bias`]));
    for (const [i, w] of la.getWeights().entries()) {
      expect(Array.from(lb.getWeights()[i]!.dataSync())).toEqual(Array.from(w.dataSync()));
    }
    tf.dispose([...x, ...a, ...b]);
  });

  test('a small model with the layer trains under fit (loss falls)', async () => {
    const query = tfl.input({ shape: [T, DQ] });
    const value = tfl.input({ shape: [S, DQ] });
    const attended = new GroupedQueryAttention({ headDim: 4, numQueryHeads: 4, numKeyValueHeads: 2 })
      .apply(query, { value, useCausalMask: true }) as tfl.SymbolicTensor;
    const out = tfl.layers.dense({ units: 1 }).apply(tfl.layers.flatten().apply(attended)) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: [query, value], outputs: out });
    models.push(model);
    model.compile({ optimizer: tf.train.adam(0.01), loss: 'meanSquaredError' });
    const xq = tf.randomNormal([16, T, DQ], 0, 1, 'float32', 1);
    const xv = tf.randomNormal([16, S, DQ], 0, 1, 'float32', 2);
    const y = tf.reshape(tf.sum(tf.mul(xq, 0.3), [1, 2]), [16, 1]);
    const history = await model.fit([xq, xv], y, { epochs: 25, batchSize: 16, verbose: 0 });
    const losses = history.history['loss'] as number[];
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[losses.length - 1]!).toBeLessThan(0.5 * losses[0]!);
    tf.dispose([xq, xv, y]);
  });

  test('Embedding(maskZero) masks flow through predict into the layer', () => {
    const tokensQ = tfl.input({ shape: [5], dtype: 'int32' });
    const tokensV = tfl.input({ shape: [3], dtype: 'int32' });
    const embedQ = tfl.layers.embedding({ inputDim: 6, outputDim: 8, maskZero: true });
    const embedV = tfl.layers.embedding({ inputDim: 6, outputDim: 8, maskZero: true });
    const layer = new GroupedQueryAttention({ headDim: 2, numQueryHeads: 2, numKeyValueHeads: 1 });
    const outs = layer.apply(embedQ.apply(tokensQ) as tfl.SymbolicTensor, {
      value: embedV.apply(tokensV) as tfl.SymbolicTensor,
      returnAttentionScores: true,
    }) as tfl.SymbolicTensor[];
    const model = tfl.model({ inputs: [tokensQ, tokensV], outputs: outs });
    models.push(model);
    const qTokens = [[1, 2, 3, 0, 0], [3, 3, 1, 1, 2], [1, 0, 0, 0, 0]];
    const vTokens = [[5, 4, 0], [3, 0, 0], [2, 1, 1]];
    tf.tidy(() => {
      const qt = tf.tensor2d(qTokens, undefined, 'int32');
      const vt = tf.tensor2d(vTokens, undefined, 'int32');
      const [output, scores] = model.predict([qt, vt]) as tf.Tensor[];
      const mask = qTokens.map((qRow, b) => qRow.map((q) => vTokens[b]!.map((v) => q !== 0 && v !== 0)));
      const [manual, manualScores] = layer.apply(tf.clone(embedQ.apply(qt) as tf.Tensor), {
        value: tf.clone(embedV.apply(vt) as tf.Tensor),
        attentionMask: tf.tensor3d(mask.map((r) => r.map((c) => c.map(Number))), [3, 5, 3], 'bool'),
        returnAttentionScores: true,
      }) as tf.Tensor[];
      expectClose(output!.dataSync(), manual!.dataSync(), 'predict with Keras masks = explicit mask', 1e-6, 1e-6);
      expectClose(scores!.dataSync(), manualScores!.dataSync(), 'scores', 1e-7, 1e-6);
      // Value position 2 of batch 0 (token 0) gets no weight in unpadded query rows.
      const p = scores!.arraySync() as number[][][][];
      expect(p[0]![0]![0]![2]).toBe(0);
      expect(p[1]![1]![4]![1]).toBe(0);
    });
  });
});
