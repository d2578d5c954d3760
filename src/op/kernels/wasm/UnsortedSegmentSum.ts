/**
 * `UnsortedSegmentSum` for the tfjs wasm backend, which lacks it in 4.22. tfjs needs it for the
 * gradient of `gather`, so without it an `Embedding` cannot train on wasm. A plain loop over views of
 * the wasm heap: out[segmentIds[i], ...] += x[i, ...]; out-of-range ids are dropped, as on cpu.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { heapView, type WasmBackendLike } from './heap.js';

const unsortedSegmentSum: KernelFunc = ({ inputs, backend, attrs }) => {
  const wasm = backend as WasmBackendLike;
  const x = inputs['x'] as TensorInfo;
  const ids = inputs['segmentIds'] as TensorInfo;
  const numSegments = attrs!['numSegments'] as number;
  const inner = x.shape.slice(ids.shape.length).reduce((a, b) => a * b, 1); // elements per segment row
  const rows = ids.shape.reduce((a, b) => a * b, 1);
  const out = wasm.makeOutput([numSegments, ...x.shape.slice(ids.shape.length)], x.dtype);
  // makeOutput may grow the heap, so views are taken after it.
  const o = heapView(wasm, out);
  const xs = heapView(wasm, x);
  const seg = heapView(wasm, ids);
  o.fill(0);
  for (let r = 0; r < rows; r++) {
    const s = seg[r]!;
    if (s < 0 || s >= numSegments) continue;
    const src = r * inner;
    const dst = s * inner;
    for (let i = 0; i < inner; i++) o[dst + i]! += xs[src + i]!;
  }
  return out;
};

export const unsortedSegmentSumWasmConfig: KernelConfig = {
  kernelName: 'UnsortedSegmentSum',
  backendName: 'wasm',
  kernelFunc: unsortedSegmentSum,
};
