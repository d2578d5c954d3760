/**
 * Registers this package's kernels with tfjs. Called once when the package is imported; kernels are
 * keyed by backend name, so registering before the backend itself is loaded is fine.
 */
import * as tf from '@tensorflow/tfjs-core';
import { groupedQueryAttentionCpuConfig } from './cpu/GroupedQueryAttention.js';
import { groupedQueryAttentionWasmConfig } from './wasm/GroupedQueryAttention.js';
import { unsortedSegmentSumWasmConfig } from './wasm/UnsortedSegmentSum.js';

function registerOnce(config: tf.KernelConfig): void {
  if (tf.getKernel(config.kernelName, config.backendName) == null) tf.registerKernel(config);
}

export function registerKernels(): void {
  registerOnce(groupedQueryAttentionCpuConfig);
  registerOnce(groupedQueryAttentionWasmConfig);
  registerOnce(unsortedSegmentSumWasmConfig);
}
