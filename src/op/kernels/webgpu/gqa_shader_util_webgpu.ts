/**
 * Pieces shared by the WGSL programs of the fused GroupedQueryAttention kernel
 * (flash_attention_webgpu.ts, attention_probs_webgpu.ts): the program and uniform types, the call's
 * dimensions, the allowed-key / logit rules in WGSL, and the uniform block both programs declare.
 *
 * Both programs take the same uniform values (one `uniformValues` array per call), so the stats pass
 * and the probabilities pass of `returnScores` reuse the flash pass's uniforms unchanged.
 */
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { GroupedQueryAttentionAttrs } from '../../kernel_names.js';
import { MIX32_STATEMENTS, dropoutUniformValues, hasDropout } from '../shared/dropout_hash_shader.js';
import type { FlashConfig } from './flash_attention_webgpu.js';
import {
  NAN_BITS, NEG_INF_BITS, POS_INF_BITS, SAFE_MAGNITUDE_BITS, rowsMayHaveNoAllowedKey, u32Literal, valueLimit,
} from '../shared/mask_rule.js';

/** The part of WebGPUProgram (tfjs-backend-webgpu/dist/webgpu_program.d.ts) this file uses. */
export interface GpuProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  variableNames: string[];
  uniforms?: string;
  workgroupSize: [number, number, number];
  size?: boolean;
  getUserCode(): string;
}

export type Uniform = { type: 'int32' | 'float32'; data: number[] };

/** Sizes of one call: query (B,T,U,H), key/value (B,S,V,H), group size G = U / V. */
import type { Dims } from '../kernel_call.js';
export type { Dims };

/**
 * The WGSL mask snippet, shared by both programs: the allowed-key and logit rules of Keras 3.6, and
 * the non-finite rule of the composite path (../shared/mask_rule.ts).
 */
export function maskSnippet(attrs: GroupedQueryAttentionAttrs): string {
  const positional = [
    attrs.causal ? 'ok = ok && (j <= p);' : '',
    attrs.slidingWindow > 0 ? 'ok = ok && (abs(p - j) < uniforms.window);' : '',
  ].join('\n      ');
  const maskIndex = 'b * uniforms.ms0 + u * uniforms.ms1 + t * uniforms.ms2 + j * uniforms.ms3';
  const special = rowsMayHaveNoAllowedKey(attrs);
  return `
    // Whether key j is allowed for query row (b, u, t) under the bool mask and causal/window rules.
    fn allowedKey(b : i32, u : i32, t : i32, j : i32) -> bool {
      let p = t + uniforms.offset;
      var ok = true;
      ${positional}
      ${attrs.maskKind === 'bool' ? `ok = ok && (Min[${maskIndex}] != 0);` : ''}
      return ok;
    }
    // Keras's logit for key j: the additive mask added in float32; in a row that walks every key
    // (no allowed key, or a wide logit spread: ../shared/mask_rule.ts) the composite's logit, L - 1e9
    // at the disallowed keys.
    fn maskedLogit(score : f32, full : bool, b : i32, u : i32, t : i32, j : i32) -> f32 {
      ${attrs.maskKind === 'additive' ? `return score + Min[${maskIndex}];` : 'if (full) { return compositeLogit(score, b, u, t, j); }\n      return score;'}
    }
    // (maskedLogit, 1) when key j enters row (b, u, t)'s softmax, (0, 0) otherwise, with one mask
    // evaluation: the flash program's inner loop.
    fn keyLogit(score : f32, full : bool, b : i32, u : i32, t : i32, j : i32) -> vec2<f32> {
      ${attrs.maskKind === 'additive' ? `return vec2<f32>(score + Min[${maskIndex}], 1.0);` : special ? `let ok = allowedKey(b, u, t, j);
      if (!full && !ok) { return vec2<f32>(0.0, 0.0); }
      return vec2<f32>(select(score - 1e9, score, ok), 1.0);` : 'return vec2<f32>(score, 1.0);'}
    }
    // Whether key j enters row (b, u, t)'s softmax.
    fn contributes(full : bool, b : i32, u : i32, t : i32, j : i32) -> bool {
      ${special ? 'return full || allowedKey(b, u, t, j);' : 'return true;'}
    }
    // The composite path's logit for key j, masked keys included (L - 1e9 for them).
    fn compositeLogit(score : f32, b : i32, u : i32, t : i32, j : i32) -> f32 {
      ${attrs.maskKind === 'additive'
        ? `return score + Min[${maskIndex}];`
        : special ? 'if (allowedKey(b, u, t, j)) { return score; }\n      return score - 1e9;' : 'return score;'}
    }
    // Bit tests (never folded away by a compiler that assumes finite floats).
    fn nanOrPosInf(x : f32) -> bool {
      let e = bitcast<u32>(x);
      return (e & 0x7fffffffu) > ${u32Literal(POS_INF_BITS)} || e == ${u32Literal(POS_INF_BITS)};
    }
    fn isNegInf(x : f32) -> bool { return bitcast<u32>(x) == ${u32Literal(NEG_INF_BITS)}; }
    // |x| >= SAFE_MAGNITUDE or not finite: logits of the block may be non-finite.
    fn unsafeValue(x : f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) >= ${u32Literal(SAFE_MAGNITUDE_BITS)}; }
    // NaN or ±Inf (all exponent bits set): a value the composite's P·V turns into NaN even at weight 0.
    // |v| ≥ vLimit (±Inf included, NaN not): the group's values are summed scaled (../shared/mask_rule.ts).
    fn hugeValue(x : f32) -> bool { return abs(x) >= uniforms.vLimit; }
    fn nonFinite(x : f32) -> bool { return (bitcast<u32>(x) & ${u32Literal(POS_INF_BITS)}) == ${u32Literal(POS_INF_BITS)}; }
    // From a uniform: WGSL refuses a NaN constant expression.
    fn nanValue() -> f32 { return bitcast<f32>(uniforms.nanBits); }`;
}

/** A WGSL f32 literal denoting exactly the float32 value x (x must be a float32 value). */
export function wgslFloat(x: number): string {
  const s = String(x);
  return /[.eE]/.test(s) ? s : `${s}.0`;
}

/** Keys per chunk of the flash-decoding split (a multiple of every tile size KC). */
export const SPLIT_CHUNK = 64;

/** Chunks of the flash-decoding split for S keys. */
export function splitCount(s: number): number {
  return Math.max(1, Math.ceil(s / SPLIT_CHUNK));
}

export const UNIFORMS =
  'T : i32, S : i32, U : i32, V : i32, G : i32, nGc : i32, nTb : i32, numWG : i32, offset : i32, window : i32, ' +
  'scale : f32, ms0 : i32, ms1 : i32, ms2 : i32, ms3 : i32, H : i32, nKc : i32, nAcc : i32, nanBits : i32, ' +
  'dropKey : i32, dropThreshold : i32, keepScale : f32, kRows : i32, nSplit : i32, vLimit : f32,';

/**
 * The values of UNIFORMS for one call (cfg null: the flash program is not run). `kRows` is the row
 * stride of the key/value buffers per batch row: S for the key/value inputs (B,S,V,H), the capacity C
 * for a KV cache's storage (B,C,V,H) read in place (attrs.cache).
 */
export function uniformValues(d: Dims, cfg: FlashConfig | null, attrs: GroupedQueryAttentionAttrs, mask: TensorInfo | null): Uniform[] {
  const kRows = attrs.cache != null ? attrs.cache.storage.capacity : d.s;
  const nGc = cfg ? Math.ceil(d.g / cfg.gc) : 1;
  const nTb = cfg ? Math.ceil(d.t / cfg.tq) : 1;
  // Broadcast strides of the rank-4 mask: 0 along its size-1 axes.
  let ms = [0, 0, 0, 0];
  if (mask != null) {
    const [m0, m1, m2, m3] = mask.shape as [number, number, number, number];
    const strides = [m1 * m2 * m3, m2 * m3, m3, 1];
    ms = [m0, m1, m2, m3].map((n, i) => (n === 1 ? 0 : strides[i]!));
  }
  const i = (x: number): Uniform => ({ type: 'int32', data: [x] });
  const [dropKey, dropThreshold, keepScale] = dropoutUniformValues(attrs);
  return [
    i(d.t), i(d.s), i(d.u), i(d.v), i(d.g), i(nGc), i(nTb), i(d.b * d.v * nGc * nTb),
    i(attrs.queryOffset), i(attrs.slidingWindow),
    { type: 'float32', data: [attrs.scale] },
    i(ms[0]!), i(ms[1]!), i(ms[2]!), i(ms[3]!),
    // Loop bounds as uniforms, not constants: keeps shader compilers from unrolling the loops.
    i(d.h), i(cfg?.kc ?? 1), i(cfg ? Math.ceil((cfg.rows * d.h) / cfg.wg) : 1),
    i(NAN_BITS),
    // The dropout hash's per-call key and threshold are u32 bit patterns carried in i32 uniforms.
    i(dropKey), i(dropThreshold), { type: 'float32', data: [keepScale] },
    i(kRows),
    // Key chunks of flash-decoding: a uniform, so that a decode step at a new length compiles nothing.
    i(splitCount(d.s)),
    // Values at least this large may overflow the unnormalised accumulators (../shared/mask_rule.ts).
    { type: 'float32', data: [valueLimit(d.s, keepScale)] },
  ];
}

/**
 * WGSL `let`s of the coordinates of a flat output index (row-major, last dimension fastest): `dims`
 * lists [name, extent] from the outermost dimension in, each extent a WGSL expression (the outermost
 * one is not needed).
 */
export function flatCoords(index: string, dims: ReadonlyArray<readonly [string, string]>): string {
  const lines: string[] = [];
  let stride = '';
  for (let i = dims.length - 1; i >= 0; i--) {
    const [name, extent] = dims[i]!;
    const quotient = stride === '' ? index : `(${index} / (${stride}))`;
    lines.push(i === 0 ? `let ${name} = ${quotient};` : `let ${name} = ${quotient} % ${extent};`);
    stride = stride === '' ? extent : `${stride} * ${extent}`;
  }
  return lines.join('\n      ');
}

/** The part of a shader key that depends on the mask rules and on dropout being on. */
export function attrsKey(attrs: GroupedQueryAttentionAttrs): string {
  return `${attrs.maskKind}_${attrs.causal ? 'c' : ''}${attrs.slidingWindow > 0 ? 'w' : ''}${hasDropout(attrs) ? 'd' : ''}`;
}

/**
 * WGSL copy of the shared dropout hash (src/engine/dropout_hash.ts; tested against it in the browser
 * suite): `keepFactor(b, u, i, j)` is 0 where probability (b, u, i, j) is dropped, keepScale where
 * it is kept. u32 arithmetic wraps modulo 2^32, as Math.imul and >>> 0 do.
 */
export const dropoutSnippet = `
    fn mix32(x0 : u32) -> u32 {
      var x = x0;
      ${MIX32_STATEMENTS}
      return x;
    }
    fn keepFactor(b : i32, u : i32, i : i32, j : i32) -> f32 {
      let key = bitcast<u32>(uniforms.dropKey);
      let h = mix32(mix32(mix32(mix32(key ^ u32(b)) ^ u32(u)) ^ u32(i)) ^ u32(j));
      if ((h >> 8u) < bitcast<u32>(uniforms.dropThreshold)) { return 0.0; }
      return uniforms.keepScale;
    }`;
