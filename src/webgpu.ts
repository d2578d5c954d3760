/**
 * `grouped-query-attention/webgpu`: registers the fused GroupedQueryAttention kernel for
 * tfjs-backend-webgpu (a WGSL flash-attention program). Import it once, next to the package and
 * the backend:
 *
 * ```ts
 * import '@tensorflow/tfjs-backend-webgpu';
 * import 'grouped-query-attention/webgpu';
 * ```
 *
 * Registration is keyed by backend name, so the order of these imports does not matter.
 */
import * as tf from '@tensorflow/tfjs-core';
import { groupedQueryAttentionWebGPUConfig } from './op/kernels/webgpu/GroupedQueryAttention.js';
import { DeviceKVStorage } from './op/kernels/shared/device_kv_storage.js';
import { writeRowsWebGPU } from './op/kernels/webgpu/kv_write_webgpu.js';
import { registerKVStorage } from './op/kv_storage.js';

export { groupedQueryAttentionWebGPUConfig, chooseFlashConfig, type FlashConfig } from './op/kernels/webgpu/GroupedQueryAttention.js';

/**
 * Registers the webgpu kernel unless one is registered already, and the webgpu KV-cache storage
 * (`layer.createCache` under webgpu keeps keys and values in GPU buffers, written in place). Called on import; call it again after
 * `tf.unregisterKernel` or to be explicit.
 *
 * @example
 * ```ts
 * // In a browser page (the webgpu backend needs one):
 * import * as tf from '@tensorflow/tfjs-core';
 * import '@tensorflow/tfjs-backend-webgpu';
 * import { groupedQueryAttention, hasFusedKernel } from 'grouped-query-attention';
 * import { registerWebGPUKernels } from 'grouped-query-attention/webgpu';
 *
 * registerWebGPUKernels();
 * await tf.setBackend('webgpu');
 * console.log(hasFusedKernel());   // true: groupedQueryAttention runs the fused WebGPU kernel
 * ```
 */
export function registerWebGPUKernels(): void {
  const c = groupedQueryAttentionWebGPUConfig;
  if (tf.getKernel(c.kernelName, c.backendName) == null) tf.registerKernel(c);
  registerKVStorage('webgpu', (spec) => new DeviceKVStorage('webgpu', spec, writeRowsWebGPU));
}

registerWebGPUKernels();
