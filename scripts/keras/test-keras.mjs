#!/usr/bin/env node
/**
 * `npm run test:keras`: round trips against real Keras 3.15.1 (JAX backend, CPU).
 *
 *   1. Keras builds the models of scripts/keras/keras_models.py and saves them (.keras, .weights.h5,
 *      inputs and outputs);
 *   2. here, on cpu and wasm: loadKerasModel reproduces Keras's outputs, and loadKerasWeights reads the
 *      .weights.h5 file; models built here in TypeScript are added; every model is saved with
 *      saveKerasModel and saveKerasWeights;
 *   3. Keras loads those files (keras.saving.load_model, model.load_weights) and reproduces the outputs.
 *
 * Outputs agree within 1e-5 relative to 1 + |expected|. The Python environment is created on first
 * use in .keras-venv/ (gitignored): `python3 -m venv` and `pip install --retries 0 keras==3.15.1 jax
 * h5py scipy` from the configured package index. Keras's files are cached in .scratch/test-keras/
 * until keras_models.py changes. The last line is `N passed, N failed`; the exit code is 1 on failure.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const VENV = join(ROOT, '.keras-venv');
const PYTHON = join(VENV, 'bin', 'python');
const OUT = join(ROOT, '.scratch', 'test-keras');
const MODELS_PY = join(ROOT, 'scripts', 'keras', 'keras_models.py');
const env = { ...process.env, KERAS_BACKEND: 'jax', JAX_PLATFORMS: 'cpu', TF_CPP_MIN_LOG_LEVEL: '3' };

const results = [];
function record(name, ok, detail = '') {
  results.push({ name, ok });
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? `  (${detail})` : ''}`);
}

function ensureVenv() {
  if (existsSync(PYTHON)) {
    const probe = spawnSync(PYTHON, ['-c', 'import keras, jax, h5py; print(keras.__version__)'], { env, encoding: 'utf8' });
    if (probe.status === 0 && probe.stdout.trim() === '3.15.1') return;
  }
  console.error('creating .keras-venv (keras 3.15.1, jax, h5py, scipy)…');
  execFileSync('python3', ['-m', 'venv', VENV], { stdio: ['ignore', 2, 2] });
  execFileSync(join(VENV, 'bin', 'pip'), ['install', '--retries', '0', 'keras==3.15.1', 'jax', 'h5py', 'scipy'],
    { stdio: ['ignore', 2, 2] });
}

function makeKerasModels() {
  mkdirSync(OUT, { recursive: true });
  const stamp = join(OUT, 'stamp');
  const hash = createHash('sha256').update(readFileSync(MODELS_PY)).digest('hex');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === hash) return;
  console.error('building the models in Keras…');
  for (const f of readdirSync(OUT)) if (/\.(keras|h5|json)$/.test(f)) rmSync(join(OUT, f));
  execFileSync(PYTHON, [MODELS_PY, 'make', OUT], { env, stdio: ['ignore', 2, 2] });
  writeFileSync(stamp, hash);
}

/** Relative error against 1 + |expected|; NaN must meet NaN. */
function compare(got, expected) {
  if (got.length !== expected.length) return { ok: false, detail: `length ${got.length} != ${expected.length}` };
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    const e = expected[i];
    const g = got[i];
    if (Number.isNaN(e) || Number.isNaN(g)) {
      if (!(Number.isNaN(e) && Number.isNaN(g))) return { ok: false, detail: `NaN mismatch at ${i}` };
      continue;
    }
    worst = Math.max(worst, Math.abs(g - e) / (1 + Math.abs(e)));
  }
  return { ok: worst <= 1e-5, detail: `max rel err ${worst.toExponential(2)}` };
}

async function main() {
  ensureVenv();
  makeKerasModels();
  const bundle = join(OUT, 'keras.mjs');
  // The package's sources (no build needed): the Keras entry point and the layer, in one module graph.
  await build({
    stdin: {
      contents: "export * from './src/keras/index.ts'; export { GroupedQueryAttention } from './src/index.ts';",
      resolveDir: ROOT, loader: 'ts',
    },
    bundle: true, outfile: bundle, platform: 'node', format: 'esm', logLevel: 'silent', packages: 'external',
  });
  const tf = await import('@tensorflow/tfjs-core');
  const tfl = await import('@tensorflow/tfjs-layers');
  await import('@tensorflow/tfjs-backend-cpu');
  await import('@tensorflow/tfjs-backend-wasm');
  const { GroupedQueryAttention, loadKerasModel, loadKerasWeights, saveKerasModel, saveKerasWeights } = await import(bundle);
  const warn = () => {};

  const toTensor = (t) => tf.tensor(t.data, t.shape, t.dtype);
  const outputsOf = (model, inputs) => {
    const y = model.predict(inputs.length === 1 ? inputs[0] : inputs);
    return Array.isArray(y) ? y : [y];
  };
  /** Keeps the rows (last axis = one row) the expectation compares; all when it does not say. */
  const rows = (data, shape, compareRows) => {
    if (compareRows == null) return Array.from(data);
    const width = shape[shape.length - 1];
    return Array.from(data).filter((_v, i) => compareRows[Math.floor(i / width)] === 1);
  };
  const checkOutputs = (label, got, expected, compareRows) => {
    if (got.length !== expected.length) return record(label, false, `${got.length} outputs, expected ${expected.length}`);
    const parts = got.map((t, i) => ({
      shape: JSON.stringify(t.shape) === JSON.stringify(expected[i].shape),
      ...compare(rows(t.dataSync(), t.shape, compareRows), rows(expected[i].data, expected[i].shape, compareRows)),
    }));
    record(label, parts.every((p) => p.ok && p.shape), parts.map((p) => `${p.shape ? '' : 'shape differs; '}${p.detail}`).join('; '));
  };

  // 1-2. Keras → here, on cpu and wasm; then our files for Keras to read.
  const stems = readdirSync(OUT).filter((f) => f.endsWith('.expected.json')).map((f) => f.slice(0, -'.expected.json'.length)).sort();
  for (const backend of ['cpu', 'wasm']) {
    await tf.setBackend(backend);
    await tf.ready();
    for (const stem of stems) {
      const spec = JSON.parse(readFileSync(join(OUT, `${stem}.expected.json`), 'utf8'));
      const before = tf.memory().numTensors;
      let model;
      try {
        model = await loadKerasModel(join(OUT, `${stem}.keras`), { warn });
      } catch (e) {
        record(`${stem} [${backend}]: loadKerasModel`, false, e.message.slice(0, 300));
        continue;
      }
      const inputs = model.inputNames.map((n) => toTensor(spec.inputs[n]));
      try {
        const y = outputsOf(model, inputs);
        checkOutputs(`${stem} [${backend}]: loadKerasModel reproduces Keras's outputs`, y, spec.outputs, spec.compare_rows);
        tf.dispose(y);
      } catch (e) {
        record(`${stem} [${backend}]: predict`, false, e.message.slice(0, 300));
      }
      try {
        const zeros = model.getWeights().map((w) => tf.zerosLike(w));
        model.setWeights(zeros);
        tf.dispose(zeros);
        await loadKerasWeights(model, join(OUT, `${stem}.weights.h5`), { warn });
        const y2 = outputsOf(model, inputs);
        checkOutputs(`${stem} [${backend}]: loadKerasWeights reads Keras's .weights.h5`, y2, spec.outputs, spec.compare_rows);
        tf.dispose(y2);
      } catch (e) {
        record(`${stem} [${backend}]: loadKerasWeights`, false, e.message.slice(0, 300));
      }
      if (backend === 'cpu') {
        try {
          // Reload the Keras weights (the scrambled copy was restored above) and save our files.
          writeFileSync(join(OUT, `${stem}.ours.keras`), await saveKerasModel(model));
          writeFileSync(join(OUT, `${stem}.ours.weights.h5`), await saveKerasWeights(model));
          writeFileSync(join(OUT, `${stem}.ours.json`), JSON.stringify({ inputs: spec.inputs, input_names: spec.input_names, outputs: spec.outputs, compare_rows: spec.compare_rows }));
        } catch (e) {
          record(`${stem}: saveKerasModel / saveKerasWeights`, false, e.message.slice(0, 300));
        }
      }
      tf.dispose(inputs);
      model.dispose();
      const leaked = tf.memory().numTensors - before;
      record(`${stem} [${backend}]: dispose() frees every tensor`, leaked === 0, leaked ? `${leaked} tensors left` : '');
    }
  }

  // Models built here in TypeScript → our files → Keras.
  await tf.setBackend('cpu');
  {
    const built = buildTsModels(tf, tfl, GroupedQueryAttention);
    for (const { name, model, inputs } of built) {
      const y = outputsOf(model, inputs);
      const spec = {
        inputs: Object.fromEntries(model.inputNames.map((n, i) => [n, { shape: inputs[i].shape, dtype: inputs[i].dtype, data: Array.from(inputs[i].dataSync()) }])),
        input_names: model.inputNames,
        outputs: y.map((t) => ({ shape: t.shape, data: Array.from(t.dataSync()) })),
      };
      try {
        writeFileSync(join(OUT, `ts_${name}.ours.keras`), await saveKerasModel(model));
        writeFileSync(join(OUT, `ts_${name}.ours.weights.h5`), await saveKerasWeights(model));
        writeFileSync(join(OUT, `ts_${name}.ours.json`), JSON.stringify(spec));
      } catch (e) {
        record(`ts_${name}: saveKerasModel / saveKerasWeights`, false, e.message.slice(0, 300));
      }
      tf.dispose([...y, ...inputs]);
      model.dispose();
    }
  }

  // 3. Keras reads our files.
  const check = spawnSync(PYTHON, [MODELS_PY, 'check', OUT], { env, encoding: 'utf8', maxBuffer: 1 << 26 });
  for (const line of check.stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    const r = JSON.parse(line);
    record(r.check, r.ok, r.detail);
  }
  if (check.status !== 0) record('Keras check script', false, check.stderr.slice(-500));

  const passed = results.filter((r) => r.ok).length;
  console.log(`${passed} passed, ${results.length - passed} failed`);
  process.exitCode = results.length === passed ? 0 : 1;
}

/** Models built with this package's layer and tfjs-layers, with seeded dyadic weights. */
function buildTsModels(tf, tfl, GroupedQueryAttention) {
  const dyadic = (shape, seed, denom) => tf.tidy(() => tf.div(tf.round(tf.randomUniform(shape, -64, 64, 'float32', seed)), denom));
  const seedWeights = (model, seed) => {
    const values = model.weights.map((w, i) => {
      if (/moving_variance/.test(w.name)) return tf.tidy(() => tf.add(tf.abs(dyadic(w.shape, seed + i, 128)), 0.25));
      return dyadic(w.shape, seed + i, /embeddings/.test(w.name) ? 512 : 256);
    });
    model.setWeights(values);
    tf.dispose(values);
  };
  const out = [];
  {
    const x = tfl.input({ shape: [12, 6], name: 'x' });
    let h = tfl.layers.conv1d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', name: 'conv' }).apply(x);
    h = tfl.layers.maxPooling1d({ poolSize: 2, name: 'pool' }).apply(h);
    h = tfl.layers.batchNormalization({ name: 'bn' }).apply(h);
    const gqa = new GroupedQueryAttention({ headDim: 4, numQueryHeads: 4, numKeyValueHeads: 2, name: 'gqa' });
    h = gqa.apply(h, { value: h, useCausalMask: true });
    h = tfl.layers.globalAveragePooling1d({ name: 'gap' }).apply(h);
    const model = tfl.model({ inputs: x, outputs: tfl.layers.dense({ units: 3, name: 'head' }).apply(h), name: 'ts_conv_gqa' });
    seedWeights(model, 10);
    out.push({ name: 'conv_gqa', model, inputs: [dyadic([2, 12, 6], 1, 64)] });
  }
  {
    const tokens = tfl.input({ shape: [8], dtype: 'int32', name: 'tokens' });
    const e = tfl.layers.embedding({ inputDim: 20, outputDim: 8, maskZero: true, name: 'embed' }).apply(tokens);
    const gqa = new GroupedQueryAttention({ headDim: 4, numQueryHeads: 2, numKeyValueHeads: 1, name: 'gqa' });
    let h = gqa.apply(e, { value: e, useCausalMask: true });
    h = tfl.layers.add({ name: 'res' }).apply([e, h]);
    h = tfl.layers.layerNormalization({ name: 'ln' }).apply(h);
    const model = tfl.model({ inputs: tokens, outputs: tfl.layers.dense({ units: 20, name: 'logits' }).apply(h), name: 'ts_masked' });
    seedWeights(model, 20);
    out.push({ name: 'masked', model, inputs: [tf.tensor2d([[3, 5, 7, 1, 0, 0, 0, 0], [2, 4, 6, 8, 10, 12, 14, 0]], [2, 8], 'int32')] });
  }
  {
    const q = tfl.input({ shape: [5, 8], name: 'query' });
    const v = tfl.input({ shape: [7, 8], name: 'value' });
    const k = tfl.input({ shape: [7, 6], name: 'key' });
    const gqa = new GroupedQueryAttention({ headDim: 4, numQueryHeads: 4, numKeyValueHeads: 2, useGate: true, slidingWindow: 3, name: 'gqa' });
    const [o, scores] = gqa.apply(q, { value: v, key: k, returnAttentionScores: true });
    const model = tfl.model({ inputs: [q, v, k], outputs: [tfl.layers.dense({ units: 3, name: 'head' }).apply(o), scores], name: 'ts_key_scores' });
    seedWeights(model, 30);
    out.push({ name: 'key_scores', model, inputs: [dyadic([2, 5, 8], 2, 64), dyadic([2, 7, 8], 3, 64), dyadic([2, 7, 6], 4, 64)] });
  }
  return out;
}

await main();
