/**
 * Self-attention in a functional model (query and value are the same tensor): the tensor is listed
 * once in the node's inputs, so tfjs's executor does not free it while a residual still needs it;
 * predict, save and reload work and leak nothing.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, test } from 'vitest';
import { GroupedQueryAttention } from '../../src/index.js';
import { BACKENDS, useBackend } from '../helpers/backends.js';

describe.each(BACKENDS)('self-attention in a functional model on %s', (backend) => {
  beforeAll(() => useBackend(backend));

  test('predict with a residual, save and reload', async () => {
    const tokens = tfl.input({ shape: [6], dtype: 'int32' });
    const x = tfl.layers.embedding({ inputDim: 10, outputDim: 8, maskZero: true }).apply(tokens) as tfl.SymbolicTensor;
    const layer = new GroupedQueryAttention({ headDim: 4, numQueryHeads: 2, numKeyValueHeads: 1 });
    const attended = layer.apply(x, { value: x, key: x, useCausalMask: true }) as tfl.SymbolicTensor;
    const y = tfl.layers.add().apply([x, attended]) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: tokens, outputs: y });
    const input = tf.tensor2d([[1, 2, 3, 0, 0, 0], [4, 4, 4, 4, 5, 0]], [2, 6], 'int32');
    const before = tf.memory().numTensors;
    const out = model.predict(input) as tf.Tensor;
    // The output and the Keras mask it carries are the only new tensors.
    expect(tf.memory().numTensors - before).toBe(out.kerasMask ? 2 : 1);

    // Same numbers as calling the pieces eagerly.
    const emb = model.layers[1]!.apply(input) as tf.Tensor;
    const eager = tf.add(emb, layer.apply(emb, { value: emb, key: emb, useCausalMask: true }) as tf.Tensor);
    expect(Array.from(out.dataSync())).toEqual(Array.from(eager.dataSync()));

    let saved: tf.io.ModelArtifacts | undefined;
    await model.save(tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }));
    const reloaded = await tfl.loadLayersModel(tf.io.fromMemory(saved!));
    const again = reloaded.predict(input) as tf.Tensor;
    expect(Array.from(again.dataSync())).toEqual(Array.from(out.dataSync()));
  });
});
