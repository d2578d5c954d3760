/** The tfjs backends every test suite runs on in Node. */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import '../../src/index.js';

export const BACKENDS = ['cpu', 'wasm'] as const;
export type BackendName = (typeof BACKENDS)[number];

/** Switches to `name` and fails loudly if tfjs silently chose another backend. */
export async function useBackend(name: BackendName): Promise<void> {
  const ok = await tf.setBackend(name);
  await tf.ready();
  if (!ok || tf.getBackend() !== name) throw new Error(`backend ${name} did not initialise (got ${tf.getBackend()})`);
}
