/**
 * The dropout keep/drop decision, one counter-based hash shared bit for bit by every path: the
 * plain-JS engine, the WebAssembly kernels, the WGSL/GLSL forward kernels and the composite
 * reference (its keep-mask tensor). Nothing of size T×S is stored anywhere: a backward pass
 * regenerates the same decisions from (seed, b, u, i, j).
 *
 * All arithmetic is on unsigned 32-bit integers (`Math.imul` and `>>> 0`):
 *   mix32(x):  x ^= x >> 16;  x *= 0x21f0aaad;  x ^= x >> 15;  x *= 0x735a2d97;  x ^= x >> 15
 *   key      = mix32(dropoutSeed)                         once per call
 *   h        = mix32(mix32(mix32(mix32(key ^ b) ^ u) ^ i) ^ j)
 *   dropped  = (h >> 8) < threshold,  threshold = floor(rate · 2^24)
 * Kept probabilities are multiplied by keepScale = fround(1 / fround(1 − rate)).
 *
 * Index letters: b batch, u query head (0..U-1), i query row within the call (0..T-1), j key (0..S-1).
 */

/**
 * The 32-bit finaliser every hash round uses.
 *
 * @example
 * ```ts
 * import { mix32 } from 'grouped-query-attention/engine';
 * console.log(mix32(0), mix32(1)); // 0 and a well-mixed u32
 * ```
 */
export function mix32(x: number): number {
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x21f0aaad) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x735a2d97) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  return x;
}

/**
 * The per-call key of the hash: `mix32(seed)` with the seed taken as a u32.
 *
 * @example
 * ```ts
 * import { dropoutKey } from 'grouped-query-attention/engine';
 * const key = dropoutKey(42);
 * ```
 */
export function dropoutKey(seed: number): number {
  return mix32(seed >>> 0);
}

/**
 * The hash value of one probability (b, u, i, j) under `key`.
 *
 * @example
 * ```ts
 * import { dropoutHash, dropoutKey } from 'grouped-query-attention/engine';
 * console.log(dropoutHash(dropoutKey(1), 0, 0, 0, 0) >>> 0);
 * ```
 */
export function dropoutHash(key: number, b: number, u: number, i: number, j: number): number {
  return mix32((mix32((mix32((mix32((key ^ b) >>> 0) ^ u) >>> 0) ^ i) >>> 0) ^ j) >>> 0);
}

/**
 * Whether probability (b, u, i, j) is dropped: the hash's top 24 bits below `threshold`.
 *
 * @example
 * ```ts
 * import { dropoutKey, dropoutThreshold, isDropped } from 'grouped-query-attention/engine';
 * const key = dropoutKey(7);
 * const t = dropoutThreshold(0.25);
 * let dropped = 0;
 * for (let j = 0; j < 1000; j++) if (isDropped(key, 0, 0, 0, j, t)) dropped++;
 * console.log(dropped); // about 250
 * ```
 */
export function isDropped(key: number, b: number, u: number, i: number, j: number, threshold: number): boolean {
  return dropoutHash(key, b, u, i, j) >>> 8 < threshold;
}

/**
 * `floor(rate · 2^24)` as a u32: the drop threshold on the hash's top 24 bits.
 *
 * @example
 * ```ts
 * import { dropoutThreshold } from 'grouped-query-attention/engine';
 * console.log(dropoutThreshold(0.5)); // 8388608
 * ```
 */
export function dropoutThreshold(rate: number): number {
  return Math.floor(rate * 16777216) >>> 0;
}

/**
 * The factor kept probabilities are multiplied by: `fround(1 / fround(1 − rate))`.
 *
 * @example
 * ```ts
 * import { dropoutKeepScale } from 'grouped-query-attention/engine';
 * console.log(dropoutKeepScale(0.5)); // 2
 * ```
 */
export function dropoutKeepScale(rate: number): number {
  return Math.fround(1 / Math.fround(1 - rate));
}

/**
 * A fresh random u32 seed, for calls without a seed (each such call draws its own pattern).
 *
 * @example
 * ```ts
 * import { randomDropoutSeed } from 'grouped-query-attention/engine';
 * const seed = randomDropoutSeed(); // 0 .. 2^32 - 1
 * ```
 */
export function randomDropoutSeed(): number {
  return Math.floor(Math.random() * 4294967296) >>> 0;
}

/**
 * The keep factors of one (b, u, i) row over keys 0..S-1 (0 where dropped, keepScale where kept).
 *
 * @example
 * ```ts
 * import { dropoutKey, dropoutRowFactors } from 'grouped-query-attention/engine';
 * const row = new Float32Array(8);
 * dropoutRowFactors(row, dropoutKey(3), 0.5, 0, 0, 0);
 * ```
 */
export function dropoutRowFactors(out: Float32Array, key: number, rate: number, b: number, u: number, i: number): void {
  const threshold = dropoutThreshold(rate);
  const keep = dropoutKeepScale(rate);
  const base = mix32((mix32((mix32((key ^ b) >>> 0) ^ u) >>> 0) ^ i) >>> 0);
  for (let j = 0; j < out.length; j++) out[j] = mix32((base ^ j) >>> 0) >>> 8 < threshold ? 0 : keep;
}
