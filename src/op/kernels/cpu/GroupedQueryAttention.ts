/**
 * The fused GroupedQueryAttention kernel for the tfjs `cpu` backend: the tensors' JS arrays go
 * straight to the attention engine (no K/V copies, no (B,U,T,S) buffer unless scores are asked for).
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { getDefaultEngine } from '../../../engine/index.js';
import { GroupedQueryAttention, type GroupedQueryAttentionAttrs } from '../../kernel_names.js';
import { engineProblem } from '../engine_problem.js';

interface CpuBackendLike {
  data: { get(dataId: object): { values: unknown } };
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): TensorInfo;
}

const groupedQueryAttentionCpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const cpu = backend as unknown as CpuBackendLike;
  const query = inputs['query'] as TensorInfo;
  const key = inputs['key'] as TensorInfo;
  const value = inputs['value'] as TensorInfo;
  const mask = inputs['mask'] as TensorInfo;
  const a = attrs as unknown as GroupedQueryAttentionAttrs;
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
  const result = getDefaultEngine().attention(problem);
  const output = cpu.makeTensorInfo(query.shape, 'float32', result.output);
  if (!a.returnScores) return [output];
  const [b, , u] = query.shape as [number, number, number];
  return [output, cpu.makeTensorInfo([b, u, query.shape[1]!, key.shape[1]!], 'float32', result.probabilities!)];
};

export const groupedQueryAttentionCpuConfig: KernelConfig = {
  kernelName: GroupedQueryAttention,
  backendName: 'cpu',
  kernelFunc: groupedQueryAttentionCpu,
};
