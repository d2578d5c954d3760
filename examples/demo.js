#!/usr/bin/env node
// The first five minutes: train a small decoder with causal GroupedQueryAttention on a synthetic
// task that needs attention, generate with the KV cache, time fused against composite attention and
// draw the attention maps of one example. Run with `npm start` (or `npm start -- --help`).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { groupedQueryAttention, groupedQueryAttentionReference } from 'grouped-query-attention';
import { createAttentionEngineSync, setDefaultEngine } from 'grouped-query-attention/engine';
import { Decoder, generate } from './lib/decoder.js';
import { attentionSvg } from './lib/svg.js';
import { createRng, makeBatch, render, TASKS, VOCAB } from './lib/tasks.js';
import { createOptimizer, evaluate, learningRate, trainStep } from './lib/train.js';

const here = dirname(fileURLToPath(import.meta.url));
const OPTIONS = {
  task: { type: 'string', default: 'sort', help: `task: ${Object.keys(TASKS).join(' | ')}` },
  n: { type: 'string', default: '8', help: 'symbols per example (copy/sort length, recall pairs)' },
  seq: { type: 'string', help: 'tokens per training sequence (copy/sort: sets --n to (seq - 2) / 2), e.g. 256 to time long-sequence training' },
  steps: { type: 'string', default: '1200', help: 'most training steps' },
  'time-limit': { type: 'string', default: '170', help: 'seconds of training at most' },
  target: { type: 'string', default: '0.995', help: 'stop once held-out accuracy reaches this' },
  batch: { type: 'string', default: '32', help: 'examples per step' },
  lr: { type: 'string', default: '0.003', help: 'Adam learning rate (warm-up, then cosine decay)' },
  heads: { type: 'string', default: '4', help: 'query heads U' },
  'kv-heads': { type: 'string', default: '2', help: 'key/value heads V (divides U; 1 = multi-query)' },
  'head-dim': { type: 'string', default: '16', help: 'head size H' },
  width: { type: 'string', default: '64', help: 'model width' },
  backend: { type: 'string', default: 'wasm', help: 'tfjs backend: wasm (falls back to cpu) | cpu' },
  threads: { type: 'string', help: 'attention engine threads (default: all cores)' },
  seed: { type: 'string', default: '1', help: 'seed of the weights and the data' },
  out: { type: 'string', default: join(here, '..', 'out', 'attention-maps.svg'), help: 'where to write the attention maps (SVG)' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

const { values: opt } = parseArgs({
  options: Object.fromEntries(Object.entries(OPTIONS).map(([k, { help, ...o }]) => [k, o])),
});
if (opt.help) {
  console.log('Usage: npm start -- [options]   (or node examples/demo.js [options])\n');
  for (const [k, o] of Object.entries(OPTIONS)) {
    const flag = `--${k}${o.type === 'string' ? ' <value>' : ''}`;
    console.log(`  ${flag.padEnd(22)} ${o.help}${o.default != null && o.type === 'string' ? ` (default ${o.default === OPTIONS.out.default ? relative(process.cwd(), o.default) : o.default})` : ''}`);
  }
  process.exit(0);
}
const int = (k) => {
  const v = Number(opt[k]);
  if (!Number.isFinite(v)) throw new Error(`--${k} expects a number; received ${opt[k]}`);
  return v;
};
const task = opt.task;
if (!(task in TASKS)) throw new Error(`--task must be one of ${Object.keys(TASKS).join(', ')}; received ${task}`);
let n = int('n');
if (opt.seq != null) {
  // copy and sort sequences hold 2n + 2 tokens; recall is bounded by its alphabet.
  if (task === 'recall') throw new Error(`--seq applies to the copy and sort tasks; received --task recall`);
  const seq = int('seq');
  if (!(seq >= 4)) throw new Error(`--seq must be at least 4 tokens; received ${opt.seq}`);
  n = Math.floor((seq - 2) / 2);
}
const seed = int('seed');
const batchSize = int('batch');

// ---- backend and engine -------------------------------------------------------------------------
if (opt.threads != null) setDefaultEngine(createAttentionEngineSync({ threads: int('threads') }));
let backend = opt.backend;
if (!(await tf.setBackend(backend).catch(() => false))) {
  console.log(`backend ${backend} unavailable, using cpu`);
  backend = 'cpu';
  await tf.setBackend('cpu');
}
await tf.ready();
const { getDefaultEngine } = await import('grouped-query-attention/engine');
const engine = getDefaultEngine();

// ---- model and data -----------------------------------------------------------------------------
const spec = TASKS[task];
const length = spec.length(n);
const config = {
  vocabSize: VOCAB.length,
  maxLength: length,
  width: int('width'),
  numQueryHeads: int('heads'),
  numKeyValueHeads: int('kv-heads'),
  headDim: int('head-dim'),
  mlpWidth: 2 * int('width'),
  layers: 2,
};
const model = new Decoder(config).initialize(seed);
const dataRng = createRng(seed * 7919 + 17);
const heldOut = makeBatch(task, n, 256, createRng(seed * 104729 + 3));

console.log(`task: ${spec.describe(n)}, e.g.  ${render(TASKS[task].make(createRng(seed), n).tokens)}`);
console.log(`model: 2 blocks, width ${config.width}, GroupedQueryAttention ${config.numQueryHeads} query heads / ` +
  `${config.numKeyValueHeads} kv heads of size ${config.headDim}, ${model.parameterCount.toLocaleString('en')} parameters`);
console.log(`backend: tfjs ${backend}; attention engine: ${engine.kind}, ${engine.threads} thread(s); seed ${seed}`);

// ---- training -----------------------------------------------------------------------------------
const steps = int('steps');
const timeLimit = int('time-limit') * 1000;
const target = int('target');
const peakLr = int('lr');
const optimizer = createOptimizer(peakLr);
const tty = process.stdout.isTTY;
const fmtTime = (ms) => {
  const s = Math.max(0, Math.round(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
};
let lastLine = -Infinity;
function progress(step, loss, acc, tokensPerSecond, elapsed, done = false) {
  const frac = step / steps;
  const left = Math.min((elapsed / step) * (steps - step), timeLimit - elapsed);
  const bar = '#'.repeat(Math.round(frac * 24)).padEnd(24, '.');
  const line = `[${bar}] step ${String(step).padStart(String(steps).length)}/${steps}  loss ${loss.toFixed(3)}  ` +
    `acc ${acc == null ? ' -  ' : acc.toFixed(3)}  ${Math.round(tokensPerSecond).toLocaleString('en').padStart(6)} tok/s  ` +
    `${fmtTime(elapsed)} elapsed, ≤${fmtTime(left)} left`;
  if (tty) process.stdout.write(`\r${line}${done ? '\n' : ''}`);
  else if (done || elapsed - lastLine > 10_000) {
    lastLine = elapsed;
    console.log(line);
  }
}

// Training tokens/s counts the optimizer steps only: the held-out evaluation every 50 steps (a
// forward pass over 256 examples) is timed apart and left out.
const trainStart = performance.now();
let evalMs = 0;
let step = 0;
let loss = NaN;
let acc = null;
let reachedAt = null;
let trainTokens = 0;
let lastLoss = null;
while (step < steps) {
  optimizer.learningRate = learningRate(step, steps, peakLr);
  const batch = makeBatch(task, n, batchSize, dataRng);
  const lossTensor = trainStep(model, optimizer, batch);
  step++;
  trainTokens += batchSize * batch.length;
  if (step % 10 === 0 || step === steps || step % 50 === 0) loss = (await lossTensor.data())[0];
  lastLoss?.dispose();
  lastLoss = lossTensor; // kept for the final progress line
  if (step % 50 === 0 || step === steps) {
    const evalStart = performance.now();
    acc = await evaluate(model, heldOut);
    evalMs += performance.now() - evalStart;
    if (acc >= target && reachedAt == null) reachedAt = { step, ms: performance.now() - trainStart };
  }
  const elapsed = performance.now() - trainStart;
  if (step % 10 === 0) progress(step, loss, acc, trainTokens / ((elapsed - evalMs) / 1000), elapsed);
  if (reachedAt != null || elapsed > timeLimit) break;
}
const trainMs = performance.now() - trainStart;
if (lastLoss) loss = (await lastLoss.data())[0];
lastLoss?.dispose();
const trainingTokensPerSecond = trainTokens / ((trainMs - evalMs) / 1000);
progress(step, loss, acc, trainingTokensPerSecond, trainMs, true);
acc = await evaluate(model, heldOut);
console.log(reachedAt
  ? `reached held-out accuracy ${acc.toFixed(3)} (target ${target}) at step ${reachedAt.step} in ${fmtTime(reachedAt.ms)}`
  : `stopped at step ${step} after ${fmtTime(trainMs)} with held-out accuracy ${acc.toFixed(3)} (target ${target} not reached)`);
console.log(`training: ${Math.round(trainingTokensPerSecond).toLocaleString('en')} tokens/s ` +
  `(${step} steps of ${batchSize} × ${length - 1} tokens; held-out evaluation not counted)`);

// ---- generation ---------------------------------------------------------------------------------
const examples = makeBatch(task, n, 64, createRng(seed * 15485863 + 11)).examples;
const composite = new Decoder({ ...config, flashAttention: false }).copyWeightsFrom(model);
await generate(model, examples.slice(0, 4), 'cache'); // warm-up
await generate(composite, examples.slice(0, 4), 'recompute');
const cached = await generate(model, examples, 'cache');
const recomputed = await generate(model, examples, 'recompute');
const compositeRun = await generate(composite, examples, 'recompute');
console.log(`\ngeneration (greedy, ${examples.length} new examples): accuracy ${cached.accuracy.toFixed(3)} per answer token, ` +
  `${cached.exact.toFixed(3)} of sequences exactly right`);
for (let b = 0; b < 3; b++) {
  const e = examples[b];
  const ok = cached.sequences[b].every((t, i) => t === e.tokens[i]);
  console.log(`  ${render(e.tokens.slice(0, e.promptLength))}  →  ${render(cached.sequences[b].slice(e.promptLength))}  ${ok ? '✓' : `✗ (want ${render(e.tokens.slice(e.promptLength))})`}`);
}
const same = cached.sequences.every((s, b) => s.every((t, i) => t === recomputed.sequences[b][i] && t === compositeRun.sequences[b][i]));
console.log(`decode speed, batch ${examples.length}:`);
console.log(`  KV cache (fused engine)          ${cached.tokensPerSecond.toFixed(0).padStart(7)} tokens/s`);
console.log(`  full recompute, fused attention  ${recomputed.tokensPerSecond.toFixed(0).padStart(7)} tokens/s`);
console.log(`  full recompute, composite        ${compositeRun.tokensPerSecond.toFixed(0).padStart(7)} tokens/s` +
  `   (same tokens on all three: ${same ? 'yes' : 'NO'})`);

// ---- fused against composite attention, the op alone --------------------------------------------
function timeOp(fn, q, k, v, minMs = 300) {
  fn(q, k, v, { causal: true }).dispose();
  let runs = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < minMs || runs < 3) {
    const y = fn(q, k, v, { causal: true });
    y.dataSync();
    y.dispose();
    runs++;
  }
  return (performance.now() - t0) / runs;
}
console.log(`attention op, causal, fused groupedQueryAttention vs composite groupedQueryAttentionReference (${backend}):`);
const U = config.numQueryHeads;
const V = config.numKeyValueHeads;
const H = config.headDim;
for (const [B, T] of [[batchSize, length - 1], [1, 512], [1, 2048]]) {
  const [q, k, v] = tf.tidy(() => [tf.randomNormal([B, T, U, H]), tf.randomNormal([B, T, V, H]), tf.randomNormal([B, T, V, H])]);
  const fused = timeOp(groupedQueryAttention, q, k, v);
  const comp = timeOp(groupedQueryAttentionReference, q, k, v);
  console.log(`  B=${B} T=S=${String(T).padEnd(4)} U=${U} V=${V} H=${H}:  fused ${fused.toFixed(2).padStart(7)} ms  composite ` +
    `${comp.toFixed(2).padStart(7)} ms  ×${(comp / fused).toFixed(1)}`);
  tf.dispose([q, k, v]);
}

// ---- attention maps of one example --------------------------------------------------------------
const example = examples[0];
const { maps, labels } = tf.tidy(() => {
  const x = tf.tensor2d([example.tokens.slice(0, -1)], [1, length - 1], 'int32');
  const { scores } = model.forward(x, { returnScores: true });
  return {
    maps: scores.map((s) => s.arraySync()[0]),
    labels: example.tokens.slice(0, -1).map((t) => VOCAB[t]),
  };
});
const outPath = resolve(opt.out);
mkdirSync(dirname(outPath), { recursive: true });
writeFileSync(outPath, attentionSvg({
  maps,
  labels,
  numKeyValueHeads: config.numKeyValueHeads,
  title: `${spec.describe(n)}: attention of each head (rows: query positions, columns: keys), seed ${seed}`,
}));
console.log(`\nattention maps (${config.layers} blocks × ${U} heads): ${relative(process.cwd(), outPath) || outPath}`);
composite.dispose();
model.dispose();
