/**
 * Pass 1 of the fused GroupedQueryAttention kernel for tfjs-backend-webgl: the raw scores
 * L = fround(Q·scale)·K, (B,U,T,S), computed once and read by the stats and weights passes.
 *
 * What it computes, per (b, u, t, j): the dot product of the packed scaled query row (b, t, u) and
 * the packed key row (b, j, floor(u/G)) from attention_pack_webgl.ts (query head u reads key head
 * floor(u/G) in place: no K repeats). Masks are not applied here: the later passes add them. With
 * no bool/additive mask, keys outside a row's causal/window band are never read by the later passes
 * (unless the band is empty: a fully-masked row, which needs every key), so they get 0 unread.
 *
 * Layout: one fragment per score, key j fastest; it reads HP/4 RGBA texels of Q and of K (four
 * head dims each) and sums their vec4 dot products: 8× fewer texture reads and index computations
 * than one-float reads. The sum's order differs from a sequential one only in float32 rounding.
 */
import { paddedHeadSize } from './attention_pack_webgl.js';
import { kernelProgram, outputCoords, type Dims, type GlProgram } from './gqa_shader_util_webgl.js';

/** Inputs: Qp and Kp, the packed heads of attention_pack_webgl.ts. Uniforms: CALL_UNIFORMS. */
export function scoresProgram(d: Dims): GlProgram {
  const hp = paddedHeadSize(d.h);
  return kernelProgram({
    variableNames: ['Qp', 'Kp'],
    packedInputs: true,
    outputShape: [d.b, d.u, d.t, d.s],
    userCode: `
    const int T = ${d.t};
    const int U = ${d.u};
    const int V = ${d.v};
    const int G = ${d.g};
    const int HALF = ${hp / 2};
    const int HQ = ${hp / 4};
    void main() {
      ${outputCoords(['b', 'u', 't', 'j'])}
      int qo = ((b * T + t) * U + u) * HALF;
      int ko = ((b * S + j) * V + u / G) * HALF;
      float acc = 0.0;
      for (int i = 0; i < HQ; i++) {
        acc += dot(getQp(qo + 2 * i, 0), getKp(ko + 2 * i, 0));
      }
      setOutput(acc);
    }`,
  });
}
