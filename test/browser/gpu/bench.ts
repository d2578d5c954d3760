/**
 * Benchmark page: the fused GroupedQueryAttention kernel against the composite path on the same
 * backend (webgpu and webgl), for a few prefill and decode shapes. Open bench.html from
 * `node scripts/test-browser-gpu.mjs --serve` in a browser with a real GPU, or run it headless with
 * `--bench` (SwiftShader: the ratios then say little about real GPUs).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-webgl';
import '@tensorflow/tfjs-backend-webgpu';
import '../../../src/index.js';
import '../../../src/webgpu.js';
import '../../../src/webgl.js';
import { timeCompare, type TimingShape } from './timing.js';
import { pageLog } from './util.js';

const params = new URLSearchParams(location.search);
const big = params.has('big');
const reps = Number(params.get('reps') ?? (big ? 10 : 3));

const SHAPES: Array<[string, TimingShape]> = big
  ? [
      ['prefill B1 T512 S512 U32 V8 H128 causal', { b: 1, t: 512, s: 512, u: 32, v: 8, h: 128, causal: true }],
      ['prefill B1 T1024 S1024 U28 V4 H128 causal', { b: 1, t: 1024, s: 1024, u: 28, v: 4, h: 128, causal: true }],
      ['decode B1 T1 S2048 U32 V8 H128', { b: 1, t: 1, s: 2048, u: 32, v: 8, h: 128, causal: true, queryOffset: 2047 }],
    ]
  : [
      ['prefill B1 T64 S64 U8 V2 H64 causal', { b: 1, t: 64, s: 64, u: 8, v: 2, h: 64, causal: true }],
      ['prefill B1 T128 S128 U14 V2 H80 causal', { b: 1, t: 128, s: 128, u: 14, v: 2, h: 80, causal: true }],
      ['decode B1 T1 S256 U8 V2 H64', { b: 1, t: 1, s: 256, u: 8, v: 2, h: 64, causal: true, queryOffset: 255 }],
    ];

async function run(): Promise<string[]> {
  const { lines, log } = pageLog();
  for (const backend of ['webgpu', 'webgl']) {
    const ok = await tf.setBackend(backend).catch(() => false);
    if (!ok || tf.getBackend() !== backend) {
      log(`${backend}: unavailable`);
      continue;
    }
    for (const [name, shape] of SHAPES) {
      const r = await timeCompare(shape, reps);
      log(`${backend} ${name}: fused ${r.fusedMs.toFixed(2)} ms, composite ${r.compositeMs.toFixed(2)} ms, composite/fused ${r.ratio.toFixed(2)}x`);
    }
  }
  return lines;
}

declare global {
  interface Window {
    gqaBench: { run(): Promise<string[]> };
  }
}
window.gqaBench = { run };
if (params.has('auto')) void run();
