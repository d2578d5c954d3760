/**
 * Pieces shared by the GLSL programs of the fused GroupedQueryAttention kernel (tfjs-backend-webgl):
 * the program type, the call's dimensions, and `common`, the GLSL every score-computing program
 * includes: compile-time sizes, the Keras 3.6 mask rules and the causal/window key band.
 *
 * Keras 3.6 rules (as in the composite path): Qs = fround(Q·scale); bool masks, causal and window
 * give "allowed" keys; a row with at least one allowed key is a softmax over its allowed keys
 * (the others contribute exactly 0); a row with none gives every key j < S the logit
 * fround(L − 1e9) and a plain softmax (uniform for |L| ≤ 32, a 64-spaced grid otherwise);
 * additive masks give fround(L + a) and a plain softmax.
 *
 * Shapes, the scale, the offset and the window are compiled into the shaders (constant loop bounds
 * work on WebGL 1 too); each new shape compiles once.
 */
import { rowsMayHaveNoAllowedKey } from '../../../engine/mask-rule.js';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { GroupedQueryAttentionAttrs } from '../../kernel_names.js';

/** The part of tfjs-backend-webgl's GPGPUProgram this file uses. */
export interface GlProgram {
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


/** GLSL constants every program uses: the sizes, the query offset, the window and the scale. */
export function sizes(d: Dims, attrs: GroupedQueryAttentionAttrs): string {
  return `
    const int S = ${d.s};
    const int H = ${d.h};
    const int G = ${d.g};
    const int OFFSET = ${attrs.queryOffset};
    const int WINDOW = ${attrs.slidingWindow};
    const float SCALE = ${glslFloat(attrs.scale)};`;
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

/** GLSL shared by the programs: sizes, the mask rules and the key band. */
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
    float maskedLogit(float score, bool full, int b, int u, int t, int j) {
      ${attrs.maskKind === 'additive' ? `return score + ${maskAt};` : 'if (full) { return score - 1e9; }\n      return score;'}
    }${keyBand(attrs)}`;
}
