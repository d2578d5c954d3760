/**
 * The body of the shared dropout hash's `mix32` (src/engine/dropout_hash.ts) as shader statements on
 * a 32-bit unsigned variable `x`: the same text is valid WGSL and GLSL ES 3.00 (u32 / highp uint
 * arithmetic wraps modulo 2^32, as Math.imul and >>> 0 do). The WGSL and GLSL copies of the hash
 * (gqa_shader_util_webgpu.ts, gqa_shader_util_webgl.ts) both include it; the browser suite tests
 * their keep/drop decisions against the TypeScript definition.
 */
export const MIX32_STATEMENTS = [
  'x ^= x >> 16u;',
  'x *= 0x21f0aaadu;',
  'x ^= x >> 15u;',
  'x *= 0x735a2d97u;',
  'x ^= x >> 15u;',
].join('\n      ');
