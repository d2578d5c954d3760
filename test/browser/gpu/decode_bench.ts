/**
 * Decode benchmark page: tokens per second of a GroupedQueryAttention layer generating one position
 * at a time after a context of S positions, with the KV cache (`layer.createCache`) against a full
 * recompute of the whole sequence per token, on webgpu, webgl, wasm and cpu; and the backend's
 * GPU→CPU read calls inside one cached step (the layer's own: the bench's awaited output read is
 * not counted).
 *
 * Open decode.html from `node scripts/test-browser-gpu.mjs --serve` in a browser with a real GPU, or
 * run it headless with `node bench/browser_decode.mjs` (SwiftShader: relative numbers only).
 * Query parameters: s (context, default 1024), steps (cached steps timed, default 16), full (full
 * recomputes timed, default 3), backends (comma list, default webgpu,webgl,wasm,cpu).
 *
 * Shape letters: B batch (1) · S context positions · D model width · U query heads · V key/value
 * heads · H head size.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgl';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { GroupedQueryAttention } from '../../../src/index.js';
import { countReads, pageLog, useBackend } from './util.js';
import '../../../src/webgpu.js';
import '../../../src/webgl.js';

const params = new URLSearchParams(location.search);
const S = Number(params.get('s') ?? 1024);
const STEPS = Number(params.get('steps') ?? 16);
const FULL = Number(params.get('full') ?? 3);
const BACKENDS = (params.get('backends') ?? 'webgpu,webgl,wasm,cpu').split(',');
const [D, U, V, H] = [256, 8, 2, 32];

// The runner serves tfjs-backend-wasm's binaries next to the page (single-threaded: no isolation).
setWasmPaths('/');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

interface Row {
  backend: string;
  cachedTokS: number;
  cachedMs: number;
  fullTokS: number;
  fullMs: number;
  readsPerStep: number;
  storage: string;
}

async function benchBackend(backend: string): Promise<Row | string> {
  try {
    await useBackend(backend);
  } catch {
    return `${backend}: unavailable`;
  }
  const layer = new GroupedQueryAttention({ headDim: H, numQueryHeads: U, numKeyValueHeads: V });
  layer.build([[null, null, D], [null, null, D]]);
  const seq = tf.randomNormal([1, S + STEPS + 1, D]) as tf.Tensor3D;
  const cache = layer.createCache({ batchSize: 1, maxLength: S + STEPS + 4 });
  try {
    // Prefill the cache with the context in chunks of 256 positions.
    for (let at = 0; at < S; at += 256) {
      const n = Math.min(256, S - at);
      const x = tf.slice(seq, [0, at, 0], [1, n, D]);
      const y = layer.apply(x, { value: x, cache, useCausalMask: true }) as tf.Tensor;
      await y.data();
      tf.dispose([x, y]);
    }
    const token = (i: number) => tf.slice(seq, [0, S + i, 0], [1, 1, D]);
    // Cached steps: one position each; a warm-up step compiles the programs, then truncate back.
    const stepOnce = async (i: number) => {
      const x = token(i);
      let y: tf.Tensor | null = null;
      const reads = await countReads(() => { y = layer.apply(x, { value: x, cache, useCausalMask: true }) as tf.Tensor; });
      await y!.data();
      tf.dispose([x, y!]);
      return reads;
    };
    await stepOnce(0);
    cache.truncate(S);
    let reads = 0;
    const t0 = performance.now();
    for (let i = 0; i < STEPS; i++) reads += await stepOnce(i);
    const cachedMs = (performance.now() - t0) / STEPS;
    // Full recompute: the whole sequence of S + 1 positions per token, its last row kept.
    const fullOnce = async () => {
      const x = tf.slice(seq, [0, 0, 0], [1, S + 1, D]);
      const y = layer.apply(x, { value: x, useCausalMask: true }) as tf.Tensor;
      const last = tf.slice(y, [0, S, 0], [1, 1, D]);
      await last.data();
      tf.dispose([x, y, last]);
    };
    await fullOnce();
    const times: number[] = [];
    for (let i = 0; i < FULL; i++) {
      const t1 = performance.now();
      await fullOnce();
      times.push(performance.now() - t1);
    }
    const fullMs = median(times);
    return {
      backend, cachedMs, fullMs, cachedTokS: 1000 / cachedMs, fullTokS: 1000 / fullMs,
      readsPerStep: reads / STEPS, storage: cache.storage().kind,
    };
  } finally {
    cache.dispose();
    seq.dispose();
    layer.dispose();
  }
}

async function run(): Promise<string[]> {
  const { lines, log } = pageLog();
  log(`decode after S=${S} context positions, D=${D} U=${U} V=${V} H=${H}, B=1; ${STEPS} cached steps (mean), ${FULL} full recomputes (median)`);
  log('backend | cache storage | cached tok/s (ms/step) | full recompute tok/s (ms/token) | cached/full speed | GPU→CPU reads per cached step');
  for (const backend of BACKENDS) {
    let r: Row | string;
    try {
      r = await benchBackend(backend);
    } catch (e) {
      r = `${backend}: failed: ${(e as Error).message}`;
    }
    if (typeof r === 'string') {
      log(r);
      continue;
    }
    log(`${r.backend} | ${r.storage} | ${r.cachedTokS.toFixed(1)} (${r.cachedMs.toFixed(1)}) | ${r.fullTokS.toFixed(2)} (${r.fullMs.toFixed(0)}) | ` +
      `${(r.fullMs / r.cachedMs).toFixed(1)}x | ${r.readsPerStep}`);
  }
  return lines;
}

declare global {
  interface Window {
    gqaDecodeBench: { run(): Promise<string[]> };
  }
}
window.gqaDecodeBench = { run };
if (params.has('auto')) void run();
