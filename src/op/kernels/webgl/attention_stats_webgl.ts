/**
 * Pass 2 of the fused GroupedQueryAttention kernel for tfjs-backend-webgl: per-row softmax
 * statistics, (B,U,T,2) or, with `returnScores`, (B,U,T,3).
 *
 * What it computes, per query row (b, u, t): column 0 the row max m of the masked logits (the raw
 * scores of attention_scores_webgl.ts + mask rules), column 1 the "fully masked" flag (no allowed
 * key), and (returnScores only) column 2 the row sum l = Σ exp(x − m) (online softmax).
 *
 * Layout: one fragment per output value, so each of a row's 2–3 columns walks the row's scores on
 * its own, one texture read per key (WebGL has no shared memory between fragments). Keys outside
 * the row's causal/window band are skipped unless the row is fully masked.
 */
import { rowsMayHaveNoAllowedKey } from '../../../engine/mask-rule.js';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { GroupedQueryAttentionAttrs } from '../../kernel_names.js';
import { common, type Dims, type GlProgram } from './gqa_shader_util_webgl.js';

export function statsProgram(d: Dims, attrs: GroupedQueryAttentionAttrs, names: string[], mask: TensorInfo | null): GlProgram {
  const cols = attrs.returnScores ? 3 : 2;
  return {
    variableNames: names,
    outputShape: [d.b, d.u, d.t, cols],
    userCode: `
    ${common(d, attrs, mask)}
    void main() {
      ivec4 c = getOutputCoords();
      int b = c.x;
      int u = c.y;
      int t = c.z;
      int col = c.w;
      bool full = false;
      ${rowsMayHaveNoAllowedKey(attrs) ? `
      full = true;
      for (int j = 0; j < S; j++) {
        if (allowedKey(b, u, t, j)) { full = false; break; }
      }` : ''}
      if (col == 1) {
        setOutput(full ? 1.0 : 0.0);
        return;
      }
      ivec2 band = keyBand(t, full);
      float m = -3.402823e38;
      float l = 0.0;
      for (int j = 0; j < S; j++) {
        if (j < band.x || j >= band.y || !contributes(full, b, u, t, j)) { continue; }
        float x = maskedLogit(getScores(b, u, t, j), full, b, u, t, j);
        if (col == 0) {
          m = max(m, x);
        } else {
          float mn = max(m, x);
          l = l * exp(m - mn) + exp(x - mn);
          m = mn;
        }
      }
      setOutput(col == 0 ? m : l);
    }`,
  };
}
