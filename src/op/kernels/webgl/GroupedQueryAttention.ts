/**
 * The fused GroupedQueryAttention kernel for tfjs-backend-webgl: three GLSL programs run through
 * `backend.compileAndRun`.
 *
 * WebGL has no workgroup memory and one output value per fragment, so a single flash pass is not
 * possible without recomputing the row's dot products once per output element (H times the work).
 * The kernel therefore keeps one (B,U,T,S) buffer, the softmax weights, and fuses everything else:
 *
 *   1. stats  (B,U,T,2|3): per query row, fused Q·K scores + mask rules + softmax statistics:
 *      column 0 the row max m, column 1 the "fully masked" flag, and (returnScores only) column 2
 *      the row sum l (online softmax). Query head u reads key head floor(u/G) in place: no repeats.
 *   2. weights (B,U,T,S): fused scores + softmax: e = exp(x − m) for keys entering the softmax, 0
 *      for the others; with returnScores the normalised p = exp(x − m) / l, the returned tensor.
 *   3. output (B,T,U,H): fused P·V with normalisation: Σ_j e_j·V[b,j,floor(u/G),h] / Σ_j e_j (or
 *      Σ_j p_j·V without the division when p is already normalised), again without K/V repeats.
 *   Passes 1 and 3 skip keys outside the row's causal/window band (unless the row is fully masked).
 *
 * Keras 3.6 rules (as in the composite path): Qs = fround(Q·scale); bool masks, causal and window
 * give "allowed" keys; a row with at least one allowed key is a softmax over its allowed keys
 * (the others contribute exactly 0); a row with none gives every key j < S the logit
 * fround(L − 1e9) and a plain softmax (uniform for |L| ≤ 32, a 64-spaced grid otherwise);
 * additive masks give fround(L + a) and a plain softmax.
 *
 * Compared with the composite path (repeat K and V, transpose, matMul, add, softmax = max, sub,
 * exp, sum, div, matMul, transpose), this allocates one (B,U,T,S) buffer instead of several and
 * runs 3 programs instead of about 12. Shapes, the scale, the offset and the window are compiled
 * into the shaders (constant loop bounds work on WebGL 1 too); each new shape compiles once.
 *
 * Device limit: the (B,U,T,S) weights must fit one float texture (WEBGL_MAX_TEXTURE_SIZE²
 * elements); otherwise the call runs the composite path and `console.warn`s once.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { GroupedQueryAttention, type GroupedQueryAttentionAttrs } from '../../kernel_names.js';
import { compositeKernelOutputs, warnOnce } from '../webgpu/composite_fallback.js';

/** The part of tfjs-backend-webgl's GPGPUProgram this file uses. */
interface GlProgram {
  variableNames: string[];
  outputShape: number[];
  userCode: string;
}

interface WebGLBackendLike {
  compileAndRun(program: GlProgram, inputs: TensorInfo[], dtype?: 'float32'): TensorInfo;
  disposeIntermediateTensorInfo(info: TensorInfo): void;
}

interface Dims {
  b: number;
  t: number;
  s: number;
  u: number;
  v: number;
  h: number;
  g: number;
}

/** A GLSL float literal denoting exactly the float32 value x. */
function glslFloat(x: number): string {
  const s = String(x);
  return /[.eE]/.test(s) ? s : `${s}.0`;
}

function hasSpecialRows(attrs: GroupedQueryAttentionAttrs): boolean {
  return attrs.maskKind !== 'additive' && (attrs.maskKind === 'bool' || attrs.causal || attrs.slidingWindow > 0);
}

/** GLSL shared by the programs: sizes, the dot product, the mask rules and the key band. */
function common(d: Dims, attrs: GroupedQueryAttentionAttrs, mask: TensorInfo | null): string {
  const m = (mask?.shape ?? [1, 1, 1, 1]) as number[];
  const mi = (axis: number, name: string) => (m[axis] === 1 ? '0' : name);
  const maskAt = `getMin(${mi(0, 'b')}, ${mi(1, 'u')}, ${mi(2, 't')}, ${mi(3, 'j')})`;
  const w = attrs.slidingWindow;
  return `
    const int S = ${d.s};
    const int H = ${d.h};
    const int G = ${d.g};
    const int OFFSET = ${attrs.queryOffset};
    const int WINDOW = ${w};
    const float SCALE = ${glslFloat(attrs.scale)};

    float dotQK(int b, int t, int u, int g, int j) {
      float acc = 0.0;
      for (int h = 0; h < H; h++) {
        acc += (getQin(b, t, u, h) * SCALE) * getKin(b, j, g, h);
      }
      return acc;
    }
    bool allowedKey(int b, int u, int t, int j) {
      int p = t + OFFSET;
      bool ok = true;
      ${attrs.causal ? 'ok = ok && (j <= p);' : ''}
      ${w > 0 ? 'int dd = p - j; if (dd < 0) { dd = -dd; } ok = ok && (dd < WINDOW);' : ''}
      ${attrs.maskKind === 'bool' ? `ok = ok && (${maskAt} != 0.0);` : ''}
      return ok;
    }
    bool contributes(bool full, int b, int u, int t, int j) {
      ${hasSpecialRows(attrs) ? 'return full || allowedKey(b, u, t, j);' : 'return true;'}
    }
    float maskedLogit(float score, bool full, int b, int u, int t, int j) {
      ${attrs.maskKind === 'additive' ? `return score + ${maskAt};` : 'if (full) { return score - 1e9; }\n      return score;'}
    }
    // Keys [lo, end) that can enter row t's softmax.
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

function statsProgram(d: Dims, attrs: GroupedQueryAttentionAttrs, names: string[], mask: TensorInfo | null): GlProgram {
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
      int g = u / G;
      bool full = false;
      ${hasSpecialRows(attrs) ? `
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
        float x = maskedLogit(dotQK(b, t, u, g, j), full, b, u, t, j);
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

function weightsProgram(d: Dims, attrs: GroupedQueryAttentionAttrs, names: string[], mask: TensorInfo | null): GlProgram {
  return {
    variableNames: names,
    outputShape: [d.b, d.u, d.t, d.s],
    userCode: `
    ${common(d, attrs, mask)}
    void main() {
      ivec4 c = getOutputCoords();
      int b = c.x;
      int u = c.y;
      int t = c.z;
      int j = c.w;
      bool full = getStats(b, u, t, 1) > 0.5;
      float p = 0.0;
      if (contributes(full, b, u, t, j)) {
        float x = maskedLogit(dotQK(b, t, u, u / G, j), full, b, u, t, j);
        p = exp(x - getStats(b, u, t, 0))${attrs.returnScores ? ' / getStats(b, u, t, 2)' : ''};
      }
      setOutput(p);
    }`,
  };
}

function outputProgram(d: Dims, attrs: GroupedQueryAttentionAttrs): GlProgram {
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

const groupedQueryAttentionWebGL: KernelFunc = ({ inputs, backend, attrs }) => {
  const gl = backend as unknown as WebGLBackendLike;
  const a = attrs as unknown as GroupedQueryAttentionAttrs;
  const query = inputs['query'] as TensorInfo;
  const key = inputs['key'] as TensorInfo;
  const value = inputs['value'] as TensorInfo;
  const mask = inputs['mask'] as TensorInfo | undefined;
  const [b, t, u, h] = query.shape as [number, number, number, number];
  const [, s, v] = key.shape as [number, number, number, number];
  const d: Dims = { b, t, s, u, v, h, g: u / v };

  const maxTexture = tf.env().getNumber('WEBGL_MAX_TEXTURE_SIZE');
  if (b * u * t * s > maxTexture * maxTexture) {
    warnOnce(
      `grouped-query-attention: the fused webgl kernel cannot run this call (the (B,U,T,S) weights ` +
        `exceed one ${maxTexture}x${maxTexture} texture); running the composite path instead.`,
    );
    return compositeKernelOutputs({ query, key, value, mask }, a, backend);
  }
  const withMask = a.maskKind !== 'none' && mask != null;
  const m = withMask ? mask : null;
  const stats = gl.compileAndRun(
    statsProgram(d, a, withMask ? ['Qin', 'Kin', 'Min'] : ['Qin', 'Kin'], m),
    withMask ? [query, key, mask] : [query, key],
    'float32',
  );
  const weights = gl.compileAndRun(
    weightsProgram(d, a, withMask ? ['Qin', 'Kin', 'Stats', 'Min'] : ['Qin', 'Kin', 'Stats'], m),
    withMask ? [query, key, stats, mask] : [query, key, stats],
    'float32',
  );
  const output = gl.compileAndRun(outputProgram(d, a), [weights, value, stats], 'float32');
  gl.disposeIntermediateTensorInfo(stats);
  if (a.returnScores) return [output, weights];
  gl.disposeIntermediateTensorInfo(weights);
  return [output];
};

export const groupedQueryAttentionWebGLConfig: KernelConfig = {
  kernelName: GroupedQueryAttention,
  backendName: 'webgl',
  kernelFunc: groupedQueryAttentionWebGL,
};
