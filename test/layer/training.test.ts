/**
 * Training behaviour of the layer on cpu and wasm: gradients reach every weight (and match float64
 * finite differences of the independent reference), dropout acts on the attention probabilities only
 * in training and the returned scores are pre-dropout, kernel/bias/activity regularizers add Keras's
 * losses (also inside fit), and constraints hold after each optimizer step in fit.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { GroupedQueryAttention, type GroupedQueryAttentionArgs } from '../../src/index.js';
import { BACKENDS, useBackend } from '../helpers/backends.js';
import { expectClose } from '../helpers/close.js';
import { gqaLayer64, project64, tensor64, type LayerWeights64, type Mask64 } from '../reference/float64.js';
import { rng, uniform } from '../property/random.js';

const NAMES = ['query', 'key', 'value', 'attention_output'].flatMap((s) => [`${s}/kernel`, `${s}/bias`]);
const REF_NAMES: Array<keyof LayerWeights64> = [
  'queryKernel', 'queryBias', 'keyKernel', 'keyBias', 'valueKernel', 'valueBias', 'outputKernel', 'outputBias',
];

describe.each(BACKENDS)('training on %s', (backend) => {
  beforeAll(() => useBackend(backend));
  const owned: Array<{ dispose(): unknown }> = [];
  afterEach(() => {
    for (const x of owned.splice(0)) x.dispose();
  });
  const gqa = (args: GroupedQueryAttentionArgs) => {
    const layer = new GroupedQueryAttention(args);
    owned.push({ dispose: () => layer.built && layer.dispose() });
    return layer;
  };

  // Small problem: B=2, T=3, S=4, Dq=3, Dv=2, Dk=5 (key given), U=4, V=2, H=2.
  const [B, T, S, DQ, DV, DK, U, V, H] = [2, 3, 4, 3, 2, 5, 4, 2, 2];
  const next = rng(99);
  const xq = uniform(next, B * T * DQ, 1);
  const xv = uniform(next, B * S * DV, 1);
  const xk = uniform(next, B * S * DK, 1);
  const r = uniform(next, B * T * DQ, 1); // loss = Σ output·r
  const shapes: number[][] = [[DQ, U, H], [U, H], [DK, V, H], [V, H], [DV, V, H], [V, H], [U, H, DQ], [DQ]];
  const w0 = shapes.map((s) => uniform(next, s.reduce((a, b) => a * b, 1), 0.8));
  // Value mask and causal mask, with no row lacking an allowed key (value position 0 is always kept).
  const valueMask = [1, 0, 1, 1, 1, 1, 0, 1];

  function lossRef64(weights: Float64Array[]): number {
    const w = Object.fromEntries(REF_NAMES.map((n, i) => [n, weights[i]])) as unknown as LayerWeights64;
    const res = gqaLayer64({
      query: tensor64([B, T, DQ], xq),
      value: tensor64([B, S, DV], xv),
      key: tensor64([B, S, DK], xk),
      numQueryHeads: U, numKeyValueHeads: V, headDim: H, weights: w,
      valueMask: { shape: [B, S], data: valueMask } as Mask64,
      useCausalMask: true,
    });
    expect(res.fullyMaskedRows).toBe(0);
    let loss = 0;
    for (let i = 0; i < r.length; i++) loss += res.layerOutput[i]! * r[i]!;
    return loss;
  }

  test('gradients reach every weight and equal float64 finite differences of the reference', () => {
    const layer = gqa({ headDim: H, numQueryHeads: U, numKeyValueHeads: V });
    layer.build([[B, T, DQ], [B, S, DV], [B, S, DK]]);
    tf.tidy(() => layer.setWeights(w0.map((w, i) => tf.tensor(w, shapes[i]))));
    const before = tf.memory().numTensors;
    const { value, grads } = tf.tidy(() => {
      const q = tf.tensor3d(xq, [B, T, DQ]);
      const v = tf.tensor3d(xv, [B, S, DV]);
      const k = tf.tensor3d(xk, [B, S, DK]);
      const vm = tf.tensor2d(valueMask, [B, S], 'bool');
      const rt = tf.tensor3d(r, [B, T, DQ]);
      const vars = layer.trainableWeights.map((w) => w.read() as tf.Variable);
      const res = tf.variableGrads(
        () => tf.sum(tf.mul(layer.apply(q, { value: v, key: k, valueMask: vm, useCausalMask: true }) as tf.Tensor, rt)) as tf.Scalar,
        vars,
      );
      return { value: res.value, grads: vars.map((x) => res.grads[x.name]!) };
    });
    expect(grads.length).toBe(8);
    const w64 = w0.map((w) => Float64Array.from(w));
    expect(value.dataSync()[0]!).toBeCloseTo(lossRef64(w64), 4);
    grads.forEach((g, i) => {
      expect(g, `${NAMES[i]} has a gradient`).toBeDefined();
      expect(g.shape).toEqual(shapes[i]);
      const got = g.dataSync();
      // Central differences in float64 (the loss is linear-ish at this scale; eps 1e-6 is exact enough).
      const want = new Float64Array(got.length);
      for (let j = 0; j < got.length; j++) {
        const plus = w64.map((w) => w.slice());
        const minus = w64.map((w) => w.slice());
        plus[i]![j]! += 1e-6;
        minus[i]![j]! -= 1e-6;
        want[j] = (lossRef64(plus) - lossRef64(minus)) / 2e-6;
      }
      expectClose(got, want, `gradient of ${NAMES[i]}`, 1e-4, 1e-3);
      const maxAbs = Math.max(...Array.from(got, Math.abs));
      if (NAMES[i] === 'key/bias') {
        // Softmax is shift-invariant and key/bias adds q·b_k to every logit of a row: its true
        // gradient is exactly 0, in Keras too.
        expect(maxAbs, 'key/bias gradient is 0 (softmax shift invariance)').toBeLessThan(1e-5);
      } else {
        expect(maxAbs, `${NAMES[i]} gradient is nonzero`).toBeGreaterThan(1e-3);
      }
    });
    tf.dispose([value, ...grads]);
    expect(tf.memory().numTensors).toBe(before);
  });

  test('gradients through both outputs (output and scores) reach every weight but key/bias', () => {
    const layer = gqa({ headDim: H, numQueryHeads: U, numKeyValueHeads: V });
    const grads = tf.tidy(() => {
      const q = tf.tensor3d(xq, [B, T, DQ]);
      const v = tf.tensor3d(xv, [B, S, DV]);
      layer.apply(q, { value: v }); // build
      const vars = layer.trainableWeights.map((w) => w.read() as tf.Variable);
      const res = tf.variableGrads(() => {
        const [out, scores] = layer.apply(q, { value: v, returnAttentionScores: true }) as tf.Tensor[];
        return tf.add(tf.sum(tf.square(out!)), tf.sum(tf.mul(scores!, tf.reshape(tf.range(0, scores!.size), scores!.shape)))) as tf.Scalar;
      }, vars);
      return vars.map((x) => tf.keep(res.grads[x.name]!));
    });
    grads.forEach((g, i) => {
      const maxAbs = Math.max(...Array.from(g.dataSync(), Math.abs));
      if (NAMES[i] === 'key/bias') expect(maxAbs).toBeLessThan(1e-4);
      else expect(maxAbs, `${NAMES[i]} gradient is nonzero`).toBeGreaterThan(1e-4);
    });
    tf.dispose(grads);
  });

  test('dropout acts on the probabilities, only in training; scores are pre-dropout', () => {
    // U=2 heads, V=1, H=1, Dq=Dv=1, S=1: every probability is 1. Value kernel 1, bias 0, value 1, so
    // each head's output is P_d·1 ∈ {0, 2} (rate 0.5 keeps and doubles). Output kernel sums both heads:
    // y ∈ {0, 2, 4} with dropout on the probabilities (per head), but {0, 4} if it were on the output.
    const layer = gqa({ headDim: 1, numQueryHeads: 2, numKeyValueHeads: 1, dropout: 0.5 });
    layer.build([[4, 8, 1], [4, 1, 1]]);
    tf.tidy(() => layer.setWeights([
      tf.ones([1, 2, 1]), tf.zeros([2, 1]), tf.ones([1, 1, 1]), tf.zeros([1, 1]),
      tf.ones([1, 1, 1]), tf.zeros([1, 1]), tf.ones([2, 1, 1]), tf.zeros([1]),
    ]));
    tf.tidy(() => {
      const q = tf.randomNormal([4, 8, 1], 0, 1, 'float32', 3);
      const v = tf.ones([4, 1, 1]);
      const call = (training?: boolean) =>
        layer.apply(q, { value: v, returnAttentionScores: true, ...(training == null ? {} : { training }) }) as tf.Tensor[];
      for (const training of [undefined, false]) {
        const [out, scores] = call(training);
        expect(Array.from(out!.dataSync()), `training=${training}`).toEqual(new Array(32).fill(2));
        expect(Array.from(scores!.dataSync())).toEqual(new Array(64).fill(1));
      }
      const [out, scores] = call(true);
      const values = Array.from(out!.dataSync());
      expect(values.every((y) => y === 0 || y === 2 || y === 4), `outputs ${values}`).toBe(true);
      expect(values.some((y) => y === 2), 'some rows keep exactly one head (per-head dropout)').toBe(true);
      expect(values.some((y) => y !== 2), 'training changes the output').toBe(true);
      expect(Array.from(scores!.dataSync()), 'scores are pre-dropout').toEqual(new Array(64).fill(1));
    });
  });

  test('dropout with S > 1: training changes the output, scores equal the no-dropout scores', () => {
    const layer = gqa({ headDim: 4, numQueryHeads: 4, numKeyValueHeads: 2, dropout: 0.3 });
    tf.tidy(() => {
      const q = tf.randomNormal([2, 5, 6], 0, 1, 'float32', 1);
      const v = tf.randomNormal([2, 7, 6], 0, 1, 'float32', 2);
      const [o0, s0] = layer.apply(q, { value: v, returnAttentionScores: true }) as tf.Tensor[];
      const [o1, s1] = layer.apply(q, { value: v, returnAttentionScores: true, training: false }) as tf.Tensor[];
      const [o2, s2] = layer.apply(q, { value: v, returnAttentionScores: true, training: true }) as tf.Tensor[];
      const o3 = layer.apply(q, { value: v, training: true }) as tf.Tensor;
      expect(Array.from(o1!.dataSync())).toEqual(Array.from(o0!.dataSync()));
      expect(Array.from(s1!.dataSync())).toEqual(Array.from(s0!.dataSync()));
      expect(Array.from(o2!.dataSync())).not.toEqual(Array.from(o0!.dataSync()));
      expect(Array.from(o3.dataSync())).not.toEqual(Array.from(o0!.dataSync()));
      expectClose(s2!.dataSync(), s0!.dataSync(), 'training scores = inference scores', 1e-7, 1e-6);
    });
  });

  test.each(['build', 'apply'] as const)('kernel and bias regularizers add one loss per weight, with the l2 values (%s)', (how) => {
    const layer = gqa({
      headDim: H, numQueryHeads: U, numKeyValueHeads: V,
      kernelRegularizer: tfl.regularizers.l2({ l2: 0.01 }),
    });
    const build = (l: GroupedQueryAttention) => {
      if (how === 'build') l.build([[B, T, DQ], [B, S, DV]]);
      else tf.tidy(() => l.apply(tf.ones([B, T, DQ]), { value: tf.ones([B, S, DV]) }) as tf.Tensor);
    };
    build(layer);
    expect(layer.losses.length).toBe(4);
    const kernels = layer.getWeights().filter((_, i) => i % 2 === 0);
    const want = kernels.map((k) => 0.01 * Array.from(k.dataSync()).reduce((a, x) => a + x * x, 0));
    const got = layer.losses.map((f) => tf.tidy(() => f().dataSync()[0]!));
    expectClose(got, want, 'kernel l2 losses', 1e-7, 1e-5);
    const both = gqa({
      headDim: H, numQueryHeads: U, numKeyValueHeads: V,
      kernelRegularizer: 'l2', biasRegularizer: tfl.regularizers.l1({ l1: 0.5 }),
      biasInitializer: 'ones',
    });
    build(both);
    expect(both.losses.length).toBe(8);
    const biasLosses = both.losses.map((f) => tf.tidy(() => f().dataSync()[0]!));
    // Bias l1 with ones: 0.5·size for (U,H), (V,H), (V,H), (Dq).
    expect(biasLosses).toEqual(expect.arrayContaining([0.5 * U * H, 0.5 * V * H, 0.5 * DQ]));
  });

  test('activityRegularizer: 5 losses (q, k, v, output projections + output), 6 with scores, Keras values', () => {
    const layer = gqa({
      headDim: H, numQueryHeads: U, numKeyValueHeads: V, activityRegularizer: tfl.regularizers.l2({ l2: 0.01 }),
    });
    layer.build([[B, T, DQ], [B, S, DV], [B, S, DK]]);
    tf.tidy(() => layer.setWeights(w0.map((w, i) => tf.tensor(w, shapes[i]))));
    expect(layer.losses.length, 'no activity losses before a call').toBe(0);
    const w = Object.fromEntries(REF_NAMES.map((n, i) => [n, Float64Array.from(w0[i]!)])) as unknown as LayerWeights64;
    const ref = gqaLayer64({
      query: tensor64([B, T, DQ], xq), value: tensor64([B, S, DV], xv), key: tensor64([B, S, DK], xk),
      numQueryHeads: U, numKeyValueHeads: V, headDim: H, weights: w,
    });
    const l2 = (a: ArrayLike<number>) => 0.01 * Array.from(a).reduce((s, x) => s + x * x, 0);
    const lq = l2(project64(tensor64([B, T, DQ], xq), w.queryKernel, w.queryBias, U, H).data);
    const lk = l2(project64(tensor64([B, S, DK], xk), w.keyKernel, w.keyBias, V, H).data);
    const lv = l2(project64(tensor64([B, S, DV], xv), w.valueKernel, w.valueBias, V, H).data);
    const lo = l2(ref.layerOutput);
    const ls = l2(ref.scores);
    for (const [scores, want] of [[false, [lq, lk, lv, lo, lo]], [true, [lq, lk, lv, lo, lo, ls]]] as const) {
      const before = tf.memory().numTensors;
      tf.tidy(() => {
        layer.apply(tf.tensor3d(xq, [B, T, DQ]), {
          value: tf.tensor3d(xv, [B, S, DV]), key: tf.tensor3d(xk, [B, S, DK]), returnAttentionScores: scores,
        });
      });
      expect(layer.losses.length, `returnAttentionScores=${scores}`).toBe(want.length);
      const got = layer.losses.map((f) => tf.tidy(() => f().dataSync()[0]!));
      expectClose(got, want as readonly number[] as number[], `activity losses (scores=${scores})`, 1e-6, 1e-4);
      // The kept losses replace the previous call's: the tensor count stays flat.
      if (scores) expect(tf.memory().numTensors).toBe(before + 1);
    }
  });

  test('activityRegularizer works inside fit: the reported loss = data loss + activity losses', async () => {
    const query = tfl.input({ shape: [T, DQ] });
    const value = tfl.input({ shape: [S, DQ] });
    const layer = new GroupedQueryAttention({
      headDim: H, numQueryHeads: U, numKeyValueHeads: V, activityRegularizer: tfl.regularizers.l2({ l2: 0.05 }),
    });
    const out = layer.apply(query, { value }) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: [query, value], outputs: out });
    owned.push(model);
    model.compile({ optimizer: tf.train.sgd(0.01), loss: 'meanSquaredError' });
    const x = [tf.randomNormal([8, T, DQ], 0, 1, 'float32', 1), tf.randomNormal([8, S, DQ], 0, 1, 'float32', 2)];
    const y = tf.randomNormal([8, T, DQ], 0, 1, 'float32', 3);
    const pred = model.predict(x) as tf.Tensor;
    const mse = tf.tidy(() => tf.mean(tf.square(tf.sub(pred, y))).dataSync()[0]!);
    expect(layer.losses.length).toBe(5);
    const activity = layer.losses.reduce((a, f) => a + tf.tidy(() => f().dataSync()[0]!), 0);
    expect(activity, 'the regularization is not negligible').toBeGreaterThan(0.01 * mse);
    const history = await model.fit(x, y, { epochs: 2, batchSize: 8, verbose: 0, shuffle: false });
    const losses = history.history['loss'] as number[];
    expect(losses[0]!).toBeCloseTo(mse + activity, 4);
    expect(losses[1]!, 'training reduces the regularized loss').toBeLessThan(losses[0]!);
    tf.dispose([...x, y, pred]);
  });

  test('kernelRegularizer works inside fit: the reported loss = data loss + kernel losses', async () => {
    const query = tfl.input({ shape: [T, DQ] });
    const value = tfl.input({ shape: [S, DQ] });
    const layer = new GroupedQueryAttention({
      headDim: H, numQueryHeads: U, numKeyValueHeads: V, kernelRegularizer: tfl.regularizers.l2({ l2: 0.05 }),
    });
    const model = tfl.model({ inputs: [query, value], outputs: layer.apply(query, { value }) as tfl.SymbolicTensor });
    owned.push(model);
    model.compile({ optimizer: tf.train.sgd(0.01), loss: 'meanSquaredError' });
    const x = [tf.randomNormal([8, T, DQ], 0, 1, 'float32', 1), tf.randomNormal([8, S, DQ], 0, 1, 'float32', 2)];
    const y = tf.randomNormal([8, T, DQ], 0, 1, 'float32', 3);
    const pred = model.predict(x) as tf.Tensor;
    const mse = tf.tidy(() => tf.mean(tf.square(tf.sub(pred, y))).dataSync()[0]!);
    const kernelL2 = layer.getWeights().filter((_, i) => i % 2 === 0)
      .reduce((a, k) => a + 0.05 * Array.from(k.dataSync()).reduce((t, v) => t + v * v, 0), 0);
    const history = await model.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0, shuffle: false });
    expect((history.history['loss'] as number[])[0]!).toBeCloseTo(mse + kernelL2, 4);
    tf.dispose([...x, y, pred]);
  });

  test('constraints hold after every optimizer step in fit (nonNeg kernels, maxNorm biases)', async () => {
    const run = async (constrained: boolean) => {
      const query = tfl.input({ shape: [T, DQ] });
      const value = tfl.input({ shape: [S, DQ] });
      const layer = new GroupedQueryAttention({
        headDim: H, numQueryHeads: U, numKeyValueHeads: V, biasInitializer: 'ones',
        // Seeded so the test is deterministic (an unlucky draw could leave the free run within the rules).
        kernelInitializer: tfl.initializers.glorotUniform({ seed: 11 }),
        ...(constrained
          ? { kernelConstraint: tfl.constraints.nonNeg(), biasConstraint: tfl.constraints.maxNorm({ maxValue: 0.5, axis: 0 }) }
          : {}),
      });
      const model = tfl.model({ inputs: [query, value], outputs: layer.apply(query, { value }) as tfl.SymbolicTensor });
      owned.push(model);
      model.compile({ optimizer: tf.train.sgd(0.05), loss: 'meanSquaredError' });
      // Start from non-negative kernels; the target -3 pulls the output (and the kernels) down.
      tf.tidy(() => layer.setWeights(layer.getWeights().map((w, i) => (i % 2 === 0 ? tf.abs(w) : tf.mul(tf.onesLike(w), 0.1)))));
      const x = [tf.abs(tf.randomNormal([8, T, DQ], 0, 1, 'float32', 1)), tf.abs(tf.randomNormal([8, S, DQ], 0, 1, 'float32', 2))];
      const y = tf.fill([8, T, DQ], -3);
      await model.fit(x, y, { epochs: 6, batchSize: 4, verbose: 0 });
      tf.dispose([...x, y]);
      const weights = layer.getWeights();
      const minKernel = Math.min(...weights.filter((_, i) => i % 2 === 0).flatMap((k) => Array.from(k.dataSync())));
      const maxBiasNorm = Math.max(...weights.filter((_, i) => i % 2 === 1).flatMap((b) =>
        tf.tidy(() => Array.from(tf.sqrt(tf.sum(tf.square(b), 0)).dataSync()))));
      return { minKernel, maxBiasNorm };
    };
    const free = await run(false);
    // Not vacuous: without constraints the same training breaks both rules.
    expect(free.minKernel).toBeLessThan(0);
    expect(free.maxBiasNorm).toBeGreaterThan(0.5);
    const held = await run(true);
    expect(held.minKernel, 'kernels stay non-negative').toBeGreaterThanOrEqual(0);
    expect(held.maxBiasNorm, 'bias column norms stay ≤ 0.5').toBeLessThanOrEqual(0.5 + 1e-5);
  });
});
