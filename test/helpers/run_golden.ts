/** Runs a golden case through the layer's eager contract (Node: reads the results synchronously). */
import * as tf from '@tensorflow/tfjs-core';
import { applyGoldenCase, goldenLayer, type GoldenCase } from './golden_case.js';

/** Runs one golden case; returns [output, scores?] as flat arrays. */
export function runGoldenCase(c: GoldenCase, extraArgs: Record<string, unknown> = {}): { output: Float32Array; scores?: Float32Array } {
  const layer = goldenLayer(c, extraArgs);
  return tf.tidy(() => {
    const [out, scores] = applyGoldenCase(layer, c);
    layer.dispose();
    return {
      output: out.dataSync() as Float32Array,
      ...(scores ? { scores: scores.dataSync() as Float32Array } : {}),
    };
  });
}
