/**
 * Training helpers shared by the Node demo and the browser page.
 */
import * as tf from '@tensorflow/tfjs-core';

/** Linear warm-up to `peak`, then cosine decay to a tenth of it. */
export function learningRate(step, steps, peak, warmup = Math.min(50, steps / 10)) {
  if (step < warmup) return (peak * (step + 1)) / warmup;
  const progress = (step - warmup) / Math.max(1, steps - warmup);
  return peak * (0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress))));
}

/** Adam with the betas used here (0.9, 0.98). */
export function createOptimizer(lr) {
  return tf.train.adam(lr, 0.9, 0.98);
}

/** One optimizer step on a batch from `makeBatch`; returns the loss (a scalar tensor to dispose). */
export function trainStep(model, optimizer, batch) {
  const count = batch.examples.length;
  return tf.tidy(() => {
    const x = tf.tensor2d(batch.inputs, [count, batch.length], 'int32');
    const y = tf.tensor2d(batch.labels, [count, batch.length], 'int32');
    const w = tf.tensor2d(batch.weights, [count, batch.length]);
    return optimizer.minimize(() => model.loss(x, y, w), true, model.variables);
  });
}

/** Teacher-forced accuracy of the greedy prediction on the target positions of a batch. */
export async function evaluate(model, batch) {
  const ids = tf.tidy(() =>
    tf.argMax(model.forward(tf.tensor2d(batch.inputs, [batch.examples.length, batch.length], 'int32')), -1));
  const predicted = await ids.data();
  ids.dispose();
  let right = 0;
  let total = 0;
  for (let i = 0; i < predicted.length; i++) {
    if (batch.weights[i] === 0) continue;
    total++;
    if (predicted[i] === batch.labels[i]) right++;
  }
  return right / total;
}
