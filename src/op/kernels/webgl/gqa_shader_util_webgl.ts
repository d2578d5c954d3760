/**
 * Pieces shared by the GLSL programs of the fused GroupedQueryAttention kernel (tfjs-backend-webgl):
 * the program type, the call's dimensions, and `common`, the GLSL every score-computing program
 * includes: compile-time sizes, the Keras 3.6 mask rules and the causal/window key band.
 *
 * Keras 3.6 rules (as in the composite path): Qs = fround(Q·scale); bool masks, causal and window
 * give "allowed" keys; a row with at least one allowed key is a softmax over its allowed keys
 * (the others contribute exactly 0, unless the row's logits spread widely: ../shared/mask_rule.ts);
 * a row with none gives every key j < S the logit fround(L − 1e9) and a plain softmax (uniform for
 * |L| ≤ 32, a 64-spaced grid otherwise); a wide row gives the disallowed keys that logit too;
 * additive masks give fround(L + a) and a plain softmax.
 *
 * What changes from one decode step to the next is not compiled in: the key length S and the query
 * offset are uniforms (CALL_UNIFORMS), and every program sets tfjs's `enableShapeUniforms`, so that
 * tensor shapes are uniforms too (tfjs's shader key then holds ranks and broadcast flags, not
 * shapes). A decode step at a new length reuses the programs of the previous step; the head size,
 * the group size, T, the window and the mask's broadcast axes stay compiled in.
 */
import type { TensorInfo } from '@tensorflow/tfjs-core';
import { MIX32_STATEMENTS, dropoutUniformValues } from '../shared/dropout_hash_shader.js';
import type { GroupedQueryAttentionAttrs } from '../../kernel_names.js';
import {
  NAN_BITS, NEG_INF_BITS, POS_INF_BITS, ROW_FULL, ROW_NAN, rowsMayHaveNoAllowedKey, u32Literal, valueLimit,
} from '../shared/mask_rule.js';

/** A uniform tfjs declares for a program (GPGPUProgram.customUniforms); its value goes to compileAndRun. */
export type GlUniform = { name: string; type: 'int' | 'float' };

/** The part of tfjs-backend-webgl's GPGPUProgram this file uses. */
export interface GlProgram {
  /** Uniforms tfjs declares for the program; their values go to compileAndRun. */
  customUniforms?: GlUniform[];
  /** Shapes as uniforms: tfjs's shader key leaves the input and output shapes out. */
  enableShapeUniforms?: boolean;
  variableNames: string[];
  /** Inputs are read as packed RGBA textures (tfjs packs unpacked inputs first). */
  packedInputs?: boolean;
  /** The output is a packed RGBA texture: setOutput(vec4) writes a 2×2 block of the last two dims. */
  packedOutput?: boolean;
  outputShape: number[];
  userCode: string;
}

/** Sizes of one call: query (B,T,U,H), key/value (B,S,V,H), group size G = U / V. */
import type { Dims } from '../kernel_call.js';
export type { Dims };

/** A GLSL float literal denoting exactly the float32 value x. */
export function glslFloat(x: number): string {
  const s = String(x);
  return /[.eE]/.test(s) ? s : `${s}.0`;
}

/**
 * The per-call uniforms of every program but the packing one: the key length S, the query offset
 * (a decode step changes both), and the dropout hash's key, threshold and keep scale (a new seed
 * compiles nothing). Every program declares all of them, dropout or not: tfjs caches a compiled
 * program by its source and inputs and sets the uniforms the first compilation declared, so two
 * programs with the same source must not declare different lists. Unused uniforms cost nothing.
 */
export const CALL_UNIFORMS: readonly GlUniform[] = [
  { name: 'S', type: 'int' },
  { name: 'OFFSET', type: 'int' },
  { name: 'dropKey', type: 'int' },
  { name: 'dropThreshold', type: 'int' },
  { name: 'keepScale', type: 'float' },
  { name: 'vLimit', type: 'float' },
];

/**
 * Values of CALL_UNIFORMS, in its order: the hash's key and threshold as u32 bit patterns in ints
 * (zeros without dropout).
 */
export function callUniformValues(d: Dims, attrs: GroupedQueryAttentionAttrs): number[][] {
  const [key, threshold, keepScale] = dropoutUniformValues(attrs);
  // vLimit: values at least this large are summed scaled (../shared/mask_rule.ts valueLimit).
  return [[d.s], [attrs.queryOffset], [key], [threshold], [keepScale], [valueLimit(d.s, keepScale)]];
}

/**
 * A program of the kernel: CALL_UNIFORMS declared, shapes as uniforms (see the module comment).
 * Run it with `callUniformValues`.
 */
export function kernelProgram(
  p: Pick<GlProgram, 'variableNames' | 'outputShape' | 'userCode' | 'packedInputs' | 'packedOutput'>,
): GlProgram {
  return { ...p, customUniforms: [...CALL_UNIFORMS], enableShapeUniforms: true };
}

/**
 * The GLSL prologue of a program's main(): the output coordinates under the given names
 * (`int b = c.x; …`), one per output dimension.
 */
export function outputCoords(names: readonly string[]): string {
  const type = names.length === 1 ? 'int' : `ivec${names.length}`;
  const lanes = ['x', 'y', 'z', 'w'];
  const unpack = names.length === 1 ? `int ${names[0]} = c;` : names.map((n, i) => `int ${n} = c.${lanes[i]};`).join('\n      ');
  return `${type} c = getOutputCoords();
      ${unpack}`;
}

/**
 * GLSL ES 3.00 copy of the shared dropout hash (src/engine/dropout_hash.ts; tested against it in the
 * browser suite): `keepFactor(b, u, i, j)` is 0 where probability (b, u, i, j) is dropped, keepScale
 * where it is kept. highp uint arithmetic wraps modulo 2^32; int -> uint keeps the bits.
 */
export const dropoutGlsl = `
    uint mix32(uint x) {
      ${MIX32_STATEMENTS}
      return x;
    }
    float keepFactor(int b, int u, int i, int j) {
      uint h = mix32(mix32(mix32(mix32(uint(dropKey) ^ uint(b)) ^ uint(u)) ^ uint(i)) ^ uint(j));
      return (h >> 8u) < uint(dropThreshold) ? 0.0 : keepScale;
    }`;

/**
 * GLSL constants of the score-reading programs: head size, group size and window (S and the query
 * offset are CALL_UNIFORMS).
 */
export function sizes(d: Dims, attrs: GroupedQueryAttentionAttrs): string {
  return `
    const int H = ${d.h};
    const int G = ${d.g};
    const int WINDOW = ${attrs.slidingWindow};`;
}

/** GLSL `keyBand(t, full)`: the keys [lo, end) that can enter row t's softmax. */
export function keyBand(attrs: GroupedQueryAttentionAttrs): string {
  const w = attrs.slidingWindow;
  return `
    ivec2 keyBand(int t, bool full) {
      int lo = 0;
      int end = S;
      if (!full) {
        int p = t + OFFSET;
        ${w > 0 ? 'lo = max(0, p - WINDOW + 1);' : ''}
        ${attrs.causal ? 'end = min(S, p + 1);' : w > 0 ? 'end = min(S, p + WINDOW);' : ''}
      }
      return ivec2(lo, end);
    }`;
}

/**
 * GLSL of the composite path's non-finite rule (../shared/mask_rule.ts): bit tests on the logits
 * (never folded away by a compiler that assumes finite floats), the row flags of the stats pass, and
 * the NaN the passes write for a NaN row.
 */
export const rowFlags = `
    bool nanOrPosInf(float x) {
      uint e = floatBitsToUint(x);
      return (e & 0x7fffffffu) > ${u32Literal(POS_INF_BITS)} || e == ${u32Literal(POS_INF_BITS)};
    }
    bool isNegInf(float x) { return floatBitsToUint(x) == ${u32Literal(NEG_INF_BITS)}; }
    float nanValue() { return uintBitsToFloat(${u32Literal(NAN_BITS)}); }
    bool isFullRow(float flag) { return flag == ${ROW_FULL}.0; }
    bool isNanRow(float flag) { return flag == ${ROW_NAN}.0; }`;

/** GLSL shared by the programs: sizes, the mask rules, the key band and the row flags. */
export function common(d: Dims, attrs: GroupedQueryAttentionAttrs, mask: TensorInfo | null): string {
  const m = (mask?.shape ?? [1, 1, 1, 1]) as number[];
  const mi = (axis: number, name: string) => (m[axis] === 1 ? '0' : name);
  const maskAt = `getMin(${mi(0, 'b')}, ${mi(1, 'u')}, ${mi(2, 't')}, ${mi(3, 'j')})`;
  const w = attrs.slidingWindow;
  return `${sizes(d, attrs)}

    bool allowedKey(int b, int u, int t, int j) {
      int p = t + OFFSET;
      bool ok = true;
      ${attrs.causal ? 'ok = ok && (j <= p);' : ''}
      ${w > 0 ? 'int dd = p - j; if (dd < 0) { dd = -dd; } ok = ok && (dd < WINDOW);' : ''}
      ${attrs.maskKind === 'bool' ? `ok = ok && (${maskAt} != 0.0);` : ''}
      return ok;
    }
    bool contributes(bool full, int b, int u, int t, int j) {
      ${rowsMayHaveNoAllowedKey(attrs) ? 'return full || allowedKey(b, u, t, j);' : 'return true;'}
    }
    // The composite path's logit for key j, masked keys included (L - 1e9 for them).
    float compositeLogit(float score, int b, int u, int t, int j) {
      ${attrs.maskKind === 'additive'
        ? `return score + ${maskAt};`
        : rowsMayHaveNoAllowedKey(attrs) ? 'if (allowedKey(b, u, t, j)) { return score; }\n      return score - 1e9;' : 'return score;'}
    }
    // Keras's logit for key j: the additive mask added in float32; in a row that walks every key
    // (no allowed key, or a wide logit spread: ../shared/mask_rule.ts) the composite's logit.
    float maskedLogit(float score, bool full, int b, int u, int t, int j) {
      ${attrs.maskKind === 'additive' ? `return score + ${maskAt};` : 'if (full) { return compositeLogit(score, b, u, t, j); }\n      return score;'}
    }${keyBand(attrs)}${rowFlags}`;
}
