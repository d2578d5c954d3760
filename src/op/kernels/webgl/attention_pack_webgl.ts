/**
 * Packs the query or key heads of the fused GroupedQueryAttention kernel (tfjs-backend-webgl) for
 * attention_scores_webgl.ts: four consecutive head dimensions per RGBA texel.
 *
 * What it computes: for an input X of shape (B, N, HEADS, H) (query (B,T,U,H) or key (B,S,V,H)),
 * the packed tensor [B·N·HEADS·HP / 2, 2] (HP = H rounded up to a multiple of 4) whose flat element
 * (row·HP + h) is X[row, h]·scale for h < H and 0 in the padding, row = (b·N + n)·HEADS + head.
 * The query gets scale (Qs = fround(Q·scale): the composite path's rounding, done once per element
 * instead of once per score); the key gets none. Zero padding adds exact zeros to the dot products.
 *
 * Layout: tfjs packs the last two dims of a rank-2 tensor in 2×2 blocks, so a texel of the [M, 2]
 * output holds rows 2k and 2k+1 × both columns = flat elements 4k..4k+3 in order: one fragment per
 * texel, i.e. per four head dims of one head row. The scores pass then reads H/4 texels per row
 * instead of H one-float texels, and its index math runs once per 4 values.
 */
import { glslFloat, outputCoords, type GlProgram, type GlUniform } from './gqa_shader_util_webgl.js';

/** Head size rounded up to a multiple of 4. */
export function paddedHeadSize(h: number): number {
  return Math.ceil(h / 4) * 4;
}

/** The uniform of the packing program: N, the positions packed (S for the keys: a decode step changes it). */
export const PACK_UNIFORMS: GlUniform[] = [{ name: 'N', type: 'int' }];

/**
 * Packs `name` (B, N, HEADS, H) into [B·N·HEADS·HP/2, 2], times `scale` unless it is null. Run it
 * with the uniform values [[N]]; shapes are uniforms (a new N compiles nothing).
 */
export function packHeadsProgram(name: string, shape: readonly number[], scale: number | null): GlProgram {
  const [b, n, heads, h] = shape as [number, number, number, number];
  const hp = paddedHeadSize(h);
  const getter = `get${name.charAt(0).toUpperCase()}${name.slice(1)}`;
  return {
    variableNames: [name],
    packedOutput: true,
    enableShapeUniforms: true,
    customUniforms: PACK_UNIFORMS,
    outputShape: [(b * n * heads * hp) / 2, 2],
    userCode: `
    const int HEADS = ${heads};
    const int H = ${h};
    const int HP = ${hp};
    float value(int b, int n, int head, int h) {
      if (h >= H) { return 0.0; }
      return ${scale == null ? `${getter}(b, n, head, h)` : `${getter}(b, n, head, h) * ${glslFloat(scale)}`};
    }
    void main() {
      ${outputCoords(['texel', 'col'])}
      int f = texel * 2;
      int row = f / HP;
      int h0 = f - row * HP;
      int head = row - (row / HEADS) * HEADS;
      int bn = row / HEADS;
      int nn = bn - (bn / N) * N;
      int b = bn / N;
      setOutput(vec4(value(b, nn, head, h0), value(b, nn, head, h0 + 1),
                     value(b, nn, head, h0 + 2), value(b, nn, head, h0 + 3)));
    }`,
  };
}
