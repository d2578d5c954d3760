/**
 * The four EinsumDense projections of Keras's layer, as 2-D matMuls (tfjs has no einsum gradient, and
 * its wasm backend runs only un-batched, un-transposed 2-D products fast: `denseProduct` keeps the
 * gradient's products on that path too, as one taped op).
 */
import * as tf from '@tensorflow/tfjs-core';
import { denseProduct } from './dense_product.js';

/** `bqm,muh->bquh` + bias: x (B,L,D), kernel (D,N,H), bias (N,H) -> (B,L,N,H). */
export function projectHeads(x: tf.Tensor3D, kernel: tf.Tensor, bias: tf.Tensor | null): tf.Tensor4D {
  return denseProduct(x, kernel, bias, 1) as tf.Tensor4D; // D contracts: (B·L,D)·(D,N·H) inside
}

/** `bquh,uhm->bqm` + bias: o (B,T,U,H), kernel (U,H,Dq), bias (Dq) -> (B,T,Dq). */
export function projectOutput(o: tf.Tensor4D, kernel: tf.Tensor, bias: tf.Tensor | null): tf.Tensor3D {
  return denseProduct(o, kernel, bias, 2) as tf.Tensor3D; // U and H contract: (B·T,U·H)·(U·H,Dq) inside
}

/** Reads a weight by its Keras name ('query/kernel', ...), or null when the layer has none (no bias). */
export type WeightReader = (name: string) => tf.Tensor | null;

function asFloat(x: tf.Tensor): tf.Tensor3D {
  return (x.dtype === 'float32' ? x : tf.cast(x, 'float32')) as tf.Tensor3D;
}

function kernel(weights: WeightReader, name: string): tf.Tensor {
  const w = weights(name);
  if (w == null) throw new Error(`GroupedQueryAttention: weight ${name} is missing (layer not built)`);
  return w;
}

/**
 * The query, key and value projections of one call: query (B,T,Dq) -> q (B,T,U,H); key (B,S,Dk),
 * defaulting to value, -> k (B,S,V,H); value (B,S,Dv) -> v (B,S,V,H). Non-float inputs are cast.
 */
export function projectQkv(
  weights: WeightReader,
  query: tf.Tensor,
  value: tf.Tensor,
  key: tf.Tensor | null,
): { q: tf.Tensor4D; k: tf.Tensor4D; v: tf.Tensor4D } {
  return {
    q: projectHeads(asFloat(query), kernel(weights, 'query/kernel'), weights('query/bias')),
    k: projectHeads(asFloat(key ?? value), kernel(weights, 'key/kernel'), weights('key/bias')),
    v: projectHeads(asFloat(value), kernel(weights, 'value/kernel'), weights('value/bias')),
  };
}

/**
 * Keras 3.14's gate: `sigmoid(query·Wg + bg)`, (B,T,U,H), multiplies the attention output o
 * (B,T,U,H). Returns the gated output and the gate (null, with o unchanged, without `useGate`).
 */
export function applyGate(
  weights: WeightReader,
  useGate: boolean,
  query: tf.Tensor,
  o: tf.Tensor4D,
): { gated: tf.Tensor4D; gate: tf.Tensor4D | null } {
  if (!useGate) return { gated: o, gate: null };
  const gate = tf.sigmoid(projectHeads(asFloat(query), kernel(weights, 'gate/kernel'), weights('gate/bias'))) as tf.Tensor4D;
  return { gated: tf.mul(o, gate) as tf.Tensor4D, gate };
}

/** The output projection: o (B,T,U,H) -> (B,T,Dq). */
export function projectAttentionOutput(weights: WeightReader, o: tf.Tensor4D): tf.Tensor3D {
  return projectOutput(o, kernel(weights, 'attention_output/kernel'), weights('attention_output/bias'));
}
