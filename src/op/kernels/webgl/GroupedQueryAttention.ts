/**
 * The fused GroupedQueryAttention kernel for tfjs-backend-webgl. This file validates a call and runs
 * three GLSL programs through `backend.compileAndRun`:
 *
 *   1. attention_stats_webgl.ts   (B,U,T,2|3): per-row softmax max, fully-masked flag (and sum);
 *   2. attention_weights_webgl.ts (B,U,T,S): fused scores + softmax weights (the probabilities
 *      when `returnScores`);
 *   3. attention_output_webgl.ts  (B,T,U,H): fused P·V with normalisation.
 *
 * WebGL has no workgroup memory and one output value per fragment, so a single flash pass is not
 * possible without recomputing the row's dot products once per output element (H times the work).
 * The kernel therefore keeps one (B,U,T,S) buffer, the softmax weights, and fuses everything else.
 * Compared with the composite path (repeat K and V, transpose, matMul, add, softmax = max, sub,
 * exp, sum, div, matMul, transpose), this allocates one (B,U,T,S) buffer instead of several and
 * runs 3 programs instead of about 12.
 *
 * Device limit: the (B,U,T,S) weights must fit one float texture (WEBGL_MAX_TEXTURE_SIZE²
 * elements); otherwise the call runs the composite path and `console.warn`s once.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { GroupedQueryAttention, type GroupedQueryAttentionAttrs } from '../../kernel_names.js';
import { compositeKernelOutputs, warnOnce } from '../webgpu/composite_fallback.js';
import { outputProgram } from './attention_output_webgl.js';
import { statsProgram } from './attention_stats_webgl.js';
import { weightsProgram } from './attention_weights_webgl.js';
import type { Dims, GlProgram } from './gqa_shader_util_webgl.js';

interface WebGLBackendLike {
  compileAndRun(program: GlProgram, inputs: TensorInfo[], dtype?: 'float32'): TensorInfo;
  disposeIntermediateTensorInfo(info: TensorInfo): void;
}

const groupedQueryAttentionWebGL: KernelFunc = ({ inputs, backend, attrs }) => {
  const gl = backend as unknown as WebGLBackendLike;
  const a = attrs as unknown as GroupedQueryAttentionAttrs;
  const query = inputs['query'] as TensorInfo;
  const key = inputs['key'] as TensorInfo;
  const value = inputs['value'] as TensorInfo;
  const mask = inputs['mask'] as TensorInfo | undefined;
  const [b, t, u, h] = query.shape as [number, number, number, number];
  const [, s, v] = key.shape as [number, number, number, number];
  const d: Dims = { b, t, s, u, v, h, g: u / v };

  const maxTexture = tf.env().getNumber('WEBGL_MAX_TEXTURE_SIZE');
  if (b * u * t * s > maxTexture * maxTexture) {
    warnOnce(
      `grouped-query-attention: the fused webgl kernel cannot run this call (the (B,U,T,S) weights ` +
        `exceed one ${maxTexture}x${maxTexture} texture); running the composite path instead.`,
    );
    return compositeKernelOutputs({ query, key, value, mask }, a, backend);
  }
  const withMask = a.maskKind !== 'none' && mask != null;
  const m = withMask ? mask : null;
  const stats = gl.compileAndRun(
    statsProgram(d, a, withMask ? ['Qin', 'Kin', 'Min'] : ['Qin', 'Kin'], m),
    withMask ? [query, key, mask] : [query, key],
    'float32',
  );
  const weights = gl.compileAndRun(
    weightsProgram(d, a, withMask ? ['Qin', 'Kin', 'Stats', 'Min'] : ['Qin', 'Kin', 'Stats'], m),
    withMask ? [query, key, stats, mask] : [query, key, stats],
    'float32',
  );
  const output = gl.compileAndRun(outputProgram(d, a), [weights, value, stats], 'float32');
  gl.disposeIntermediateTensorInfo(stats);
  if (a.returnScores) return [output, weights];
  gl.disposeIntermediateTensorInfo(weights);
  return [output];
};

export const groupedQueryAttentionWebGLConfig: KernelConfig = {
  kernelName: GroupedQueryAttention,
  backendName: 'webgl',
  kernelFunc: groupedQueryAttentionWebGL,
};
