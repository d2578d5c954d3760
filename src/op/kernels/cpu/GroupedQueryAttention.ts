/**
 * The fused GroupedQueryAttention kernel for the tfjs `cpu` backend: the tensors' JS arrays go
 * straight to the attention engine (no K/V copies, no (B,U,T,S) buffer unless scores are asked for).
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { GroupedQueryAttention } from '../../kernel_names.js';
import { readKernelCall } from '../kernel_call.js';
import { engineFor, engineProblem } from '../engine_problem.js';

interface CpuBackendLike {
  data: { get(dataId: object): { values: unknown } };
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): TensorInfo;
}

const groupedQueryAttentionCpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const cpu = backend as unknown as CpuBackendLike;
  const { query, key, value, mask, attrs: a, dims } = readKernelCall(inputs, attrs);
  const values = (t: TensorInfo) => cpu.data.get(t.dataId).values;
  const problem = engineProblem(
    { query, key, mask },
    {
      query: values(query) as Float32Array,
      key: values(key) as Float32Array,
      value: values(value) as Float32Array,
      mask: values(mask) as Uint8Array | Float32Array,
    },
    a,
  );
  const wantLogSumExp = a.returnLogSumExp === true;
  const result = engineFor(a).attention({ ...problem, returnLogSumExp: wantLogSumExp });
  const outputs = [cpu.makeTensorInfo(query.shape, 'float32', result.output)];
  if (a.returnScores) outputs.push(cpu.makeTensorInfo([dims.b, dims.u, dims.t, dims.s], 'float32', result.probabilities!));
  // The hidden last output the gradient saves (see returnLogSumExp in kernel_names.ts).
  if (wantLogSumExp) outputs.push(cpu.makeTensorInfo([dims.b, dims.u, dims.t], 'float32', result.logSumExp!));
  return outputs;
};

export const groupedQueryAttentionCpuConfig: KernelConfig = {
  kernelName: GroupedQueryAttention,
  backendName: 'cpu',
  kernelFunc: groupedQueryAttentionCpu,
};
