#!/usr/bin/env node
// Where an engine call's time goes: a CPU profile of one thread, by kernel function.
//
//   node [--experimental-wasm-relaxed-simd] bench/engine-profile.mjs [--case masked512] [--shape 14,2,64]
//                                                                     [--calls 40] [--plain]
//
// Cases as bench/engine-microbench.mjs: prefillN (causal, T = S = N), maskedN (bool key padding keeping
// S − S/8 keys), decodeN (T = 1, K/V in engine memory). One thread, so every sample is the calling
// thread's. Runs dist/ (run `npm run build` first).
//
// The kernels ship without a name section, so V8 reports `wasm-function[i]`. This script compiles the
// same source with the same flags plus `--debug` (names only: it checks that every function body has
// the same size as in the shipped build, else it prints raw indices) and maps the indices to names,
// then groups them: Q·Kᵀ, P·V, softmax, masks, the rest of a task, and the host's JavaScript.
import { Session } from 'node:inspector';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { compileAssemblyScript, RELAXED_SIMD_FLAGS } from '../scripts/lib/asc-compile.mjs';
import { engineCase, options } from './lib/engine-cases.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = options(args);
const which = opt('case', 'masked512');
const [U, V, H] = opt('shape', '14,2,64').split(',').map(Number);
const calls = Number(opt('calls', '40'));
const plain = args.includes('--plain');

const eng = await import(pathToFileURL(join(root, 'dist', 'engine', 'index.js')).href);
const kernels = await import(pathToFileURL(join(root, 'dist', 'engine', 'wasm', 'generated', 'kernel.js')).href);
const engine = eng.createAttentionEngineSync({ threads: 1, relaxedSimd: !plain });
const relaxed = engine.kernel === 'wasm-relaxed-simd';

const { problem } = engineCase(engine, which, U, V, H);

// ---- function names from a --debug build of the same source ------------------------------------
const flags = [
  '-O3', '--noAssert', '--runtime', 'stub', '--importMemory', '--noExportMemory', '--initialMemory', '1',
  '--maximumMemory', '65536', '--enable', 'simd', '--enable', 'threads', '--use', 'abort=',
  ...(relaxed ? RELAXED_SIMD_FLAGS : []),
];
const shipped = Buffer.from(relaxed ? kernels.KERNEL_RELAXED_SINGLE_BASE64 : kernels.KERNEL_SINGLE_BASE64, 'base64');
const named = await compileAssemblyScript(join(root, 'wasm', 'flash.ts'), [...flags, '--debug']);

function leb(buf, p) {
  let value = 0;
  let shift = 0;
  let n = 0;
  for (;;) {
    const x = buf[p + n++];
    value |= (x & 0x7f) << shift;
    shift += 7;
    if (!(x & 0x80)) return [value >>> 0, n];
  }
}
/** Sections of a module: { code: body sizes, names: Map(index -> name) }. */
function readModule(buf) {
  const bodies = [];
  const names = new Map();
  let p = 8;
  while (p < buf.length) {
    const id = buf[p++];
    const [size, n] = leb(buf, p);
    p += n;
    const end = p + size;
    if (id === 10) {
      const [count, m] = leb(buf, p);
      let q = p + m;
      for (let i = 0; i < count; i++) {
        const [bodySize, k] = leb(buf, q);
        bodies.push(bodySize);
        q += k + bodySize;
      }
    } else if (id === 0) {
      const [nameLength, m] = leb(buf, p);
      const sectionName = buf.subarray(p + m, p + m + nameLength).toString('utf8');
      let q = p + m + nameLength;
      while (sectionName === 'name' && q < end) {
        const kind = buf[q++];
        const [subSize, k] = leb(buf, q);
        q += k;
        if (kind === 1) {
          const [count, c] = leb(buf, q);
          let r = q + c;
          for (let i = 0; i < count; i++) {
            const [index, a] = leb(buf, r);
            r += a;
            const [len, b] = leb(buf, r);
            r += b;
            names.set(index, buf.subarray(r, r + len).toString('utf8'));
            r += len;
          }
        }
        q += subSize;
      }
    }
    p = end;
  }
  return { bodies, names };
}
const mine = readModule(shipped);
const theirs = readModule(named);
const sameBodies = mine.bodies.length === theirs.bodies.length && mine.bodies.every((s, i) => s === theirs.bodies[i]);
const nameOf = (i) => (sameBodies ? (theirs.names.get(i) ?? `wasm-function[${i}]`) : `wasm-function[${i}]`);

/** The group of a frame: kernel functions by name, everything else is the host's. */
function groupOf(name, isWasm) {
  if (!isWasm) return name === '(idle)' || name === '(program)' || name === '(garbage collector)' ? name : 'host JavaScript';
  if (/computeLogits|tailDots/.test(name)) return 'Q·Kᵀ (computeLogits)';
  if (/accumulatePV/.test(name)) return 'P·V (accumulatePV)';
  if (/softmax|expf/.test(name)) return 'softmax (softmaxTile, exp)';
  if (/mask|boolTile|setupRows|Allowed|band/i.test(name)) return 'masks and bands';
  if (/maxAbs|scan/i.test(name)) return 'input scans (exact rows)';
  if (/reduce/i.test(name)) return 'key-chunk reduction';
  return 'rest of a task (runTask: pack Q, normalise, write)';
}

// ---- profile ----------------------------------------------------------------------------------
engine.attention(problem); // warm: staging memory and scratch grow on the first call
const session = new Session();
session.connect();
const post = (method, params = {}) => new Promise((resolve, reject) => session.post(method, params, (e, r) => (e ? reject(e) : resolve(r))));
await post('Profiler.enable');
await post('Profiler.setSamplingInterval', { interval: 100 });
await post('Profiler.start');
const t0 = performance.now();
for (let i = 0; i < calls; i++) engine.attention(problem);
const ms = (performance.now() - t0) / calls;
const { profile } = await post('Profiler.stop');
session.disconnect();
engine.dispose();

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const counts = new Map();
for (const id of profile.samples) counts.set(id, (counts.get(id) ?? 0) + 1);
const byFunction = new Map();
const byGroup = new Map();
let total = 0;
for (const [id, c] of counts) {
  const frame = byId.get(id).callFrame;
  const m = /^wasm-function\[(\d+)\]$/.exec(frame.functionName);
  const isWasm = m !== null || frame.url.startsWith('wasm://');
  const name = m ? nameOf(Number(m[1])) : frame.functionName || '(anonymous)';
  byFunction.set(name, (byFunction.get(name) ?? 0) + c);
  const group = groupOf(name, isWasm);
  byGroup.set(group, (byGroup.get(group) ?? 0) + c);
  total += c;
}
const line = ([name, c]) => `  ${((100 * c) / total).toFixed(1).padStart(5)} %  ${((ms * c) / total).toFixed(2).padStart(8)} ms/call  ${name}`;
console.log(`${which} (U, V, H) = (${U}, ${V}, ${H}), ${engine.kernel}, 1 thread: ${ms.toFixed(2)} ms per call (${calls} calls, ${total} samples)`);
if (!sameBodies) console.log('  (the --debug build differs from the shipped one: raw function indices)');
console.log('by group:');
for (const e of [...byGroup].sort((a, b) => b[1] - a[1])) console.log(line(e));
console.log('by function (top 12):');
for (const e of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(line(e));
