/**
 * Trained weights kept in this browser (localStorage), one entry per task, n and seed. Reads are
 * asynchronous: the webgpu backend cannot read tensors synchronously.
 */
import * as tf from '@tensorflow/tfjs-core';

export const storageKey = ({ task, n, seed }) => `gqa-demo:${task}:${n}:${seed}`;

/** Every weight of a Decoder as plain arrays, in its `layers` order (as Decoder.getWeights). */
export async function readWeights(model) {
  return Promise.all(model.layers.map((layer) =>
    Promise.all(layer.getWeights().map(async (w) => ({ shape: w.shape, data: Array.from(await w.data()) })))));
}

/** Sets a Decoder's weights from `readWeights`' arrays. */
export function writeWeights(model, weights) {
  model.layers.forEach((layer, i) => {
    const values = weights[i].map((w) => tf.tensor(w.data, w.shape));
    layer.setWeights(values);
    tf.dispose(values);
  });
}

/** Saves; returns false when storage is full or disabled. */
export async function saveWeights(spec, model) {
  try {
    localStorage.setItem(storageKey(spec), JSON.stringify(await readWeights(model)));
    return true;
  } catch {
    return false;
  }
}

/** The saved weights for these settings, or null. */
export function savedWeights(spec) {
  try {
    const text = localStorage.getItem(storageKey(spec));
    return text == null ? null : JSON.parse(text);
  } catch {
    return null;
  }
}
