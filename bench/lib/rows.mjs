// The implementations benchmarked side by side ("rows"). Each runs in its own fresh Node process
// per case, so its extra memory is measured cleanly and thread settings cannot leak between rows.
//
// Rows with relaxedSimd: true run this package's relaxed-SIMD kernel build in a process started with
// relaxed SIMD on (rowExecArgv); the same rows without it run the plain SIMD128 build, forced with
// `relaxedSimd: false` so that they mean the same on every Node version.
//
// rate: a-priori useful GFLOP/s {prefill, decode} used only to skip calls predicted to be absurdly
// long before anything was measured (afterwards the row's own measured rate is used).

const ort = (lib, op, threads, rate) => ({
  id: `ort-${lib}-${op}-t${threads}`,
  label: `${lib === 'node' ? 'onnxruntime-node' : 'onnxruntime-web wasm'} ${op === 'gqa' ? 'GroupQueryAttention' : 'Attention-23'} ${threads}t`,
  impl: 'ort', opts: { lib, op, threads }, threads, peer: true, rate,
  // ONNX Attention materialises B·U·T·S fp32 scores (about twice over); ort-web lives in a 4 GB wasm32 heap.
  memFactor: op === 'attn23' ? 2.5 : 0, wasmHeap: lib === 'web',
});

export const ROWS = [
  ort('node', 'gqa', 1, { prefill: 50, decode: 5 }),
  ort('node', 'gqa', 2, { prefill: 90, decode: 8 }),
  ort('node', 'attn23', 1, { prefill: 40, decode: 10 }),
  ort('node', 'attn23', 2, { prefill: 75, decode: 20 }),
  ort('web', 'attn23', 1, { prefill: 12, decode: 4 }),
  ort('web', 'attn23', 2, { prefill: 22, decode: 7 }),
  ort('web', 'gqa', 1, { prefill: 1.4, decode: 3 }),
  ort('web', 'gqa', 2, { prefill: 2.5, decode: 4 }),
  { id: 'tfjs-cpu-keras', label: 'tfjs cpu, Keras composition', impl: 'tfjs', opts: { backend: 'cpu', variant: 'keras' },
    threads: 1, peer: true, rate: { prefill: 0.28, decode: 0.016 }, memFactor: 5 },
  { id: 'tfjs-wasm-keras', label: 'tfjs wasm, Keras composition', impl: 'tfjs', opts: { backend: 'wasm', variant: 'keras' },
    threads: 1, peer: true, rate: { prefill: 1.0, decode: 0.028 }, memFactor: 5, wasmHeap: true },
  { id: 'gqa-op-cpu', label: 'this package: groupedQueryAttention, tfjs cpu', impl: 'tfjs',
    opts: { backend: 'cpu', variant: 'package' }, threads: 1, ours: true, rate: { prefill: 20, decode: 5 }, memFactor: 0 },
  { id: 'gqa-op-wasm', label: 'this package: groupedQueryAttention, tfjs wasm', impl: 'tfjs',
    opts: { backend: 'wasm', variant: 'package', relaxed: false }, threads: 1, ours: true, rate: { prefill: 20, decode: 5 }, memFactor: 0 },
  { id: 'gqa-op-wasm-relaxed', label: 'this package: groupedQueryAttention, tfjs wasm, relaxed', impl: 'tfjs',
    opts: { backend: 'wasm', variant: 'package', relaxed: true }, threads: 1, ours: true, relaxedSimd: true,
    rate: { prefill: 25, decode: 5 }, memFactor: 0 },
  { id: 'engine-t1', label: 'this package: attention engine 1t', impl: 'engine', opts: { threads: 1, relaxed: false }, threads: 1, ours: true,
    rate: { prefill: 20, decode: 10 }, memFactor: 0 },
  { id: 'engine-t2', label: 'this package: attention engine 2t', impl: 'engine', opts: { threads: 2, relaxed: false }, threads: 2, ours: true,
    rate: { prefill: 35, decode: 15 }, memFactor: 0 },
  { id: 'engine-relaxed-t1', label: 'this package: attention engine 1t, relaxed', impl: 'engine', opts: { threads: 1, relaxed: true },
    threads: 1, ours: true, relaxedSimd: true, rate: { prefill: 25, decode: 10 }, memFactor: 0 },
  { id: 'engine-relaxed-t2', label: 'this package: attention engine 2t, relaxed', impl: 'engine', opts: { threads: 2, relaxed: true },
    threads: 2, ours: true, relaxedSimd: true, rate: { prefill: 45, decode: 15 }, memFactor: 0 },
];

/**
 * Node flags a row's process needs: relaxed-SIMD rows (this package's kernel built with
 * f32x4.relaxed_madd) need `--experimental-wasm-relaxed-simd` before Node 22, where it is on by default.
 */
export function rowExecArgv(row) {
  const major = Number(process.versions.node.split('.')[0]);
  return row.relaxedSimd && major < 22 ? ['--experimental-wasm-relaxed-simd'] : [];
}
