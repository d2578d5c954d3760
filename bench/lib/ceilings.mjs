// Machine ceilings measurable from Node: fp32 GEMM (native MLAS through onnxruntime-node MatMul, and
// WebAssembly SIMD through onnxruntime-web and tfjs-wasm's XNNPACK 2-D matMul) and memory bandwidth
// (a WebAssembly SIMD sum for streaming reads, TypedArray.set for copies).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { matMulModel } from './onnx.mjs';

const rootDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function rand(n) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = ((i * 2654435761) % 1000) / 1000 - 0.5;
  return a;
}

/** Fastest of reps calls: a ceiling is what the machine reaches at best (the host is shared and noisy). */
async function timeIt(fn, reps) {
  await fn();
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

/** Best GFLOP/s of N×N×N matMuls over sizes. */
async function gemm(makeRunner, sizes, reps) {
  let best = 0;
  const detail = {};
  for (const n of sizes) {
    const run = await makeRunner(n);
    const ms = await timeIt(run, n >= 2048 ? Math.max(3, reps >> 2) : reps);
    const gf = (2 * n ** 3) / ms / 1e6;
    detail[n] = +gf.toFixed(1);
    best = Math.max(best, gf);
  }
  return { gflops: +best.toFixed(1), bySize: detail };
}

async function ortGemm(lib, threads, sizes, reps) {
  const ort = lib === 'node' ? await import('onnxruntime-node') : await import('onnxruntime-web');
  const so = { logSeverityLevel: 3, interOpNumThreads: 1, executionMode: 'sequential' };
  if (lib === 'node') so.intraOpNumThreads = threads;
  else {
    ort.env.wasm.numThreads = threads;
    ort.env.logLevel = 'error';
    so.executionProviders = ['wasm'];
  }
  const session = await ort.InferenceSession.create(matMulModel(), so);
  return gemm(async (n) => {
    const a = new ort.Tensor('float32', rand(n * n), [n, n]);
    return () => session.run({ A: a, B: a });
  }, sizes, reps);
}

async function tfjsWasmGemm(sizes, reps) {
  const tf = await import('@tensorflow/tfjs-core');
  await import('@tensorflow/tfjs-backend-wasm');
  await tf.setBackend('wasm');
  await tf.ready();
  return gemm(async (n) => {
    const a = tf.tensor2d(rand(n * n), [n, n]);
    return () => {
      const c = tf.matMul(a, a);
      c.dataSync();
      c.dispose();
    };
  }, sizes, reps);
}

/**
 * This package's own WebAssembly GEMM (wasm/bench/gemm.ts: register blocks of 4 or 6 rows × 8
 * columns over the kernels' `madd`), compiled plain SIMD128 or relaxed SIMD like the engine's
 * kernels: the per-thread ceiling the engine's multiply-adds run against. Cache-resident sizes
 * (A 96×256, B 256×256 fit in L2), best of both register blocks. Checked against a JS product.
 */
async function wasmGemm(relaxed, reps) {
  const { compileAssemblyScript, RELAXED_SIMD_FLAGS } = await import(join(rootDir, 'scripts', 'lib', 'asc-compile.mjs'));
  const flags = ['-O3', '--noAssert', '--runtime', 'stub', '--initialMemory', '16', '--enable', 'simd', '--use', 'abort=',
    ...(relaxed ? RELAXED_SIMD_FLAGS : [])];
  const bytes = await compileAssemblyScript(join(rootDir, 'wasm', 'bench', 'gemm.ts'), flags);
  if (!WebAssembly.validate(bytes)) throw new Error(relaxed ? 'relaxed SIMD is not available in this runtime (Node 20: --experimental-wasm-relaxed-simd)' : 'WebAssembly SIMD is not available');
  const { exports } = new WebAssembly.Instance(new WebAssembly.Module(bytes), {});
  const M = 96, N = 256, K = 256;
  const a = 0, b = M * K * 4, c = b + K * N * 4;
  const f = new Float32Array(exports.memory.buffer);
  f.set(rand(M * K), a / 4);
  f.set(rand(K * N), b / 4);
  const calls = 20;
  const detail = {};
  let best = 0;
  for (const R of [4, 6]) {
    const fn = exports[`gemm${R}`];
    f.fill(0, c / 4, c / 4 + M * N);
    fn(a, b, c, M, N, K);
    for (const [i, j] of [[0, 0], [M - 1, N - 1], [37, 101]]) {
      let ref = 0;
      for (let k = 0; k < K; k++) ref += f[a / 4 + i * K + k] * f[b / 4 + k * N + j];
      if (Math.abs(f[c / 4 + i * N + j] - ref) > 1e-3) throw new Error(`wasm GEMM ${R}×8 gives ${f[c / 4 + i * N + j]} at (${i}, ${j}), expected ${ref}`);
    }
    const ms = await timeIt(() => { for (let r = 0; r < calls; r++) fn(a, b, c, M, N, K); }, reps) / calls;
    const gf = (2 * M * N * K) / ms / 1e6;
    detail[`${R}x8`] = +gf.toFixed(1);
    best = Math.max(best, gf);
  }
  return { gflops: +best.toFixed(1), byBlock: detail };
}

/** A WebAssembly SIMD128 module: sum(p, nbytes) over f32x4 with 4 accumulators, and an exported memory. */
function sumModule() {
  const leb = (n) => { const o = []; do { let b = n & 0x7f; n >>>= 7; if (n) b |= 0x80; o.push(b); } while (n); return o; };
  const section = (id, bytes) => [id, ...leb(bytes.length), ...bytes];
  const str = (s) => [s.length, ...[...s].map((ch) => ch.charCodeAt(0))];
  const add = [0xfd, 0xe4, 0x01]; // f32x4.add
  const body = [
    2, 1, 0x7f, 4, 0x7b, // locals: end i32, a b c d v128
    0x20, 0, 0x20, 1, 0x6a, 0x21, 2, // end = p + n
    0x02, 0x40, 0x03, 0x40, // block loop
    0x20, 0, 0x20, 2, 0x4f, 0x0d, 1, // br_if 1 (p >= end)
    ...[0, 16, 32, 48].flatMap((off, i) => [0x20, 3 + i, 0x20, 0, 0xfd, 0x00, 4, off, ...add, 0x21, 3 + i]),
    0x20, 0, 0x41, 0xc0, 0x00, 0x6a, 0x21, 0, // p += 64
    0x0c, 0, 0x0b, 0x0b, // br 0, end, end
    0x20, 3, 0x20, 4, ...add, 0x20, 5, ...add, 0x20, 6, ...add, 0x21, 3,
    0x20, 3, 0xfd, 0x1f, 0, 0x20, 3, 0xfd, 0x1f, 1, 0x92, 0x20, 3, 0xfd, 0x1f, 2, 0x92, 0x20, 3, 0xfd, 0x1f, 3, 0x92,
    0x0b,
  ];
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    ...section(1, [1, 0x60, 2, 0x7f, 0x7f, 1, 0x7d]),
    ...section(3, [1, 0]),
    ...section(5, [1, 0, 1]),
    ...section(7, [2, ...str('m'), 2, 0, ...str('sum'), 0, 0]),
    ...section(10, [1, ...leb(body.length), ...body]),
  ];
  return new WebAssembly.Instance(new WebAssembly.Module(Uint8Array.from(bytes))).exports;
}

function memoryBandwidth(mib, reps) {
  const bytes = mib * 1024 * 1024;
  const { m, sum } = sumModule();
  m.grow(Math.ceil(bytes / 65536));
  const f = new Float32Array(m.buffer, 0, bytes / 4);
  for (let i = 0; i < f.length; i += 1024) f.fill(1, i, i + 1024);
  let check = 0;
  sum(0, bytes);
  let readMs = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    check = sum(0, bytes);
    readMs = Math.min(readMs, performance.now() - t0);
  }
  const src = new Float32Array(bytes / 4).fill(1);
  const dst = new Float32Array(bytes / 4);
  dst.set(src);
  let copyMs = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    dst.set(src);
    copyMs = Math.min(copyMs, performance.now() - t0);
  }
  return {
    readGBs: +(bytes / readMs / 1e6).toFixed(1),
    copyGBs: +((2 * bytes) / copyMs / 1e6).toFixed(1),
    mib,
    sumOk: Math.abs(check - bytes / 4) / (bytes / 4) < 1e-3,
  };
}

/** name: 'gemm-ort-node' | 'gemm-ort-web' | 'gemm-tfjs-wasm' | 'gemm-wasm-simd' | 'gemm-wasm-relaxed' | 'memory' */
export async function measureCeiling(name, threads, quick) {
  const sizes = quick ? [1024] : [512, 1024, 2048];
  const reps = quick ? 5 : 12;
  if (name === 'gemm-ort-node') return ortGemm('node', threads, sizes, reps);
  if (name === 'gemm-ort-web') return ortGemm('web', threads, sizes, reps);
  if (name === 'gemm-tfjs-wasm') return tfjsWasmGemm(sizes, reps);
  if (name === 'gemm-wasm-simd') return wasmGemm(false, reps * 2);
  if (name === 'gemm-wasm-relaxed') return wasmGemm(true, reps * 2);
  if (name === 'memory') return memoryBandwidth(quick ? 128 : 512, quick ? 5 : 9);
  throw new Error(`unknown ceiling ${name}`);
}
