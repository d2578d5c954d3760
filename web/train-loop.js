/**
 * The page's training run, without the page: seeded data, learning-rate schedule, loss reads and
 * held-out evaluation, and why it ended. No DOM here, so that the browser test can run the same
 * loop in Node and compare the page's losses with Node's, step for step.
 */
import { makeBatch, createRng } from '../examples/lib/tasks.js';
import { createOptimizer, evaluate, learningRate, trainStep } from '../examples/lib/train.js';

/** The held-out batch that "held-out accuracy" is measured on (never trained on). */
export const HELD_OUT_SIZE = 128;
/** Steps between two held-out evaluations (each one is a forward pass over the held-out batch). */
export const EVAL_EVERY = 50;

/** Why a run ended. */
export const STOP_REASONS = {
  target: 'target',
  steps: 'steps',
  user: 'user',
};

/**
 * Trains `model` (a Decoder with the task's maxLength) for at most `steps` Adam steps and returns
 * `{ steps, ms, tokens, accuracy, losses: [[step, loss]], reason }`. It ends early when the held-out
 * accuracy reaches `target` (reason 'target') or when `shouldStop()` turns true (reason 'user').
 * The loss is read every step in runs of at most 20 steps, else every 5th step (a read waits for
 * the backend, which costs most on the GPU backends).
 * `onProgress({ step, steps, loss, accuracy, tokens, ms })` runs after each step, then `pause()`.
 */
export async function trainRun({
  model, task, n, steps, batch, seed, lr = 0.003, target = 0.99,
  shouldStop = () => false, onProgress = () => {}, pause = async () => {},
}) {
  const optimizer = createOptimizer(lr);
  const rng = createRng(seed * 7919 + 17);
  const heldOut = makeBatch(task, n, HELD_OUT_SIZE, createRng(seed * 104729 + 3));
  const lossEvery = steps <= 20 ? 1 : 5;
  const start = performance.now();
  const losses = [];
  let tokens = 0;
  let loss = NaN;
  let accuracy = null;
  let step = 0;
  let reason = STOP_REASONS.steps;
  try {
    while (step < steps) {
      if (shouldStop()) {
        reason = STOP_REASONS.user;
        break;
      }
      optimizer.learningRate = learningRate(step, steps, lr);
      const b = makeBatch(task, n, batch, rng);
      const l = trainStep(model, optimizer, b);
      step++;
      tokens += batch * b.length;
      if (step % lossEvery === 0 || step === steps) {
        loss = (await l.data())[0];
        losses.push([step, loss]);
      }
      l.dispose();
      if (step % EVAL_EVERY === 0 || step === steps) accuracy = await evaluate(model, heldOut);
      onProgress({ step, steps, loss, accuracy, tokens, ms: performance.now() - start });
      if (accuracy != null && accuracy >= target && step < steps) {
        reason = STOP_REASONS.target;
        break;
      }
      await pause();
    }
  } finally {
    optimizer.dispose();
  }
  const ms = performance.now() - start;
  accuracy = await evaluate(model, heldOut);
  return { steps: step, ms, tokens, accuracy, losses, reason, target };
}
