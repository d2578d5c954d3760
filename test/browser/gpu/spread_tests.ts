/**
 * Wide logit spreads on the GPU kernels: Keras 3.6 gives a disallowed key (bool mask, causal, window)
 * the logit fround(s − 1e9), not −∞, so once a row's logits spread by about 1e9 a disallowed key
 * still carries weight (docs/keras-3.6-behaviour.md §5). The fused kernels must give the composite's
 * result there: with and without a KV cache, with and without scores, on webgpu's flash, stats and
 * flash-decoding paths and on webgl's passes. Registered by page.ts.
 *
 * Data: only head dim 0 of Q and K is nonzero and the head sizes are powers of 4 (scale 1/2, 1/4,
 * 1/8), so every logit is one correctly rounded float32 product, the same on every backend; logit
 * magnitudes P from 2.5e8 (levels P·z meet the −1e9 of a disallowed key exactly, z ≤ 4) to 8e37
 * (where fround(s − 1e9) = s), next to ordinary logits of a few units. Some trials put ±Inf into a
 * value at a random key.
 *
 * Each test also runs the composite with the disallowed keys dropped (an additive 0/−Inf mask) and
 * counts the rows where that differs from Keras's result: the rows a kernel that skips disallowed
 * keys gets wrong. A test where no row differs proves nothing and fails.
 *
 * Shape letters: B batch · T query length · S key length · U query heads · V kv heads · H head size.
 */
import * as tf from '@tensorflow/tfjs-core';
import { groupedQueryAttention, groupedQueryAttentionReference } from '../../../src/index.js';
import { allowedByPosition } from '../../../src/op/mask_rule.js';
import {
  TOL_CPU, caseData, compareNonFinite, kernelCalls, runCachedOp, runOp, type Case, type CaseData, type GpuBackend, type Result,
} from './op_run.js';
import { rng, useBackend } from './util.js';

/** Cases: every kind of disallowed key, the webgpu paths (flash, stats + probabilities, flash-decoding). */
export const SPREAD_CASES: Case[] = [
  { name: 'causal T4 S12 G=2 H4', b: 1, t: 4, s: 12, u: 4, v: 2, h: 4, causal: true, queryOffset: 8 },
  { name: 'causal T4 S300 G=2 H16 offset 150', b: 1, t: 4, s: 300, u: 4, v: 2, h: 16, causal: true, queryOffset: 150 },
  { name: 'causal window 64 T4 S300 G=2 H16 offset 296', b: 1, t: 4, s: 300, u: 4, v: 2, h: 16, causal: true, slidingWindow: 64, queryOffset: 296 },
  { name: 'causal T5 S7 G=2 H4, scores', b: 2, t: 5, s: 7, u: 4, v: 2, h: 4, causal: true, returnScores: true },
  { name: 'window 3 T6 S10 G=1 H4', b: 1, t: 6, s: 10, u: 2, v: 2, h: 4, slidingWindow: 3, queryOffset: 2 },
  { name: 'causal + window 5 T5 S20 G=7 H16, scores', b: 1, t: 5, s: 20, u: 7, v: 1, h: 16, causal: true, slidingWindow: 5, queryOffset: 15, returnScores: true },
  {
    name: 'bool (B,U,T,S) mask with fully masked rows T4 S9 G=7 H4, scores', b: 1, t: 4, s: 9, u: 7, v: 1, h: 4,
    mask: { kind: 'bool-rows', shape: [1, 7, 4, 9] }, returnScores: true,
  },
  { name: 'bool (1,1,T,S) mask T3 S40 G=4 H16', b: 1, t: 3, s: 40, u: 4, v: 1, h: 16, mask: { kind: 'bool', shape: [1, 1, 3, 40] } },
  {
    name: 'causal + bool (B,1,T,S) mask T4 S30 G=2 H4', b: 2, t: 4, s: 30, u: 4, v: 2, h: 4, causal: true, queryOffset: 26,
    mask: { kind: 'bool', shape: [2, 1, 4, 30] },
  },
  { name: 'many tiles T20 S100 causal G=2 H16 offset 80', b: 1, t: 20, s: 100, u: 4, v: 2, h: 16, causal: true, queryOffset: 80 },
  // Few queries over many keys: flash-decoding on webgpu.
  { name: 'decode T1 S300 causal window 100 G=2 H16 offset 299', b: 2, t: 1, s: 300, u: 4, v: 2, h: 16, causal: true, slidingWindow: 100, queryOffset: 299 },
  { name: 'decode T2 S300 causal window 40 G=2 H4 offset 298', b: 1, t: 2, s: 300, u: 4, v: 2, h: 4, causal: true, slidingWindow: 40, queryOffset: 298 },
  {
    name: 'decode T1 S257 bool mask G=7 H4', b: 1, t: 1, s: 257, u: 7, v: 1, h: 4,
    mask: { kind: 'bool-rows', shape: [1, 7, 1, 257] },
  },
];

/** Cases run with dropout too (the kernels' keep factors at every key of a wide row). */
export const SPREAD_DROPOUT_CASES: Case[] = SPREAD_CASES.filter((c) => /^(causal T5|bool \(B,U|decode T1 S257)/.test(c.name));

/** Cases run through a KV cache too: the call's T keys after S − T cached ones (queryOffset S − T). */
export const SPREAD_CACHE_CASES: Case[] = SPREAD_CASES.filter((c) => c.t < c.s && (c.queryOffset ?? 0) === c.s - c.t);

/** Logit magnitudes P of the levels P·z (see the module comment). */
const MAGNITUDES = [2.5e8, 5e8, 1e9, 1e12, 1e20, 8e37];

/**
 * Replaces Q and K by one-dimensional data whose logits reach magnitude P (held by the keys or by the
 * queries), and sometimes puts ±Inf into one value. Returns what it did.
 */
function spreadData(c: Case, d: CaseData, p: number, rand: () => number): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const onKeys = rand() < 0.6;
  // Queries: Qs = Q·(1/√H) is exactly σ (or σ·P); keys: levels P·z or ordinary values.
  const root = Math.sqrt(c.h);
  const level = (scale: number) => (rand() < 0.5 ? scale * (Math.floor(rand() * 9) - 4) : (rand() * 2 - 1) * 2.4);
  d.q.fill(0);
  d.k.fill(0);
  for (let i = 0; i < d.q.length; i += c.h) d.q[i] = root * pick([1, -1, 0.5, -0.5]) * (onKeys ? 1 : p);
  for (let i = 0; i < d.k.length; i += c.h) d.k[i] = level(onKeys ? p : 1);
  let what = `P=${p} on ${onKeys ? 'keys' : 'queries'}`;
  if (rand() < 0.3) {
    const at = Math.floor(rand() * d.v.length);
    d.v[at] = rand() < 0.5 ? Infinity : -Infinity;
    what += `, v[${at}] = ${d.v[at]}`;
  }
  return what;
}

/** The allowed keys as an additive (B,U,T,S) mask: 0 where Keras allows the key, −Inf elsewhere. */
function droppingMask(c: Case, d: CaseData): Float32Array {
  const out = new Float32Array(c.b * c.u * c.t * c.s);
  const shape = c.mask?.shape ?? [1, 1, 1, 1];
  const at = (i: number, n: number) => (shape[i] === 1 ? 0 : n);
  const positional = { causal: c.causal ?? false, slidingWindow: c.slidingWindow ?? 0 };
  for (let b = 0; b < c.b; b++) {
    for (let u = 0; u < c.u; u++) {
      for (let t = 0; t < c.t; t++) {
        for (let j = 0; j < c.s; j++) {
          let ok = allowedByPosition(t + (c.queryOffset ?? 0), j, positional);
          if (d.mask != null) {
            const m = ((at(0, b) * shape[1]! + at(1, u)) * shape[2]! + at(2, t)) * shape[3]! + at(3, j);
            ok = ok && d.mask[m] !== 0;
          }
          out[((b * c.u + u) * c.t + t) * c.s + j] = ok ? 0 : -Infinity;
        }
      }
    }
  }
  return out;
}

/** Rows (b, t, u) where `a` and `b` differ beyond TOL_CPU (or in class), skipping NaN rows of `b`. */
function differingRows(c: Case, keras: Float32Array, dropped: Float32Array): number {
  let rows = 0;
  for (let r = 0; r < c.b * c.t * c.u; r++) {
    const k = keras.subarray(r * c.h, (r + 1) * c.h);
    const x = dropped.subarray(r * c.h, (r + 1) * c.h);
    if (x.some((y) => Number.isNaN(y))) continue;
    if (compareNonFinite(k, x, TOL_CPU) != null) rows++;
  }
  return rows;
}

/**
 * `trials` random spreads of case c: the fused kernel on `backend` (through a KV cache when `cached`;
 * with dropout at rate 0.3 when `dropout`) against the composite on the cpu backend, NaN/±Inf at the
 * same places and finite values within TOL_CPU, outputs and (with returnScores) probabilities.
 */
export async function spreadTest(
  backend: GpuBackend,
  c: Case,
  seed: number,
  { cached = false, dropout = false, trials = 6 }: { cached?: boolean; dropout?: boolean; trials?: number } = {},
): Promise<Result> {
  const rand = rng(seed);
  let differing = 0;
  for (let trial = 0; trial < trials; trial++) {
    const d = caseData(c, seed * 17 + trial);
    // Every magnitude in turn: long rows see the largest levels among both their allowed and their
    // disallowed keys, so only some magnitudes give disallowed keys weight there.
    const what = spreadData(c, d, MAGNITUDES[trial % MAGNITUDES.length]!, rand);
    const drop = dropout ? { dropout: 0.3, training: true, seed: seed + trial } : {};
    await useBackend('cpu');
    const cpu = await runOp(c, d, groupedQueryAttentionReference, drop);
    const plain: Case = { ...c, causal: false, slidingWindow: 0, queryOffset: 0, mask: { kind: 'numeric', shape: [c.b, c.u, c.t, c.s] } };
    const dropped = await runOp(plain, { ...d, mask: droppingMask(c, d) }, groupedQueryAttentionReference, drop);
    differing += differingRows(c, cpu.out, dropped.out);
    await useBackend(backend);
    const before = tf.memory().numTensors;
    const calls = kernelCalls[backend] ?? 0;
    const fused = cached ? await runCachedOp(c, d) : await runOp(c, d, groupedQueryAttention, drop);
    if ((kernelCalls[backend] ?? 0) !== calls + 1) return { ok: false, msg: 'the fused kernel did not run' };
    if (tf.memory().numTensors !== before) return { ok: false, msg: `leaked ${tf.memory().numTensors - before} tensors` };
    const bad = compareNonFinite(fused.out, cpu.out, TOL_CPU) ??
      (c.returnScores ? compareNonFinite(fused.scores!, cpu.scores!, TOL_CPU) : null);
    if (bad != null) return { ok: false, msg: `trial ${trial} (${what}): ${bad}` };
  }
  if (differing === 0) return { ok: false, msg: `degenerate: in no row do the disallowed keys carry weight (${trials} trials)` };
  return { ok: true, msg: `${trials} trials, the composite's result; ${differing} rows where disallowed keys carry weight` };
}
