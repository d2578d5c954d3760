/**
 * Browser demo: the decoder of examples/demo.js (same code, examples/lib/) trained, run and timed in
 * the page, on the tfjs backend the user picks. Exposes `window.demo` for the browser test
 * (scripts/test-browser-web.mjs).
 *
 * URL parameters: ?threads=N (attention engine threads; needs cross-origin isolation),
 * ?count=N (examples decoded by Generate, default 64), ?autorun=1 (train, generate, backends).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgl';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import wasmPlain from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimd from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreaded from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import 'grouped-query-attention/webgpu';
import 'grouped-query-attention/webgl';
import { createAttentionEngine, defaultEngineReady, setDefaultEngine } from 'grouped-query-attention/engine';
import { Decoder, generate } from '../examples/lib/decoder.js';
import { fixtureRun } from '../examples/lib/fixture.js';
import { createRng, makeBatch, render, TASKS, VOCAB } from '../examples/lib/tasks.js';
import { runBackendTable, TABLE_BATCH } from './backend-table.js';
import { showMaps, wireMaps } from './maps.js';
import { probeWebGL, probeWebGPU, statusLines } from './status.js';
import { STOP_REASONS, trainRun } from './train-loop.js';
import { readWeights, saveWeights, savedWeights, writeWeights } from './weights.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
/** Yields to the event loop without the timer clamp (a MessageChannel round trip). */
const yieldToPage = () => new Promise((resolve) => {
  const channel = new MessageChannel();
  channel.port1.onmessage = () => resolve();
  channel.port2.postMessage(null);
});
/** Yields long enough for the browser to paint (progress text while a slow backend works). */
const paint = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
const fmt = (x, digits = 1) => (x == null || Number.isNaN(x) ? '–' : x.toFixed(digits));
const seconds = (ms) => (ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`);
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
const BACKENDS = ['wasm', 'cpu', 'webgl', 'webgpu'];
/** Examples decoded by "Generate" (?count=N, 1..512; fewer is quicker on a slow device). */
const GENERATE_COUNT = Math.min(512, Math.max(1, Math.floor(Number(params.get('count'))) || 64));

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
const requestedThreads = params.get('threads');
const isolated = globalThis.crossOriginIsolated === true;
if (requestedThreads != null && isolated && Number(requestedThreads) >= 1) {
  setDefaultEngine(await createAttentionEngine({ threads: Number(requestedThreads) }));
}

const state = { model: null, spec: null, busy: false, stop: false, info: null, trained: null, lastTrain: null, lastGeneration: null };

async function setup() {
  const [engine, webgpu] = await Promise.all([defaultEngineReady(), probeWebGPU()]);
  let backend = 'wasm';
  if (!(await tf.setBackend('wasm').catch(() => false))) {
    backend = 'cpu';
    await tf.setBackend('cpu');
  }
  await tf.ready();
  state.info = {
    crossOriginIsolated: isolated,
    sharedArrayBuffer: typeof SharedArrayBuffer !== 'undefined',
    engineKind: engine.kind,
    engineThreads: engine.threads,
    requestedThreads,
    backend,
    cores: navigator.hardwareConcurrency,
    hardwareConcurrency: navigator.hardwareConcurrency,
    webgpu,
    webgl: probeWebGL(),
  };
  $('env').innerHTML = statusLines(state.info);
  return state.info;
}

/**
 * Switches tfjs to `name` and rebuilds the model there from its weights, or throws a message a user
 * can act on. (Left to itself, tfjs moves a tensor to the new backend on first use with a
 * synchronous read, which loses the WebGPU device when the tensor lives on webgpu: the weights
 * are read asynchronously instead.)
 */
async function useBackend(name) {
  const from = tf.getBackend();
  if (from === name) return;
  const weights = state.model ? await readWeights(state.model) : null;
  const ok = await tf.setBackend(name).catch(() => false);
  if (!ok || tf.getBackend() !== name) {
    await tf.setBackend(from);
    throw new Error(`the ${name} backend is not available in this browser (see the status lines at the top); pick another backend`);
  }
  await tf.ready();
  if (weights) {
    const moved = new Decoder(state.model.config);
    writeWeights(moved, weights);
    state.model.dispose();
    state.model = moved;
  }
}

/** The form's settings (read from the elements: FormData skips the backend picker while it is disabled). */
function formValues() {
  const f = $('train-form').elements;
  return {
    backend: f.backend.value,
    task: f.task.value,
    n: Number(f.n.value),
    steps: Number(f.steps.value),
    batch: Number(f.batch.value),
    seed: Number(f.seed.value),
  };
}

function newModel({ task, n, seed }) {
  state.model?.dispose();
  const spec = { task, n, seed, length: TASKS[task].length(n) };
  state.spec = spec;
  state.model = new Decoder({ vocabSize: VOCAB.length, maxLength: spec.length }).initialize(seed);
  return state.model;
}

const settings = ({ task, n, seed }) => `${TASKS[task].describe(n)}, seed ${seed}`;

/** Shows or finishes a progress row (`fraction` null hides it). */
function progress(id, fraction, text = '') {
  const box = $(id);
  box.hidden = fraction == null;
  if (fraction == null) return;
  box.querySelector('progress').value = fraction;
  box.querySelector('.progress-text').textContent = text;
}

// ---- 1. train ----------------------------------------------------------------------------------
async function train(options = {}) {
  const o = { ...formValues(), target: 0.99, lr: 0.003, ...options };
  const { backend, task, n, steps, seed, target } = o;
  await useBackend(backend);
  const model = newModel({ task, n, seed });
  state.trained = null;
  const head = `${TASKS[task].describe(n)} · ${model.parameterCount.toLocaleString('en')} parameters · on ${backend}`;
  $('train-log').textContent = head;
  $('train-status').textContent = `Training on ${backend}…`;
  state.stop = false;
  progress('train-progress', 0, `step 0 of ${steps}`);
  let result;
  try {
    result = await trainRun({
      ...o,
      model,
      shouldStop: () => state.stop,
      pause: yieldToPage,
      onProgress: ({ step, loss, accuracy, tokens, ms }) => {
        const left = (ms / step) * (steps - step);
        progress('train-progress', step / steps, `step ${step} of ${steps} · ${seconds(ms)} so far, at most ~${seconds(left)} left`);
        $('train-log').textContent = `${head}\nstep ${step}/${steps} · loss ${fmt(loss, 3)} · held-out accuracy ` +
          `${accuracy == null ? '– (first measured at step 50)' : fmt(accuracy, 3)} · ` +
          `${Math.round(tokens / (ms / 1000)).toLocaleString('en')} tokens/s`;
      },
    });
  } finally {
    progress('train-progress', null);
  }
  state.lastTrain = { ...result, backend, spec: state.spec };
  const what = settings(state.spec);
  const acc = fmt(result.accuracy, 3);
  let saved = false;
  if (result.reason !== STOP_REASONS.user) saved = await saveWeights(state.spec, model);
  const savedText = saved ? `Weights saved in this browser for ${what} (“Load saved weights” brings them back).`
    : 'Could not save the weights (browser storage full or disabled).';
  const status = {
    [STOP_REASONS.target]: `Stopped early at step ${result.steps} of ${steps}: the held-out accuracy reached ${acc}, at or ` +
      `above the target ${target}, so more steps were not needed. ${savedText}`,
    [STOP_REASONS.steps]: `Finished all ${steps} steps. Held-out accuracy ${acc}` +
      (result.accuracy < target ? ` (below the target ${target}: more steps or a smaller task would help). ` : '. ') + savedText,
    [STOP_REASONS.user]: `Stopped by you at step ${result.steps} of ${steps}; held-out accuracy ${acc}. These weights were ` +
      `not saved: saved weights for ${what}, if any, are unchanged.`,
  }[result.reason];
  $('train-status').textContent = status;
  $('train-log').textContent = `${head}\n${result.steps} steps in ${seconds(result.ms)} · final loss ` +
    `${fmt(result.losses.at(-1)?.[1], 3)} · held-out accuracy ${acc} · ` +
    `${Math.round(result.tokens / (result.ms / 1000)).toLocaleString('en')} tokens/s`;
  state.trained = `Trained on ${backend}: ${what}, ${result.steps} steps, held-out accuracy ${acc}.`;
  return { steps: result.steps, ms: result.ms, accuracy: result.accuracy, losses: result.losses, reason: result.reason, saved };
}

function loadSaved() {
  const spec = formValues();
  const weights = savedWeights(spec);
  if (weights == null) {
    $('train-status').textContent = `No saved weights for ${settings(spec)}: train first (a run you stop is not saved).`;
    return false;
  }
  writeWeights(newModel(spec), weights);
  state.trained = `Saved weights for ${settings(spec)}.`;
  $('train-status').textContent = `Loaded the saved weights for ${settings(spec)}.`;
  return true;
}

// ---- 2. generate and 3. attention maps ----------------------------------------------------------
/** Whether the KV cache refused this backend (checked before any work, so nothing leaked). */
const cacheRefused = (e) => /KV cache cannot be used on the (\w+) backend/.test(String(e?.message ?? e));

/**
 * Decodes GENERATE_COUNT new examples on the picked backend and shows them. With `compare` ("Time
 * decoding") it also times the three ways to decode (KV cache, full recompute, full recompute with
 * composite attention), each after a warm-up.
 */
async function generateAndShow({ count = GENERATE_COUNT, compare = false } = {}) {
  const backend = formValues().backend;
  await useBackend(backend);
  const { model, spec } = state;
  const examples = makeBatch(spec.task, spec.n, count, createRng(spec.seed * 15485863 + 11)).examples;
  const composite = compare ? new Decoder({ ...model.config, flashAttention: false }).copyWeightsFrom(model) : null;
  const steps = compare ? 6 : 1;
  let done = 0;
  const phase = async (text) => {
    progress('gen-progress', done / steps, `${text} on ${backend} (${done + 1} of ${steps})`);
    done++;
    await paint();
  };
  let cached = null;
  let cacheNote = '';
  /** The KV cache run, or null with `cacheNote` set where the backend refuses the cache. */
  const tryCache = async (some) => {
    if (cacheNote) return null;
    try {
      return await generate(model, some, 'cache');
    } catch (e) {
      if (!cacheRefused(e)) throw e;
      cacheNote = `not on ${backend} yet (the cache reads tensors synchronously, which ${backend} cannot do); decoded by full recompute instead`;
      return null;
    }
  };
  try {
    let recomputed = null;
    let compositeRun = null;
    if (compare) {
      await phase('warming up the KV cache');
      await tryCache(examples.slice(0, 2));
      await phase('warming up full recompute');
      await generate(model, examples.slice(0, 2), 'recompute');
      await phase('warming up composite attention');
      await generate(composite, examples.slice(0, 2), 'recompute');
      await phase(`decoding ${count} examples with the KV cache`);
      cached = await tryCache(examples);
      await phase(`decoding ${count} examples by full recompute`);
      recomputed = await generate(model, examples, 'recompute');
      await phase(`decoding ${count} examples by full recompute, composite attention`);
      compositeRun = await generate(composite, examples, 'recompute');
    } else {
      await phase(`decoding ${count} examples`);
      cached = await tryCache(examples);
      if (cached == null) recomputed = await generate(model, examples, 'recompute');
    }
    const main = cached ?? recomputed;
    showSamples(examples, main, count);
    const rows = [
      ['KV cache, fused attention', cached],
      ['full recompute, fused attention', recomputed],
      ['full recompute, composite attention', compositeRun],
    ];
    const cell = (name, r) => {
      if (r != null) return `<tr><td>${name}</td><td>${Math.round(r.tokensPerSecond).toLocaleString('en')}</td><td>${fmt(r.ms)}</td></tr>`;
      const why = name.startsWith('KV') && cacheNote ? cacheNote : 'not timed: press “Time decoding” to compare';
      return `<tr><td>${name}</td><td colspan="2" class="muted wide">${esc(why)}</td></tr>`;
    };
    $('gen-timings').innerHTML = `<tr><th>greedy decoding of ${count} examples on ${backend}</th><th>tokens/s</th><th>ms</th></tr>` +
      rows.map(([name, r]) => cell(name, r)).join('');
    await mapsOf(examples[0]);
    const same = (run) => run == null || main.sequences.every((seq, b) => seq.every((t, i) => t === run.sequences[b][i]));
    state.lastGeneration = {
      backend,
      compared: compare,
      accuracy: main.accuracy,
      exact: main.exact,
      sequences: main.sequences,
      cache: cached != null,
      sameAsRecompute: same(recomputed) && same(compositeRun),
      tokensPerSecond: { cache: cached?.tokensPerSecond ?? null, recompute: recomputed?.tokensPerSecond ?? null, composite: compositeRun?.tokensPerSecond ?? null },
    };
    return state.lastGeneration;
  } finally {
    composite?.dispose();
    progress('gen-progress', null);
  }
}

/** The first samples, each wrong one with its expected answer, and the two accuracies explained. */
function showSamples(examples, run, count) {
  // The first six, and up to four of the others that went wrong.
  const wrongOnes = examples.map((_, b) => b).filter((b) => b >= 6 && run.sequences[b].some((t, i) => t !== examples[b].tokens[i]));
  const shown = [0, 1, 2, 3, 4, 5, ...wrongOnes.slice(0, 4)].filter((b) => b < examples.length);
  $('samples').innerHTML = shown.map((b) => {
    const e = examples[b];
    const got = run.sequences[b].slice(e.promptLength);
    const want = e.tokens.slice(e.promptLength);
    const ok = got.every((t, i) => t === want[i]);
    return `<li value="${b + 1}"><span>${esc(render(e.tokens.slice(0, e.promptLength)))}</span> → <span>${esc(render(got))}</span> ` +
      (ok ? '<span class="ok" title="right">✓</span>'
        : `<span class="bad" title="wrong">✗</span> <span class="expected">expected ${esc(render(want))}</span>`) + '</li>';
  }).join('');
  const wrong = Math.round((1 - run.exact) * count);
  $('gen-summary').innerHTML = `Generation accuracy <strong>${fmt(run.accuracy, 3)}</strong> per answer token; ` +
    `${Math.round(run.exact * count)} of ${count} answers exactly right${wrong ? ` (${wrong} with a mistake)` : ''}. ` +
    '<span class="muted">Unlike the held-out accuracy of training, where the model is shown the correct tokens before ' +
    'each prediction, here it builds on its own earlier tokens, so one mistake can lead to more.</span>';
}

async function mapsOf(example) {
  const { model, spec } = state;
  const scores = tf.tidy(() => {
    const x = tf.tensor2d([example.tokens.slice(0, -1)], [1, spec.length - 1], 'int32');
    return model.forward(x, { returnScores: true }).scores;
  });
  // Asynchronous reads: webgpu cannot read synchronously.
  const maps = (await Promise.all(scores.map((s) => s.array()))).map((a) => a[0]);
  tf.dispose(scores);
  showMaps($('maps'), {
    maps,
    labels: example.tokens.slice(0, -1).map((t) => VOCAB[t]),
    numKeyValueHeads: model.config.numKeyValueHeads,
    title: `${TASKS[spec.task].describe(spec.n)}: ${render(example.tokens)}`,
    note: state.trained ?? `Untrained model (random weights from seed ${spec.seed}): no pattern yet. Train in section 1 ` +
      'to see what the heads learn.',
  });
}

// ---- 4. backends -------------------------------------------------------------------------------
async function runBackends(names = BACKENDS) {
  try {
    return await runBackendTable({
      model: state.model,
      spec: state.spec,
      names,
      table: $('backend-table'),
      onProgress: (fraction, text) => progress('backend-progress', fraction, text),
      pause: paint,
    });
  } finally {
    progress('backend-progress', null);
  }
}

// ---- wiring ------------------------------------------------------------------------------------
/** What to expect from the picked backend here, in a sentence. */
function backendHint() {
  const name = formValues().backend;
  const info = state.info;
  const hints = {
    wasm: 'WebAssembly on the CPU, with the package\'s attention engine: usually the fastest choice for a model this small.',
    cpu: 'Plain JavaScript on the CPU (the attention still runs on the WebAssembly engine): slower than wasm.',
    webgl: info?.webgl.available === false ? 'WebGL 2 is not available in this browser.'
      : `The GPU through WebGL 2${info?.webgl.software ? ' (a software renderer here: slow)' : ''}; the first steps compile shaders.`,
    webgpu: info?.webgpu.available === false ? `WebGPU is not available: ${info.webgpu.why}.`
      : `The GPU through WebGPU${info?.webgpu.software ? ' (a software adapter here: much slower than wasm)' : ''}; the first ` +
        'steps compile shaders.',
  };
  $('backend-hint').textContent = hints[name] ?? '';
}

function setButtons() {
  const { busy } = state;
  for (const id of ['train', 'load', 'generate', 'compare', 'backends']) $(id).disabled = busy !== false;
  $('generate').disabled ||= state.model == null;
  $('compare').disabled ||= state.model == null;
  $('backends').disabled ||= state.model == null;
  $('stop').disabled = busy !== 'train';
  $('train-form').elements.backend.disabled = busy !== false;
}

/** Runs one long action at a time; a failure is shown in `where`, not swallowed. */
async function busyWith(kind, where, fn) {
  if (state.busy) return undefined;
  state.busy = kind;
  setButtons();
  try {
    return await fn();
  } catch (e) {
    $(where).innerHTML = `<span class="bad">${esc(e?.message ?? e)}</span>`;
    console.warn(e);
    return undefined;
  } finally {
    state.busy = false;
    setButtons();
  }
}

$('train-form').addEventListener('submit', (e) => {
  e.preventDefault();
  busyWith('train', 'train-status', async () => {
    await train();
    state.busy = 'generate';
    setButtons();
    await generateAndShow();
  });
});
$('load').addEventListener('click', () => busyWith('generate', 'train-status', async () => {
  if (loadSaved()) await generateAndShow();
}));
$('stop').addEventListener('click', () => {
  state.stop = true;
});
$('generate').addEventListener('click', () => busyWith('generate', 'gen-summary', () => generateAndShow()));
$('compare').addEventListener('click', () => busyWith('generate', 'gen-summary', () => generateAndShow({ compare: true })));
$('backends').addEventListener('click', () => busyWith('backends', 'backend-status', () => runBackends()));
$('train-form').elements.backend.addEventListener('change', backendHint);
$('table-batch').textContent = String(TABLE_BATCH);
$('gen-count').textContent = String(GENERATE_COUNT);
wireMaps($('maps'));

const ready = setup().then(() => {
  // An untrained model from the form's seed, so that every section works before training.
  newModel(formValues());
  return mapsOf(makeBatch(state.spec.task, state.spec.n, 1, createRng(state.spec.seed)).examples[0]);
}).then(() => {
  setButtons();
  backendHint();
  return state.info;
});

window.tf = tf; // for the console
window.gqaDemoLib = { Decoder, generate, makeBatch, createRng, VOCAB, TASKS };
window.demo = {
  ready,
  get info() { return state.info; },
  get spec() { return state.spec; },
  get busy() { return state.busy; },
  get lastTrain() { return state.lastTrain; },
  get lastGeneration() { return state.lastGeneration; },
  train,
  loadSaved,
  generate: generateAndShow,
  backends: runBackends,
  /** The current model's weights as plain arrays (Decoder layer order), e.g. to rebuild it in Node. */
  weights: () => readWeights(state.model),
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
