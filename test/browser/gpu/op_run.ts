/**
 * Running the op on the GPU pages (page.ts, spread_tests.ts): the random case shapes and data, the
 * op called directly or through a KV cache, the fused-kernel call counter and the comparisons
 * (tolerances, NaN/±Inf classes).
 *
 * Shape letters: B batch · T query length · S key length · U query heads · V kv heads · H head size.
 */
import * as tf from '@tensorflow/tfjs-core';
import { GroupedQueryAttentionKernel, groupedQueryAttention, type GroupedQueryAttentionOptions } from '../../../src/index.js';
import { createKVStorage } from '../../../src/op/kv_storage.js';
import type { TimingShape } from './timing.js';
import { rng } from './util.js';

export type GpuBackend = 'webgpu' | 'webgl';
/** `info`: a measurement, printed but counted neither as a pass nor as a failure. */
export type Result = { ok: boolean; msg: string; info?: boolean };

export function normal(n: number, rand: () => number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u1 = Math.max(rand(), 1e-12);
    out[i] = scale * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * rand());
  }
  return out;
}

/** Max of |got − expected| / (atol + rtol·|expected|): ≤ 1 passes. Also the max abs difference. */
export function compare(got: ArrayLike<number>, expected: ArrayLike<number>, atol: number, rtol: number) {
  if (got.length !== expected.length) return { ratio: Infinity, maxAbs: Infinity, worst: -1 };
  let ratio = 0;
  let maxAbs = 0;
  let worst = -1;
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs(got[i]! - expected[i]!);
    const r = d / (atol + rtol * Math.abs(expected[i]!));
    if (!(r <= ratio)) {
      ratio = Number.isNaN(r) ? Infinity : r;
      worst = i;
    }
    if (d > maxAbs || Number.isNaN(d)) maxAbs = Number.isNaN(d) ? Infinity : d;
  }
  return { ratio, maxAbs, worst };
}

/** Counts calls of the fused kernel on a backend (the registry hands out the config object itself). */
export const kernelCalls: Record<string, number> = {};
export function spyKernel(backend: string): void {
  const cfg = tf.getKernel(GroupedQueryAttentionKernel, backend);
  if (cfg == null) throw new Error(`no fused kernel registered for ${backend}`);
  if ((cfg as { __spied?: boolean }).__spied) return;
  const orig = cfg.kernelFunc;
  (cfg as { kernelFunc: tf.KernelFunc }).kernelFunc = (args) => {
    kernelCalls[backend] = (kernelCalls[backend] ?? 0) + 1;
    return orig(args);
  };
  (cfg as { __spied?: boolean }).__spied = true;
}

export interface Case extends TimingShape {
  name: string;
  /** 'bool-rows': bool mask of the given shape with some all-false rows; 'numeric': additive quirk values. */
  mask?: { kind: 'bool' | 'bool-rows' | 'numeric'; shape: number[] };
  slidingWindow?: number;
  returnScores?: boolean;
  /** Multiplies the query: large logits exercise the 64-grid of fully masked rows. */
  qScale?: number;
}

export interface CaseData {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  mask: Float32Array | null;
}

export function caseData(c: Case, seed: number): CaseData {
  const rand = rng(seed);
  const q = normal(c.b * c.t * c.u * c.h, rand, c.qScale ?? 1);
  const k = normal(c.b * c.s * c.v * c.h, rand);
  const v = normal(c.b * c.s * c.v * c.h, rand);
  let mask: Float32Array | null = null;
  if (c.mask) {
    const [mb, mu, mt, ms] = c.mask.shape as [number, number, number, number];
    mask = new Float32Array(mb * mu * mt * ms);
    for (let i = 0; i < mask.length; i++) {
      if (c.mask.kind === 'numeric') mask[i] = [0, 1, 1, 2, 0.5][Math.floor(rand() * 5)]!;
      else mask[i] = rand() < 0.7 ? 1 : 0;
    }
    if (c.mask.kind === 'bool-rows') {
      // Zero every third row of the mask: fully masked rows (unless broadcasting hides them).
      for (let r = 0; r < mb * mu * mt; r += 3) mask.fill(0, r * ms, (r + 1) * ms);
    }
  }
  return { q, k, v, mask };
}

export async function runOp(
  c: Case,
  d: CaseData,
  fn: typeof groupedQueryAttention,
  extra: Partial<GroupedQueryAttentionOptions> = {},
): Promise<{ out: Float32Array; scores?: Float32Array }> {
  const q = tf.tensor4d(d.q, [c.b, c.t, c.u, c.h]);
  const k = tf.tensor4d(d.k, [c.b, c.s, c.v, c.h]);
  const v = tf.tensor4d(d.v, [c.b, c.s, c.v, c.h]);
  const mask = d.mask
    ? c.mask!.kind === 'numeric'
      ? tf.tensor(d.mask, c.mask!.shape, 'float32')
      : tf.tensor(Array.from(d.mask), c.mask!.shape, 'bool')
    : null;
  const options: GroupedQueryAttentionOptions = {
    attentionMask: mask,
    causal: c.causal ?? false,
    queryOffset: c.queryOffset ?? 0,
    slidingWindow: c.slidingWindow ?? null,
    returnScores: c.returnScores ?? false,
    ...extra,
  };
  const res = fn(q, k, v, options) as tf.Tensor | tf.Tensor[];
  const [o, p] = Array.isArray(res) ? res : [res];
  const out = (await o!.data()) as Float32Array;
  const scores = p ? ((await p.data()) as Float32Array) : undefined;
  tf.dispose([q, k, v, ...(mask ? [mask] : []), o!, ...(p ? [p] : [])]);
  return scores ? { out, scores } : { out };
}

/** Tolerances: same backend 1e-5 abs + 1e-5 rel; against cpu 1e-4 abs + 1e-4 rel (GPU exp/ordering). */
export const TOL_SAME = { atol: 1e-5, rtol: 1e-5 };
export const TOL_CPU = { atol: 1e-4, rtol: 1e-4 };

/** Same NaN positions, same infinities, finite values within tol. */
export function compareNonFinite(got: Float32Array, want: Float32Array, tol: typeof TOL_CPU): string | null {
  if (got.length !== want.length) return `length ${got.length} vs ${want.length}`;
  for (let i = 0; i < got.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    if (Number.isNaN(w) !== Number.isNaN(g)) return `at ${i}: got ${g}, composite ${w}`;
    if (Number.isNaN(w)) continue;
    if (!Number.isFinite(w) || !Number.isFinite(g)) {
      if (g !== w) return `at ${i}: got ${g}, composite ${w}`;
      continue;
    }
    if (!(Math.abs(g - w) <= tol.atol + tol.rtol * Math.abs(w))) return `at ${i}: got ${g}, composite ${w}`;
  }
  return null;
}

/**
 * The op through a KV cache on the active backend: keys/values 0..S-T-1 written to the storage
 * first, then the call with the last T (queryOffset S−T, the cache's length). Same outputs as
 * runOp over all S keys.
 */
export async function runCachedOp(c: Case, d: CaseData): Promise<{ out: Float32Array; scores?: Float32Array }> {
  const p = c.s - c.t;
  const rowsOf = (a: Float32Array, r0: number, r1: number) => {
    const w = c.v * c.h;
    const out = new Float32Array(c.b * (r1 - r0) * w);
    for (let b = 0; b < c.b; b++) out.set(a.subarray((b * c.s + r0) * w, (b * c.s + r1) * w), b * (r1 - r0) * w);
    return tf.tensor4d(out, [c.b, r1 - r0, c.v, c.h]);
  };
  const storage = createKVStorage({ batchSize: c.b, capacity: c.s + 3, numKeyValueHeads: c.v, headDim: c.h });
  const kp = rowsOf(d.k, 0, p);
  const vp = rowsOf(d.v, 0, p);
  storage.write(kp, vp, 0);
  const q = tf.tensor4d(d.q, [c.b, c.t, c.u, c.h]);
  const k = rowsOf(d.k, p, c.s);
  const v = rowsOf(d.v, p, c.s);
  const mask = d.mask
    ? c.mask!.kind === 'numeric'
      ? tf.tensor(d.mask, c.mask!.shape, 'float32')
      : tf.tensor(Array.from(d.mask), c.mask!.shape, 'bool')
    : null;
  try {
    const res = groupedQueryAttention(q, k, v, {
      attentionMask: mask,
      causal: c.causal ?? false,
      slidingWindow: c.slidingWindow ?? null,
      returnScores: c.returnScores ?? false,
      cache: { storage, length: p },
    }) as tf.Tensor | tf.Tensor[];
    const [o, sc] = Array.isArray(res) ? res : [res];
    const out = (await o!.data()) as Float32Array;
    const scores = sc ? ((await sc.data()) as Float32Array) : undefined;
    tf.dispose([o!, ...(sc ? [sc] : [])]);
    return scores ? { out, scores } : { out };
  } finally {
    tf.dispose([kp, vp, q, k, v, ...(mask ? [mask] : [])]);
    storage.dispose();
  }
}
