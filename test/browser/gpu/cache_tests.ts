/**
 * KV cache on the GPU backends (the device storage of src/op/kernels/shared/device_kv_storage.ts):
 * chunked decoding through the cache equals one full causal call on the cpu backend, no GPU→CPU
 * read inside a decode step, flat memory and no new program over 500 steps, and a decode-step timing
 * at 1,024 cached positions (information). Registered by page.ts.
 *
 * Shape letters: B batch · T positions of a call · S positions in total · D model width.
 */
import * as tf from '@tensorflow/tfjs-core';
import { GroupedQueryAttention } from '../../../src/index.js';
import { countReads, rng, useBackend } from './util.js';

export type CacheBackend = 'webgpu' | 'webgl';
type Result = { ok: boolean; msg: string; info?: boolean };

interface ChunkCase {
  u: number;
  v: number;
  h: number;
  window: number | null;
  b: number;
  total: number;
  /** Right padding per batch row (valueMask), or null for no value mask. */
  padding: number[] | null;
  attention: 'none' | 'bool' | 'numeric';
  /** flashAttention: false: the composite path, which reads device-side copies (storage.read). */
  composite?: boolean;
  /** Length of a first (prefill) chunk; the rest is chunked at random. */
  prefill?: number;
}

export const CHUNK_CASES: ChunkCase[] = [
  { u: 2, v: 2, h: 8, window: null, b: 1, total: 11, padding: null, attention: 'none' },
  { u: 4, v: 2, h: 8, window: 3, b: 2, total: 13, padding: [0, 3], attention: 'none' },
  { u: 7, v: 1, h: 4, window: null, b: 2, total: 9, padding: [2, 0], attention: 'bool' },
  { u: 14, v: 2, h: 8, window: 4, b: 1, total: 10, padding: null, attention: 'numeric' },
  // Prefill 190, then decode past 192 keys: the steps take webgpu's flash-decoding path.
  { u: 4, v: 2, h: 16, window: null, b: 2, total: 200, padding: [0, 5], attention: 'bool', prefill: 190 },
  { u: 4, v: 2, h: 8, window: 5, b: 2, total: 12, padding: [1, 0], attention: 'numeric', composite: true },
];

function makeLayer(c: ChunkCase, d: number, seed: number): GroupedQueryAttention {
  const layer = new GroupedQueryAttention({
    headDim: c.h, numQueryHeads: c.u, numKeyValueHeads: c.v, slidingWindow: c.window, biasInitializer: 'randomNormal',
    ...(c.composite ? { flashAttention: false } : {}),
  });
  layer.build([[null, null, d], [null, null, d]]);
  const rand = rng(seed);
  layer.setWeights(layer.getWeights().map((w) =>
    tf.tensor(Float32Array.from({ length: w.size }, () => (rand() - 0.5) * 1.5), w.shape)));
  return layer;
}

/** Random chunk sizes covering [0, total). */
function chunking(total: number, rand: () => number, prefill = 0): Array<[number, number]> {
  const out: Array<[number, number]> = prefill > 0 ? [[0, prefill]] : [];
  for (let at = prefill; at < total;) {
    // Mostly single steps, some longer chunks; long sequences take longer chunks too.
    // After a prefill chunk: decode steps of 1 or 2 positions only.
    const end = Math.min(total, at + 1 + Math.floor(rand() * (rand() < 0.3 && prefill === 0 ? Math.max(6, total / 10) : 2)));
    out.push([at, end]);
    at = end;
  }
  return out;
}

/**
 * One case: the cpu backend's full causal call vs the GPU backend fed in random chunks. Rows of
 * padded query positions are left out (a fully masked row's softmax spans the call's S keys, which
 * differ between a chunk and the full call, as in Keras).
 */
export async function chunkedCacheTest(backend: CacheBackend, c: ChunkCase, seed: number): Promise<Result> {
  const d = 8;
  const rand = rng(seed);
  const { b, total } = c;
  const x = Float32Array.from({ length: b * total * d }, () => rand() * 2 - 1);
  const valid = Array.from({ length: b * total }, (_, i) => (i % total < total - (c.padding?.[Math.floor(i / total)] ?? 0) ? 1 : 0));
  // Attention mask (B, S, S): random, with the diagonal always allowed (no valid row fully masked).
  const attn = Array.from({ length: b * total * total }, (_, i) => {
    const row = Math.floor(i / total) % total;
    return row === i % total || rand() < 0.7 ? 1 : 0;
  });
  const makeAttn = (rows: [number, number] | null): tf.Tensor | null => {
    if (c.attention === 'none') return null;
    const [r0, r1] = rows ?? [0, total];
    const cols = r1; // a chunk attends over positions 0..r1-1
    const data: number[] = [];
    for (let bb = 0; bb < b; bb++) for (let r = r0; r < r1; r++) for (let j = 0; j < cols; j++) data.push(attn[(bb * total + r) * total + j]!);
    return tf.tensor3d(data, [b, r1 - r0, cols], c.attention === 'bool' ? 'bool' : 'float32');
  };
  const slice = (a: Float32Array | number[], r0: number, r1: number, width: number) => {
    const out: number[] = [];
    for (let bb = 0; bb < b; bb++) for (let r = r0; r < r1; r++) for (let k = 0; k < width; k++) out.push(a[(bb * total + r) * width + k]!);
    return out;
  };

  await useBackend('cpu');
  const layer = makeLayer(c, d, seed);
  let want: Float32Array;
  {
    const xt = tf.tensor3d(x, [b, total, d]);
    const vm = c.padding ? tf.tensor2d(valid, [b, total], 'bool') : null;
    const am = makeAttn(null);
    const y = layer.apply(xt, { value: xt, valueMask: vm, attentionMask: am, useCausalMask: true }) as tf.Tensor;
    want = y.dataSync() as Float32Array;
    tf.dispose([xt, y, ...(vm ? [vm] : []), ...(am ? [am] : [])]);
  }

  await useBackend(backend);
  const parts = chunking(total, rand, c.prefill);
  const cache = layer.createCache({ batchSize: b, maxLength: total + 2 });
  const kind = cache.storage().kind;
  const got = new Float32Array(b * total * d);
  try {
    for (const [r0, r1] of parts) {
      const xs = tf.tensor3d(slice(x, r0, r1, d), [b, r1 - r0, d]);
      const vm = c.padding ? tf.tensor2d(slice(valid, r0, r1, 1), [b, r1 - r0], 'bool') : null;
      const am = makeAttn([r0, r1]);
      const y = layer.apply(xs, { value: xs, valueMask: vm, attentionMask: am, cache, useCausalMask: true }) as tf.Tensor;
      const data = await y.data();
      for (let bb = 0; bb < b; bb++) {
        got.set(data.subarray(bb * (r1 - r0) * d, (bb + 1) * (r1 - r0) * d), (bb * total + r0) * d);
      }
      tf.dispose([xs, y, ...(vm ? [vm] : []), ...(am ? [am] : [])]);
    }
  } finally {
    cache.dispose();
    layer.dispose();
  }
  let maxAbs = 0;
  let bad = -1;
  for (let i = 0; i < got.length; i++) {
    if (valid[Math.floor(i / d)] === 0) continue;
    const diff = Math.abs(got[i]! - want[i]!);
    if (!(diff <= 1e-5 + 1e-5 * Math.abs(want[i]!))) bad = i;
    if (!(diff <= maxAbs)) maxAbs = Number.isNaN(diff) ? Infinity : diff;
  }
  const msg = `U=${c.u} V=${c.v} H=${c.h} w=${c.window} B=${b} S=${total} pad=${c.padding} mask=${c.attention}${c.composite ? ' composite' : ''}; ` +
    `${parts.length} chunks; max |gpu chunked − cpu full| ${maxAbs.toExponential(2)}; storage ${kind}`;
  if (kind !== backend) return { ok: false, msg: `${msg}: the cache is not kept on the ${backend} device` };
  return bad < 0 ? { ok: true, msg } : { ok: false, msg: `${msg}; element ${bad}: ${got[bad]} vs ${want[bad]}` };
}

function gpuBytes(): number {
  return (tf.memory() as unknown as { numBytesInGPU?: number }).numBytesInGPU ?? -1;
}

/** A small layer on the GPU backend, its cache, and a prefill of `prefill` positions. */
async function smallDecoder(backend: CacheBackend, maxLength: number, prefill: number, d = 8, h = 4, u = 4, v = 2) {
  await useBackend(backend);
  const c: ChunkCase = { u, v, h, window: null, b: 1, total: 1, padding: null, attention: 'none' };
  const layer = makeLayer(c, d, 5);
  const cache = layer.createCache({ batchSize: 1, maxLength });
  const rand = rng(9);
  const p = tf.tensor3d(Float32Array.from({ length: prefill * d }, () => rand() - 0.5), [1, prefill, d]);
  const y = layer.apply(p, { value: p, cache, useCausalMask: true }) as tf.Tensor;
  await y.data();
  tf.dispose([p, y]);
  const x = tf.tensor3d(Float32Array.from({ length: d }, () => rand() - 0.5), [1, 1, d]);
  await x.data();
  return { layer, cache, x };
}

/**
 * Programs the active backend has compiled so far: webgl's binary cache (keyed by tfjs's shader key)
 * or webgpu's pipeline cache (keyed by the program's shader key plus ranks and broadcast flags).
 */
function compiledPrograms(): number {
  const be = tf.backend() as unknown as { binaryCache?: object; pipelineCache?: object };
  const cache = be.binaryCache ?? be.pipelineCache;
  if (cache == null) throw new Error(`backend ${tf.getBackend()} has no program cache to count`);
  return Object.keys(cache).length;
}

/**
 * No GPU→CPU read inside a decode step, flat memory over `steps` steps, and no program compiled
 * at a new key length: webgl from the first measured step on; webgpu once every path is in use
 * (the flash-decoding path starts at 193 keys, its programs compile then, once).
 */
export async function decodeStepsTest(backend: CacheBackend, steps: number): Promise<Result> {
  const { layer, cache, x } = await smallDecoder(backend, steps + 8, 4);
  try {
    const step = () => layer.apply(x, { value: x, cache, useCausalMask: true }) as tf.Tensor;
    // Warm-up steps compile the programs and fill the backend's buffer pools.
    for (let i = 0; i < 4; i++) { const y = step(); await y.data(); y.dispose(); }
    const reads = await countReads(async () => { for (let i = 0; i < 8; i++) step().dispose(); });
    // Settle: one awaited step, so that no buffer of a step in flight is counted.
    { const y = step(); await y.data(); y.dispose(); }
    const m0 = tf.memory();
    const g0 = gpuBytes();
    const p0 = compiledPrograms();
    // From this step on (S > 192 + a margin) webgpu runs flash-decoding at every step.
    const settled = Math.min(steps - 1, 240);
    let pSettled = p0;
    let last = 0;
    for (let i = 13; i < steps; i++) {
      if (i === settled) pSettled = compiledPrograms();
      const y = step();
      if (i % 50 === 0 || i === steps - 1) last = (await y.data())[0]!;
      y.dispose();
    }
    const m1 = tf.memory();
    const g1 = gpuBytes();
    const p1 = compiledPrograms();
    const msg = `${steps} steps: reads in 8 decode steps ${reads}; numTensors ${m0.numTensors}→${m1.numTensors}, ` +
      `numBytes ${m0.numBytes}→${m1.numBytes}, GPU bytes ${g0}→${g1}; programs compiled ${p0}→${pSettled} (step ${settled})→${p1}; ` +
      `cache.length ${cache.length}`;
    const programsFlat = backend === 'webgl' ? p1 === p0 : p1 === pSettled;
    const ok = reads === 0 && m0.numTensors === m1.numTensors && m0.numBytes === m1.numBytes && g0 === g1 && programsFlat &&
      cache.length === steps + 4 && Number.isFinite(last) && cache.storage().kind === backend;
    return { ok, msg };
  } finally {
    x.dispose();
    cache.dispose();
    layer.dispose();
  }
}

/** A decode step at 1,024 cached positions with the cache vs a full recompute (information). */
export async function decodeCacheTimingTest(backend: CacheBackend): Promise<Result> {
  const cached = 1024;
  const d = 64;
  const { layer, cache, x } = await smallDecoder(backend, cached + 16, cached, d, 16, 8, 2);
  const rand = rng(3);
  const seq = tf.tensor3d(Float32Array.from({ length: (cached + 1) * d }, () => rand() - 0.5), [1, cached + 1, d]);
  try {
    const time = async (fn: () => tf.Tensor, reps: number) => {
      const times: number[] = [];
      for (let i = 0; i < reps + 1; i++) {
        const t0 = performance.now();
        const y = fn();
        await y.data();
        y.dispose();
        if (i > 0) times.push(performance.now() - t0);
      }
      times.sort((a, b) => a - b);
      return times[Math.floor(times.length / 2)]!;
    };
    const withCache = await time(() => {
      const y = layer.apply(x, { value: x, cache, useCausalMask: true }) as tf.Tensor;
      cache.truncate(cached);
      return y;
    }, 5);
    const full = await time(() => {
      const y = layer.apply(seq, { value: seq, useCausalMask: true }) as tf.Tensor;
      const last = tf.slice(y, [0, cached, 0], [1, 1, d]);
      y.dispose();
      return last;
    }, 3);
    return {
      ok: true,
      info: true,
      msg: `decode step at ${cached} cached positions (D=${d}, U=8, V=2, H=16): cache ${withCache.toFixed(1)} ms, ` +
        `full recompute ${full.toFixed(1)} ms, ratio full/cache ${(full / withCache).toFixed(2)} (median)`,
    };
  } finally {
    tf.dispose([seq, x]);
    cache.dispose();
    layer.dispose();
  }
}

/** A cache created on one GPU backend and used under another raises, and changes nothing. */
export async function wrongBackendTest(backend: CacheBackend, other: CacheBackend): Promise<Result> {
  await useBackend(backend);
  const c: ChunkCase = { u: 2, v: 1, h: 4, window: null, b: 1, total: 1, padding: null, attention: 'none' };
  const layer = makeLayer(c, 8, 1);
  const cache = layer.createCache({ batchSize: 1, maxLength: 4 });
  try {
    await useBackend(other);
    const x = tf.ones([1, 1, 8]);
    let message = '';
    try {
      layer.apply(x, { value: x, cache, useCausalMask: true });
    } catch (e) {
      message = (e as Error).message;
    } finally {
      x.dispose();
    }
    const ok = message.includes(`on the ${backend} backend`) && message.includes(`received backend ${other}`) && cache.length === 0;
    return { ok, msg: `cache of ${backend} used under ${other}: ${message || 'no error'}; cache.length ${cache.length}` };
  } finally {
    cache.dispose();
    layer.dispose();
  }
}
