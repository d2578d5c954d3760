/**
 * Fused kernel vs composite path on the active backend: mean wall time per call (each call awaited
 * with `data()`), after warm-up calls that compile the shaders. Used by the test page (one small
 * shape) and by the benchmark page (bench.ts, several shapes, for machines with a real GPU).
 */
import * as tf from '@tensorflow/tfjs-core';
import { groupedQueryAttention, groupedQueryAttentionReference } from '../../../src/index.js';

export interface TimingShape {
  b: number;
  t: number;
  s: number;
  u: number;
  v: number;
  h: number;
  causal?: boolean;
  queryOffset?: number;
}

export interface Timing {
  fusedMs: number;
  compositeMs: number;
  /** compositeMs / fusedMs: above 1 means the fused kernel is faster. */
  ratio: number;
}

export async function timeCompare(shape: TimingShape, reps: number, warmup = 2): Promise<Timing> {
  const { b, t, s, u, v, h } = shape;
  const q = tf.randomNormal([b, t, u, h]);
  const k = tf.randomNormal([b, s, v, h]);
  const val = tf.randomNormal([b, s, v, h]);
  const options = { causal: shape.causal ?? false, queryOffset: shape.queryOffset ?? 0 };
  const once = async (fn: typeof groupedQueryAttention) => {
    const y = fn(q, k, val, options);
    await y.data();
    y.dispose();
  };
  const time = async (fn: typeof groupedQueryAttention) => {
    for (let i = 0; i < warmup; i++) await once(fn);
    const start = performance.now();
    for (let i = 0; i < reps; i++) await once(fn);
    return (performance.now() - start) / reps;
  };
  const fusedMs = await time(groupedQueryAttention);
  const compositeMs = await time(groupedQueryAttentionReference);
  tf.dispose([q, k, val]);
  return { fusedMs, compositeMs, ratio: compositeMs / fusedMs };
}
