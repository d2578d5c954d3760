/**
 * Every Keras 3.6 golden case through the eager contract
 * `layer.apply(query, {value, key, masks..., returnAttentionScores, training, useCausalMask})`,
 * on the cpu and wasm backends, at |got − expected| ≤ 1e-5 + 1e-5·|expected|.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, test } from 'vitest';
import { BACKENDS, useBackend } from '../helpers/backends.js';
import { expectClose } from '../helpers/close.js';
import { goldenCases } from '../helpers/golden.js';
import { runGoldenCase } from '../helpers/run_golden.js';

const cases = goldenCases('golden');

describe.each(BACKENDS)('Keras 3.6 golden cases on %s', (backend) => {
  beforeAll(() => useBackend(backend));

  test('all 39 documented cases are present', () => {
    expect(cases.length).toBeGreaterThanOrEqual(39);
  });

  test.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const before = tf.memory().numTensors;
    const got = runGoldenCase(c);
    expect(tf.memory().numTensors).toBe(before);
    expectClose(got.output, c.expected.output.data as number[], `${c.name} output`);
    if (c.expected.attention_scores) {
      expect(got.scores, `${c.name} returns scores`).toBeDefined();
      expectClose(got.scores!, c.expected.attention_scores.data as number[], `${c.name} scores`);
    }
  });
});
