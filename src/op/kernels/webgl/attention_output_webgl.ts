/**
 * Pass 3 of the fused GroupedQueryAttention kernel for tfjs-backend-webgl: the output (B,T,U,H).
 *
 * What it computes, per (b, t, u, h): Σ_j e_j·V[b,j,floor(u/G),h] / Σ_j e_j over the weights of
 * pass 2 (or Σ_j p_j·V without the division when `returnScores` already normalised them). Value
 * head floor(u/G) is read in place: no V repeats.
 *
 * Layout: one fragment per output value; it walks only the keys of the row's causal/window band
 * (all keys for a fully-masked row, flag from pass 1's stats, and for additive masks), since the
 * weights outside it are exactly 0.
 */
import type { GroupedQueryAttentionAttrs } from '../../kernel_names.js';
import type { Dims, GlProgram } from './gqa_shader_util_webgl.js';

export function outputProgram(d: Dims, attrs: GroupedQueryAttentionAttrs): GlProgram {
  return {
    variableNames: ['W', 'Vin', 'Stats'],
    outputShape: [d.b, d.t, d.u, d.h],
    userCode: `
    const int S = ${d.s};
    const int G = ${d.g};
    const int OFFSET = ${attrs.queryOffset};
    const int WINDOW = ${attrs.slidingWindow};
    ivec2 keyBand(int t, bool full) {
      int lo = 0;
      int end = S;
      if (!full) {
        int p = t + OFFSET;
        ${attrs.maskKind !== 'additive' && attrs.slidingWindow > 0 ? 'lo = max(0, p - WINDOW + 1);' : ''}
        ${attrs.maskKind === 'additive' ? '' : attrs.causal ? 'end = min(S, p + 1);' : attrs.slidingWindow > 0 ? 'end = min(S, p + WINDOW);' : ''}
      }
      return ivec2(lo, end);
    }
    void main() {
      ivec4 c = getOutputCoords();
      int b = c.x;
      int t = c.y;
      int u = c.z;
      int h = c.w;
      int g = u / G;
      ivec2 band = keyBand(t, getStats(b, u, t, 1) > 0.5);
      float acc = 0.0;
      float den = 0.0;
      for (int j = 0; j < S; j++) {
        if (j < band.x || j >= band.y) { continue; }
        float w = getW(b, u, t, j);
        acc += w * getVin(b, j, g, h);
        den += w;
      }
      setOutput(${attrs.returnScores ? 'acc' : 'acc / den'});
    }`,
  };
}
