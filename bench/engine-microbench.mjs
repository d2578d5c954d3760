#!/usr/bin/env node
// Micro-benchmark of the attention engine (src/engine), medians over repeats.
//
//   node bench/engine-microbench.mjs [--threads 1,2] [--repeats 5] [--cases prefill512,prefill2048,decode2048]
//                                    [--shape 32,8,128] [--js] [--plain]
//
// Cases: prefillN (causal, T = S = N), decodeN[staged] (T = 1), maskedN (non-causal, T = S = N, batch 1
// keeps S − S/8 keys through a bool key-padding mask, as the bench's masked case). Under
// `node --experimental-wasm-relaxed-simd` the engine runs the relaxed-SIMD build unless --plain.
// "CPU ms" = process CPU time (all threads) per call over the timed runs: steadier than wall time
// on a shared host, where other processes take the cores in turns.
//
// Bundles src/engine/index.ts with esbuild into bench/results/tmp/ (run `node scripts/build-engine.mjs`
// first). Useful FLOPs = 4·B·U·T·S·H, halved for causal prefill. Decode reads K/V from engine
// buffers (a KV cache in engine memory, no per-step copy); "staged" decode passes Float32Arrays.
// "mem MB" = growth of a fresh engine's WebAssembly memory over the first call (its high-water
// mark: bounded staging of key/value groups and query/output row blocks, scratch, flags,
// partials); "extra MB" = that minus any whole copies of the inputs (none since key/value are
// staged per (batch, kv head) group, so the two columns agree).
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { engineCase, options } from './lib/engine-cases.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = options(args);
const threadsList = opt('threads', '1,2').split(',').map(Number);
const repeats = Number(opt('repeats', '5'));
const cases = opt('cases', 'prefill512,prefill2048,decode2048').split(',');
const [U, V, H] = opt('shape', '32,8,128').split(',').map(Number);
const useJs = args.includes('--js');
const plain = args.includes('--plain');

const outDir = join(root, 'bench', 'results', 'tmp');
await mkdir(outDir, { recursive: true });
const outFile = join(outDir, 'engine-bundle.mjs');
await build({
  entryPoints: [join(root, 'src', 'engine', 'index.ts')],
  bundle: true, format: 'esm', platform: 'node', outfile: outFile, logLevel: 'error',
});
const eng = await import(pathToFileURL(outFile).href);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function time(fn, n) {
  fn(); // warm
  const ts = [];
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
  }
  const cpu = process.cpuUsage(cpu0);
  return { median: median(ts), min: Math.min(...ts), max: Math.max(...ts), cpu: (cpu.user + cpu.system) / 1000 / n };
}

const rows = [];
for (const threads of threadsList) {
  for (const c of cases) {
    const engine = useJs ? eng.createJsEngine() : eng.createAttentionEngineSync({ threads, relaxedSimd: !plain });
    const { problem, T, S, flops } = engineCase(engine, c, U, V, H);
    const run = () => engine.attention(problem);
    const before = engine.memoryBytes();
    run();
    const grown = engine.memoryBytes() - before;
    const n = S >= 2048 && T > 1 ? Math.max(3, Math.min(repeats, 5)) : repeats * 10;
    const t = time(run, n);
    rows.push({
      case: c, threads: engine.threads, kind: engine.kernel ?? engine.kind, shape: `${U}/${V}/${H}`,
      'median ms': +t.median.toFixed(3), 'min ms': +t.min.toFixed(3),
      'GFLOP/s': +(flops / t.median / 1e6).toFixed(1),
      'mem MB': +(grown / 2 ** 20).toFixed(2),
      'extra MB': +(Math.max(0, grown) / 2 ** 20).toFixed(2), runs: n,
      'CPU ms': +t.cpu.toFixed(3),
    });
    engine.dispose();
  }
}
console.table(rows);
