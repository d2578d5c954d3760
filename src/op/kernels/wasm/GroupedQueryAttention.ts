/**
 * The fused GroupedQueryAttention kernel for the tfjs `wasm` backend. The inputs are read as views of
 * tfjs's wasm heap and handed to this package's attention engine (its own SIMD module and workers;
 * tfjs-wasm itself is single-threaded in Node and has no fused attention); the results are written
 * straight into outputs allocated on the heap (the engine's `resultInto`).
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { GroupedQueryAttention } from '../../kernel_names.js';
import { readKernelCall, type KernelCall } from '../kernel_call.js';
import { engineFor, engineProblem } from '../engine_problem.js';
import { heapView, type WasmBackendLike } from './heap.js';

const groupedQueryAttentionWasm: KernelFunc = ({ inputs, backend, attrs }) => {
  const wasm = backend as unknown as WasmBackendLike;
  const call = readKernelCall(inputs, attrs);
  const { b, t, u, s } = call.dims;
  // Outputs first: makeOutput may grow the heap and detach earlier views.
  const output = wasm.makeOutput(call.query.shape, 'float32');
  const scores = call.attrs.returnScores ? wasm.makeOutput([b, u, t, s], 'float32') : null;
  // The hidden last output the gradient saves (see returnLogSumExp in kernel_names.ts).
  const logSumExp = call.attrs.returnLogSumExp === true ? wasm.makeOutput([b, u, t], 'float32') : null;
  try {
    return attend(wasm, call, output, scores, logSumExp);
  } catch (e) {
    // tfjs frees only the outputs a kernel returns: a kernel that throws frees its own.
    for (const info of [output, scores, logSumExp]) if (info != null) wasm.disposeData(info.dataId);
    throw e;
  }
};

/** Runs the engine on heap views of the inputs and writes its results into the outputs. */
function attend(
  wasm: WasmBackendLike,
  call: KernelCall,
  output: TensorInfo,
  scores: TensorInfo | null,
  logSumExp: TensorInfo | null,
): TensorInfo[] {
  const { query, key, value, mask, attrs: a } = call;
  const problem = engineProblem(
    { query, key, mask },
    {
      query: heapView(wasm, query) as Float32Array,
      key: heapView(wasm, key) as Float32Array,
      value: heapView(wasm, value) as Float32Array,
      mask: heapView(wasm, mask),
    },
    a,
  );
  // The engine writes straight into the outputs' heap memory (no fresh arrays, no second copy).
  const outputView = heapView(wasm, output) as Float32Array;
  const scoresView = scores != null ? (heapView(wasm, scores) as Float32Array) : undefined;
  const logSumExpView = logSumExp != null ? (heapView(wasm, logSumExp) as Float32Array) : undefined;
  engineFor(a).attention({
    ...problem,
    returnLogSumExp: logSumExp != null,
    resultInto: {
      output: outputView,
      ...(scoresView ? { probabilities: scoresView } : {}),
      ...(logSumExpView ? { logSumExp: logSumExpView } : {}),
    },
  });
  const outputs = [output];
  if (scores != null) outputs.push(scores);
  if (logSumExp != null) outputs.push(logSumExp);
  return outputs;
}

export const groupedQueryAttentionWasmConfig: KernelConfig = {
  kernelName: GroupedQueryAttention,
  backendName: 'wasm',
  kernelFunc: groupedQueryAttentionWasm,
};
