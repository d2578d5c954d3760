/** The Keras model fixtures (test/data/fixtures, written by real Keras 3.6 and 3.16; see its README). */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { DATA_DIR, toTensor, type JsonTensor } from '../helpers/golden.js';

export const FIXTURE_DIR = join(DATA_DIR, 'fixtures');

export interface Fixture {
  name: string;
  keras: { version: string };
  model: {
    name: string;
    inputs: Array<{ name: string; shape: Array<number | null>; dtype: string }>;
    layers: Array<{ name: string; class_name: string }>;
  };
  inputs: Record<string, JsonTensor>;
  weights: Array<{ layer: string; name: string; path: string; shape: number[]; data: number[] }>;
  expected: { output: JsonTensor };
  h5_layout: Array<{ h5_dataset: string; shape: number[]; weight_path: string; group_attr_name: string }>;
}

/** Every fixture stem with its expected.json (more can be dropped into the folder, or KERAS_FIXTURES). */
export function fixtureStems(): Array<{ stem: string; dir: string }> {
  const dirs = [FIXTURE_DIR, ...(process.env['KERAS_FIXTURES'] ?? '').split(':').filter((d) => d && existsSync(d))];
  const found = new Map<string, string>();
  for (const dir of dirs) {
    for (const f of readdirSync(dir)) {
      if (f.endsWith('.expected.json')) found.set(f.slice(0, -'.expected.json'.length), dir);
    }
  }
  return [...found.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([stem, dir]) => ({ stem, dir }));
}

export function readFixture(dir: string, stem: string): Fixture {
  return JSON.parse(readFileSync(join(dir, `${stem}.expected.json`), 'utf8')) as Fixture;
}

/** The fixture's inputs in `model.inputs` order (tfjs's order: Keras's input_layers). */
export function fixtureInputs(fx: Fixture, model: tfl.LayersModel): tf.Tensor[] {
  return model.inputNames.map((name) => {
    const t = fx.inputs[name];
    if (t == null) throw new Error(`fixture ${fx.name} has no input ${name}`);
    return toTensor(t);
  });
}

export function predict(model: tfl.LayersModel, inputs: tf.Tensor[]): tf.Tensor {
  return model.predict(inputs.length === 1 ? inputs[0]! : inputs) as tf.Tensor;
}
