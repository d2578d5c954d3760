// Runs the benchmark: ceilings first, then for every case one fresh process per row, interleaved
// timed runs, statistics, the table on stdout, and JSON + SVG + text under bench/results/.
import { fork } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { allCases, inputBytes, kvBytes, scoreBytes, usefulFlops } from './cases.mjs';
import { caseHeader, svgChart, tableHeader, tableRow } from './report.mjs';
import { ROWS, rowExecArgv } from './rows.mjs';

const benchDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const rootDir = join(benchDir, '..');
const childPath = join(benchDir, 'lib', 'child.mjs');

function parseArgs(argv) {
  const a = { quick: false, only: null, cases: null, dist: join(rootDir, 'dist'), budgetMin: null, maxCallS: null,
    maxRowGB: 4, ceilings: true, out: null, reference: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const val = () => argv[++i];
    if (k === '--quick') a.quick = true;
    else if (k === '--only') a.only = val().split(',');
    else if (k === '--cases') a.cases = val().split(',');
    else if (k === '--dist') a.dist = resolve(val());
    else if (k === '--budget-min') a.budgetMin = Number(val());
    else if (k === '--max-call-s') a.maxCallS = Number(val());
    else if (k === '--max-row-gb') a.maxRowGB = Number(val());
    else if (k === '--no-ceilings') a.ceilings = false;
    else if (k === '--out') a.out = val();
    else if (k === '--reference') a.reference = true;
    else if (k === '--report') a.report = resolve(val());
    else if (k === '--help' || k === '-h') a.help = true;
    else throw new Error(`unknown option ${k} (see --help)`);
  }
  a.budgetMin ??= a.quick ? 1.6 : 30;
  a.maxCallS ??= a.quick ? 1 : 3;
  a.out ??= a.quick ? 'quick' : 'full';
  return a;
}

const HELP = `npm run bench [-- options]     (node bench/run.mjs [options])
  --quick            small subset, < 2 minutes
  --only a,b         rows whose id contains one of these (ids: ${ROWS.map((r) => r.id).join(', ')})
  --cases a,b        cases whose id contains one of these (e.g. "decode", "U14/V2", "B4", "S2048")
  --dist DIR         root build to import this package's rows from (default: dist/)
  --budget-min N     stop starting new cases after N minutes (default 30, quick 1.6)
  --max-call-s N     skip a row when one call is predicted to take longer (default 3, quick 1)
  --max-row-gb N     skip a row whose predicted extra memory exceeds N GB (default 4)
  --no-ceilings      skip the GEMM / bandwidth ceilings
  --training         the training cases instead (op forward + backward, layer fit step, peak tensor
                     bytes, engine memory; with --quick: the first case only; --reps N;
                     --cases 1x2048x8x2x64 picks cases by BxTxUxVxH)
  --out NAME         results file name (default full / quick), written under bench/results/runs/ (untracked)
  --reference        write under bench/results/ instead: the committed reference results the README quotes
  --report FILE      print the table of a results JSON again (and rewrite its SVG), without running`;

const median = (xs) => quantile(xs, 0.5);
function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (pos - lo);
}

/** A child process with a one-message-at-a-time RPC; `flags`: extra Node flags (relaxed SIMD). */
function spawnChild(flags = []) {
  const child = fork(childPath, [], {
    execArgv: ['--expose-gc', '--max-old-space-size=8192', ...flags],
    serialization: 'advanced',
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr = (stderr + d).slice(-2000); });
  let pending = null;
  child.on('message', (m) => { const p = pending; pending = null; p?.resolve(m); });
  child.on('exit', (code, sig) => {
    const p = pending; pending = null;
    p?.resolve({ ok: false, error: `process exited (${sig ?? code})${stderr ? `: ${stderr.trim().split('\n').slice(-2).join(' | ')}` : ''}` });
  });
  return {
    rpc(msg, timeoutMs = 600000) {
      return new Promise((res) => {
        const timer = setTimeout(() => { child.kill('SIGKILL'); }, timeoutMs);
        pending = { resolve: (m) => { clearTimeout(timer); res(m); } };
        child.send(msg);
      });
    },
    kill() { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); },
  };
}

const family = (c) => (c.kind === 'decode' ? 'decode' : 'prefill');

function meta(args) {
  let commit = null;
  try { commit = execFileSync('git', ['-C', rootDir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim(); } catch { /* no git */ }
  const ver = (p) => { try { return JSON.parse(readFileSync(p, 'utf8')).version; } catch { return null; } };
  return {
    date: new Date().toISOString(), node: process.version, cpu: cpus()[0]?.model, cores: cpus().length,
    memGB: +(totalmem() / 2 ** 30).toFixed(1), commit, mode: args.quick ? 'quick' : 'full',
    versions: {
      'onnxruntime-node': ver(join(benchDir, 'node_modules/onnxruntime-node/package.json')),
      'onnxruntime-web': ver(join(benchDir, 'node_modules/onnxruntime-web/package.json')),
      '@tensorflow/tfjs-core': ver(join(rootDir, 'node_modules/@tensorflow/tfjs-core/package.json')),
    },
  };
}

async function measureCeilings(args) {
  const list = [
    ['gemm-ort-node', 1], ['gemm-ort-node', 2], ['gemm-ort-web', 1], ['gemm-ort-web', 2], ['gemm-tfjs-wasm', 1],
    ['gemm-wasm-simd', 1], ['gemm-wasm-relaxed', 1], ['memory', 1],
  ];
  const res = {};
  for (const [name, threads] of list) {
    const ch = spawnChild(rowExecArgv({ relaxedSimd: name === 'gemm-wasm-relaxed' }));
    const r = await ch.rpc({ cmd: 'ceiling', name, threads, quick: args.quick }, 300000);
    ch.kill();
    res[`${name}${name === 'memory' ? '' : `-t${threads}`}`] = r.ok ? r.result : { error: r.error };
  }
  return res;
}

function printCeilings(ce) {
  const g = (k) => (ce[k]?.gflops != null ? `${ce[k].gflops} GFLOP/s` : `n/a (${ce[k]?.error ?? 'not measured'})`);
  console.log('Machine ceilings (fp32; fastest of repeated N×N×N matMuls):');
  console.log(`  native GEMM  (onnxruntime-node MatMul, MLAS):      1t ${g('gemm-ort-node-t1')}, 2t ${g('gemm-ort-node-t2')}`);
  console.log(`  WASM SIMD GEMM (onnxruntime-web MatMul):           1t ${g('gemm-ort-web-t1')}, 2t ${g('gemm-ort-web-t2')}`);
  console.log(`  WASM SIMD GEMM (tfjs-wasm 2-D matMul, XNNPACK):    1t ${g('gemm-tfjs-wasm-t1')}`);
  console.log(`  WASM GEMM micro-kernel (this package's madd, L2):  1t SIMD128 ${g('gemm-wasm-simd-t1')}, relaxed SIMD ${g('gemm-wasm-relaxed-t1')}`);
  const m = ce.memory;
  console.log(m?.readGBs ? `  memory bandwidth (${m.mib} MiB): streaming read (WASM SIMD sum) ${m.readGBs} GB/s, copy (TypedArray.set, read+write) ${m.copyGBs} GB/s`
    : `  memory bandwidth: n/a (${m?.error ?? 'not measured'})`);
  console.log('  %ceil below = GFLOP/s ÷ native GEMM at the row\'s thread count (prefill, masked) or K+V GB/s ÷ streaming read (decode);');
  console.log('  %wasm = GFLOP/s per thread ÷ the WASM GEMM micro-kernel of the row\'s build (relaxed rows: relaxed SIMD), per thread.');
}

export async function main(argv) {
  if (argv.includes('--training')) {
    // Training cases (op forward + backward, a layer fit step): bench/lib/training.mjs.
    const { main: training } = await import('./training.mjs');
    return training(argv);
  }
  const args = parseArgs(argv);
  if (args.help) { console.log(HELP); return; }
  if (args.report) { rerender(args.report); return; }
  const t0 = Date.now();
  const resultsDir = join(benchDir, 'results');
  const tmpDir = join(resultsDir, 'tmp');
  mkdirSync(tmpDir, { recursive: true });
  const doc = { meta: meta(args), args: { ...args, dist: args.dist }, ceilings: null, cases: [] };
  doc.title = `grouped-query-attention bench (${doc.meta.mode}) · ${doc.meta.cpu ?? ''} · ${doc.meta.cores} cores · ${doc.meta.date.slice(0, 16)}`;
  console.log(doc.title);
  console.log(`node ${doc.meta.node} · ${Object.entries(doc.meta.versions).map(([k, v]) => `${k} ${v}`).join(' · ')} · fp32 · Keras layouts (B,T,U,H)/(B,S,V,H)`);

  if (args.ceilings) {
    doc.ceilings = await measureCeilings(args);
    printCeilings(doc.ceilings);
  }

  const rows = ROWS.filter((r) => !args.only || args.only.some((s) => r.id.includes(s)));
  const unavailable = new Map();
  for (const r of rows) {
    const file = r.impl === 'engine' ? join(args.dist, 'engine', 'index.js') : r.opts.variant === 'package' ? join(args.dist, 'index.js') : null;
    if (file && !existsSync(file)) unavailable.set(r.id, `not built yet (${file.slice(rootDir.length + 1)} missing; npm run build)`);
  }
  const cases = allCases(args.quick).filter((c) => !args.cases || args.cases.some((s) => c.id.includes(s)));
  console.log(`\n${cases.length} cases × ${rows.length} rows; runs interleaved across rows (one process per row and case); ` +
    `medians of ≥10 runs (3 when a call takes > 1 s), p10/p90. "* " = this package. ` +
    `Max error vs a float64 reference over ${'≤384'} sampled output rows (! = above 1e-4).`);
  console.log(`Skips: calls predicted over ${args.maxCallS} s (from the row's measured rate, or a prior), extra memory over ${args.maxRowGB} GB, ` +
    `time budget ${args.budgetMin} min.`);

  const rates = new Map(); // rowId/family -> {gflops, at}
  const ce = doc.ceilings ?? {};
  const peakFor = (threads) => ce[`gemm-ort-node-t${threads}`]?.gflops;

  for (const c of cases) {
    const flops = usefulFlops(c);
    const entry = { case: c, flops, results: [] };
    doc.cases.push(entry);
    console.log(`${caseHeader(c, flops)}  [t+${((Date.now() - t0) / 1000).toFixed(0)} s]`);
    console.log(tableHeader());
    const active = [];
    const elapsedMin = (Date.now() - t0) / 60000;
    // 1. Which rows run: availability, time budget, memory, and the predicted time of one call. The
    //    per-call limit is --max-call-s, raised to 3× the fastest row's prediction so that every case
    //    keeps its fastest rows.
    const plans = [];
    for (const row of rows) {
      const base = { rowId: row.id, label: row.label, threads: row.threads, ours: !!row.ours };
      const skip = (reason, status = 'skipped') => entry.results.push({ ...base, status, reason });
      if (unavailable.has(row.id)) { skip(unavailable.get(row.id)); continue; }
      if (elapsedMin > args.budgetMin) { skip(`time budget of ${args.budgetMin} min used up`); continue; }
      const memB = (row.memFactor ?? 0) * scoreBytes(c) + 3 * inputBytes(c);
      if (memB > args.maxRowGB * 2 ** 30) { skip(`needs ~${(memB / 2 ** 30).toFixed(1)} GB (materialises B·U·T·S scores) > --max-row-gb ${args.maxRowGB}`); continue; }
      if (row.wasmHeap && memB > 3.5 * 2 ** 30) { skip(`needs ~${(memB / 2 ** 30).toFixed(1)} GB, over the 4 GB wasm32 heap`); continue; }
      const known = rates.get(`${row.id}/${family(c)}`);
      const gfs = known?.gflops ?? row.rate[family(c)];
      plans.push({ row, base, skip, known, gfs, predS: (1.3 * flops) / (gfs * 1e9) });
    }
    const limitS = Math.max(args.maxCallS, 3 * Math.min(...plans.map((p) => p.predS)));
    const runnable = [];
    for (const p of plans) {
      if (p.predS > limitS) {
        const { known, gfs } = p;
        p.skip(`predicted ~${p.predS.toFixed(1)} s per call (${known?.bound ? '≤' : ''}${gfs.toFixed(2)} GFLOP/s ${known ? `${known.bound ? 'bound' : 'measured'} at ${known.at}` : 'prior'}) > ${limitS.toFixed(1)} s`);
      } else runnable.push(p);
    }
    // 2. Start the processes and set the rows up, two at a time (imports, inputs, sessions).
    const setups = new Map();
    let next = 0;
    await Promise.all([0, 1].map(async () => {
      while (next < runnable.length) {
        const p = runnable[next++];
        const child = spawnChild(rowExecArgv(p.row));
        setups.set(p, { child, set: await child.rpc({ cmd: 'setup', row: p.row, case: c, distDir: args.dist, tmpDir }, 180000) });
      }
    }));
    // 3. One row at a time: the first call (correctness check, cold memory), then a warm-up call.
    for (const p of runnable) {
      const { row, base, skip } = p;
      const { child, set } = setups.get(p);
      if (!set.ok) {
        child.kill();
        const importFail = row.ours && /ERR_MODULE_NOT_FOUND|Cannot find module|exports no|SyntaxError|does not provide an export/.test(set.error);
        if (importFail) unavailable.set(row.id, `import failed: ${set.error.slice(0, 160)}`);
        skip(importFail ? `import failed: ${set.error.slice(0, 160)}` : set.error.slice(0, 300), importFail ? 'skipped' : 'error');
        continue;
      }
      // A first call far over the limit is stopped and the row skipped.
      const capMs = 3 * limitS * 1000;
      const first = await child.rpc({ cmd: 'first' }, capMs);
      if (!first.ok) {
        child.kill();
        if (/SIGKILL/.test(first.error)) {
          rates.set(`${row.id}/${family(c)}`, { gflops: flops / capMs / 1e6, at: c.id.replace(/^\S+ /, ''), bound: true });
          skip(`first call stopped after ${(capMs / 1000).toFixed(0)} s (3× the per-call limit)`);
        } else skip(first.error.slice(0, 300), 'error');
        continue;
      }
      if (first.firstMs > 1.5 * limitS * 1000) {
        child.kill();
        rates.set(`${row.id}/${family(c)}`, { gflops: flops / first.firstMs / 1e6, at: c.id.replace(/^\S+ /, '') });
        skip(`one call took ${(first.firstMs / 1000).toFixed(1)} s (> 1.5× the ${limitS.toFixed(1)} s limit), not timed; max err ${first.maxErr.toExponential(0)}`);
        continue;
      }
      // A call over 1 s was its own warm-up; otherwise one more call (and tf.profile for tfjs rows).
      const warm = first.firstMs > 1000 && !row.impl.startsWith('tfjs') ? { ok: true, warmMs: first.firstMs } : await child.rpc({ cmd: 'warm' }, 600000);
      if (!warm.ok) { child.kill(); skip(warm.error.slice(0, 300), 'error'); continue; }
      const init = { ...set, ...first, ...warm };
      const n = init.warmMs > 1000 ? 3 : init.warmMs < 50 && !args.quick ? 15 : 10;
      active.push({ row, base, child, init, n, times: [] });
    }
    // Interleaved timed runs: round r runs every row once, starting at a rotating position.
    const rounds = Math.max(0, ...active.map((a) => a.n));
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < active.length; i++) {
        const a = active[(i + r) % active.length];
        if (a.times.length >= a.n || a.failed) continue;
        const res = await a.child.rpc({ cmd: 'run' }, 600000);
        if (res.ok) a.times.push(res.ms);
        else a.failed = res.error;
      }
    }
    for (const a of active) {
      const fin = a.failed ? { ok: false } : await a.child.rpc({ cmd: 'finish' }, 60000);
      a.child.kill();
      if (a.failed) { entry.results.push({ ...a.base, status: 'error', reason: a.failed.slice(0, 300) }); continue; }
      const ms = a.times;
      const kernel = fin.ok && Array.isArray(fin.kernelMs) && fin.kernelMs.length >= ms.length ? fin.kernelMs.slice(-ms.length) : null;
      const medianMs = median(ms);
      const r = {
        ...a.base, status: 'ok', runs: ms.length, medianMs, p10Ms: quantile(ms, 0.1), p90Ms: quantile(ms, 0.9), timesMs: ms,
        kernelMedianMs: kernel ? median(kernel) : null, kernelP10Ms: kernel ? quantile(kernel, 0.1) : null,
        kernelP90Ms: kernel ? quantile(kernel, 0.9) : null,
        gflops: flops / medianMs / 1e6, kernelGflops: kernel ? flops / median(kernel) / 1e6 : null,
        gbs: c.kind === 'decode' ? kvBytes(c) / medianMs / 1e6 : null,
        extraMB: a.init.extraMB, tensorPeakMB: a.init.tensorPeakMB, firstMs: a.init.firstMs,
        maxErr: a.init.maxErr, maxRef: a.init.maxRef, checkFailed: !(a.init.maxErr <= 1e-4), notes: a.init.notes,
      };
      if (c.kind === 'decode') r.pctCeiling = ce.memory?.readGBs ? (100 * r.gbs) / ce.memory.readGBs : null;
      else r.pctCeiling = peakFor(a.row.threads) ? (100 * r.gflops) / peakFor(a.row.threads) : null;
      // Engine rows: per-thread GFLOP/s against the WASM GEMM micro-kernel of the same build.
      const wasmPeak = ce[a.row.relaxedSimd ? 'gemm-wasm-relaxed-t1' : 'gemm-wasm-simd-t1']?.gflops;
      r.pctWasm = a.row.impl === 'engine' && c.kind !== 'decode' && wasmPeak ? (100 * r.gflops) / a.row.threads / wasmPeak : null;
      rates.set(`${a.row.id}/${family(c)}`, { gflops: r.gflops, at: c.id.replace(/^\S+ /, '') });
      entry.results.push(r);
    }
    rankCase(entry);
    printCaseRows(entry);
  }

  doc.elapsedS = (Date.now() - t0) / 1000;
  // Runs land in an untracked folder; the committed reference results change only with --reference.
  const outDir = args.reference ? resultsDir : join(resultsDir, 'runs');
  mkdirSync(outDir, { recursive: true });
  const stem = join(outDir, args.out);
  const usedRows = rows.filter((r) => doc.cases.some((x) => x.results.some((q) => q.rowId === r.id && q.status === 'ok')));
  for (const entry of doc.cases) rankCase(entry);
  writeDoc(`${stem}.json`, doc);
  writeFileSync(`${stem}.svg`, `${svgChart(doc, usedRows)}\n`);
  printSummary(doc);
  console.log(`\nDone in ${doc.elapsedS.toFixed(0)} s. Wrote ${[`${stem}.json`, `${stem}.svg`].map((p) => p.slice(rootDir.length + 1)).join(', ')}.`);
  console.log('Columns: median/p10–p90 = JS-visible wall time per call; kernel ms = ORT profiler kernel time (onnxruntime-node); ' +
    'GFLOP/s = useful 4·B·U·T·S·H (causal halved) ÷ median; GB/s = K+V bytes ÷ median (decode); ' +
    'extra MB = peak RSS growth over the first call in a fresh process (includes outputs); ×peer = median ÷ the fastest correct peer (not this package) of the case.');
}

/** Ratios to the fastest correct peer (×peer) and to the fastest correct row; rows sorted by median. */
function rankCase(entry) {
  const ok = entry.results.filter((r) => r.status === 'ok' && !r.checkFailed);
  const bestPeer = Math.min(...ok.filter((r) => !r.ours).map((r) => r.medianMs));
  const best = Math.min(...ok.map((r) => r.medianMs));
  for (const r of entry.results)
    if (r.status === 'ok') {
      r.ratio = Number.isFinite(bestPeer) ? r.medianMs / bestPeer : null;
      r.ratioToBest = r.medianMs / best;
    }
  const order = (r) => (r.status === 'ok' ? r.medianMs : Infinity);
  entry.results.sort((x, y) => order(x) - order(y));
}

function printCaseRows(entry) {
  for (const r of entry.results) console.log(tableRow(r));
  const byNote = new Map();
  for (const r of entry.results) for (const n of r.notes ?? []) byNote.set(n, [...(byNote.get(n) ?? []), r.rowId]);
  for (const [n, ids] of byNote) console.log(`   note: ${ids.join(', ')}: ${n}`);
}

/** JSON with one line per case, numbers rounded to 6 significant digits. */
function writeDoc(file, doc) {
  const round = (_k, v) => (typeof v === 'number' && !Number.isInteger(v) ? Number(v.toPrecision(6)) : v);
  const { cases, ...head } = doc;
  const headJson = JSON.stringify(head, round, 1).replace(/\n}$/, '');
  writeFileSync(file, `${headJson},\n "cases": [\n${cases.map((x) => JSON.stringify(x, round)).join(',\n')}\n ]\n}\n`);
}

/** One line per case: fastest peer against this package's fastest row. */
function printSummary(doc) {
  console.log('\nSummary: fastest correct peer vs this package\'s fastest row (median ms; ratio < 1 = this package is faster)');
  const line = (a, b, c, d, e) => console.log(`${a.padEnd(36)} ${b.padStart(10)}  ${c.padEnd(44)} ${d.padStart(10)}  ${e}`);
  line('case', 'peer ms', 'fastest peer / this package row', 'ours ms', 'ours/peer');
  for (const x of doc.cases) {
    const ok = x.results.filter((r) => r.status === 'ok' && !r.checkFailed);
    const peer = ok.filter((r) => !r.ours).sort((a, b) => a.medianMs - b.medianMs)[0];
    const ours = ok.filter((r) => r.ours).sort((a, b) => a.medianMs - b.medianMs)[0];
    const f = (r) => (r ? (r.medianMs >= 100 ? r.medianMs.toFixed(0) : r.medianMs.toFixed(2)) : '–');
    const short = (r) => (r ? r.rowId : 'none');
    line(x.case.id, f(peer), `${short(peer)} / ${short(ours)}`, f(ours), peer && ours ? (ours.medianMs / peer.medianMs).toFixed(2) : '–');
  }
}

/** Re-renders the table, summary and SVG of a results JSON (--report FILE). */
export function rerender(file) {
  const doc = JSON.parse(readFileSync(file, 'utf8'));
  console.log(doc.title);
  console.log(`node ${doc.meta.node} · ${Object.entries(doc.meta.versions).map(([k, v]) => `${k} ${v}`).join(' · ')} · commit ${doc.meta.commit}`);
  if (doc.ceilings) printCeilings(doc.ceilings);
  for (const entry of doc.cases) {
    console.log(caseHeader(entry.case, entry.flops));
    console.log(tableHeader());
    rankCase(entry);
    printCaseRows(entry);
  }
  printSummary(doc);
  const rowIds = new Set(doc.cases.flatMap((x) => x.results.filter((r) => r.status === 'ok').map((r) => r.rowId)));
  writeFileSync(file.replace(/\.json$/, '.svg'), `${svgChart(doc, ROWS.filter((r) => rowIds.has(r.id)))}\n`);
  writeDoc(file, doc);
}
