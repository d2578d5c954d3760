// Times the demo's training step alone (no evaluation, no generation): the demo's model and
// optimizer on the wasm backend, two warm-up steps, then the median of `--steps` timed steps.
//
//   node bench/demo_step.mjs [--n 127] [--batch 8] [--steps 6]
//
// `--n 127` gives the sort task's 255-token sequences (what `npm start -- --seq 256` trains on);
// `--n 8 --batch 32` is the demo's default size. The script uses only examples/lib, whose API has
// not changed since the first release, so the same file runs in a checkout of an older commit
// (copy it there) to compare releases in one run on a shared host.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import { Decoder } from '../examples/lib/decoder.js';
import { createRng, makeBatch, TASKS, VOCAB } from '../examples/lib/tasks.js';
import { createOptimizer, trainStep } from '../examples/lib/train.js';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? Number(args[at + 1]) : fallback;
};
const n = option('n', 127);
const batchSize = option('batch', 8);
const steps = option('steps', 6);

await tf.setBackend('wasm');
await tf.ready();
// The demo's default model (examples/demo.js): width 64, 4 query heads over 2 key/value heads.
const length = TASKS.sort.length(n);
const model = new Decoder({
  vocabSize: VOCAB.length, maxLength: length, width: 64, numQueryHeads: 4, numKeyValueHeads: 2,
  headDim: 16, mlpWidth: 128, layers: 2,
}).initialize(1);
const optimizer = createOptimizer(0.003);
const rng = createRng(7);
const batches = Array.from({ length: steps + 2 }, () => makeBatch('sort', n, batchSize, rng));
for (let i = 0; i < 2; i++) trainStep(model, optimizer, batches[i]).dispose();

const times = [];
for (let i = 0; i < steps; i++) {
  const start = performance.now();
  const loss = trainStep(model, optimizer, batches[i + 2]);
  loss.dataSync();
  loss.dispose();
  times.push(performance.now() - start);
}
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];
const tokens = batchSize * batches[0].length;
console.log(
  `demo step, sort n=${n} (T=${batches[0].length}), batch ${batchSize}, median of ${steps}: ` +
    `${median.toFixed(1)} ms/step, ${Math.round(tokens / (median / 1000))} training tokens/s`,
);
