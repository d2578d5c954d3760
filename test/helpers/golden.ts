/** Loading the Keras golden cases (test/data/golden*, produced by real Keras; see their index.json). */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';

export const DATA_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'data');

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

/** Every numeric case file in a golden folder (meta_* and index.json excluded). */
export function goldenCases(folder: 'golden' | 'golden_head'): GoldenCase[] {
  const dir = join(DATA_DIR, folder);
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json') && !f.startsWith('meta_') && f !== 'index.json' && f !== 'version_diffs.json')
    .sort()
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as GoldenCase);
}

export function readJson<T>(...parts: string[]): T {
  return JSON.parse(readFileSync(join(DATA_DIR, ...parts), 'utf8')) as T;
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
