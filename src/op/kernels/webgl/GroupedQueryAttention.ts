/**
 * The fused GroupedQueryAttention kernel for tfjs-backend-webgl. This file validates a call and runs
 * these GLSL programs through `backend.compileAndRun`:
 *
 *   0. attention_pack_webgl.ts    twice: Q·scale and K packed as RGBA texels of 4 head dims;
 *   1. attention_scores_webgl.ts  (B,U,T,S): the raw scores Qs·K, computed once, vec4 reads;
 *   2. attention_stats_webgl.ts   (B,U,T,2|3): per-row softmax max, fully-masked flag (and sum),
 *      from the scores (one read per key);
 *   3. attention_output_webgl.ts  (B,T,U,H), packed 2×2: fused P·V with normalisation. Without
 *      `returnScores` it forms the weights exp(x − m) from the scores itself: the scores are the
 *      only (B,U,T,S) texture. With `returnScores`, attention_weights_webgl.ts first writes the
 *      normalised probabilities (the returned tensor) and the output pass reads those.
 *   With causal or window, value_scan_webgl.ts (B,V,H) before pass 3: the value columns holding
 *   NaN/±Inf (see Non-finite values below).
 *
 * WebGL has no workgroup memory and one output value per fragment, so a single flash pass is not
 * possible without recomputing the row's dot products once per output element (H times the work).
 * Q·K is computed once (pass 1) and the rest reads it. Compared with the composite path (repeat K
 * and V, transpose, matMul, add, softmax = max, sub, exp, sum, div, matMul, transpose), this never
 * copies K or V per query head, keeps one (B,U,T,S) texture (two with `returnScores`) and runs 5–7
 * programs instead of about 12.
 *
 * Measured alternative (SwiftShader, slower for T=S=128): no scores texture, Q·K over the packed
 * heads computed twice (in the stats and the weights passes) and an output pass reading weights.
 *
 * Non-finite values: the stats pass marks rows the composite path makes NaN (../shared/mask_rule.ts)
 * and the later passes write NaN there; with causal or window, value_scan_webgl.ts flags the value
 * columns holding NaN/±Inf, where the output pass walks every key (as the composite's P·V does). The programs need WebGL 2 (bit tests on floats); on WebGL 1
 * the call runs the composite path and warns once.
 *
 * With a KV cache read in place (`attrs.cache`, the storage of ../shared/device_kv_storage.ts written
 * by kv_write_webgl.ts), the storage's (B,C,V,H) textures stand in for the key/value inputs.
 *
 * Device limit: the (B,U,T,S) weights must fit one float texture (WEBGL_MAX_TEXTURE_SIZE²
 * elements), and so must the packed Q and K (texels of 4 values); otherwise the call runs the
 * composite path and `console.warn`s once.
 */
import * as tf from '@tensorflow/tfjs-core';
import { readKernelCall } from '../kernel_call.js';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { GroupedQueryAttention } from '../../kernel_names.js';
import { compositeKernelOutputs, warnOnce } from '../shared/composite_fallback.js';
import { deviceStorageOf } from '../shared/device_kv_storage.js';
import { outputProgram } from './attention_output_webgl.js';
import { packHeadsProgram, paddedHeadSize } from './attention_pack_webgl.js';
import { scoresProgram } from './attention_scores_webgl.js';
import { statsProgram } from './attention_stats_webgl.js';
import { weightsProgram } from './attention_weights_webgl.js';
import { valueScanProgram } from './value_scan_webgl.js';
import { bandMaySkipKeys } from '../shared/mask_rule.js';
import { callUniformValues, type GlProgram } from './gqa_shader_util_webgl.js';

interface WebGLBackendLike {
  compileAndRun(
    program: GlProgram,
    inputs: TensorInfo[],
    dtype?: 'float32',
    customUniformValues?: number[][],
    preventEagerUnpackingOfOutput?: boolean,
  ): TensorInfo;
  disposeIntermediateTensorInfo(info: TensorInfo): void;
}

const groupedQueryAttentionWebGL: KernelFunc = ({ inputs, backend, attrs }) => {
  const gl = backend as unknown as WebGLBackendLike;
  const call = readKernelCall(inputs, attrs);
  const { query, mask, attrs: a, dims: d } = call;
  const { b, t, s, u, v, h } = d;
  // A KV cache read in place: the storage's (B,C,V,H) textures replace the key/value inputs. The
  // programs read them through tfjs's logical getters (getKin/getVin(b, j, g, h)) for j < S, so the
  // capacity row stride is the texture's own; the key pass packs only the first S rows.
  const cached = a.cache != null ? deviceStorageOf(a.cache.storage, 'webgl').deviceTensors() : null;
  const key: TensorInfo = cached?.keys ?? call.key;
  const value: TensorInfo = cached?.values ?? call.value;
  const fallback = (): TensorInfo[] => compositeKernelOutputs({ query, key: call.key, value: call.value, mask }, a, backend);

  if (tf.env().getNumber('WEBGL_VERSION') < 2) {
    // The programs test float bits (floatBitsToUint, GLSL ES 3.00) for the non-finite rule.
    warnOnce('grouped-query-attention: the fused webgl kernel needs WebGL 2; running the composite path instead.');
    return fallback();
  }
  const maxTexture = tf.env().getNumber('WEBGL_MAX_TEXTURE_SIZE');
  const hp = paddedHeadSize(h);
  const texels = Math.max(b * u * t * s, (b * t * u * hp) / 4, (b * s * v * hp) / 4);
  if (texels > maxTexture * maxTexture) {
    warnOnce(
      `grouped-query-attention: the fused webgl kernel cannot run this call (the (B,U,T,S) weights ` +
        `exceed one ${maxTexture}x${maxTexture} texture); running the composite path instead.`,
    );
    return fallback();
  }
  const withMask = a.maskKind !== 'none' && mask != null;
  const m = withMask ? mask : null;
  // One set of uniform values for every program of the call (S, the query offset, dropout's).
  const values = callUniformValues(d, a);
  // Packed outputs stay packed (no eager unpacking): the scores pass reads them as RGBA texels.
  const qp = gl.compileAndRun(packHeadsProgram('Qin', query.shape, a.scale), [query], 'float32', [[t]], true);
  const kp = gl.compileAndRun(packHeadsProgram('Kin', [b, s, v, h], null), [key], 'float32', [[s]], true);
  const scores = gl.compileAndRun(scoresProgram(d), [qp, kp], 'float32', values);
  gl.disposeIntermediateTensorInfo(qp);
  gl.disposeIntermediateTensorInfo(kp);
  const stats = gl.compileAndRun(
    statsProgram(d, a, withMask ? ['Scores', 'Min'] : ['Scores'], m),
    withMask ? [scores, mask] : [scores],
    'float32',
    values,
  );
  // With causal or window the output pass skips keys outside the bands: the value scan flags the
  // columns where a NaN/±Inf value must reach the rows anyway (../shared/mask_rule.ts). Without
  // returnScores the output pass sums unnormalised weights: the scan also flags huge values.
  const vbad = bandMaySkipKeys(a) || !a.returnScores ? gl.compileAndRun(valueScanProgram(d), [value], 'float32', values) : null;
  const scanNames = vbad != null ? ['Vbad'] : [];
  const scanIns = vbad != null ? [vbad] : [];
  if (!a.returnScores) {
    // The output pass forms the softmax weights from the scores itself: one (B,U,T,S) texture.
    const output = gl.compileAndRun(
      outputProgram(d, a, 'scores', [...(withMask ? ['Scores', 'Vin', 'Stats', 'Min'] : ['Scores', 'Vin', 'Stats']), ...scanNames], m),
      [...(withMask ? [scores, value, stats, mask] : [scores, value, stats]), ...scanIns],
      'float32',
      values,
    );
    gl.disposeIntermediateTensorInfo(scores);
    gl.disposeIntermediateTensorInfo(stats);
    if (vbad != null) gl.disposeIntermediateTensorInfo(vbad);
    return [output];
  }
  const weights = gl.compileAndRun(
    weightsProgram(d, a, withMask ? ['Scores', 'Stats', 'Min'] : ['Scores', 'Stats'], m),
    withMask ? [scores, stats, mask] : [scores, stats],
    'float32',
    values,
  );
  gl.disposeIntermediateTensorInfo(scores);
  const output = gl.compileAndRun(
    outputProgram(d, a, 'weights', ['W', 'Vin', 'Stats', ...scanNames], null), [weights, value, stats, ...scanIns], 'float32', values,
  );
  gl.disposeIntermediateTensorInfo(stats);
  if (vbad != null) gl.disposeIntermediateTensorInfo(vbad);
  return [output, weights];
};

/**
 * The webgl kernel's registration record (`tf.registerKernel(groupedQueryAttentionWebGLConfig)`);
 * `import 'grouped-query-attention/webgl'` registers it for you.
 *
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import { groupedQueryAttentionWebGLConfig } from 'grouped-query-attention/webgl';
 *
 * console.log(tf.getKernel(groupedQueryAttentionWebGLConfig.kernelName, 'webgl') != null);   // true
 * ```
 */
export const groupedQueryAttentionWebGLConfig: KernelConfig = {
  kernelName: GroupedQueryAttention,
  backendName: 'webgl',
  kernelFunc: groupedQueryAttentionWebGL,
};
