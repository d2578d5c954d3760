/**
 * Deterministic random data for the property tests: fast-check chooses shapes, options and a seed;
 * the numbers come from a small seeded PRNG (much faster than fast-check arrays for 80-wide heads).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Mask64 } from '../reference/float64.js';

/** mulberry32: a 32-bit seeded generator, uniform in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `size` float32-exact values uniform in [-bound, bound]. */
export function uniform(next: () => number, size: number, bound: number): Float32Array {
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = (2 * next() - 1) * bound;
  return out;
}

/** A random bool mask with P(true) = pTrue, as data for both tfjs and the reference. */
export function boolMask(next: () => number, shape: number[], pTrue: number): { tensor: () => tf.Tensor; ref: Mask64 } {
  const size = shape.reduce((a, b) => a * b, 1);
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = next() < pTrue ? 1 : 0;
  return { tensor: () => tf.tensor(data, shape, 'bool'), ref: { shape, data } };
}

export const MASK_SHAPES = ['none', 'BTS', '1TS', 'TS', 'B1S', 'BUTS'] as const;
export type MaskShapeKind = (typeof MASK_SHAPES)[number];

export function attentionMaskShape(kind: MaskShapeKind, b: number, u: number, t: number, s: number): number[] | null {
  switch (kind) {
    case 'none':
      return null;
    case 'BTS':
      return [b, t, s];
    case '1TS':
      return [1, t, s];
    case 'TS':
      return [t, s];
    case 'B1S':
      return [b, 1, s];
    case 'BUTS':
      return [b, u, t, s];
  }
}
