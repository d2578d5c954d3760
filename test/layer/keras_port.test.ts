/**
 * Port of Keras's own test file for the layer, keras/src/layers/attention/grouped_query_attention_test.py
 * @ v3.6.0 (7004f526cfd0933f407f1b4f530b865079aa9bef), all 14 of its test items, on cpu and wasm.
 * The three items Keras skips on numpy (mask propagation, masking ×2) run here.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { GroupedQueryAttention } from '../../src/index.js';
import { BACKENDS, useBackend } from '../helpers/backends.js';
import { runLayerTest } from './run_layer_test.js';

function allClose(a: ArrayLike<number>, b: ArrayLike<number>, atol: number): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!(Math.abs(a[i]! - b[i]!) <= atol)) return false;
  return true;
}

describe.each(BACKENDS)('Keras 3.6 grouped_query_attention_test.py on %s', (backend) => {
  beforeAll(() => useBackend(backend));
  const layers: tfl.layers.Layer[] = [];
  const track = <L extends tfl.layers.Layer>(l: L): L => {
    layers.push(l);
    return l;
  };
  afterEach(() => {
    for (const l of layers.splice(0)) if (l.built) l.dispose();
  });

  test('test_basics (a): U=2, Vh=2, H=2, query (2,8,16), value (2,4,16)', () => {
    runLayerTest({
      initKwargs: { numQueryHeads: 2, numKeyValueHeads: 2, headDim: 2 },
      inputShapes: { queryShape: [2, 8, 16], valueShape: [2, 4, 16] },
      expectedOutputShape: [2, 8, 16],
      expectedNumTrainableWeights: 8,
      expectedNumNonTrainableWeights: 0,
      expectedNumLosses: 0,
      supportsMasking: true,
    });
  });

  test('test_basics (b): useBias false, dropout 0.5', () => {
    runLayerTest({
      initKwargs: { numQueryHeads: 2, numKeyValueHeads: 2, headDim: 2, useBias: false, dropout: 0.5 },
      inputShapes: { queryShape: [2, 8, 16], valueShape: [2, 4, 16] },
      expectedOutputShape: [2, 8, 16],
      expectedNumTrainableWeights: 4,
      expectedNumNonTrainableWeights: 0,
      expectedNumLosses: 0,
      supportsMasking: true,
    });
  });

  describe('test_compute_output_shape', () => {
    const cases = [
      ['without_key_proj_mha', 2, 2, false],
      ['with_key_proj_mha', 2, 2, true],
      ['without_key_proj_gqa', 4, 2, false],
      ['with_key_proj_gqa', 4, 2, true],
      ['without_key_proj_mqa', 4, 1, false],
      ['with_key_proj_mqa', 4, 1, true],
    ] as const;
    test.each(cases)('%s', (_name, numQueryHeads, numKeyValueHeads, withKey) => {
      const layer = track(new GroupedQueryAttention({ numQueryHeads, numKeyValueHeads, headDim: 2 }));
      const batch = 7;
      const queryShape = [batch, 4, 8];
      const valueShape = [batch, 2, 8];
      const keyShape = withKey ? [batch, 2, 3] : null;
      tf.tidy(() => {
        const out = layer.apply(tf.ones(queryShape), {
          value: tf.ones(valueShape),
          ...(keyShape ? { key: tf.ones(keyShape) } : {}),
        }) as tf.Tensor;
        const computed = layer.computeOutputShape([queryShape, valueShape, ...(keyShape ? [keyShape] : [])]);
        expect(out.shape).toEqual(computed);
        expect(computed).toEqual([batch, 4, 8]);
      });
    });
  });

  describe('test_shape_mismatch_error', () => {
    test('query_value_dim_mismatch: (2,4,8), (2,2,7), key_shape=2', () => {
      const layer = track(new GroupedQueryAttention({ numQueryHeads: 4, numKeyValueHeads: 2, headDim: 2 }));
      // Keras passes key_shape=2 (an int); the query/value check fires before the key is looked at.
      expect(() => layer.computeOutputShape([[2, 4, 8], [2, 2, 7], 2 as unknown as number[]])).toThrow(/must be equal/);
    });
    test('key_value_dim_mismatch: (2,4,8), (2,2,8), (2,1,7)', () => {
      const layer = track(new GroupedQueryAttention({ numQueryHeads: 4, numKeyValueHeads: 2, headDim: 2 }));
      expect(() => layer.computeOutputShape([[2, 4, 8], [2, 2, 8], [2, 1, 7]])).toThrow(/must be equal/);
    });
  });

  test('test_initializer: each kernel gets its own clone of TruncatedNormal(stddev=0.02)', () => {
    const layer = track(new GroupedQueryAttention({
      numQueryHeads: 16,
      numKeyValueHeads: 16,
      headDim: 64,
      kernelInitializer: tfl.initializers.truncatedNormal({ stddev: 0.02 }),
    }));
    layer.build([[2, 4, 8], [2, 4, 8]]);
    const [qk, , kk, , vk, , ok] = layer.getWeights();
    const query = qk!.dataSync();
    expect(qk!.shape).toEqual([8, 16, 64]);
    // The values really come from TruncatedNormal(0.02): within 2 stddev, not all zero.
    expect(Array.from(query).every((x) => Math.abs(x) <= 0.04 + 1e-6)).toBe(true);
    expect(Array.from(query).some((x) => x !== 0)).toBe(true);
    for (const [name, other] of [['key', kk], ['value', vk], ['attention_output', ok]] as const) {
      expect(other!.size).toBe(qk!.size);
      expect(allClose(query, other!.dataSync(), 1e-6), `query kernel differs from ${name} kernel`).toBe(false);
    }
  });

  test('test_query_mask_propagation: the output carries the query\'s Keras mask', () => {
    const layer = track(new GroupedQueryAttention({ numQueryHeads: 2, numKeyValueHeads: 2, headDim: 2 }));
    const embedding = track(tfl.layers.embedding({ inputDim: 4, outputDim: 8, maskZero: true }));
    tf.tidy(() => {
      const tokens = tf.tensor2d([[1, 2, 3, 0, 0], [3, 3, 1, 1, 2], [1, 0, 0, 0, 0]], undefined, 'int32');
      const query = embedding.apply(tokens) as tf.Tensor;
      expect(query.kerasMask, 'Embedding(maskZero) sets the query mask').toBeTruthy();
      const value = tf.randomNormal([3, 3, 8], 0, 1, 'float32', 4);
      const output = layer.apply(query, { value }) as tf.Tensor;
      expect(output.kerasMask, 'output mask').toBeTruthy();
      expect(output.kerasMask!.shape).toEqual([3, 5]);
      expect(Array.from(output.kerasMask!.dataSync())).toEqual(Array.from(query.kerasMask!.dataSync()));
      expect(Array.from(output.kerasMask!.dataSync())).toEqual([1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0]);
    });
  });

  describe('test_masking', () => {
    test.each([['causal', true], ['not_causal', false]] as const)('%s', (_name, useCausalMask) => {
      const layer = track(new GroupedQueryAttention({ numQueryHeads: 2, numKeyValueHeads: 2, headDim: 2 }));
      const qEmbedding = track(tfl.layers.embedding({ inputDim: 4, outputDim: 8, maskZero: true }));
      const vEmbedding = track(tfl.layers.embedding({ inputDim: 6, outputDim: 8, maskZero: true }));
      tf.tidy(() => {
        const qTokens = [[1, 2, 3, 0, 0], [3, 3, 1, 1, 2], [1, 0, 0, 0, 0]];
        const vTokens = [[5, 4, 0], [3, 0, 0], [2, 1, 1]];
        const query = qEmbedding.apply(tf.tensor2d(qTokens, undefined, 'int32')) as tf.Tensor;
        const value = vEmbedding.apply(tf.tensor2d(vTokens, undefined, 'int32')) as tf.Tensor;
        expect(query.kerasMask).toBeTruthy();
        expect(value.kerasMask).toBeTruthy();
        const output = layer.apply(query, { value, useCausalMask }) as tf.Tensor;
        // q_mask[:, :, None] & v_mask[:, None, :] (& causal), written out from the tokens.
        const mask: number[][][] = qTokens.map((qRow, b) =>
          qRow.map((q, i) => vTokens[b]!.map((v, j) => (q !== 0 && v !== 0 && (!useCausalMask || j <= i) ? 1 : 0))));
        // The same tensors without their Keras masks (Keras sets _keras_mask = None).
        const plainQuery = tf.clone(query);
        const plainValue = tf.clone(value);
        expect(plainQuery.kerasMask ?? null).toBeNull();
        const manual = layer.apply(plainQuery, {
          value: plainValue,
          attentionMask: tf.tensor3d(mask, [3, 5, 3], 'bool'),
        }) as tf.Tensor;
        expect(allClose(output.dataSync(), manual.dataSync(), 1e-6), 'Keras masks = explicit attention mask').toBe(true);
        // Not vacuous: the masks change the output.
        const unmasked = layer.apply(plainQuery, { value: plainValue }) as tf.Tensor;
        expect(allClose(output.dataSync(), unmasked.dataSync(), 1e-4)).toBe(false);
      });
    });
  });

  test('test_correctness: identity kernels, zero biases (the MHA port of v3.6)', () => {
    // Kernels: query/key/value W[m,u,h] = δ(m,h) (every head sees the input unchanged);
    // output Wo[u,h,m] = δ(u,m) (head u sums its two components into feature u). Biases 0.
    // query q = [[1,0],[0,1]], key k = [[0,1],[1,0]], value v = [[1,2],[3,4]]; H = 2, c = 1/√2.
    // Logits per head: row 0: [q0·k0, q0·k1]·c = [0, 1/√2]; row 1: [1/√2, 0].
    // Softmax: e^{1/√2} = 2.0281, so row 0 = [1/3.0281, 2.0281/3.0281] = [0.3302, 0.6698]; row 1 reversed.
    // Head output: row 0 = 0.3302·[1,2] + 0.6698·[3,4] = [2.3395, 3.3395] → Σ_h = 5.679;
    //              row 1 = 0.6698·[1,2] + 0.3302·[3,4] = [1.6605, 2.6605] → Σ_h = 4.321.
    // Both heads are identical, so the output is [[[5.679, 5.679], [4.321, 4.321]]].
    const layer = track(new GroupedQueryAttention({ numQueryHeads: 2, numKeyValueHeads: 2, headDim: 2 }));
    layer.build([[1, 2, 2], [1, 2, 2], [1, 2, 2]]);
    const delta = (shape: number[], f: (i: number[]) => boolean) => {
      const buf = tf.buffer(shape, 'float32');
      for (let a = 0; a < shape[0]!; a++) for (let b = 0; b < shape[1]!; b++) for (let c = 0; c < shape[2]!; c++) {
        buf.set(f([a, b, c]) ? 1 : 0, a, b, c);
      }
      return buf.toTensor();
    };
    const inKernel = () => delta([2, 2, 2], ([m, , h]) => m === h);
    tf.tidy(() => layer.setWeights([
      inKernel(), tf.zeros([2, 2]), inKernel(), tf.zeros([2, 2]), inKernel(), tf.zeros([2, 2]),
      delta([2, 2, 2], ([u, , m]) => u === m), tf.zeros([2]),
    ]));
    tf.tidy(() => {
      const [output, scores] = layer.apply(tf.tensor3d([[[1, 0], [0, 1]]]), {
        value: tf.tensor3d([[[1, 2], [3, 4]]]),
        key: tf.tensor3d([[[0, 1], [1, 0]]]),
        returnAttentionScores: true,
      }) as tf.Tensor[];
      expect(output!.shape).toEqual([1, 2, 2]);
      expect(scores!.shape).toEqual([1, 2, 2, 2]);
      expect(allClose(output!.dataSync(), [5.679, 5.679, 4.32, 4.32], 1e-3), `output ${output!.dataSync()}`).toBe(true);
      expect(allClose(scores!.dataSync(), [0.33, 0.67, 0.67, 0.33, 0.33, 0.67, 0.67, 0.33], 1e-3), `scores ${scores!.dataSync()}`).toBe(true);
      expect(allClose(scores!.dataSync(), [0.3302, 0.6698, 0.6698, 0.3302, 0.3302, 0.6698, 0.6698, 0.3302], 1e-3)).toBe(true);
    });
  });
});
