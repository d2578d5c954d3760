/**
 * The probabilities pass of the fused GroupedQueryAttention kernel for tfjs-backend-webgl, run only
 * with `returnScores`: the softmax weights (B,U,T,S), the returned tensor.
 *
 * What it computes, per (b, u, t, j): p = exp(x − m) / l for keys entering the row's softmax, 0 for
 * the others, with x the masked logit of the raw score from attention_scores_webgl.ts, and m, l and
 * the fully-masked flag read from the stats pass.
 *
 * Layout: one fragment per weight, key j fastest (tfjs's texture layout of the 4-D output).
 */
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { GroupedQueryAttentionAttrs } from '../../kernel_names.js';
import { common, kernelProgram, outputCoords, type Dims, type GlProgram } from './gqa_shader_util_webgl.js';

export function weightsProgram(d: Dims, attrs: GroupedQueryAttentionAttrs, names: string[], mask: TensorInfo | null): GlProgram {
  return kernelProgram({
    variableNames: names,
    outputShape: [d.b, d.u, d.t, d.s],
    userCode: `
    ${common(d, attrs, mask)}
    void main() {
      ${outputCoords(['b', 'u', 't', 'j'])}
      float flag = getStats(b, u, t, 1);
      bool full = isFullRow(flag);
      float p = 0.0;
      if (isNanRow(flag)) {
        p = nanValue();
      } else if (contributes(full, b, u, t, j)) {
        float x = maskedLogit(getScores(b, u, t, j), full, b, u, t, j);
        p = exp(x - getStats(b, u, t, 0))${attrs.returnScores ? ' / getStats(b, u, t, 2)' : ''};
      }
      setOutput(p);
    }`,
  });
}
