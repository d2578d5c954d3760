/** Runs a golden case through the layer's eager contract. */
import * as tf from '@tensorflow/tfjs-core';
import { GroupedQueryAttention, type GroupedQueryAttentionArgs } from '../../src/index.js';
import { layerArgs, toTensor, type GoldenCase } from './golden.js';

const MASK_ARGS: Record<string, string> = {
  query_mask: 'queryMask',
  value_mask: 'valueMask',
  key_mask: 'keyMask',
  attention_mask: 'attentionMask',
};

/** Runs one golden case; returns [output, scores?] as flat arrays. */
export function runGoldenCase(c: GoldenCase, extraArgs: Record<string, unknown> = {}): { output: Float32Array; scores?: Float32Array } {
  const layer = new GroupedQueryAttention({ ...(layerArgs(c.init_kwargs) as unknown as GroupedQueryAttentionArgs), ...extraArgs });
  return tf.tidy(() => {
    const query = toTensor(c.inputs['query']!);
    const value = toTensor(c.inputs['value']!);
    const key = c.inputs['key'] ? toTensor(c.inputs['key']) : undefined;
    layer.build([query.shape, value.shape, ...(key ? [key.shape] : [])]);
    layer.setWeights(c.weights.map((w) => tf.tensor(w.data, w.shape, 'float32')));
    const masks: Record<string, tf.Tensor> = {};
    for (const [name, t] of Object.entries(c.masks ?? {})) masks[MASK_ARGS[name]!] = toTensor(t);
    const result = layer.apply(query, {
      value,
      ...(key ? { key } : {}),
      ...masks,
      returnAttentionScores: c.call_kwargs.return_attention_scores,
      useCausalMask: c.call_kwargs.use_causal_mask,
      ...(c.call_kwargs.training != null ? { training: c.call_kwargs.training } : {}),
    }) as tf.Tensor | tf.Tensor[];
    const [out, scores] = Array.isArray(result) ? result : [result];
    layer.dispose();
    return {
      output: out!.dataSync() as Float32Array,
      ...(scores ? { scores: scores.dataSync() as Float32Array } : {}),
    };
  });
}

