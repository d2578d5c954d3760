/**
 * Pass 2 of the fused GroupedQueryAttention kernel for tfjs-backend-webgl: per-row softmax
 * statistics, (B,U,T,2) or, with `returnScores`, (B,U,T,3).
 *
 * What it computes, per query row (b, u, t): column 0 the row max m of the masked logits (the raw
 * scores of attention_scores_webgl.ts + mask rules), column 1 the row flag of ../shared/mask_rule.ts
 * (ROW_NORMAL; ROW_FULL: no allowed key with a logit above −Inf, or a disallowed logit L − 1e9
 * within MASKED_KEY_GAP of the largest allowed one (a wide spread), so the row walks every key with
 * the composite's logits; ROW_NAN: the composite path gives NaN), and (returnScores only) column 2 the row sum l = Σ exp(x − m) (online softmax).
 *
 * Layout: one fragment per output value, so each of a row's 2–3 columns walks the row's scores on
 * its own, one texture read per key (WebGL has no shared memory between fragments): one walk over
 * all S keys for the row flag, then one over the row's causal/window band (all keys for a fully
 * masked row) for m or l.
 */
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { GroupedQueryAttentionAttrs } from '../../kernel_names.js';
import {
  LOWEST_FLOAT_BITS, MASKED_KEY_GAP, NEG_INF_BITS, ROW_FULL, ROW_NAN, ROW_NORMAL, rowsMayHaveNoAllowedKey, u32Literal,
} from '../shared/mask_rule.js';
import { common, glslFloat, kernelProgram, outputCoords, type Dims, type GlProgram } from './gqa_shader_util_webgl.js';

export function statsProgram(d: Dims, attrs: GroupedQueryAttentionAttrs, names: string[], mask: TensorInfo | null): GlProgram {
  const cols = attrs.returnScores ? 3 : 2;
  const special = rowsMayHaveNoAllowedKey(attrs);
  return kernelProgram({
    variableNames: names,
    outputShape: [d.b, d.u, d.t, cols],
    userCode: `
    ${common(d, attrs, mask)}
    void main() {
      ${outputCoords(['b', 'u', 't', 'col'])}
      // The composite path's rule over all S logits, masked keys included (../shared/mask_rule.ts):
      // NaN or +Inf anywhere, or nothing above -Inf, makes the row NaN; no allowed logit above -Inf
      // makes it fully masked.
      bool bad = false;
      bool live = false;
      bool has = false;${special ? `
      // Largest allowed and disallowed logit: a wide spread (../shared/mask_rule.ts).
      float maxAllowed = uintBitsToFloat(${u32Literal(NEG_INF_BITS)});
      float maxMasked = maxAllowed;` : ''}
      for (int j = 0; j < S; j++) {
        float score = getScores(b, u, t, j);${special ? `
        bool ok = allowedKey(b, u, t, j);
        float x = ok ? score : score - 1e9;
        has = has || (ok && !isNegInf(score));
        if (ok) { maxAllowed = max(maxAllowed, x); } else { maxMasked = max(maxMasked, x); }` : `
        float x = compositeLogit(score, b, u, t, j);`}
        bad = bad || nanOrPosInf(x);
        live = live || !isNegInf(x);
      }
      // No allowed key above -Inf, or a disallowed key within MASKED_KEY_GAP of the allowed max
      // (its weight exp(x - m) may not underflow): the row walks every key with the composite's
      // logits. -Inf - -Inf is NaN (false): then no disallowed key can weigh anything.
      bool full = ${special ? `!has || maxMasked >= maxAllowed || maxMasked - maxAllowed > -${glslFloat(MASKED_KEY_GAP)}` : 'false'};
      if (col == 1) {
        setOutput(bad || !live ? ${ROW_NAN}.0 : full ? ${ROW_FULL}.0 : ${ROW_NORMAL}.0);
        return;
      }
      ivec2 band = keyBand(t, full);
      float m = uintBitsToFloat(${u32Literal(LOWEST_FLOAT_BITS)});
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
  });
}
