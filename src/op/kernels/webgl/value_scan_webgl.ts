/**
 * The value scan of the fused GroupedQueryAttention kernel for tfjs-backend-webgl, run when the
 * output pass may skip keys (causal or window: ../shared/mask_rule.ts `bandMaySkipKeys`) or sums
 * unnormalised weights (no `returnScores`).
 *
 * What it computes, per (b, g, h), as (B, V, H): bit 1 (value 1) when one of the values
 * V[b, j, g, h], j < S, is NaN or ±Inf; bit 2 (value 2) when one reaches the uniform vLimit
 * (../shared/mask_rule.ts valueLimit). The composite's P·V multiplies every probability by every
 * value, so a NaN/±Inf value reaches every row of group g in column h, even at keys outside the
 * row's band (0·NaN and 0·Inf are NaN); the output pass walks every key for a fragment whose
 * columns have bit 1, and sums the values times 2⁻³² where they have bit 2 (no overflow of Σ e·v).
 *
 * Layout: one fragment per (b, g, h), walking the S keys: one read of each value per call, far
 * fewer fragments than the output pass.
 */
import { POS_INF_BITS, u32Literal } from '../shared/mask_rule.js';
import { kernelProgram, outputCoords, type Dims, type GlProgram } from './gqa_shader_util_webgl.js';

/** Input 'Vin' ((B,S,V,H), or a cache's (B,C,V,H) read for j < S); output (B, V, H) flags. Uniforms: CALL_UNIFORMS. */
export function valueScanProgram(d: Dims): GlProgram {
  return kernelProgram({
    variableNames: ['Vin'],
    outputShape: [d.b, d.v, d.h],
    userCode: `
    void main() {
      ${outputCoords(['b', 'g', 'h'])}
      float bad = 0.0;
      float huge = 0.0;
      for (int j = 0; j < S; j++) {
        float x = getVin(b, j, g, h);
        // All exponent bits set: NaN or ±Inf (a bit test no compiler folds away).
        if ((floatBitsToUint(x) & ${u32Literal(POS_INF_BITS)}) == ${u32Literal(POS_INF_BITS)}) { bad = 1.0; }
        if (abs(x) >= vLimit) { huge = 2.0; }
      }
      setOutput(bad + huge);
    }`,
  });
}
