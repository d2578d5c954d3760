/**
 * A Keras golden case and how it runs through the layer's eager contract. No Node imports, so the
 * browser test pages share it with the Node tests.
 */
import * as tf from '@tensorflow/tfjs-core';
import { GroupedQueryAttention, type GroupedQueryAttentionArgs } from '../../src/index.js';

export interface JsonTensor {
  shape: number[];
  dtype: 'float32' | 'float64' | 'bool' | 'int32';
  data: Array<number | boolean>;
}

export interface GoldenCase {
  name: string;
  description: string;
  init_kwargs: Record<string, unknown>;
  call_kwargs: {
    key_passed: boolean;
    use_causal_mask: boolean;
    return_attention_scores: boolean;
    training: boolean | null;
    masks_passed?: string[];
  };
  inputs: Record<string, JsonTensor>;
  masks: Record<string, JsonTensor>;
  weights: Array<{ name: string; path: string; shape: number[]; data: number[] }>;
  expected: { output: JsonTensor; attention_scores?: JsonTensor };
  expected_float64_policy?: { output: JsonTensor; attention_scores?: JsonTensor };
  expected_other_path?: { output: JsonTensor };
  effective_attention_mask: JsonTensor | null;
  fully_masked_rows_count_over_B_U_T?: number;
}

/** A golden tensor as a tfjs tensor (int and bool dtypes kept). */
export function toTensor(t: JsonTensor): tf.Tensor {
  if (t.dtype === 'bool') return tf.tensor(t.data.map((x) => (x ? 1 : 0)), t.shape, 'bool');
  if (t.dtype === 'int32') return tf.tensor(t.data as number[], t.shape, 'int32');
  return tf.tensor(t.data as number[], t.shape, 'float32');
}

/** Keras snake_case constructor kwargs to this package's camelCase args. */
export function layerArgs(kwargs: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(kwargs)) out[k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())] = v;
  return out;
}

const MASK_ARGS: Record<string, string> = {
  query_mask: 'queryMask',
  value_mask: 'valueMask',
  key_mask: 'keyMask',
  attention_mask: 'attentionMask',
};

/**
 * Builds `layer` for the case's inputs, loads the case's weights and applies it with the case's
 * masks and options. Returns [output, scores?]; call it inside `tf.tidy`.
 */
export function applyGoldenCase(layer: GroupedQueryAttention, c: GoldenCase): [tf.Tensor, tf.Tensor | undefined] {
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
  return Array.isArray(result) ? [result[0]!, result[1]] : [result, undefined];
}

/** The case's layer (Keras constructor arguments in camelCase, plus `extraArgs`). */
export function goldenLayer(c: GoldenCase, extraArgs: Record<string, unknown> = {}): GroupedQueryAttention {
  return new GroupedQueryAttention({ ...(layerArgs(c.init_kwargs) as unknown as GroupedQueryAttentionArgs), ...extraArgs });
}
