/**
 * Browser page of the GPU kernel tests (bundled by scripts/test-browser-gpu.mjs with esbuild and
 * run in headless Chromium). It exposes `window.gqa = {names(), run(name)}`; the runner calls
 * `run` once per test and prints one line each.
 *
 * Every case runs on a real GPU backend (webgpu on Dawn, webgl on WebGL 2) and compares
 *   - the fused kernel with the composite reference on the same backend, and
 *   - the fused kernel with the composite reference on the cpu backend,
 * plus the Keras 3.6 golden cases through the public layer API, memory checks and timings.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgl';
import '@tensorflow/tfjs-backend-webgpu';
import { groupedQueryAttention, groupedQueryAttentionReference, hasFusedKernel } from '../../../src/index.js';
import '../../../src/webgpu.js';
import '../../../src/webgl.js';
import type { GroupedQueryAttentionAttrs } from '../../../src/op/kernel_names.js';
import { useSplitDecode } from '../../../src/op/kernels/webgpu/decode_webgpu.js';
import { chooseFlashConfig } from '../../../src/webgpu.js';
import { applyGoldenCase, goldenLayer, type GoldenCase } from '../../helpers/golden_case.js';
import { timeCompare } from './timing.js';
import { rng, useBackend } from './util.js';
import { CHUNK_CASES, chunkedCacheTest, decodeCacheTimingTest, decodeStepsTest, wrongBackendTest } from './cache_tests.js';
import {
  TOL_CPU, TOL_SAME, caseData, compare, compareNonFinite, kernelCalls, runCachedOp, runOp, spyKernel,
  type Case, type CaseData, type GpuBackend, type Result,
} from './op_run.js';
import { SPREAD_CACHE_CASES, SPREAD_CASES, SPREAD_DROPOUT_CASES, spreadTest } from './spread_tests.js';

// ---------------------------------------------------------------------------------------------
// Random op cases.

const CASES: Case[] = [
  { name: 'mha no mask B2 T5 S7 U4 V4 H8', b: 2, t: 5, s: 7, u: 4, v: 4, h: 8 },
  { name: 'gqa G=2 no mask, scores', b: 2, t: 5, s: 7, u: 4, v: 2, h: 8, returnScores: true },
  { name: 'G=7 causal T6 S9 H16', b: 1, t: 6, s: 9, u: 14, v: 2, h: 16, causal: true },
  {
    name: 'G=7 H=80 bool (B,U,T,S) mask with fully masked rows, scores', b: 2, t: 4, s: 11, u: 7, v: 1, h: 80,
    mask: { kind: 'bool-rows', shape: [2, 7, 4, 11] }, returnScores: true,
  },
  {
    name: 'H=256 G=7 window 2 offset 2, scores', b: 1, t: 3, s: 5, u: 7, v: 1, h: 256,
    slidingWindow: 2, queryOffset: 2, returnScores: true,
  },
  { name: 'H=256 G=2 causal T9 S21', b: 1, t: 9, s: 21, u: 4, v: 2, h: 256, causal: true },
  {
    name: 'T=1 decode S33 causal offset 32, scores', b: 2, t: 1, s: 33, u: 8, v: 2, h: 64,
    causal: true, queryOffset: 32, returnScores: true,
  },
  {
    name: 'T>S causal + bool (B,1,T,S) mask with fully masked rows', b: 2, t: 9, s: 4, u: 6, v: 3, h: 12,
    causal: true, mask: { kind: 'bool-rows', shape: [2, 1, 9, 4] }, returnScores: true,
  },
  {
    name: 'T<S bool (1,1,T,S) mask', b: 1, t: 3, s: 40, u: 4, v: 1, h: 20, mask: { kind: 'bool', shape: [1, 1, 3, 40] },
  },
  {
    name: 'additive (numeric quirk 0/1/2/0.5) mask (B,U,T,S), scores', b: 1, t: 5, s: 6, u: 4, v: 2, h: 8,
    mask: { kind: 'numeric', shape: [1, 4, 5, 6] }, returnScores: true,
  },
  {
    name: 'additive (B,1,1,S) mask G=7', b: 2, t: 4, s: 6, u: 7, v: 1, h: 16, mask: { kind: 'numeric', shape: [2, 1, 1, 6] },
  },
  {
    name: 'fully masked rows with large logits (64-grid), scores', b: 1, t: 4, s: 6, u: 2, v: 1, h: 8,
    mask: { kind: 'bool-rows', shape: [1, 2, 4, 6] }, qScale: 40, returnScores: true,
  },
  { name: 'window 5 no causal T=S=40 MHA', b: 1, t: 40, s: 40, u: 2, v: 2, h: 16, slidingWindow: 5 },
  {
    name: 'causal + window, offset 10: every row fully masked', b: 1, t: 4, s: 6, u: 4, v: 2, h: 8,
    causal: true, queryOffset: 10, slidingWindow: 3, returnScores: true,
  },
  {
    name: 'many tiles T20 S100 causal + bool mask G=2', b: 1, t: 20, s: 100, u: 8, v: 4, h: 32,
    causal: true, mask: { kind: 'bool-rows', shape: [1, 1, 20, 100] },
  },
  { name: 'G=16 (group split) T3 S10 H8', b: 1, t: 3, s: 10, u: 48, v: 3, h: 8, causal: true },
  // Few queries over many keys: the webgpu kernel takes its flash-decoding path (decode_webgpu.ts).
  { name: 'decode T=1 S=300 G=2 H=64 causal offset 299', b: 2, t: 1, s: 300, u: 4, v: 2, h: 64, causal: true, queryOffset: 299 },
  {
    name: 'decode T=1 S=257 G=7 bool mask with fully masked rows', b: 2, t: 1, s: 257, u: 7, v: 1, h: 16,
    mask: { kind: 'bool-rows', shape: [2, 7, 1, 257] },
  },
  { name: 'decode T=2 S=400 G=1 window 70 offset 398', b: 1, t: 2, s: 400, u: 2, v: 2, h: 32, causal: true, slidingWindow: 70, queryOffset: 398 },
  {
    name: 'decode T=1 S=260 G=2 additive (B,1,1,S) mask', b: 2, t: 1, s: 260, u: 4, v: 2, h: 8,
    mask: { kind: 'numeric', shape: [2, 1, 1, 260] },
  },
  {
    name: 'decode T=3 S=320 G=7 causal + bool mask, window 0', b: 1, t: 3, s: 320, u: 14, v: 2, h: 8, causal: true,
    queryOffset: 317, mask: { kind: 'bool', shape: [1, 1, 3, 320] },
  },
];

async function caseTest(backend: GpuBackend, c: Case, seed: number): Promise<Result> {
  const d = caseData(c, seed);
  await useBackend('cpu');
  const cpu = await runOp(c, d, groupedQueryAttentionReference);
  await useBackend(backend);
  const before = tf.memory().numTensors;
  const calls = kernelCalls[backend] ?? 0;
  const t0 = performance.now();
  const fused = await runOp(c, d, groupedQueryAttention);
  const t1 = performance.now();
  if ((kernelCalls[backend] ?? 0) !== calls + 1) return { ok: false, msg: 'the fused kernel did not run' };
  const ref = await runOp(c, d, groupedQueryAttentionReference);
  const t2 = performance.now();
  await runOp(c, d, groupedQueryAttention);
  const t3 = performance.now();
  if (tf.memory().numTensors !== before) return { ok: false, msg: `leaked ${tf.memory().numTensors - before} tensors` };
  const parts: string[] = [];
  let ok = true;
  const check = (what: string, got: Float32Array | undefined, exp: Float32Array | undefined, tol: typeof TOL_SAME) => {
    if (!got || !exp) {
      ok = false;
      parts.push(`${what}: missing`);
      return;
    }
    const r = compare(got, exp, tol.atol, tol.rtol);
    if (!(r.ratio <= 1)) {
      ok = false;
      parts.push(`${what}: FAIL at ${r.worst} got ${got[r.worst]} want ${exp[r.worst]}`);
    } else parts.push(`${what} ${r.maxAbs.toExponential(1)}`);
  };
  check('out~ref', fused.out, ref.out, TOL_SAME);
  check('out~cpu', fused.out, cpu.out, TOL_CPU);
  if (c.returnScores) {
    check('p~ref', fused.scores, ref.scores, TOL_SAME);
    check('p~cpu', fused.scores, cpu.scores, TOL_CPU);
  }
  parts.push(`first calls (compiles): fused ${(t1 - t0).toFixed(0)} ms, ref ${(t2 - t1).toFixed(0)} ms, fused again ${(t3 - t2).toFixed(0)} ms`);
  return { ok, msg: parts.join(', ') };
}

// ---------------------------------------------------------------------------------------------
// Golden cases (Keras 3.6 numbers) through the public layer API, as test/helpers/run_golden.ts.

async function goldenTest(backend: GpuBackend, c: GoldenCase): Promise<Result> {
  await useBackend(backend);
  const before = tf.memory().numTensors;
  const calls = kernelCalls[backend] ?? 0;
  const layer = goldenLayer(c);
  const [out, scores] = tf.tidy(() => applyGoldenCase(layer, c));
  const got = (await out.data()) as Float32Array;
  const gotScores = scores ? ((await scores.data()) as Float32Array) : undefined;
  tf.dispose([out, ...(scores ? [scores] : [])]);
  layer.dispose();
  if (tf.memory().numTensors !== before) return { ok: false, msg: `leaked ${tf.memory().numTensors - before} tensors` };
  if ((kernelCalls[backend] ?? 0) === calls) return { ok: false, msg: 'the fused kernel did not run' };
  const r = compare(got, c.expected.output.data as number[], 1e-5, 1e-5);
  let msg = `output ${r.maxAbs.toExponential(1)}`;
  let ok = r.ratio <= 1;
  if (!ok) msg = `output FAIL at ${r.worst}: got ${got[r.worst]} want ${c.expected.output.data[r.worst]}`;
  if (c.expected.attention_scores) {
    if (!gotScores) return { ok: false, msg: 'no scores returned' };
    const rs = compare(gotScores, c.expected.attention_scores.data as number[], 1e-5, 1e-5);
    if (!(rs.ratio <= 1)) {
      ok = false;
      msg += `, scores FAIL at ${rs.worst}: got ${gotScores[rs.worst]} want ${c.expected.attention_scores.data[rs.worst]}`;
    } else msg += `, scores ${rs.maxAbs.toExponential(1)}`;
  }
  return { ok, msg };
}

// ---------------------------------------------------------------------------------------------
// Backend, memory, fallback, gradient and timing tests.

async function backendTest(backend: GpuBackend): Promise<Result> {
  await useBackend(backend);
  if (!hasFusedKernel(backend)) return { ok: false, msg: 'no fused kernel registered' };
  if (backend === 'webgl') {
    const version = tf.env().getNumber('WEBGL_VERSION');
    if (version !== 2) return { ok: false, msg: `WEBGL_VERSION is ${version}` };
    return { ok: true, msg: `WEBGL_VERSION 2, float32 render ${tf.env().getBool('WEBGL_RENDER_FLOAT32_ENABLED')}` };
  }
  const b = tf.backend() as unknown as { device: GPUDevice; adapterInfo?: { vendor?: string; architecture?: string } };
  const l = b.device.limits;
  return {
    ok: true,
    msg: `adapter ${b.adapterInfo?.vendor ?? '?'}/${b.adapterInfo?.architecture ?? '?'}, ` +
      `workgroup storage ${l.maxComputeWorkgroupStorageSize} B, invocations ${l.maxComputeInvocationsPerWorkgroup}`,
  };
}

/** Bytes the backend has ever allocated (webgpu buffers / webgl textures, pooled ones included). */
function allocatedBytes(backend: GpuBackend): number {
  const m = tf.memory() as unknown as Record<string, number>;
  return backend === 'webgpu' ? m['numBytesAllocatedInGPU']! : m['numBytesInGPUAllocated']!;
}

async function memoryTest(backend: GpuBackend): Promise<Result> {
  await useBackend(backend);
  // Shapes used nowhere else, so that no pooled buffer of the (B,U,T,S) size exists yet.
  const measure = async (fn: typeof groupedQueryAttention, s: number) => {
    const c: Case = { name: 'mem', b: 1, t: 96, s, u: 8, v: 2, h: 8, causal: true };
    const d = caseData(c, 7);
    const q = tf.tensor4d(d.q, [c.b, c.t, c.u, c.h]);
    const k = tf.tensor4d(d.k, [c.b, c.s, c.v, c.h]);
    const v = tf.tensor4d(d.v, [c.b, c.s, c.v, c.h]);
    await Promise.all([q.data(), k.data(), v.data()]);
    const bytesBefore = tf.memory().numBytes;
    const allocBefore = allocatedBytes(backend);
    const y = fn(q, k, v, { causal: true });
    await y.data();
    const alloc = allocatedBytes(backend) - allocBefore;
    const leaked = tf.memory().numBytes - bytesBefore - y.size * 4;
    tf.dispose([q, k, v, y]);
    return { alloc, leaked, scoresBytes: 4 * c.b * c.u * c.t * c.s, outBytes: 4 * c.b * c.t * c.u * c.h };
  };
  const fused = await measure(groupedQueryAttention, 173);
  const composite = await measure(groupedQueryAttentionReference, 171);
  const msg =
    `(B,U,T,S)=${fused.scoresBytes} B; fused allocated ${fused.alloc} B, composite ${composite.alloc} B`;
  if (fused.leaked !== 0) return { ok: false, msg: `${msg}; engine bytes leaked ${fused.leaked}` };
  if (composite.alloc < fused.scoresBytes) return { ok: false, msg: `${msg}; the counter does not see the composite's scores` };
  if (backend === 'webgpu') {
    // No (B,U,T,S) buffer at all: everything allocated is smaller than one scores buffer.
    if (!(fused.alloc < fused.scoresBytes)) return { ok: false, msg: `${msg}; a (B,U,T,S)-sized buffer was allocated` };
  } else if (!(fused.alloc < 2 * fused.scoresBytes)) {
    // WebGL: exactly one (B,U,T,S) weights texture (see the kernel's header).
    return { ok: false, msg: `${msg}; more than one (B,U,T,S) texture was allocated` };
  }
  return { ok: true, msg };
}

async function fallbackTest(backend: GpuBackend): Promise<Result> {
  await useBackend(backend);
  const c: Case = { name: 'big H', b: 1, t: 2, s: 3, u: 2, v: 1, h: 4096, causal: true, returnScores: true };
  const d = caseData(c, 11);
  const warnings: string[] = [];
  const warn = console.warn;
  console.warn = (...args: unknown[]) => warnings.push(args.map(String).join(' '));
  let fused: Awaited<ReturnType<typeof runOp>>;
  let again: Awaited<ReturnType<typeof runOp>>;
  try {
    fused = await runOp(c, d, groupedQueryAttention);
    again = await runOp(c, d, groupedQueryAttention);
  } finally {
    console.warn = warn;
  }
  const ref = await runOp(c, d, groupedQueryAttentionReference);
  const ours = warnings.filter((w) => w.includes('grouped-query-attention'));
  if (ours.length !== 1) return { ok: false, msg: `expected one warning, got ${JSON.stringify(warnings)}` };
  const r = compare(fused.out, ref.out, 1e-6, 1e-6);
  const r2 = compare(again.out, ref.out, 1e-6, 1e-6);
  const rs = compare(fused.scores!, ref.scores!, 1e-6, 1e-6);
  if (!(r.ratio <= 1 && r2.ratio <= 1 && rs.ratio <= 1)) return { ok: false, msg: 'composite fallback differs from the reference' };
  return { ok: true, msg: `warned once: "${ours[0]!.slice(0, 90)}..."` };
}

async function gradientTest(backend: GpuBackend): Promise<Result> {
  const c: Case = { name: 'grad', b: 1, t: 4, s: 6, u: 4, v: 2, h: 8, causal: true };
  const d = caseData(c, 5);
  const grads = async () => {
    const q = tf.tensor4d(d.q, [c.b, c.t, c.u, c.h]);
    const k = tf.tensor4d(d.k, [c.b, c.s, c.v, c.h]);
    const v = tf.tensor4d(d.v, [c.b, c.s, c.v, c.h]);
    const g = tf.grads((a: tf.Tensor, b: tf.Tensor, e: tf.Tensor) =>
      tf.sum(tf.mul(groupedQueryAttention(a, b, e, { causal: true }), tf.reshape(tf.linspace(-1, 1, c.t * c.u * c.h), [1, c.t, c.u, c.h]))),
    )([q, k, v]);
    const out = await Promise.all(g.map((x) => x.data() as Promise<Float32Array>));
    tf.dispose([q, k, v, ...g]);
    return out;
  };
  await useBackend('cpu');
  const cpu = await grads();
  await useBackend(backend);
  const calls = kernelCalls[backend] ?? 0;
  const gpu = await grads();
  if ((kernelCalls[backend] ?? 0) === calls) return { ok: false, msg: 'the fused kernel did not run' };
  const worst = Math.max(...gpu.map((g, i) => compare(g, cpu[i]!, 1e-4, 1e-4).ratio));
  const maxAbs = Math.max(...gpu.map((g, i) => compare(g, cpu[i]!, 1e-4, 1e-4).maxAbs));
  return { ok: worst <= 1, msg: `dQ, dK, dV vs cpu max abs ${maxAbs.toExponential(1)}` };
}

/** The decode cases above take the flash-decoding path on webgpu (else they would test nothing new). */
async function splitPathTest(): Promise<Result> {
  await useBackend('webgpu');
  const limits = (tf.backend() as unknown as { device: GPUDevice }).device.limits;
  const decode = [...CASES, ...NONFINITE_CASES, ...DROPOUT_CASES, ...SPREAD_CASES].filter((c) => c.name.startsWith('decode'));
  const attrs = { returnScores: false } as GroupedQueryAttentionAttrs;
  const missed = decode.filter((c) => {
    const cfg = chooseFlashConfig(c.h, c.u / c.v, c.t, limits);
    return cfg == null || !useSplitDecode({ b: c.b, t: c.t, s: c.s, u: c.u, v: c.v, h: c.h, g: c.u / c.v }, cfg, attrs);
  });
  if (decode.length < 5 || missed.length > 0) return { ok: false, msg: `not split: ${missed.map((c) => c.name).join('; ')}` };
  return { ok: true, msg: `${decode.length} decode cases take the flash-decoding path` };
}

async function decodeTimingTest(backend: GpuBackend): Promise<Result> {
  await useBackend(backend);
  const r = await timeCompare({ b: 1, t: 1, s: 1024, u: 8, v: 2, h: 64, causal: true, queryOffset: 1023 }, 4);
  return { ok: true, info: true, msg: `decode T=1 S=1024 U8 V2 H64: fused ${r.fusedMs.toFixed(1)} ms, composite ${r.compositeMs.toFixed(1)} ms, composite/fused = ${r.ratio.toFixed(2)}x (SwiftShader)` };
}

async function timingTest(backend: GpuBackend): Promise<Result> {
  await useBackend(backend);
  const r = await timeCompare({ b: 1, t: 64, s: 64, u: 8, v: 2, h: 64, causal: true }, 4);
  return { ok: true, info: true, msg: `fused ${r.fusedMs.toFixed(1)} ms, composite ${r.compositeMs.toFixed(1)} ms, composite/fused = ${r.ratio.toFixed(2)}x (SwiftShader: not a speed measure)` };
}

// ---------------------------------------------------------------------------------------------
// Non-finite values (issue: no silent wrong answers): NaN or ±Inf injected at random positions of
// the query, the key, the value or a numeric mask must give NaN exactly where the composite path on
// cpu does (values at keys a kernel skips included: 0·NaN is NaN in the composite's P·V),
// and the same finite values elsewhere.

const NONFINITE_CASES: Case[] = [
  { name: 'G=2 causal, scores', b: 2, t: 5, s: 7, u: 4, v: 2, h: 8, causal: true, returnScores: true },
  {
    name: 'G=7 bool mask with fully masked rows, scores', b: 1, t: 4, s: 9, u: 7, v: 1, h: 16,
    mask: { kind: 'bool-rows', shape: [1, 7, 4, 9] }, returnScores: true,
  },
  {
    name: 'G=1 numeric (additive) mask (B,1,T,S), scores', b: 2, t: 3, s: 6, u: 2, v: 2, h: 8,
    mask: { kind: 'numeric', shape: [2, 1, 3, 6] }, returnScores: true,
  },
  { name: 'T=1 decode causal offset 11 window 5 G=2', b: 1, t: 1, s: 12, u: 4, v: 2, h: 8, causal: true, queryOffset: 11, slidingWindow: 5 },
  { name: 'no mask T=S=6 G=2, scores', b: 1, t: 6, s: 6, u: 2, v: 1, h: 8, returnScores: true },
  {
    name: 'numeric mask + causal (bool rule) G=2', b: 1, t: 5, s: 5, u: 4, v: 2, h: 8, causal: true,
    mask: { kind: 'numeric', shape: [1, 1, 5, 5] },
  },
  {
    name: 'decode T=1 S=270 G=7 additive mask (flash-decoding on webgpu)', b: 1, t: 1, s: 270, u: 7, v: 1, h: 8,
    mask: { kind: 'numeric', shape: [1, 1, 1, 270] },
  },
  { name: 'decode T=1 S=300 G=2 causal offset 299', b: 2, t: 1, s: 300, u: 4, v: 2, h: 8, causal: true, queryOffset: 299 },
  // Keys outside the bands (skipped tiles, flash-decoding chunks) whose values may be NaN/±Inf.
  { name: 'many tiles T20 S100 causal G=2 (skipped key tiles)', b: 1, t: 20, s: 100, u: 4, v: 2, h: 8, causal: true, queryOffset: 80 },
  {
    name: 'decode T=2 S=300 G=2 causal window 40 offset 298 (flash-decoding, skipped chunks)', b: 1, t: 2, s: 300, u: 4, v: 2, h: 8,
    causal: true, slidingWindow: 40, queryOffset: 298,
  },
];

/** The cached cases: keys 0..S-T-1 written to a KV cache first, the call's T keys with it (queryOffset S−T). */
const NONFINITE_CACHE_CASES: Case[] = NONFINITE_CASES.filter((c) => c.t < c.s && (c.queryOffset ?? 0) === c.s - c.t);

/**
 * Puts NaN / ±Inf (and 1e30 or a row of −Inf in a numeric mask) at 1–3 random places of the query,
 * key, value (or mask), and half of the time one more into the values (most of their positions lie
 * outside some row's band: keys a kernel may skip); 30% of the time first makes all values huge (≈1e38).
 */
function injectNonFinite(c: Case, d: CaseData, rand: () => number): string[] {
  const done: string[] = [];
  if (rand() < 0.3) {
    // Huge finite values near 1e38, one sign: Σ exp(x − m)·v over the keys overflows float32 (once
    // the weights sum past ~3) where the composite's normalised P·V does not.
    for (let i = 0; i < d.v.length; i++) d.v[i] = 1e38 * (1 + 0.1 * d.v[i]!);
    done.push('v = 1e38·(1 + 0.1·v)');
  }
  if (rand() < 0.5) {
    const at = Math.floor(rand() * d.v.length);
    const x = [NaN, Infinity, -Infinity][Math.floor(rand() * 3)]!;
    d.v[at] = x;
    done.push(`v[${at}] = ${x}`);
  }
  const targets: Array<[string, Float32Array]> = [['q', d.q], ['k', d.k], ['v', d.v]];
  if (d.mask && c.mask?.kind === 'numeric') targets.push(['mask', d.mask]);
  const n = 1 + Math.floor(rand() * 3);
  for (let i = 0; i < n; i++) {
    const [name, arr] = targets[Math.floor(rand() * targets.length)]!;
    const values = name === 'mask' ? [NaN, Infinity, -Infinity, 1e30, 'row'] as const : [NaN, Infinity, -Infinity] as const;
    const x = values[Math.floor(rand() * values.length)]!;
    const at = Math.floor(rand() * arr.length);
    if (x === 'row') {
      const s = c.mask!.shape[3]!;
      const r0 = Math.floor(at / s) * s;
      arr.fill(-Infinity, r0, r0 + s);
      done.push(`mask row ${r0 / s} = -Inf`);
    } else {
      arr[at] = x;
      done.push(`${name}[${at}] = ${x}`);
    }
  }
  return done;
}

async function nonFiniteTest(backend: GpuBackend, c: Case, seed: number, cached = false, trials = 4): Promise<Result> {
  const rand = rng(seed);
  let nanRows = 0;
  let total = 0;
  for (let trial = 0; trial < trials; trial++) {
    const d = caseData(c, seed * 31 + trial);
    const injected = injectNonFinite(c, d, rand);
    await useBackend('cpu');
    const cpu = await runOp(c, d, groupedQueryAttentionReference);
    await useBackend(backend);
    const calls = kernelCalls[backend] ?? 0;
    const fused = cached ? await runCachedOp(c, d) : await runOp(c, d, groupedQueryAttention);
    if ((kernelCalls[backend] ?? 0) !== calls + 1) return { ok: false, msg: 'the fused kernel did not run' };
    // Absolute tolerance relative to the values' magnitude (1e38 when huge): float32 rounding.
    const vMax = d.v.reduce((a, x) => (Number.isFinite(x) ? Math.max(a, Math.abs(x)) : a), 0);
    const tol = { atol: TOL_CPU.atol * Math.max(1, vMax), rtol: TOL_CPU.rtol };
    const bad = compareNonFinite(fused.out, cpu.out, tol) ??
      (c.returnScores ? compareNonFinite(fused.scores!, cpu.scores!, TOL_CPU) : null);
    if (bad != null) return { ok: false, msg: `trial ${trial} (${injected.join(', ')}): ${bad}` };
    nanRows += cpu.out.filter((x) => Number.isNaN(x)).length;
    total += cpu.out.length;
  }
  // The test must see NaN and finite outputs both, or it proves nothing.
  if (nanRows === 0 || nanRows === total) return { ok: false, msg: `degenerate: ${nanRows} of ${total} outputs NaN` };
  return { ok: true, msg: `${trials} trials, ${nanRows} of ${total} outputs NaN, same places as the composite` };
}

// ---------------------------------------------------------------------------------------------
// Huge finite values: the fused kernels give the composite's class of result (NaN / ±Inf / finite)
// for values near float32's limits, as the engine does (src/engine/exact-rows.ts): flash
// accumulators hold unnormalised sums Σ exp(s − m)·v that can overflow where the composite's
// normalised P·V does not, and logits near −3.4e38 must still enter the softmax.

interface HugeProbe {
  name: string;
  c: Case;
  /** Changes the case's random data in place. */
  set: (d: CaseData, c: Case) => void;
}

const HUGE_PROBES: HugeProbe[] = (() => {
  const fillV = (x: number) => (d: CaseData) => d.v.fill(x);
  const probes: HugeProbe[] = [];
  const shapes: Case[] = [
    { name: 'T4 S300 G=2 no mask', b: 1, t: 4, s: 300, u: 4, v: 2, h: 8, qScale: 0.01 },
    { name: 'T4 S300 G=2 causal offset 296', b: 1, t: 4, s: 300, u: 4, v: 2, h: 8, qScale: 0.01, causal: true, queryOffset: 296 },
    { name: 'decode T1 S300 G=2 causal offset 299', b: 1, t: 1, s: 300, u: 4, v: 2, h: 8, qScale: 0.01, causal: true, queryOffset: 299 },
    {
      name: 'decode T1 S300 additive mask, scores', b: 1, t: 1, s: 300, u: 2, v: 1, h: 8, qScale: 0.01, queryOffset: 299,
      mask: { kind: 'numeric', shape: [1, 1, 1, 300] }, returnScores: true,
    },
  ];
  for (const c of shapes) {
    probes.push({ name: `V = 3e37 everywhere, ${c.name}`, c, set: fillV(3e37) });
    probes.push({ name: `V = 1e37 everywhere, ${c.name}`, c, set: fillV(1e37) });
    probes.push({
      name: `V = ±3e38 at alternate keys, ${c.name}`, c,
      set: (d) => { for (let i = 0; i < d.v.length; i++) d.v[i] = (Math.floor(i / (c.v * c.h)) % 2 === 0 ? 3e38 : -3e38); },
    });
    probes.push({ name: `K with logits near 3e38 (q·k ≈ 1e19·1e19), ${c.name}`, c, set: (d) => { d.q.fill(0); d.k.fill(0); for (let i = 0; i < d.q.length; i += c.h) d.q[i] = 1e19 * Math.sqrt(c.h); for (let i = 0; i < d.k.length; i += c.h) d.k[i] = (i / c.h) % 3 === 0 ? 3e19 : 1e19; } });
  }
  const add = shapes[3]!;
  // A numeric mask m adds (1 − m)·(−1e9): m = −1e29 adds ≈ −1e38, m = 1e21 adds ≈ 1e30.
  probes.push({ name: 'mask term -1e38 everywhere', c: add, set: (d) => d.mask!.fill(-1e29) });
  probes.push({ name: 'mask term 1e30 at one key', c: add, set: (d) => { d.mask!.fill(1); d.mask![7] = 1e21; } });
  probes.push({ name: 'mask term -3e38 except one key -1e38', c: add, set: (d) => { d.mask!.fill(-3e29); d.mask![5] = -1e29; } });
  // m = −3.4028233e29 adds −3.40282326e38: every logit below −3.402823e38 (yet finite).
  probes.push({ name: 'mask term -3.40282326e38 everywhere', c: add, set: (d) => d.mask!.fill(-3.4028233e29) });
  probes.push({ name: 'mask term -3e38 everywhere, V = 3e37', c: add, set: (d) => { d.mask!.fill(-3e29); d.v.fill(3e37); } });
  return probes;
})();

/** One probe against the cpu composite: same NaN places, same infinities, finite values within tol. */
async function hugeTest(backend: GpuBackend, probe: HugeProbe, seed: number, cached: boolean): Promise<Result> {
  const { c } = probe;
  const d = caseData(c, seed);
  probe.set(d, c);
  await useBackend('cpu');
  const cpu = await runOp(c, d, groupedQueryAttentionReference);
  await useBackend(backend);
  const calls = kernelCalls[backend] ?? 0;
  const fused = cached ? await runCachedOp(c, d) : await runOp(c, d, groupedQueryAttention);
  if ((kernelCalls[backend] ?? 0) !== calls + 1) return { ok: false, msg: 'the fused kernel did not run' };
  // Finite outputs within 1e-4 of max|V| as well as of themselves: sums of ±3e38 values cancel, and
  // float32 rounding of the order of 1e-7·max|V| differs between summation orders.
  const vMax = d.v.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
  const tol = { atol: TOL_CPU.atol * Math.max(1, vMax), rtol: TOL_CPU.rtol };
  const bad = compareNonFinite(fused.out, cpu.out, tol) ??
    (c.returnScores ? compareNonFinite(fused.scores!, cpu.scores!, TOL_CPU) : null);
  if (bad != null) return { ok: false, msg: bad };
  const classes = new Set(Array.from(cpu.out, (x) => (Number.isNaN(x) ? 'NaN' : Number.isFinite(x) ? 'finite' : 'Inf')));
  return { ok: true, msg: `same class as the composite (${[...classes].join(', ')})` };
}

// ---------------------------------------------------------------------------------------------
// Dropout inside the kernels: the WGSL/GLSL copies of the shared hash (src/engine/dropout_hash.ts)
// must drop exactly what the composite path's keep-mask (built from the TypeScript hash) drops.

const DROPOUT_CASES: Case[] = [
  { name: 'G=2 causal, scores', b: 2, t: 5, s: 7, u: 4, v: 2, h: 8, causal: true, returnScores: true },
  {
    name: 'G=7 bool mask with fully masked rows', b: 1, t: 4, s: 11, u: 7, v: 1, h: 16,
    mask: { kind: 'bool-rows', shape: [1, 7, 4, 11] },
  },
  {
    name: 'G=1 additive mask, scores', b: 2, t: 3, s: 6, u: 2, v: 2, h: 8,
    mask: { kind: 'numeric', shape: [2, 1, 3, 6] }, returnScores: true,
  },
  { name: 'T=1 decode offset 40 G=2 H=64', b: 2, t: 1, s: 41, u: 4, v: 2, h: 64, causal: true, queryOffset: 40 },
  { name: 'many tiles T20 S100 causal G=2 H32', b: 1, t: 20, s: 100, u: 8, v: 4, h: 32, causal: true },
  { name: 'decode T=1 S=300 G=7 bool mask (flash-decoding on webgpu)', b: 1, t: 1, s: 300, u: 7, v: 1, h: 16, causal: true, queryOffset: 299, mask: { kind: 'bool-rows', shape: [1, 7, 1, 300] } },
];

async function dropoutTest(backend: GpuBackend, c: Case, seed: number): Promise<Result> {
  const d = caseData(c, seed);
  const drop = { dropout: 0.3, training: true, seed: 1234567 + seed };
  await useBackend('cpu');
  const cpu = await runOp(c, d, groupedQueryAttentionReference, drop);
  await useBackend(backend);
  const calls = kernelCalls[backend] ?? 0;
  const fused = await runOp(c, d, groupedQueryAttention, drop);
  if ((kernelCalls[backend] ?? 0) !== calls + 1) return { ok: false, msg: 'the fused kernel did not run' };
  const again = await runOp(c, d, groupedQueryAttention, drop);
  const ref = await runOp(c, d, groupedQueryAttentionReference, drop);
  const other = await runOp(c, d, groupedQueryAttention, { ...drop, seed: drop.seed + 1 });
  const plain = await runOp(c, d, groupedQueryAttention);
  const parts: string[] = [];
  let ok = true;
  const check = (what: string, got: Float32Array | undefined, exp: Float32Array | undefined, tol: typeof TOL_SAME) => {
    const r = got && exp ? compare(got, exp, tol.atol, tol.rtol) : { ratio: Infinity, maxAbs: Infinity, worst: -1 };
    if (!(r.ratio <= 1)) {
      ok = false;
      parts.push(`${what}: FAIL at ${r.worst} got ${got?.[r.worst]} want ${exp?.[r.worst]}`);
    } else parts.push(`${what} ${r.maxAbs.toExponential(1)}`);
  };
  check('out~composite', fused.out, ref.out, TOL_SAME);
  check('out~cpu composite', fused.out, cpu.out, TOL_CPU);
  if (c.returnScores) check('scores (before dropout)~cpu', fused.scores, cpu.scores, TOL_CPU);
  const same = again.out.every((x, i) => Object.is(x, fused.out[i]));
  if (!same) {
    ok = false;
    parts.push('same seed gave a different output');
  }
  // The test must see dropout act: another seed and no dropout both change the output.
  if (compare(other.out, fused.out, 1e-4, 1e-4).ratio <= 1) {
    ok = false;
    parts.push('another seed gave the same output');
  }
  if (compare(plain.out, fused.out, 1e-4, 1e-4).ratio <= 1) {
    ok = false;
    parts.push('dropout changed nothing');
  }
  return { ok, msg: parts.join(', ') };
}

// ---------------------------------------------------------------------------------------------
// Registry.

const tests = new Map<string, () => Promise<Result>>();
let golden: GoldenCase[] | null = null;

async function loadGolden(): Promise<GoldenCase[]> {
  if (golden == null) golden = (await (await fetch('/golden.json')).json()) as GoldenCase[];
  return golden;
}

async function register(): Promise<void> {
  const cases = await loadGolden();
  for (const backend of ['webgpu', 'webgl'] as const) {
    spyKernel(backend);
    tests.set(`${backend}: backend is ${backend}`, () => backendTest(backend));
    CASES.forEach((c, i) => tests.set(`${backend}: op ${c.name}`, () => caseTest(backend, c, 1000 + i)));
    tests.set(`${backend}: no (B,U,T,S) buffer without returnScores (memory counters)`, () => memoryTest(backend));
    if (backend === 'webgpu') tests.set(`${backend}: H=4096 exceeds workgroup storage -> composite + one warning`, () => fallbackTest(backend));
    tests.set(`${backend}: gradient through the fused kernel vs cpu`, () => gradientTest(backend));
    for (const c of cases) tests.set(`${backend}: golden ${c.name}`, () => goldenTest(backend, c));
    NONFINITE_CASES.forEach((c, i) =>
      tests.set(`${backend}: non-finite property ${c.name}`, () => nonFiniteTest(backend, c, 5000 + i)),
    );
    NONFINITE_CACHE_CASES.forEach((c, i) =>
      tests.set(`${backend}: non-finite property, kv cache ${c.name}`, () => nonFiniteTest(backend, c, 5500 + i, true)),
    );
    HUGE_PROBES.forEach((p, i) => {
      tests.set(`${backend}: huge values ${p.name}`, () => hugeTest(backend, p, 8000 + i, false));
      if (p.c.t < p.c.s && (p.c.queryOffset ?? 0) === p.c.s - p.c.t) {
        tests.set(`${backend}: huge values, kv cache ${p.name}`, () => hugeTest(backend, p, 8000 + i, true));
      }
    });
    SPREAD_CASES.forEach((c, i) => tests.set(`${backend}: wide logit spread ${c.name}`, () => spreadTest(backend, c, 8500 + i)));
    SPREAD_CACHE_CASES.forEach((c, i) =>
      tests.set(`${backend}: wide logit spread, kv cache ${c.name}`, () => spreadTest(backend, c, 8700 + i, { cached: true })),
    );
    SPREAD_DROPOUT_CASES.forEach((c, i) =>
      tests.set(`${backend}: wide logit spread, dropout ${c.name}`, () => spreadTest(backend, c, 8900 + i, { dropout: true })),
    );
    DROPOUT_CASES.forEach((c, i) =>
      tests.set(`${backend}: dropout (shared hash) ${c.name}`, () => dropoutTest(backend, c, 7000 + i)),
    );
    if (backend === 'webgpu') tests.set('webgpu: decode cases take the flash-decoding path', () => splitPathTest());
    tests.set(`${backend}: timing vs composite (information)`, () => timingTest(backend));
    tests.set(`${backend}: decode timing vs composite (information)`, () => decodeTimingTest(backend));
    {
      CHUNK_CASES.forEach((c, i) =>
        tests.set(`${backend}: kv cache chunked = full cpu call ${i}`, () => chunkedCacheTest(backend, c, 9000 + i)),
      );
      const steps = 500;
      tests.set(`${backend}: kv cache ${steps} decode steps, no reads, flat memory`, () => decodeStepsTest(backend, steps));
      const other = backend === 'webgpu' ? 'webgl' : 'webgpu';
      tests.set(`${backend}: kv cache used under ${other} raises`, () => wrongBackendTest(backend, other));
      tests.set(`${backend}: kv cache decode step at 1024 vs full recompute (information)`, () => decodeCacheTimingTest(backend));
    }
  }
}

const ready = register();

declare global {
  interface Window {
    gqa: { names(): Promise<string[]>; run(name: string): Promise<Result> };
  }
}

window.gqa = {
  async names() {
    await ready;
    return [...tests.keys()];
  },
  async run(name) {
    await ready;
    const fn = tests.get(name);
    if (!fn) return { ok: false, msg: `no test ${name}` };
    try {
      return await fn();
    } catch (e) {
      return { ok: false, msg: `threw: ${(e as Error)?.stack ?? String(e)}` };
    }
  },
};
