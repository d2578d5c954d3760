/**
 * Browser demo: the decoder of examples/demo.js (same code, examples/lib/) trained, run and timed in
 * the page. Exposes `window.demo` for the browser test (scripts/test-browser-web.mjs).
 *
 * URL parameters: ?threads=N (engine and tfjs-wasm threads), ?autorun=1 (train, generate, backends).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgl';
import '@tensorflow/tfjs-backend-webgpu';
import { setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import wasmPlain from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimd from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreaded from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import { groupedQueryAttention, groupedQueryAttentionReference } from 'grouped-query-attention';
import 'grouped-query-attention/webgpu';
import 'grouped-query-attention/webgl';
import { createAttentionEngine, defaultEngineReady, setDefaultEngine } from 'grouped-query-attention/engine';
import { Decoder, generate } from '../examples/lib/decoder.js';
import { fixtureRun } from '../examples/lib/fixture.js';
import { attentionSvg } from '../examples/lib/svg.js';
import { createRng, makeBatch, render, TASKS, VOCAB } from '../examples/lib/tasks.js';
import { createOptimizer, evaluate, learningRate, trainStep } from '../examples/lib/train.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
/** Yields to the event loop without the timer clamp (a MessageChannel round trip). */
const yieldToPage = () => new Promise((resolve) => {
  const channel = new MessageChannel();
  channel.port1.onmessage = () => resolve();
  channel.port2.postMessage(null);
});
const fmt = (x, digits = 1) => (x == null || Number.isNaN(x) ? '–' : x.toFixed(digits));

// ---- setup -------------------------------------------------------------------------------------
setWasmPaths({
  'tfjs-backend-wasm.wasm': wasmPlain,
  'tfjs-backend-wasm-simd.wasm': wasmSimd,
  'tfjs-backend-wasm-threaded-simd.wasm': wasmThreaded,
});
// tfjs-wasm's multi-threaded build sends its Emscripten factory to its workers as source text, which
// breaks once a bundler renames what the factory refers to ("e is not defined" in the workers): use
// its single-threaded SIMD build. The attention engine has its own workers and keeps them.
tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
const threads = params.has('threads') ? Number(params.get('threads')) : undefined;
if (threads) {
  setThreadsCount(threads); // used by tfjs-wasm only where its threaded build runs
  setDefaultEngine(await createAttentionEngine({ threads }));
}

const state = { model: null, spec: null, training: false, stop: false, info: null };

async function setup() {
  const engine = await defaultEngineReady();
  let backend = 'wasm';
  if (!(await tf.setBackend('wasm').catch(() => false))) {
    backend = 'cpu';
    await tf.setBackend('cpu');
  }
  await tf.ready();
  // (No adapter probe here: tfjs-webgpu requests its own adapter and device when first used.)
  const webgpu = navigator.gpu != null;
  state.info = {
    crossOriginIsolated: globalThis.crossOriginIsolated === true,
    sharedArrayBuffer: typeof SharedArrayBuffer !== 'undefined',
    engineKind: engine.kind,
    engineThreads: engine.threads,
    backend,
    hardwareConcurrency: navigator.hardwareConcurrency,
    webgpu,
  };
  const i = state.info;
  $('env').textContent = `cross-origin isolated: ${i.crossOriginIsolated ? 'yes' : 'no (single-threaded)'} · attention engine: ` +
    `${i.engineKind}, ${i.engineThreads} thread(s) · tfjs backend: ${i.backend} · ${i.hardwareConcurrency} cores · ` +
    `WebGPU: ${i.webgpu ? 'yes' : 'no'}`;
  return state.info;
}

function formValues() {
  const f = new FormData($('train-form'));
  return {
    task: String(f.get('task')),
    n: Number(f.get('n')),
    steps: Number(f.get('steps')),
    batch: Number(f.get('batch')),
    seed: Number(f.get('seed')),
  };
}

function newModel({ task, n, seed }) {
  state.model?.dispose();
  const spec = { task, n, seed, length: TASKS[task].length(n) };
  state.spec = spec;
  state.model = new Decoder({ vocabSize: VOCAB.length, maxLength: spec.length }).initialize(seed);
  return state.model;
}

const storageKey = ({ task, n, seed }) => `gqa-demo:${task}:${n}:${seed}`;

// ---- 1. train ----------------------------------------------------------------------------------
async function train(options = formValues()) {
  const { task, n, steps, batch, seed, target = 0.99, lr = 0.003 } = { ...formValues(), ...options };
  const model = newModel({ task, n, seed });
  const optimizer = createOptimizer(lr);
  const rng = createRng(seed * 7919 + 17);
  const heldOut = makeBatch(task, n, 128, createRng(seed * 104729 + 3));
  const log = $('train-log');
  log.textContent = `${TASKS[task].describe(n)} · ${model.parameterCount.toLocaleString('en')} parameters\n`;
  state.training = true;
  state.stop = false;
  setButtons();
  const start = performance.now();
  let tokens = 0;
  let loss = NaN;
  let acc = null;
  let step = 0;
  const losses = [];
  try {
    while (step < steps && !state.stop) {
      optimizer.learningRate = learningRate(step, steps, lr);
      const b = makeBatch(task, n, batch, rng);
      const l = trainStep(model, optimizer, b);
      step++;
      tokens += batch * b.length;
      if (step % 5 === 0 || step === steps) {
        loss = (await l.data())[0];
        losses.push([step, loss]);
      }
      l.dispose();
      if (step % 50 === 0 || step === steps) acc = await evaluate(model, heldOut);
      const ms = performance.now() - start;
      $('progress').value = step / steps;
      $('train-log').textContent = `${TASKS[task].describe(n)} · ${model.parameterCount.toLocaleString('en')} parameters\n` +
        `step ${step}/${steps} · loss ${fmt(loss, 3)} · held-out accuracy ${fmt(acc, 3)} · ` +
        `${Math.round(tokens / (ms / 1000)).toLocaleString('en')} tokens/s · ${fmt(ms / 1000)} s, ` +
        `~${fmt(((ms / step) * (steps - step)) / 1000)} s left`;
      if (acc != null && acc >= target) break;
      await yieldToPage();
    }
  } finally {
    optimizer.dispose();
    state.training = false;
    setButtons();
  }
  const ms = performance.now() - start;
  acc = await evaluate(model, heldOut);
  try {
    localStorage.setItem(storageKey({ task, n, seed }), JSON.stringify(model.getWeights()));
  } catch { /* storage full or disabled */ }
  const result = { steps: step, ms, accuracy: acc, tokensPerSecond: tokens / (ms / 1000), losses };
  $('train-log').textContent += `\ndone: ${step} steps in ${fmt(ms / 1000)} s, held-out accuracy ${fmt(acc, 3)} (weights saved in this browser)`;
  return result;
}

function loadSaved() {
  const spec = formValues();
  const saved = localStorage.getItem(storageKey(spec));
  if (saved == null) {
    $('train-log').textContent = `no saved weights for ${spec.task} n=${spec.n} seed=${spec.seed}: train first`;
    return false;
  }
  const model = newModel(spec);
  const weights = JSON.parse(saved);
  model.layers.forEach((layer, i) => {
    const values = weights[i].map((w) => tf.tensor(w.data, w.shape));
    layer.setWeights(values);
    tf.dispose(values);
  });
  $('train-log').textContent = `loaded saved weights for ${spec.task} n=${spec.n} seed=${spec.seed}`;
  setButtons();
  return true;
}

// ---- 2. generate and 3. attention maps ----------------------------------------------------------
async function generateAndShow({ count = 64 } = {}) {
  const { model, spec } = state;
  const examples = makeBatch(spec.task, spec.n, count, createRng(spec.seed * 15485863 + 11)).examples;
  const composite = new Decoder({ ...model.config, flashAttention: false }).copyWeightsFrom(model);
  await generate(model, examples.slice(0, 2), 'cache');
  await generate(composite, examples.slice(0, 2), 'recompute');
  const cached = await generate(model, examples, 'cache');
  const recomputed = await generate(model, examples, 'recompute');
  const compositeRun = await generate(composite, examples, 'recompute');
  composite.dispose();
  const lines = examples.slice(0, 6).map((e, b) => {
    const ok = cached.sequences[b].every((t, i) => t === e.tokens[i]);
    return `${render(e.tokens.slice(0, e.promptLength))}  →  ${render(cached.sequences[b].slice(e.promptLength))}  ${ok ? '✓' : '✗'}`;
  });
  $('samples').textContent = `${lines.join('\n')}\n\naccuracy ${fmt(cached.accuracy, 3)} per answer token, ` +
    `${fmt(cached.exact, 3)} of ${count} sequences exactly right`;
  const rows = [
    ['KV cache (fused engine)', cached],
    ['full recompute, fused attention', recomputed],
    ['full recompute, composite attention', compositeRun],
  ];
  $('gen-timings').innerHTML = `<tr><th>greedy decoding, batch ${count}</th><th>tokens/s</th><th>ms</th></tr>` +
    rows.map(([name, r]) => `<tr><td>${name}</td><td>${Math.round(r.tokensPerSecond).toLocaleString('en')}</td><td>${fmt(r.ms)}</td></tr>`).join('');
  showMaps(examples[0]);
  return {
    accuracy: cached.accuracy,
    exact: cached.exact,
    sequences: cached.sequences,
    sameAsRecompute: cached.sequences.every((s, b) => s.every((t, i) => t === recomputed.sequences[b][i] && t === compositeRun.sequences[b][i])),
    tokensPerSecond: { cache: cached.tokensPerSecond, recompute: recomputed.tokensPerSecond, composite: compositeRun.tokensPerSecond },
  };
}

function showMaps(example) {
  const { model, spec } = state;
  const maps = tf.tidy(() => {
    const x = tf.tensor2d([example.tokens.slice(0, -1)], [1, spec.length - 1], 'int32');
    return model.forward(x, { returnScores: true }).scores.map((s) => s.arraySync()[0]);
  });
  $('maps').innerHTML = attentionSvg({
    maps,
    labels: example.tokens.slice(0, -1).map((t) => VOCAB[t]),
    numKeyValueHeads: model.config.numKeyValueHeads,
    title: `${TASKS[spec.task].describe(spec.n)}: ${render(example.tokens)}`,
  });
}

// ---- 4. backends -------------------------------------------------------------------------------
async function timeIt(fn, minMs = 200) {
  await fn();
  let runs = 0;
  const start = performance.now();
  while (performance.now() - start < minMs || runs < 2) {
    await fn();
    runs++;
  }
  return (performance.now() - start) / runs;
}

async function runBackends(names = ['wasm', 'cpu', 'webgl', 'webgpu']) {
  const { model, spec } = state;
  const home = tf.getBackend();
  const composite = new Decoder({ ...model.config, flashAttention: false }).copyWeightsFrom(model);
  const batch = makeBatch(spec.task, spec.n, 16, createRng(spec.seed + 99));
  const rows = [];
  let reference = null;
  const table = $('backend-table');
  const header = '<tr><th>backend</th><th>model forward, fused (ms)</th><th>composite (ms)</th><th>×</th>' +
    '<th>attention op T=256, fused (ms)</th><th>composite (ms)</th><th>×</th><th>max |Δ logits| vs wasm</th></tr>';
  table.innerHTML = header;
  for (const name of names) {
    const row = { backend: name };
    try {
      if (!(await tf.setBackend(name))) throw new Error('unavailable');
      await tf.ready();
      const x = tf.tensor2d(batch.inputs, [16, batch.length], 'int32');
      const run = async (m) => {
        const y = m.forward(x);
        const data = await y.data();
        y.dispose();
        return data;
      };
      const logits = await run(model);
      row.fusedMs = await timeIt(() => run(model));
      row.compositeMs = await timeIt(() => run(composite));
      const [q, k, v] = tf.tidy(() => [tf.randomNormal([1, 256, 4, 16], 0, 1, 'float32', 1), tf.randomNormal([1, 256, 2, 16], 0, 1, 'float32', 2), tf.randomNormal([1, 256, 2, 16], 0, 1, 'float32', 3)]);
      const op = (fn) => async () => {
        const y = fn(q, k, v, { causal: true });
        await y.data();
        y.dispose();
      };
      try {
        row.opFusedMs = await timeIt(op(groupedQueryAttention));
        row.opCompositeMs = await timeIt(op(groupedQueryAttentionReference));
      } catch (e) {
        row.opError = `attention op (1, 256, 4/2, 16): ${e?.message ?? e}`;
      }
      tf.dispose([q, k, v, x]);
      if (reference == null) reference = logits;
      row.maxDiff = logits.reduce((m, value, i) => Math.max(m, Math.abs(value - reference[i])), 0);
      row.logits = Array.from(logits);
    } catch (e) {
      row.error = String(e?.message ?? e);
    }
    rows.push(row);
    table.innerHTML = header + rows.map((r) => r.error
      ? `<tr><td>${r.backend}</td><td colspan="7" class="bad">${r.error}</td></tr>`
      : `<tr><td>${r.backend}</td><td>${fmt(r.fusedMs, 2)}</td><td>${fmt(r.compositeMs, 2)}</td><td>${fmt(r.compositeMs / r.fusedMs)}</td>` +
        (r.opError ? `<td colspan="3" class="bad">${r.opError}</td>`
          : `<td>${fmt(r.opFusedMs, 2)}</td><td>${fmt(r.opCompositeMs, 2)}</td><td>${fmt(r.opCompositeMs / r.opFusedMs)}</td>`) +
        `<td class="${r.maxDiff < 1e-3 ? 'ok' : 'bad'}">${r.maxDiff.toExponential(1)}</td></tr>`).join('');
    await yieldToPage();
  }
  composite.dispose();
  await tf.setBackend(home);
  return rows;
}

// ---- wiring ------------------------------------------------------------------------------------
function setButtons() {
  const busy = state.training;
  $('train').disabled = busy;
  $('load').disabled = busy;
  $('stop').disabled = !busy;
  $('generate').disabled = busy || state.model == null;
  $('backends').disabled = busy || state.model == null;
}

const busyWhile = (button, fn) => async (...args) => {
  const el = $(button);
  el.disabled = true;
  try {
    return await fn(...args);
  } finally {
    el.disabled = false;
    setButtons();
  }
};

$('train-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  await train();
  await generateAndShow();
});
$('load').addEventListener('click', async () => {
  if (loadSaved()) await generateAndShow();
});
$('stop').addEventListener('click', () => {
  state.stop = true;
});
$('generate').addEventListener('click', busyWhile('generate', () => generateAndShow()));
$('backends').addEventListener('click', busyWhile('backends', () => runBackends()));

const ready = setup().then((info) => {
  // An untrained model from the form's seed, so that every section works before training.
  newModel(formValues());
  showMaps(makeBatch(state.spec.task, state.spec.n, 1, createRng(state.spec.seed)).examples[0]);
  setButtons();
  return info;
});

window.tf = tf; // for the console
window.gqaDemoLib = { Decoder, generate, makeBatch, createRng, VOCAB, TASKS };
window.demo = {
  ready,
  get info() { return state.info; },
  get spec() { return state.spec; },
  train,
  loadSaved,
  generate: generateAndShow,
  backends: runBackends,
  /** The deterministic run that Node computes too (examples/lib/fixture.js), on a given backend. */
  async fixture(options = {}, backend = 'wasm') {
    const home = tf.getBackend();
    await tf.setBackend(backend);
    try {
      return await fixtureRun(options);
    } finally {
      await tf.setBackend(home);
    }
  },
};

if (params.get('autorun') === '1') {
  await ready;
  await train();
  await generateAndShow();
  await runBackends();
}
