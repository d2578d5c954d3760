/**
 * The probabilities WGSL program of the fused GroupedQueryAttention kernel (tfjs-backend-webgpu), run
 * only when `returnScores` asks for the (B,U,T,S) attention weights.
 *
 * What it computes: p[b,u,t,j] = exp(x − m) / l for keys j entering row (b,u,t)'s softmax (0 for the
 * others), where x is the row's masked logit for key j, recomputed as fround(Q·scale)·K with the
 * same rules as flash_attention_webgpu.ts, and (m, l, fully-masked flag) are the row's final
 * statistics written by the flash program's 'stats' mode to a (B,U,T,3) buffer. A row the stats
 * mark NaN (the composite path's non-finite rule, ../shared/mask_rule.ts) is NaN throughout.
 *
 * Layout: one invocation per output element, workgroups of 64 invocations over the flat index
 * (b, u, t, j), j fastest: consecutive invocations read the same query row and consecutive keys.
 * No workgroup memory: each element is independent, and recomputing one H-long dot product per
 * element costs no more than the (B,U,T,S) write it produces.
 */
import type { GroupedQueryAttentionAttrs } from '../../kernel_names.js';
import { ROW_FULL, ROW_NAN } from '../shared/mask_rule.js';
import { UNIFORMS, attrsKey, flatCoords, maskSnippet, type Dims, type GpuProgram } from './gqa_shader_util_webgpu.js';

/** Probabilities (B,U,T,S) from the rows' final (m, l, full): one invocation per element. */
export function probabilitiesProgram(d: Dims, attrs: GroupedQueryAttentionAttrs, variableNames: string[]): GpuProgram {
  const outputShape = [d.b, d.u, d.t, d.s];
  const size = outputShape.reduce((a, x) => a * x, 1);
  const wg = 64;
  const userCode = `
    const H = ${d.h};
    ${maskSnippet(attrs)}
    fn main(index : i32) {
      if (index >= uniforms.size) { return; }
      let T = uniforms.T;
      let S = uniforms.S;
      let U = uniforms.U;
      ${flatCoords('index', [['b', 'B'], ['u', 'U'], ['t', 'T'], ['j', 'S']])}
      let g = u / uniforms.G;
      let so = ((b * U + u) * T + t) * 3;
      let flag = Stats[so + 2];
      let full = flag == ${ROW_FULL}.0;
      var p = 0.0;
      if (flag == ${ROW_NAN}.0) {
        p = nanValue();
      } else if (contributes(full, b, u, t, j)) {
        let qo = ((b * T + t) * U + u) * H;
        let ko = ((b * uniforms.kRows + j) * uniforms.V + g) * H;
        var dotv = 0.0;
        for (var hh = 0; hh < uniforms.H; hh++) { dotv += (Qin[qo + hh] * uniforms.scale) * Kin[ko + hh]; }
        p = exp(maskedLogit(dotv, full, b, u, t, j) - Stats[so]) / Stats[so + 1];
      }
      result[index] = p;
    }`;
  return {
    outputShape,
    shaderKey: `gqaProbs_${d.h}_${attrsKey(attrs)}`,
    dispatchLayout: { x: outputShape.map((_, i) => i) },
    dispatch: [Math.ceil(size / wg), 1, 1],
    variableNames,
    uniforms: UNIFORMS,
    workgroupSize: [wg, 1, 1],
    size: true,
    getUserCode: () => userCode,
  };
}
