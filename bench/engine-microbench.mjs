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
import { rand } from './lib/cases.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
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
    const B = 1;
    let T, S, causal, flops, run, staged = 0;
    if (c.startsWith('prefill')) {
      T = S = Number(c.slice('prefill'.length));
      causal = true;
      const q = rand(B * T * U * H, 1), k = rand(B * S * V * H, 2), v = rand(B * S * V * H, 3);
      const p = { batch: B, queryLength: T, keyLength: S, numQueryHeads: U, numKeyValueHeads: V, headDim: H, query: q, key: k, value: v, causal };
      flops = (4 * B * U * T * S * H) / 2;
      run = () => engine.attention(p);
    } else if (c.startsWith('masked')) {
      T = S = Number(c.slice('masked'.length));
      causal = false;
      const q = rand(B * T * U * H, 1), k = rand(B * S * V * H, 2), v = rand(B * S * V * H, 3);
      const keep = S - S / 8;
      const data = new Uint8Array(B * S).map((_, j) => (j % S < keep ? 1 : 0));
      const mask = { kind: 'bool', data, shape: [B, 1, 1, S] };
      const p = { batch: B, queryLength: T, keyLength: S, numQueryHeads: U, numKeyValueHeads: V, headDim: H, query: q, key: k, value: v, mask };
      flops = 4 * B * U * T * S * H;
      run = () => engine.attention(p);
    } else if (c.startsWith('decode')) {
      T = 1;
      S = Number(c.slice('decode'.length).replace('staged', ''));
      causal = false;
      const stagedInputs = c.endsWith('staged');
      const kb = engine.allocate(B * S * V * H), vb = engine.allocate(B * S * V * H);
      kb.view().set(rand(B * S * V * H, 2));
      vb.view().set(rand(B * S * V * H, 3));
      const q = rand(B * T * U * H, 1);
      const key = stagedInputs ? kb.view().slice() : kb, value = stagedInputs ? vb.view().slice() : vb;
      const p = { batch: B, queryLength: 1, keyLength: S, numQueryHeads: U, numKeyValueHeads: V, headDim: H, query: q, key, value, queryOffset: S - 1 };
      flops = 4 * B * U * T * S * H;
      run = () => engine.attention(p);
    } else throw new Error(`unknown case ${c}`);
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
      'extra MB': +(Math.max(0, grown - staged) / 2 ** 20).toFixed(2), runs: n,
      'CPU ms': +t.cpu.toFixed(3),
    });
    engine.dispose();
  }
}
console.table(rows);
