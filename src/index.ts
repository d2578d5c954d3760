/**
 * grouped-query-attention: Keras's `GroupQueryAttention` for TensorFlow.js with Keras 3.6's exact
 * numbers, the tfjs op under it, and a fused attention engine.
 *
 * Importing the package registers the layer for serialization and the op's gradient.
 *
 * Keras files (`loadKerasModel`, `saveKerasModel`, …) have their own entry point,
 * `grouped-query-attention/keras`, so that this one does not load h5wasm or fflate.
 */
import { registerGroupedQueryAttentionGradient } from './op/gradient.js';
import { registerKernels } from './op/kernels/register.js';

export { ValueError } from './errors.js';
export {
  defaultScale,
  groupedQueryAttention,
  groupedQueryAttentionReference,
  hasFusedKernel,
  type GroupedQueryAttentionCache,
  type GroupedQueryAttentionOptions,
} from './op/grouped_query_attention.js';
export {
  GroupedQueryAttention as GroupedQueryAttentionKernel,
  type GroupedQueryAttentionAttrs,
  type GroupedQueryAttentionInputs,
} from './op/kernel_names.js';
export { GroupedQueryAttention, GroupQueryAttention } from './layer/grouped_query_attention.js';
export type { GroupedQueryAttentionArgs, GroupedQueryAttentionCallArgs } from './layer/args.js';
export { KVCache, type KVCacheOptions } from './layer/kv_cache.js';
export { denseProduct } from './layer/dense_product.js';

registerGroupedQueryAttentionGradient();
registerKernels();
