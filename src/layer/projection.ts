/**
 * The four EinsumDense projections of Keras's layer, as 2-D matMuls (tfjs has no einsum gradient, and
 * its wasm backend runs only un-batched 2-D products fast).
 */
import * as tf from '@tensorflow/tfjs-core';

/** `bqm,muh->bquh` + bias: x (B,L,D), kernel (D,N,H), bias (N,H) -> (B,L,N,H). */
export function projectHeads(x: tf.Tensor3D, kernel: tf.Tensor, bias: tf.Tensor | null): tf.Tensor4D {
  const [b, l, d] = x.shape;
  const [, n, h] = kernel.shape as [number, number, number];
  let y = tf.matMul(tf.reshape(x, [b * l, d]), tf.reshape(kernel, [d, n * h])); // (B·L,D)·(D,N·H)
  if (bias != null) y = tf.add(y, tf.reshape(bias, [n * h])); // Keras adds the bias after the einsum
  return tf.reshape(y, [b, l, n, h]) as tf.Tensor4D; // (B·L,N·H) -> (B,L,N,H)
}

/** `bquh,uhm->bqm` + bias: o (B,T,U,H), kernel (U,H,Dq), bias (Dq) -> (B,T,Dq). */
export function projectOutput(o: tf.Tensor4D, kernel: tf.Tensor, bias: tf.Tensor | null): tf.Tensor3D {
  const [b, t, u, h] = o.shape;
  const dq = kernel.shape[2]!;
  let y = tf.matMul(tf.reshape(o, [b * t, u * h]), tf.reshape(kernel, [u * h, dq])); // (B·T,U·H)·(U·H,Dq)
  if (bias != null) y = tf.add(y, bias);
  return tf.reshape(y, [b, t, dq]) as tf.Tensor3D; // (B·T,Dq) -> (B,T,Dq)
}
