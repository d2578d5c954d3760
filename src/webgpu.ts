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

export { groupedQueryAttentionWebGPUConfig, chooseFlashConfig, type FlashConfig } from './op/kernels/webgpu/GroupedQueryAttention.js';

/** Registers the webgpu kernel unless one is registered already. Called on import. */
export function registerWebGPUKernels(): void {
  const c = groupedQueryAttentionWebGPUConfig;
  if (tf.getKernel(c.kernelName, c.backendName) == null) tf.registerKernel(c);
}

registerWebGPUKernels();
