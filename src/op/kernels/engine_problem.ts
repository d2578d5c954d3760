/**
 * Builds the engine's AttentionProblem from a GroupedQueryAttention kernel call, for backends whose
 * tensors live in typed arrays (cpu: JS arrays; wasm: views of the wasm heap).
 */
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { AttentionProblem, EngineMask } from '../../engine/types.js';
import type { GroupedQueryAttentionAttrs } from '../kernel_names.js';

export interface KernelArrays {
  query: Float32Array;
  key: Float32Array;
  value: Float32Array;
  mask: Uint8Array | Float32Array | Int32Array;
}

export function engineProblem(
  shapes: { query: TensorInfo; key: TensorInfo; mask: TensorInfo },
  arrays: KernelArrays,
  attrs: GroupedQueryAttentionAttrs,
): AttentionProblem {
  const [b, t, u, h] = shapes.query.shape as [number, number, number, number];
  const [, s, v] = shapes.key.shape as [number, number, number, number];
  let mask: EngineMask | undefined;
  if (attrs.maskKind !== 'none') {
    const [mb, mu, mt, ms] = shapes.mask.shape as [number, number, number, number];
    mask = {
      kind: attrs.maskKind,
      data: attrs.maskKind === 'bool' ? toBytes(arrays.mask) : (arrays.mask as Float32Array),
      shape: [mb, mu, mt, ms],
    };
  }
  return {
    batch: b,
    queryLength: t,
    keyLength: s,
    numQueryHeads: u,
    numKeyValueHeads: v,
    headDim: h,
    query: arrays.query,
    key: arrays.key,
    value: arrays.value,
    ...(mask ? { mask } : {}),
    causal: attrs.causal,
    queryOffset: attrs.queryOffset,
    ...(attrs.slidingWindow > 0 ? { slidingWindow: attrs.slidingWindow } : {}),
    scale: attrs.scale,
    returnProbabilities: attrs.returnScores,
    ...(attrs.dropoutRate > 0 ? { dropoutRate: attrs.dropoutRate, dropoutSeed: attrs.dropoutSeed } : {}),
  };
}

/** Bool tensors are bytes on cpu and wasm; anything else is compared with zero. */
function toBytes(a: Uint8Array | Float32Array | Int32Array): Uint8Array {
  if (a instanceof Uint8Array) return a;
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] !== 0 ? 1 : 0;
  return out;
}
