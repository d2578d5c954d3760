/**
 * `grouped-query-attention/webgl`: registers the fused GroupedQueryAttention kernel for
 * tfjs-backend-webgl (GLSL programs: fused scores + softmax statistics, fused softmax weights,
 * fused P·V, no K/V head copies). Import it once, next to the package and the backend:
 *
 * ```ts
 * import '@tensorflow/tfjs-backend-webgl';
 * import 'grouped-query-attention/webgl';
 * ```
 */
import * as tf from '@tensorflow/tfjs-core';
import { groupedQueryAttentionWebGLConfig } from './op/kernels/webgl/GroupedQueryAttention.js';

export { groupedQueryAttentionWebGLConfig } from './op/kernels/webgl/GroupedQueryAttention.js';

/** Registers the webgl kernel unless one is registered already. Called on import. */
export function registerWebGLKernels(): void {
  const c = groupedQueryAttentionWebGLConfig;
  if (tf.getKernel(c.kernelName, c.backendName) == null) tf.registerKernel(c);
}

registerWebGLKernels();
