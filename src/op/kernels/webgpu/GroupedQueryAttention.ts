/**
 * The fused GroupedQueryAttention kernel for tfjs-backend-webgpu. This file validates a call, picks
 * the flash program's tiles and runs the programs through `backend.runWebGPUProgram`:
 *
 *   - flash_attention_webgpu.ts, mode 'out': the output (B,T,U,H) in one flash-attention pass;
 *   - for few query positions over many keys (decode), flash-decoding instead (decode_webgpu.ts):
 *     the keys split over workgroups, then a (max, sum, partial output) combine;
 *   - with `returnScores` only: the same program in mode 'stats' (each row's softmax m, l and
 *     fully-masked flag, (B,U,T,3)), then attention_probs_webgpu.ts for the (B,U,T,S) weights.
 *     Without `returnScores` no (B,U,T,S) buffer exists.
 *
 * With a KV cache read in place (`attrs.cache`, the storage of ../shared/device_kv_storage.ts written
 * by kv_write_webgpu.ts), the programs bind the storage's (B,C,V,H) buffers as Kin/Vin and step C
 * rows per batch row (uniform kRows); S is the cache's keyLength.
 *
 * Device limits: when no tile fits maxComputeWorkgroupStorageSize (`chooseFlashConfig` returns
 * null), or an output exceeds maxStorageBufferBindingSize, the call runs the composite path
 * (composite_fallback.ts) and `console.warn`s once.
 *
 * Numerics: results agree with the composite path to ~1e-6 relative (tested at 1e-5 relative +
 * 1e-5 absolute, 1e-4 against the cpu backend for large H).
 */
import { readKernelCall } from '../kernel_call.js';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { GroupedQueryAttention, type GroupedQueryAttentionAttrs } from '../../kernel_names.js';
import { probabilitiesProgram } from './attention_probs_webgpu.js';
import { compositeKernelOutputs, warnOnce } from '../shared/composite_fallback.js';
import { combineProgram, unsafeScanProgram, useSplitDecode } from './decode_webgpu.js';
import { chooseFlashConfig, flashProgram } from './flash_attention_webgpu.js';
import { deviceStorageOf } from '../shared/device_kv_storage.js';
import { uniformValues, type Dims, type GpuProgram, type Uniform } from './gqa_shader_util_webgpu.js';

export { chooseFlashConfig, type FlashConfig } from './flash_attention_webgpu.js';

interface WebGPUBackendLike {
  device: GPUDevice;
  runWebGPUProgram(program: GpuProgram, inputs: TensorInfo[], dtype: 'float32', uniforms?: Uniform[]): TensorInfo;
  disposeData(dataId: object): boolean;
}

function exceedsLimit(d: Dims, attrs: GroupedQueryAttentionAttrs, device: GPUDevice): string | null {
  const bytes = (n: number) => 4 * n;
  const maxBinding = device.limits.maxStorageBufferBindingSize;
  if (bytes(d.b * d.t * d.u * d.h) > maxBinding) return 'the output exceeds maxStorageBufferBindingSize';
  if (attrs.returnScores && bytes(d.b * d.u * d.t * d.s) > maxBinding) {
    return 'the probabilities exceed maxStorageBufferBindingSize';
  }
  return null;
}

const groupedQueryAttentionWebGPU: KernelFunc = ({ inputs, backend, attrs }) => {
  const gpu = backend as unknown as WebGPUBackendLike;
  const call = readKernelCall(inputs, attrs);
  const { query, mask, attrs: a, dims: d } = call;
  // A KV cache read in place: the storage's (B,C,V,H) buffers replace the key/value inputs (the
  // programs step C rows per batch row, uniform kRows); S = keyLength.
  const cached = a.cache != null ? deviceStorageOf(a.cache.storage, 'webgpu').deviceTensors() : null;
  const key: TensorInfo = cached?.keys ?? call.key;
  const value: TensorInfo = cached?.values ?? call.value;
  const { t, h } = d;
  const limits = gpu.device.limits;
  const cfg = chooseFlashConfig(h, d.g, t, limits);
  const reason =
    cfg == null
      ? `head size H=${h} needs more than maxComputeWorkgroupStorageSize=${limits.maxComputeWorkgroupStorageSize} bytes`
      : exceedsLimit(d, a, gpu.device);
  if (reason != null) {
    warnOnce(
      `grouped-query-attention: the fused webgpu kernel cannot run this call (${reason}); ` +
        'running the composite path instead (same results, more memory).',
    );
    return compositeKernelOutputs({ query, key: call.key, value: call.value, mask }, a, backend);
  }
  const withMask = a.maskKind !== 'none' && mask != null;
  const names = withMask ? ['Qin', 'Kin', 'Vin', 'Min'] : ['Qin', 'Kin', 'Vin'];
  const ins = withMask ? [query, key, value, mask] : [query, key, value];
  const uniforms = uniformValues(d, cfg, a, withMask ? mask : null);
  if (useSplitDecode(d, cfg!, a)) {
    // Flash-decoding (decode_webgpu.ts): scan for unsafe inputs, chunk partials, combine.
    // The scan reads a mask only when it is additive (unused bindings are not allowed), and the
    // values always (huge values, ../shared/mask_rule.ts valueLimit).
    const scanMask = withMask && a.maskKind === 'additive';
    const scanNames = ['Qin', 'Kin', 'Vin', ...(scanMask ? ['Min'] : [])];
    const scanIns = [query, key, value, ...(scanMask ? [mask] : [])];
    const unsafe = gpu.runWebGPUProgram(unsafeScanProgram(d, a, scanNames), scanIns, 'float32', uniforms);
    const partNames = withMask ? ['Qin', 'Kin', 'Vin', 'Min', 'Unsafe'] : ['Qin', 'Kin', 'Vin', 'Unsafe'];
    const partIns = withMask ? [query, key, value, mask, unsafe] : [query, key, value, unsafe];
    const parts = gpu.runWebGPUProgram(flashProgram('partial', d, cfg!, a, partNames), partIns, 'float32', uniforms);
    const output = gpu.runWebGPUProgram(combineProgram(d, cfg!), [parts, unsafe], 'float32', uniforms);
    gpu.disposeData(parts.dataId);
    gpu.disposeData(unsafe.dataId);
    return [output];
  }
  const output = gpu.runWebGPUProgram(flashProgram('out', d, cfg!, a, names), ins, 'float32', uniforms);
  if (!a.returnScores) return [output];

  // The stats pass reads no values: its inputs leave V out (unused bindings are not allowed).
  const statNames = withMask ? ['Qin', 'Kin', 'Min'] : ['Qin', 'Kin'];
  const statIns = withMask ? [query, key, mask] : [query, key];
  const stats = gpu.runWebGPUProgram(flashProgram('stats', d, cfg!, a, statNames), statIns, 'float32', uniforms);
  const probNames = withMask ? ['Qin', 'Kin', 'Stats', 'Min'] : ['Qin', 'Kin', 'Stats'];
  const probIns = withMask ? [query, key, stats, mask] : [query, key, stats];
  const probabilities = gpu.runWebGPUProgram(probabilitiesProgram(d, a, probNames), probIns, 'float32', uniforms);
  gpu.disposeData(stats.dataId);
  return [output, probabilities];
};

/**
 * The webgpu kernel's registration record (`tf.registerKernel(groupedQueryAttentionWebGPUConfig)`);
 * `import 'grouped-query-attention/webgpu'` registers it for you.
 *
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { groupedQueryAttentionWebGPUConfig } from 'grouped-query-attention/webgpu';
 *
 * console.log(tf.getKernel(groupedQueryAttentionWebGPUConfig.kernelName, 'webgpu') != null);   // true
 * ```
 */
export const groupedQueryAttentionWebGPUConfig: KernelConfig = {
  kernelName: GroupedQueryAttention,
  backendName: 'webgpu',
  kernelFunc: groupedQueryAttentionWebGPU,
};
