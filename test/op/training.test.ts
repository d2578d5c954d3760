/**
 * Training through the fused op on cpu and wasm: the registered gradient (the engine's fused
 * backward) equals autodiff of the composite reference on random shapes with every mask kind,
 * fully masked rows, windows, causal offsets, G in {1, 2, 7}, T != S and T = 1, with and without
 * dropout; dropout in the fused kernel equals the composite with the same seed, is reproducible
 * across backends, random without a seed; the layer (with useGate) trains through it with a flat
 * tensor count and flat engine memory.
 */
import * as fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, test } from 'vitest';
import {
  GroupedQueryAttention,
  GroupedQueryAttentionKernel,
  groupedQueryAttention,
  groupedQueryAttentionReference,
  type GroupedQueryAttentionOptions,
} from '../../src/index.js';
import { getDefaultEngine } from '../../src/engine/index.js';
import { backwardCounters } from '../../src/engine/backward-problem.js';
import { BACKENDS, useBackend } from '../helpers/backends.js';
import { expectClose } from '../helpers/close.js';
import { makeMask, type MaskKind } from '../helpers/masks.js';

const KINDS: MaskKind[] = ['none', 'BTS', 'TS', 'B1S', 'BUTS', 'numeric', 'numeric+causal', 'fullyMaskedRows', 'additive-1e9'];

function gradsOf(
  f: typeof groupedQueryAttention,
  q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, r: tf.Tensor,
  options: GroupedQueryAttentionOptions,
): tf.Tensor[] {
  return tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(f(a, b, c, options), r)))([q, k, v]);
}

describe.each(BACKENDS)('training through the fused op on %s', (backend) => {
  beforeAll(() => useBackend(backend));

  test('gradients equal autodiff of the composite reference (property, every mask kind, dropout)', () => {
    fc.assert(
      fc.property(
        fc.record({
          b: fc.integer({ min: 1, max: 2 }),
          t: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 9 })),
          s: fc.integer({ min: 1, max: 11 }),
          v: fc.integer({ min: 1, max: 2 }),
          g: fc.constantFrom(1, 2, 7),
          h: fc.constantFrom(1, 4, 8),
          kind: fc.constantFrom(...KINDS),
          causal: fc.boolean(),
          offset: fc.constantFrom(0, 0, 3),
          window: fc.constantFrom(0, 0, 2),
          dropout: fc.constantFrom(0, 0, 0.3),
          seed: fc.integer({ min: 1, max: 1 << 20 }),
        }),
        ({ b, t, s, v, g, h, kind, causal, offset, window, dropout, seed }) => {
          const u = v * g;
          tf.tidy(() => {
            const q = tf.randomNormal([b, t, u, h], 0, 1, 'float32', seed);
            const k = tf.randomNormal([b, s, v, h], 0, 1, 'float32', seed + 1);
            const val = tf.randomNormal([b, s, v, h], 0, 1, 'float32', seed + 2);
            const r = tf.randomNormal([b, t, u, h], 0, 1, 'float32', seed + 3);
            const numericCausal = kind === 'numeric+causal';
            const options: GroupedQueryAttentionOptions = {
              attentionMask: makeMask(kind, b, u, t, s, seed + 4),
              causal: kind === 'additive-1e9' || kind === 'numeric' ? false : causal || numericCausal,
              queryOffset: offset,
              slidingWindow: kind === 'additive-1e9' || kind === 'numeric' || window === 0 ? null : window,
              dropout, training: dropout > 0, seed,
            };
            const what = JSON.stringify({ b, t, s, u, v, h, kind, causal, offset, window, dropout });
            const fwd = groupedQueryAttention(q, k, val, options);
            const ref = groupedQueryAttentionReference(q, k, val, options);
            expectClose(fwd.dataSync(), ref.dataSync(), `forward ${what}`, 1e-5, 1e-5);
            const fused = gradsOf(groupedQueryAttention, q, k, val, r, options);
            const reference = gradsOf(groupedQueryAttentionReference, q, k, val, r, options);
            fused.forEach((gr, i) => expectClose(gr.dataSync(), reference[i]!.dataSync(), `grad ${i} ${what}`, 1e-4, 1e-4));
          });
        },
      ),
      { numRuns: 40, seed: 2026 },
    );
  });

  test('the forward\'s log-sum-exp reaches the backward (no second Q·Kᵀ sweep); inference calls do not return it', () => {
    tf.tidy(() => {
      const q = tf.randomNormal([2, 9, 4, 8], 0, 1, 'float32', 1);
      const kv = tf.randomNormal([2, 11, 2, 8], 0, 1, 'float32', 2);
      const bits = tf.less(tf.randomUniform([2, 9, 11], 0, 1, 'float32', 3), 0.7);
      const cases: GroupedQueryAttentionOptions[] = [
        { causal: true },
        { attentionMask: bits, slidingWindow: 3 },
        { attentionMask: tf.floor(tf.randomUniform([2, 9, 11], 0, 3, 'float32', 4)) },
        { causal: true, dropout: 0.3, training: true, seed: 5 },
      ];
      for (const options of cases) {
        const before = backwardCounters.logSumExpRecomputed;
        const fused = gradsOf(groupedQueryAttention, q, kv, kv, q, options);
        expect(backwardCounters.logSumExpRecomputed, JSON.stringify(Object.keys(options))).toBe(before);
        const reference = gradsOf(groupedQueryAttentionReference, q, kv, kv, q, options);
        fused.forEach((gr, i) => expectClose(gr.dataSync(), reference[i]!.dataSync(), `grad ${i}`, 1e-4, 1e-4));
      }
      // Without a tape the kernel returns the output alone; with one, the (B,U,T) statistics too.
      const inputs = { query: q, key: kv, value: kv, mask: tf.zeros([1, 1, 1, 1]) };
      const attrs = {
        maskKind: 'none', causal: true, queryOffset: 0, slidingWindow: 0, scale: 0.25, returnScores: false,
        dropoutRate: 0, dropoutSeed: 0,
      };
      const inference = tf.engine().runKernel(GroupedQueryAttentionKernel, inputs, attrs) as tf.Tensor[];
      expect(inference.length).toBe(1);
      tf.grads((a: tf.Tensor) => {
        const outs = tf.engine().runKernel(GroupedQueryAttentionKernel, { ...inputs, query: a }, { ...attrs, returnLogSumExp: true }) as tf.Tensor[];
        expect(outs.map((o) => o.shape)).toEqual([[2, 9, 4, 8], [2, 4, 9]]);
        return tf.sum(outs[0]!);
      })([q]);
    });
  });

  test('dropout: the fused kernel runs it (no composite fallback), seeded calls repeat, unseeded calls differ', () => {
    tf.tidy(() => {
      const q = tf.randomNormal([1, 16, 4, 8], 0, 1, 'float32', 1);
      const kv = tf.randomNormal([1, 16, 2, 8], 0, 1, 'float32', 2);
      const options = { dropout: 0.4, training: true, seed: 7, causal: true };
      const a = groupedQueryAttention(q, kv, kv, options).dataSync();
      const b = groupedQueryAttention(q, kv, kv, options).dataSync();
      expect(Array.from(a)).toEqual(Array.from(b));
      const ref = groupedQueryAttentionReference(q, kv, kv, options).dataSync();
      expectClose(a, ref, 'fused = composite with the same seed', 1e-5, 1e-5);
      const plain = groupedQueryAttention(q, kv, kv, { causal: true }).dataSync();
      expect(Array.from(a)).not.toEqual(Array.from(plain));
      const u1 = groupedQueryAttention(q, kv, kv, { dropout: 0.4, training: true, causal: true }).dataSync();
      const u2 = groupedQueryAttention(q, kv, kv, { dropout: 0.4, training: true, causal: true }).dataSync();
      expect(Array.from(u1)).not.toEqual(Array.from(u2));
      // Not in training: no dropout.
      expect(Array.from(groupedQueryAttention(q, kv, kv, { dropout: 0.4, seed: 7, causal: true }).dataSync())).toEqual(Array.from(plain));
    });
  });

  test('layer with useGate and dropout: fused gradients equal the composite layer (flashAttention: false)', () => {
    const make = (flash: boolean) =>
      new GroupedQueryAttention({
        headDim: 4, numQueryHeads: 6, numKeyValueHeads: 2, useGate: true, dropout: 0.2, seed: 5,
        flashAttention: flash ? null : false, kernelInitializer: tfl.initializers.glorotUniform({ seed: 3 }),
      });
    const fused = make(true);
    const composite = make(false);
    const x = tf.randomNormal([2, 5, 7], 0, 1, 'float32', 9);
    fused.apply(x, { value: x, useCausalMask: true });
    composite.apply(x, { value: x, useCausalMask: true });
    composite.setWeights(fused.getWeights());
    const grads = (layer: GroupedQueryAttention) => {
      const vars = layer.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val);
      const r = tf.variableGrads(
        () => tf.sum(tf.square(layer.apply(x, { value: x, useCausalMask: true, training: true }) as tf.Tensor)) as tf.Scalar, vars);
      return { value: r.value, grads: vars.map((v) => r.grads[v.name]!) };
    };
    const a = grads(fused);
    const b = grads(composite);
    expect(a.grads.length).toBe(10); // query, key, value, gate, output: kernel and bias
    expectClose(a.value.dataSync(), b.value.dataSync(), 'loss', 1e-5, 1e-5);
    a.grads.forEach((g, i) => expectClose(g.dataSync(), b.grads[i]!.dataSync(), `grad ${i}`, 1e-4, 1e-4));
    tf.dispose([x, a.value, b.value, ...a.grads, ...b.grads]);
    fused.dispose();
    composite.dispose();
  });

  test('a 200-step fit keeps the tensor count and engine memory flat', async () => {
    const query = tfl.input({ shape: [8, 6] });
    const layer = new GroupedQueryAttention({ headDim: 4, numQueryHeads: 4, numKeyValueHeads: 2, dropout: 0.1, seed: 1 });
    const out = layer.apply(query, { value: query, useCausalMask: true }) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: query, outputs: out });
    model.compile({ optimizer: tf.train.adam(0.01), loss: 'meanSquaredError' });
    const x = tf.randomNormal([4, 8, 6], 0, 1, 'float32', 1);
    const y = tf.randomNormal([4, 8, 6], 0, 1, 'float32', 2);
    await model.fit(x, y, { epochs: 5, batchSize: 4, verbose: 0 });
    const tensors = tf.memory().numTensors;
    const engineBytes = getDefaultEngine().memoryBytes();
    const history = await model.fit(x, y, { epochs: 200, batchSize: 4, verbose: 0 });
    expect(tf.memory().numTensors).toBe(tensors);
    expect(getDefaultEngine().memoryBytes()).toBe(engineBytes);
    const losses = history.history['loss'] as number[];
    expect(losses[199]!).toBeLessThan(losses[0]!);
    tf.dispose([x, y]);
    model.dispose();
  });
});

describe('dropout across backends', () => {
  test('the same seed gives identical outputs and gradients on cpu and wasm', async () => {
    const run = async (backend: 'cpu' | 'wasm') => {
      await useBackend(backend);
      return tf.tidy(() => {
        const q = tf.tensor4d(Array.from({ length: 2 * 12 * 4 * 8 }, (_, i) => Math.sin(i)), [2, 12, 4, 8]);
        const kv = tf.tensor4d(Array.from({ length: 2 * 12 * 2 * 8 }, (_, i) => Math.cos(i)), [2, 12, 2, 8]);
        const options = { dropout: 0.25, training: true, seed: 123, causal: true };
        const out = groupedQueryAttention(q, kv, kv, options);
        const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(groupedQueryAttention(a, b, b, options))))([q, kv]);
        return [out.dataSync(), ...g.map((x) => x.dataSync())];
      });
    };
    const cpu = await run('cpu');
    const wasm = await run('wasm');
    cpu.forEach((c, i) => {
      // The same entries are dropped: zeros coincide; values agree to float32 rounding.
      expectClose(wasm[i]!, c, `result ${i}`, 1e-5, 1e-5);
    });
  });
});
