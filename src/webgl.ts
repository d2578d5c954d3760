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
import { DeviceKVStorage } from './op/kernels/shared/device_kv_storage.js';
import { writeRowsWebGL } from './op/kernels/webgl/kv_write_webgl.js';
import { registerKVStorage } from './op/kv_storage.js';

export { groupedQueryAttentionWebGLConfig } from './op/kernels/webgl/GroupedQueryAttention.js';

/**
 * Registers the webgl kernel unless one is registered already, and the webgl KV-cache storage
 * (`layer.createCache` under webgl keeps keys and values in textures, written in place). Called on import; call it again after
 * `tf.unregisterKernel` or to be explicit.
 *
 * @example
 * ```ts
 * // In a browser page (the webgl backend needs one):
 * import * as tf from '@tensorflow/tfjs-core';
 * import '@tensorflow/tfjs-backend-webgl';
 * import { groupedQueryAttention, hasFusedKernel } from 'grouped-query-attention';
 * import { registerWebGLKernels } from 'grouped-query-attention/webgl';
 *
 * registerWebGLKernels();
 * await tf.setBackend('webgl');
 * console.log(hasFusedKernel());   // true: groupedQueryAttention runs the fused WebGL kernel
 * ```
 */
export function registerWebGLKernels(): void {
  const c = groupedQueryAttentionWebGLConfig;
  if (tf.getKernel(c.kernelName, c.backendName) == null) tf.registerKernel(c);
  registerKVStorage('webgl', (spec) => new DeviceKVStorage('webgl', spec, writeRowsWebGL));
}

registerWebGLKernels();
