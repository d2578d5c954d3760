/**
 * Last pass of the fused GroupedQueryAttention kernel for tfjs-backend-webgl: the output (B,T,U,H),
 * written as a packed texture.
 *
 * What it computes, per (b, t, u, h): Σ_j e_j·V[b,j,floor(u/G),h] / Σ_j e_j. Mode 'scores' (no
 * `returnScores`): e_j = exp(x_j − m) is formed here from the raw scores of attention_scores_webgl.ts
 * with the mask rules of gqa_shader_util_webgl.ts and the row max m / fully-masked flag of the stats
 * pass, 0 for keys outside the row's softmax: no (B,U,T,S) weights texture exists. Mode 'weights'
 * (`returnScores`): Σ_j p_j·V over the normalised probabilities of attention_weights_webgl.ts,
 * without the division. Dropout (`dropoutRate` > 0): each weight is multiplied by the keep factor
 * of the shared hash (dropoutGlsl) in the sum Σ e·z·V, while the normaliser Σ e is taken before
 * dropout (Keras drops the probabilities). Value head floor(u/G) is read in place: no V repeats. The sums run over j
 * in ascending order, as in the composite path's P·V.
 *
 * Layout: tfjs packs the last two dims in 2×2 blocks, so one fragment computes query heads u, u+1 ×
 * head dims h, h+1 of one (b, t): per key it reads 2 scores (2 exps) and 2 values (4 when u and u+1
 * belong to different groups) for 4 outputs, instead of one weight and one value per output. It
 * walks the union of the two rows' causal/window bands (all keys for a fully-masked row and for
 * additive masks, and for columns where the value scan found a NaN/±Inf value); each row only takes
 * keys of its own band. In mode 'scores', columns where the scan found huge values are summed
 * times 2⁻³² and the output scaled back (Σ e·v is unnormalised: ../shared/mask_rule.ts valueLimit).
 */
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { GroupedQueryAttentionAttrs } from '../../kernel_names.js';
import {
  common, dropoutGlsl, kernelProgram, keyBand, outputCoords, rowFlags, sizes, type Dims, type GlProgram,
} from './gqa_shader_util_webgl.js';
import { hasDropout } from '../shared/dropout_hash_shader.js';
import { VALUE_SCALE_LITERAL, VALUE_UNSCALE_LITERAL } from '../shared/mask_rule.js';

/**
 * Inputs: mode 'scores' ['Scores', 'Vin', 'Stats'] (+ 'Min' with a mask); mode 'weights' ['W', 'Vin',
 * 'Stats']; either + 'Vbad' (value_scan_webgl.ts) last when the bands may skip keys.
 */
export function outputProgram(
  d: Dims,
  attrs: GroupedQueryAttentionAttrs,
  mode: 'scores' | 'weights',
  names: string[],
  mask: TensorInfo | null,
): GlProgram {
  const additive = attrs.maskKind === 'additive';
  const fromScores = mode === 'scores';
  // Weights mode reads finished weights: no mask rules, only the sizes and the key band.
  const header = fromScores ? common(d, attrs, mask) : sizes(d, attrs) + keyBand(attrs) + rowFlags;
  const dropout = hasDropout(attrs);
  // The value scan's flags (value_scan_webgl.ts), an input when the bands may skip keys.
  const scanned = names.includes('Vbad');
  return kernelProgram({
    variableNames: names,
    packedOutput: true,
    outputShape: [d.b, d.t, d.u, d.h],
    userCode: `
    ${header}
    ${dropout ? dropoutGlsl : ''}
    const int U = ${d.u};
    // The dropout keep factor of weight (b, u, t, j), 1 without dropout.
    float keep(int b, int u, int t, int j) {
      ${dropout ? 'return keepFactor(b, u, t, j);' : 'return 1.0;'}
    }
    // Keys whose weight can be nonzero for row (b, u, t).
    ivec2 rowBand(int t, bool full) {
      ${additive ? 'return ivec2(0, S);' : 'return keyBand(t, full);'}
    }
    float weightOf(int b, int u, int t, int j, bool full, float m) {
      ${fromScores
        ? `if (!contributes(full, b, u, t, j)) { return 0.0; }
      return exp(maskedLogit(getScores(b, u, t, j), full, b, u, t, j) - m);`
        : 'return getW(b, u, t, j);'}
    }
    void main() {
      ${outputCoords(['b', 't', 'u0', 'h0'])}
      // The block's second head / dim may lie outside (odd U or H): read valid coords, discard later.
      int u1 = min(u0 + 1, U - 1);
      int h1 = min(h0 + 1, H - 1);
      int g0 = u0 / G;
      int g1 = u1 / G;
      float flag0 = getStats(b, u0, t, 1);
      float flag1 = getStats(b, u1, t, 1);
      bool full0 = isFullRow(flag0);
      bool full1 = isFullRow(flag1);
      float m0 = ${fromScores ? 'getStats(b, u0, t, 0)' : '0.0'};
      float m1 = ${fromScores ? 'getStats(b, u1, t, 0)' : '0.0'};
      ivec2 band0 = rowBand(t, full0);
      ivec2 band1 = rowBand(t, full1);
      float vScale = 1.0;${scanned ? `
      // The value scan's flags of these columns: bit 1 NaN/±Inf, bit 2 huge (value_scan_webgl.ts).
      vec4 flags = vec4(getVbad(b, g0, h0), getVbad(b, g0, h1), getVbad(b, g1, h0), getVbad(b, g1, h1));
      // A NaN/±Inf value in these columns reaches the rows at every key (weight 0 outside the band).
      if (any(equal(mod(flags, 2.0), vec4(1.0)))) {
        band0 = ivec2(0, S);
        band1 = ivec2(0, S);
      }
      // Huge values: Σ e·v would overflow where the composite's P·V does not; summed times 2^-32.
      if (${fromScores ? 'any(greaterThanEqual(flags, vec4(2.0)))' : 'false'}) { vScale = ${VALUE_SCALE_LITERAL}; }` : ''}
      int lo = min(band0.x, band1.x);
      int end = max(band0.y, band1.y);
      vec2 acc0 = vec2(0.0);
      vec2 acc1 = vec2(0.0);
      float den0 = 0.0;
      float den1 = 0.0;
      for (int j = 0; j < S; j++) {
        if (j < lo || j >= end) { continue; }
        vec2 v0 = vec2(getVin(b, j, g0, h0), getVin(b, j, g0, h1)) * vScale;
        if (j >= band0.x && j < band0.y) {
          float e = weightOf(b, u0, t, j, full0, m0);
          acc0 += (e * keep(b, u0, t, j)) * v0;
          den0 += e;
        }
        if (j >= band1.x && j < band1.y) {
          vec2 v1 = g1 == g0 ? v0 : vec2(getVin(b, j, g1, h0), getVin(b, j, g1, h1)) * vScale;
          float e = weightOf(b, u1, t, j, full1, m1);
          acc1 += (e * keep(b, u1, t, j)) * v1;
          den1 += e;
        }
      }
      float vUnscale = vScale == 1.0 ? 1.0 : ${VALUE_UNSCALE_LITERAL};
      vec2 y0 = ${fromScores ? 'acc0 / den0' : 'acc0'} * vUnscale;
      vec2 y1 = ${fromScores ? 'acc1 / den1' : 'acc1'} * vUnscale;
      if (isNanRow(flag0)) { y0 = vec2(nanValue()); }
      if (isNanRow(flag1)) { y1 = vec2(nanValue()); }
      setOutput(vec4(y0, y1));
    }`,
  });
}
