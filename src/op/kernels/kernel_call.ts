/**
 * What every backend's GroupedQueryAttention kernel reads first: its named inputs, its attributes
 * and the shape letters, declared once for the cpu, wasm, webgl and webgpu kernels.
 */
import type { NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';
import type { GroupedQueryAttentionAttrs } from '../kernel_names.js';

/** Shape letters of a call: B, T, S, U, V, H and G = U / V. */
export interface Dims {
  b: number;
  t: number;
  s: number;
  u: number;
  v: number;
  h: number;
  g: number;
}

export interface KernelCall {
  query: TensorInfo; // (B,T,U,H)
  key: TensorInfo; // (B,S,V,H); with attrs.cache, the (B,T,V,H) positions already written to it
  value: TensorInfo; // same as key
  /** Rank 4, broadcastable to (B,U,T,S); a (1,1,1,1) placeholder when maskKind is 'none'. */
  mask: TensorInfo;
  attrs: GroupedQueryAttentionAttrs;
  dims: Dims;
}

export function readKernelCall(inputs: NamedTensorInfoMap, attrs: NamedAttrMap | undefined): KernelCall {
  const query = inputs['query'] as TensorInfo;
  const key = inputs['key'] as TensorInfo;
  const [b, t, u, h] = query.shape as [number, number, number, number];
  const [, inputS, v] = key.shape as [number, number, number, number];
  const a = attrs as unknown as GroupedQueryAttentionAttrs;
  // A cached call attends over the storage's first keyLength positions, not the key input.
  const s = a.cache?.keyLength ?? inputS;
  return {
    query,
    key,
    value: inputs['value'] as TensorInfo,
    mask: inputs['mask'] as TensorInfo,
    attrs: a,
    dims: { b, t, s, u, v, h, g: u / v },
  };
}
