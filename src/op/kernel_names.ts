/**
 * Kernel names of this package, with their inputs and attributes, declared once.
 * Backends, the op, the gradient and the tests import them from here.
 */
import type { TensorInfo } from '@tensorflow/tfjs-core';

/**
 * Fused grouped-query attention on projected heads.
 * Inputs: query (B,T,U,H), key (B,S,V,H), value (B,S,V,H), optional mask broadcastable to
 * (B,U,T,S) as a rank-4 tensor (dtype bool for a boolean mask, float32 for an additive one).
 * Outputs: [output (B,T,U,H)] or, with `returnScores`, [output, probabilities (B,U,T,S)].
 */
export const GroupedQueryAttention = 'GroupedQueryAttention';

export type GroupedQueryAttentionInputs = {
  query: TensorInfo;
  key: TensorInfo;
  value: TensorInfo;
  /** Present only when `maskKind !== 'none'`. */
  mask?: TensorInfo;
};

export interface GroupedQueryAttentionAttrs {
  /** 'none': no mask input; 'bool': nonzero allows (Keras bool masks); 'additive': float32 adder. */
  maskKind: 'none' | 'bool' | 'additive';
  causal: boolean;
  /** Absolute position of query row 0 for causal and window masks (0 = Keras top-left). */
  queryOffset: number;
  /** 0 for none, else the band width w of |p - j| < w. */
  slidingWindow: number;
  /** Multiplies the query before the dot product. */
  scale: number;
  returnScores: boolean;
}
