/** A failed call observed from outside: its error, the kernels that ran before it, tensors left behind. */
import * as tf from '@tensorflow/tfjs-core';

export interface Failure {
  /** What was thrown (null when nothing was). */
  error: unknown;
  /** Names of the tfjs kernels that ran before the error (work done). */
  kernels: string[];
  /** Tensors alive after the call minus before it. */
  leaked: number;
}

/** Runs `bad` under tf.profile; a returned tensor (a call that did not throw) is disposed. */
export async function failure(bad: () => unknown): Promise<Failure> {
  let error: unknown = null;
  const before = tf.memory().numTensors;
  const info = await tf.profile(() => {
    try {
      tf.dispose(bad() as tf.Tensor);
    } catch (e) {
      error = e;
    }
    return [] as tf.Tensor[];
  });
  return { error, kernels: info.kernels.map((k) => k.name), leaked: tf.memory().numTensors - before };
}

/** {@link failure}, asserting that it threw an Error (returned typed). */
export async function thrown(bad: () => unknown): Promise<Failure & { error: Error }> {
  const f = await failure(bad);
  if (!(f.error instanceof Error)) throw new Error(`expected an Error to be thrown; got ${String(f.error)}`);
  return f as Failure & { error: Error };
}
