// Training cases of `npm run bench -- --training`: forward + backward of the op and one layer fit
// step, fused (engine backward) against the Keras-way composition with tfjs autodiff, on tfjs-wasm,
// causal. Reports medians (wall clock, and the process CPU time of the same runs), same-run ratios,
// peak tfjs tensor bytes (tf.profile) and engine memory growth. Writes bench/results/runs/training.json (bench/results/ with --reference).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const benchDir = join(dirname(fileURLToPath(import.meta.url)), '..');

const CASES = [
  [1, 1024, 8, 2, 64],
  [1, 2048, 8, 2, 64],
  [1, 2048, 32, 8, 128],
];
/** The composition materialises (B,U,T,S) several times: skip it beyond this score buffer. */
const COMPOSITE_SCORE_LIMIT = 64 << 20;

function parse(argv) {
  const a = { quick: false, dist: join(benchDir, '..', 'dist'), reps: 5, cases: null, reference: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--training') continue;
    else if (k === '--quick') a.quick = true;
    else if (k === '--reference') a.reference = true;
    else if (k === '--dist') a.dist = argv[++i];
    else if (k === '--reps') a.reps = Number(argv[++i]);
    else if (k === '--cases') a.cases = argv[++i].split(',');
    else throw new Error(`training bench: unknown option ${k}`);
  }
  return a;
}

const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
const mib = (b) => (b / 1048576).toFixed(1);

export async function main(argv) {
  const a = parse(argv);
  const tf = await import('@tensorflow/tfjs-core');
  await import('@tensorflow/tfjs-backend-wasm');
  const tfl = await import('@tensorflow/tfjs-layers');
  const gqa = await import(join(a.dist, 'index.js'));
  const { getDefaultEngine } = await import(join(a.dist, 'engine', 'index.js'));
  await tf.setBackend('wasm');
  await tf.ready();
  const engine = getDefaultEngine();
  const { loadavg } = await import('node:os');
  console.log(`training bench: tfjs-wasm, engine ${engine.kind} ${engine.threads} thread(s), load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  // Wall-clock median; the median process CPU time (every thread: the engine's workers are
  // threads of this process) of the same runs goes to `lastCpuMs`. On a shared, busy host the CPU
  // ratios are steadier than the wall-clock ones.
  const cpuMs = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  let lastCpuMs = 0;
  const time = (f, reps) => {
    f();
    const ts = [];
    const cs = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      const c0 = cpuMs();
      f();
      ts.push(performance.now() - t0);
      cs.push(cpuMs() - c0);
    }
    lastCpuMs = median(cs);
    return median(ts);
  };
  const results = [];
  let cases = a.quick ? CASES.slice(0, 1) : CASES;
  // Cases are named BxTxUxVxH, e.g. --cases 1x2048x8x2x64.
  if (a.cases) cases = cases.filter((c) => a.cases.includes(c.join('x')));
  for (const [B, T, U, V, H] of cases) {
    const reps = T * U * H > 2048 * 16 * 128 ? Math.max(1, Math.floor(a.reps / 2)) : a.reps;
    const q = tf.randomNormal([B, T, U, H], 0, 1, 'float32', 1);
    const k = tf.randomNormal([B, T, V, H], 0, 1, 'float32', 2);
    const v = tf.randomNormal([B, T, V, H], 0, 1, 'float32', 3);
    const opts = { causal: true };
    const drop = { causal: true, dropout: 0.1, training: true, seed: 1 };
    const loss = (f, o) => (x, y, z) => tf.sum(f(x, y, z, o));
    const grads = (f, o) => {
      const g = tf.grads(loss(f, o));
      return () => tf.tidy(() => g([q, k, v]).forEach((t) => t.dataSync()));
    };
    const row = { shape: { B, T, U, V, H }, causal: true };
    row.forwardMs = time(() => tf.tidy(() => { gqa.groupedQueryAttention(q, k, v, opts).dataSync(); }), reps);
    row.forwardCpuMs = lastCpuMs;
    const engineBefore = engine.memoryBytes();
    row.fusedForwardBackwardMs = time(grads(gqa.groupedQueryAttention, opts), reps);
    row.fusedForwardBackwardCpuMs = lastCpuMs;
    row.engineGrowthMiB = Number(mib(engine.memoryBytes() - engineBefore));
    row.fusedDropoutForwardBackwardMs = time(grads(gqa.groupedQueryAttention, drop), reps);
    row.fusedDropoutForwardBackwardCpuMs = lastCpuMs;
    const prof = await tf.profile(grads(gqa.groupedQueryAttention, opts));
    row.fusedPeakTensorMiB = Number(mib(prof.peakBytes));
    const scores = 4 * B * U * T * T;
    if (scores <= COMPOSITE_SCORE_LIMIT) {
      row.compositeForwardBackwardMs = time(grads(gqa.groupedQueryAttentionReference, opts), Math.min(reps, 3));
      const cprof = await tf.profile(grads(gqa.groupedQueryAttentionReference, opts));
      row.compositePeakTensorMiB = Number(mib(cprof.peakBytes));
    } else {
      row.compositeForwardBackwardMs = null;
      row.compositeNote = `skipped: one (B,U,T,S) buffer is ${mib(scores)} MiB`;
    }
    // One layer fit step (trainOnBatch), fused against flashAttention: false (the composition).
    const D = 64;
    const step = async (flash) => {
      const input = tfl.input({ shape: [T, D] });
      const layer = new gqa.GroupedQueryAttention({ headDim: H, numQueryHeads: U, numKeyValueHeads: V, flashAttention: flash ? null : false });
      const model = tfl.model({ inputs: input, outputs: layer.apply(input, { value: input, useCausalMask: true }) });
      model.compile({ optimizer: tf.train.adam(1e-3), loss: 'meanSquaredError' });
      const x = tf.randomNormal([B, T, D], 0, 1, 'float32', 4);
      const y = tf.randomNormal([B, T, D], 0, 1, 'float32', 5);
      await model.trainOnBatch(x, y);
      const ts = [];
      for (let i = 0; i < Math.min(reps, 3); i++) {
        const t0 = performance.now();
        await model.trainOnBatch(x, y);
        ts.push(performance.now() - t0);
      }
      tf.dispose([x, y]);
      model.dispose();
      return median(ts);
    };
    row.layerFitStepFusedMs = await step(true);
    row.layerFitStepCompositeMs = scores <= COMPOSITE_SCORE_LIMIT ? await step(false) : null;
    // The forward again after the other rows: the first timing of a process runs on a colder engine
    // (memory growth, workers waking up); the smaller median is kept. (The tidy returns nothing: it
    // walks whatever its function returns, element by element for a typed array.)
    const again = time(() => tf.tidy(() => { gqa.groupedQueryAttention(q, k, v, opts).dataSync(); }), reps);
    row.forwardCpuMs = Math.min(row.forwardCpuMs, lastCpuMs);
    row.forwardMs = Math.min(row.forwardMs, again);
    row.ratioFwdBwdToForward = row.fusedForwardBackwardMs / row.forwardMs;
    row.ratioFwdBwdToForwardCpu = row.fusedForwardBackwardCpuMs / row.forwardCpuMs;
    row.ratioDropout = row.fusedDropoutForwardBackwardMs / row.fusedForwardBackwardMs;
    row.ratioDropoutCpu = row.fusedDropoutForwardBackwardCpuMs / row.fusedForwardBackwardCpuMs;
    row.speedupOverComposite = row.compositeForwardBackwardMs ? row.compositeForwardBackwardMs / row.fusedForwardBackwardMs : null;
    tf.dispose([q, k, v]);
    results.push(row);
    const f = (x) => (x == null ? '   -   ' : x.toFixed(1).padStart(7));
    console.log(`(B,T,U,V,H)=(${B},${T},${U},${V},${H}) causal: forward ${f(row.forwardMs)} ms | fwd+bwd fused ${f(row.fusedForwardBackwardMs)} ms ` +
      `(${row.ratioFwdBwdToForward.toFixed(2)}x forward), dropout 0.1 ${f(row.fusedDropoutForwardBackwardMs)} ms (${row.ratioDropout.toFixed(2)}x), ` +
      `CPU time: forward ${f(row.forwardCpuMs)} ms, fwd+bwd ${f(row.fusedForwardBackwardCpuMs)} ms (${row.ratioFwdBwdToForwardCpu.toFixed(2)}x), ` +
      `dropout ${row.ratioDropoutCpu.toFixed(2)}x | ` +
      `composite autodiff ${f(row.compositeForwardBackwardMs)} ms${row.speedupOverComposite ? ` (fused ${row.speedupOverComposite.toFixed(1)}x faster)` : ''} | ` +
      `peak tensors fused ${row.fusedPeakTensorMiB} MiB, composite ${row.compositePeakTensorMiB ?? '-'} MiB | engine growth ${row.engineGrowthMiB} MiB | ` +
      `layer fit step fused ${f(row.layerFitStepFusedMs)} ms, composite ${f(row.layerFitStepCompositeMs)} ms`);
  }
  // Runs land in the untracked runs folder, like the inference bench's (--reference writes the committed copy).
  const outDir = a.reference ? join(benchDir, 'results') : join(benchDir, 'results', 'runs');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, a.quick ? 'training-quick.json' : 'training.json'),
    JSON.stringify({ date: new Date().toISOString(), loadavg: loadavg(), threads: engine.threads, results }, null, 2));
}
