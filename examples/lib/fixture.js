/**
 * A deterministic run of the demo model, computed the same way in Node and in the browser page so
 * that the browser test can compare the two: seeded weights (no training), a seeded batch, the
 * logits and attention probabilities of one forward pass, greedy generation with the KV cache and
 * by full recompute (options.cache = false: recompute only), and the losses of a few training steps from the same start.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Decoder, generate } from './decoder.js';
import { createRng, makeBatch, TASKS, VOCAB } from './tasks.js';
import { createOptimizer, trainStep } from './train.js';

export const FIXTURE_DEFAULTS = { seed: 5, task: 'sort', n: 6, count: 3, trainSteps: 4 };

export function fixtureConfig(task, n) {
  return { vocabSize: VOCAB.length, maxLength: TASKS[task].length(n), numQueryHeads: 4, numKeyValueHeads: 2 };
}

/** Plain arrays for JSON (asynchronous reads: webgpu cannot read synchronously). */
const flat = async (t) => Array.from(await t.data());

export async function fixtureRun(options = {}) {
  const { seed, task, n, count, trainSteps } = { ...FIXTURE_DEFAULTS, ...options };
  const config = fixtureConfig(task, n);
  const model = new Decoder(config).initialize(seed);
  const batch = makeBatch(task, n, count, createRng(seed + 1));
  const out = { backend: tf.getBackend(), seed, task, n, count };
  const { logits, scores } = tf.tidy(() =>
    model.forward(tf.tensor2d(batch.inputs, [count, batch.length], 'int32'), { returnScores: true }));
  out.inputs = Array.from(batch.inputs);
  out.logitsShape = logits.shape;
  out.logits = await flat(logits);
  out.scoresShape = scores[0].shape;
  out.scores = await Promise.all(scores.map(flat));
  tf.dispose([logits, ...scores]);
  // `cache: false` skips KV-cache decoding (the cache reads keys and values synchronously, which
  // tfjs-webgpu 4.22 cannot do in Chromium without losing its device).
  const useCache = options.cache !== false;
  const recomputed = await generate(model, batch.examples, 'recompute');
  out.generatedCache = useCache ? (await generate(model, batch.examples, 'cache')).sequences : null;
  out.generatedRecompute = recomputed.sequences;
  const optimizer = createOptimizer(0.003);
  const rng = createRng(seed + 2);
  out.losses = [];
  for (let i = 0; i < trainSteps; i++) {
    const loss = trainStep(model, optimizer, makeBatch(task, n, 8, rng));
    out.losses.push((await loss.data())[0]);
    loss.dispose();
  }
  optimizer.dispose();
  model.dispose();
  return out;
}

/** Largest |a - b| / (atol + rtol·|b|) over two arrays (≤ 1 passes). */
export function closeness(a, b, atol = 1e-4, rtol = 1e-4) {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (atol + rtol * Math.abs(b[i])));
  return worst;
}
