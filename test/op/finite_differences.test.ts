/**
 * The op's registered gradient (the engine's fused backward on cpu and wasm) against float64 central
 * differences of a scalar loss L = Σ out ∘ W, where out is the independent float64 reference
 * (test/reference/float64.ts), on small random shapes: no mask, bool masks, numeric masks (Keras's
 * additive (1 − m)·−1e9), causal with offsets, sliding windows, G in {1, 2, 7}, T ≠ S, T = 1.
 * Rows with no allowed key are left out (fc.pre): their float32 logits sit on the −1e9 grid, where
 * float64 differences see a step function (the engine oracle tests cover them).
 */
import * as fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, test } from 'vitest';
import { defaultScale, groupedQueryAttention, type GroupedQueryAttentionOptions } from '../../src/index.js';
import { BACKENDS, useBackend } from '../helpers/backends.js';
import { rng, uniform } from '../property/random.js';
import { attention64, tensor64, type Mask64 } from '../reference/float64.js';

const spec = fc.record({
  b: fc.integer({ min: 1, max: 2 }),
  t: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 4 })),
  s: fc.integer({ min: 1, max: 5 }),
  v: fc.integer({ min: 1, max: 2 }),
  g: fc.constantFrom(1, 2, 7),
  h: fc.constantFrom(1, 3, 4),
  kind: fc.constantFrom('none', 'bool', 'numeric', 'causal', 'bool+causal', 'window', 'window+causal'),
  offset: fc.constantFrom(0, 0, 2),
  window: fc.integer({ min: 1, max: 3 }),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
});

describe.each(BACKENDS)('op gradient vs float64 finite differences on %s', (backend) => {
  beforeAll(() => useBackend(backend));

  test('dQ, dK, dV equal central differences of the float64 reference loss', () => {
    fc.assert(
      fc.property(spec, (p) => {
        const u = p.v * p.g;
        const next = rng(p.seed);
        const q = uniform(next, p.b * p.t * u * p.h, 1);
        const k = uniform(next, p.b * p.s * p.v * p.h, 1);
        const v = uniform(next, p.b * p.s * p.v * p.h, 1);
        const w = uniform(next, p.b * p.t * u * p.h, 1);
        const numeric = p.kind === 'numeric';
        const useBits = p.kind === 'bool' || p.kind === 'bool+causal' || numeric;
        const causal = p.kind.endsWith('causal');
        const window = p.kind.startsWith('window') ? p.window : 0;
        // Mask data (B, T, S): bool bits, or numeric values in {0, 0.5, 1} (0.5 masks: adder −5e8).
        const bits = new Float32Array(p.b * p.t * p.s);
        for (let i = 0; i < bits.length; i++) bits[i] = !useBits ? 1 : numeric ? [0, 0.5, 1, 1][Math.floor(next() * 4)]! : next() < 0.7 ? 1 : 0;
        // The effective mask the reference applies: the bits AND causal AND the window, rank 4 (B,1,T,S).
        const allowed = new Uint8Array(p.b * p.t * p.s);
        for (let b = 0; b < p.b; b++) {
          for (let t = 0; t < p.t; t++) {
            const pos = p.offset + t;
            let any = false;
            for (let j = 0; j < p.s; j++) {
              let ok = bits[(b * p.t + t) * p.s + j] === 1;
              if (causal && j > pos) ok = false;
              if (window > 0 && (causal ? pos - j >= window : Math.abs(pos - j) >= window)) ok = false;
              allowed[(b * p.t + t) * p.s + j] = ok ? 1 : 0;
              any ||= ok;
            }
            fc.pre(any);
          }
        }
        const mask64: Mask64 | null = p.kind === 'none'
          ? null
          : numeric
            ? { shape: [p.b, 1, p.t, p.s], data: bits, numeric: true }
            : { shape: [p.b, 1, p.t, p.s], data: allowed };
        const scale = defaultScale(p.h);
        const loss = (qq: Float64Array, kk: Float64Array, vv: Float64Array): number => {
          const out = attention64(
            tensor64([p.b, p.t, u, p.h], qq), tensor64([p.b, p.s, p.v, p.h], kk), tensor64([p.b, p.s, p.v, p.h], vv), mask64, scale,
          ).output;
          let sum = 0;
          for (let i = 0; i < out.length; i++) sum += out[i]! * w[i]!;
          return sum;
        };
        const options: GroupedQueryAttentionOptions = {
          attentionMask: useBits
            ? numeric ? tf.tensor3d(bits, [p.b, p.t, p.s]) : tf.tensor3d(bits, [p.b, p.t, p.s], 'bool')
            : null,
          causal,
          queryOffset: p.offset,
          slidingWindow: window > 0 ? window : null,
        };
        const grads = tf.tidy(() => {
          const args = [tf.tensor4d(q, [p.b, p.t, u, p.h]), tf.tensor4d(k, [p.b, p.s, p.v, p.h]), tf.tensor4d(v, [p.b, p.s, p.v, p.h])];
          const r = tf.tensor4d(w, [p.b, p.t, u, p.h]);
          const g = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(groupedQueryAttention(a, b, c, options), r)))(args);
          return g.map((x) => x.dataSync() as Float32Array);
        });
        if (options.attentionMask) options.attentionMask.dispose();
        const inputs = [Float64Array.from(q), Float64Array.from(k), Float64Array.from(v)];
        const eps = 1e-3;
        const what = JSON.stringify(p);
        inputs.forEach((x, which) => {
          for (let i = 0; i < x.length; i++) {
            const at = (d: number) => {
              const moved = inputs.map((a, n) => (n === which ? Float64Array.from(a) : a));
              moved[which]![i] = x[i]! + d;
              return loss(moved[0]!, moved[1]!, moved[2]!);
            };
            const fd = (at(eps) - at(-eps)) / (2 * eps);
            const got = grads[which]![i]!;
            expect(Math.abs(got - fd), `${what}: gradient ${which}[${i}] ${got} vs ${fd}`).toBeLessThanOrEqual(1e-4 * (1 + Math.abs(fd)));
          }
        });
      }),
      { numRuns: 40, seed: 31 },
    );
  });
});
