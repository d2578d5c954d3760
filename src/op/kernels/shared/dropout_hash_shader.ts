/**
 * What the WGSL and GLSL kernels share of the dropout hash (src/engine/dropout_hash.ts): the body of
 * `mix32`, whether a call applies dropout, and its per-call uniform values.
 */
import { dropoutKeepScale, dropoutKey, dropoutThreshold } from '../../../engine/dropout_hash.js';
import type { GroupedQueryAttentionAttrs } from '../../kernel_names.js';

/**
 * The body of `mix32` as shader statements on a 32-bit unsigned variable `x`: the same text is valid
 * WGSL and GLSL ES 3.00 (u32 / highp uint arithmetic wraps modulo 2^32, as Math.imul and >>> 0 do).
 * The WGSL and GLSL copies of the hash (gqa_shader_util_webgpu.ts, gqa_shader_util_webgl.ts) both
 * include it; the browser suite tests their keep/drop decisions against the TypeScript definition.
 */
export const MIX32_STATEMENTS = [
  'x ^= x >> 16u;',
  'x *= 0x21f0aaadu;',
  'x ^= x >> 15u;',
  'x *= 0x735a2d97u;',
  'x ^= x >> 15u;',
].join('\n      ');

/** Whether the call applies dropout (the op sets dropoutRate only in training). */
export function hasDropout(attrs: GroupedQueryAttentionAttrs): boolean {
  return (attrs.dropoutRate ?? 0) > 0;
}

/**
 * The hash's per-call values for the shaders' uniforms: [key, threshold, keepScale], the key and
 * threshold as u32 bit patterns in int32 (shader code reinterprets them as unsigned); [0, 0, 1]
 * without dropout.
 */
export function dropoutUniformValues(attrs: GroupedQueryAttentionAttrs): [number, number, number] {
  if (!hasDropout(attrs)) return [0, 0, 1];
  return [dropoutKey(attrs.dropoutSeed) | 0, dropoutThreshold(attrs.dropoutRate) | 0, dropoutKeepScale(attrs.dropoutRate)];
}
