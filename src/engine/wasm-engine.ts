/**
 * The WebAssembly SIMD engine: one WebAssembly.Memory (shared when SharedArrayBuffer exists) holds
 * every buffer; the calling thread and worker threads run the same kernel on it.
 *
 * Memory map: [0, 64 KiB) control block, job parameters and per-thread progress counters; above it
 * a first-fit heap with KV-cache buffers, per-thread scratch (kept and reused) and per-call staging
 * (bounded copies of Float32Array inputs, the output, the mask; freed at the end of each call).
 *
 * A job is a list of tasks (batch, kv head, query tile, key chunk). Threads claim tasks from a
 * counter tagged with the job generation, so a late worker never claims a task of another job;
 * every finished task sets its done flag. The caller runs tasks too, then waits (Atomics.wait, or
 * spinning where waiting is not allowed) until every flag is set. A worker that throws or stops
 * making progress is reported once, dropped, and its tasks are recomputed by the caller (tasks
 * write only their own rows, so recomputing is idempotent): results are never partial.
 */
import { ValueError } from '../errors.js';
import { attentionBackwardJs } from './backward-js.js';
import { normalizeBackward } from './backward-problem.js';
import { WasmHeap } from './heap.js';
import { attentionJs, writeFullyMaskedRows } from './js-path.js';
import { findFullyMaskedRows, normalizeProblem, type NormalizedProblem } from './problem.js';
import type {
  AttentionEngine,
  AttentionEngineOptions,
  AttentionResult,
  BackwardProblem,
  BackwardResult,
  EngineBuffer,
  EngineProblem,
} from './types.js';
import { KERNEL_SHARED_BASE64, KERNEL_SINGLE_BASE64, WORKER_SOURCE } from './wasm/generated/kernel.js';

// Control block (Int32 words at CTL_OFFSET); indices shared with wasm/worker.js.
const CTL_OFFSET = 1024;
const GEN = 0;
const QUIT = 1;
const READY = 2;
const FAIL = 3;
const FINISHED = 4;
const STATE = 16;
const PARAMS_OFFSET = 2048;
const NEXT_OFFSET = 2048 + 64 * 4;
const PROGRESS_OFFSET = 4096;
const HEAP_BASE = 65536;
const MAX_THREADS = 64;
const TASK_LIMIT = 1 << 20;

/** Query rows packed per tile (tq * G ≈ this), and keys per tile. */
const TARGET_ROWS = 64;
const KEY_TILE = 64;
/** Staged query + output bytes per job when the query is a plain Float32Array (rows go in blocks). */
const STAGING_BYTES = 4 << 20;

interface KernelExports {
  work(params: number, tid: number, gen: number): number;
  runOne(params: number, tid: number, task: number): void;
  reduce(params: number): void;
  expf(x: number): number;
}

interface WorkerHandle {
  tid: number;
  alive: boolean;
  terminate(): void;
}

function decodeBase64(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

let kernelCache: { shared?: WebAssembly.Module; single?: WebAssembly.Module } = {};

/** Kernel bytes for the given memory kind. */
export function kernelBytes(shared: boolean): Uint8Array {
  return decodeBase64(shared ? KERNEL_SHARED_BASE64 : KERNEL_SINGLE_BASE64);
}

/** Whether this runtime validates the SIMD kernel. */
export function wasmSimdSupported(): boolean {
  try {
    return typeof WebAssembly === 'object' && WebAssembly.validate(kernelBytes(false) as BufferSource);
  } catch {
    return false;
  }
}

/** Compiles (synchronously) and caches the kernel module. */
export function compileKernelSync(shared: boolean): WebAssembly.Module {
  const key = shared ? 'shared' : 'single';
  let m = kernelCache[key];
  if (!m) {
    m = new WebAssembly.Module(kernelBytes(shared) as BufferSource);
    kernelCache[key] = m;
  }
  return m;
}

/** Compiles (asynchronously) and caches the kernel module. */
export async function compileKernel(shared: boolean): Promise<WebAssembly.Module> {
  const key = shared ? 'shared' : 'single';
  let m = kernelCache[key];
  if (!m) {
    m = await WebAssembly.compile(kernelBytes(shared) as BufferSource);
    kernelCache[key] = m;
  }
  return m;
}

/** For tests: drop cached modules. */
export function clearKernelCache(): void {
  kernelCache = {};
}

interface NodeWorkerThreads {
  Worker: new (src: string, opts: { eval: boolean; workerData: unknown }) => {
    on(ev: string, cb: (x: unknown) => void): void;
    unref(): void;
    terminate(): Promise<number>;
  };
}

function nodeWorkerThreads(): NodeWorkerThreads | null {
  const proc = (globalThis as { process?: { versions?: { node?: string }; getBuiltinModule?: (n: string) => unknown } }).process;
  if (proc?.versions?.node && typeof proc.getBuiltinModule === 'function') {
    return proc.getBuiltinModule('node:worker_threads') as NodeWorkerThreads;
  }
  return null;
}

/** Whether the calling thread may block in Atomics.wait (Node main thread and any worker: yes). */
function canBlock(): boolean {
  const g = globalThis as { process?: { versions?: { node?: string } }; document?: unknown };
  if (g.process?.versions?.node) return true;
  return typeof g.document === 'undefined';
}

class WasmBuffer implements EngineBuffer {
  freed = false;
  constructor(
    private readonly engine: WasmEngine,
    readonly byteOffset: number,
    readonly length: number,
  ) {}
  view(): Float32Array {
    if (this.freed) throw new ValueError('EngineBuffer.view: the buffer was freed');
    return new Float32Array(this.engine.memory.buffer, this.byteOffset, this.length);
  }
  free(): void {
    if (this.freed) return;
    this.freed = true;
    this.engine.releaseBuffer(this);
  }
}

/** Copies `rows` rows of `len` floats, `srcStride` apart in `src` from `srcOff`, to consecutive rows of `dst`. */
function gather(dst: Float32Array, dstOff: number, src: Float32Array, srcOff: number, rows: number, len: number, srcStride: number): void {
  if (srcStride === len) {
    dst.set(src.subarray(srcOff, srcOff + rows * len), dstOff);
  } else if (len >= 32) {
    for (let r = 0; r < rows; r++, srcOff += srcStride, dstOff += len) dst.set(src.subarray(srcOff, srcOff + len), dstOff);
  } else {
    for (let r = 0; r < rows; r++, srcOff += srcStride - len) for (let i = 0; i < len; i++) dst[dstOff++] = src[srcOff++]!;
  }
}

/** Copies consecutive rows of `len` floats from `src` to rows `dstStride` apart in `dst`. */
function scatter(dst: Float32Array, dstOff: number, dstStride: number, src: Float32Array, srcOff: number, rows: number, len: number): void {
  if (dstStride === len) {
    dst.set(src.subarray(srcOff, srcOff + rows * len), dstOff);
  } else if (len >= 32) {
    for (let r = 0; r < rows; r++, srcOff += len, dstOff += dstStride) dst.set(src.subarray(srcOff, srcOff + len), dstOff);
  } else {
    for (let r = 0; r < rows; r++, dstOff += dstStride - len) for (let i = 0; i < len; i++) dst[dstOff++] = src[srcOff++]!;
  }
}

export class WasmEngine implements AttentionEngine {
  readonly kind = 'wasm' as const;
  readonly memory: WebAssembly.Memory;
  readonly sharedMemory: boolean;
  ready: Promise<void>;
  private readonly exports: KernelExports;
  private readonly heap: WasmHeap;
  private readonly workers: WorkerHandle[] = [];
  private readonly requestedThreads: number;
  private readonly stallMs: number;
  private readonly stagingBytes: number;
  private readonly buffers = new Set<WasmBuffer>();
  /** Views of the current call's EngineBuffers, read in place. */
  private readonly inPlace = new Set<Float32Array>();
  private scratchOff = 0;
  private scratchBytes = 0;
  private gen = 0;
  private failSeen = 0;
  private warned = false;
  private disposed = false;

  constructor(
    module: WebAssembly.Module,
    shared: boolean,
    threads: number,
    private readonly options: AttentionEngineOptions,
  ) {
    this.sharedMemory = shared;
    this.memory = createMemory(shared);
    const inst = new WebAssembly.Instance(module, { env: { memory: this.memory } });
    this.exports = inst.exports as unknown as KernelExports;
    this.heap = new WasmHeap(this.memory, HEAP_BASE);
    this.requestedThreads = shared ? Math.max(1, Math.min(MAX_THREADS, threads)) : 1;
    this.stallMs = options.testing?.stallMs ?? 2000;
    this.stagingBytes = options.testing?.stagingBytes ?? STAGING_BYTES;
    this.ready = Promise.resolve();
    if (this.requestedThreads > 1) this.startWorkers(module);
  }

  get threads(): number {
    this.reapWorkers();
    let n = 1;
    for (const w of this.workers) if (w.alive && this.workerState(w.tid) !== 2) n++;
    return n;
  }

  /** Drops (and reports once) workers that flagged a failure in the control block. */
  private reapWorkers(): void {
    if (this.disposed) return;
    for (const w of this.workers) if (w.alive && this.workerState(w.tid) === 2) this.markLost(w, 'failed');
  }

  private ctl(): Int32Array {
    return new Int32Array(this.memory.buffer, CTL_OFFSET, 64);
  }

  private workerState(tid: number): number {
    return Atomics.load(this.ctl(), STATE + tid);
  }

  private warnOnce(message: string): void {
    if (this.warned) return;
    this.warned = true;
    console.warn(`attention engine: ${message}; continuing on fewer threads.`);
  }

  private markLost(w: WorkerHandle, why: string): void {
    if (!w.alive) return;
    w.alive = false;
    Atomics.store(this.ctl(), STATE + w.tid, 2);
    this.warnOnce(`worker ${w.tid} ${why}`);
    try {
      w.terminate();
    } catch {
      /* already gone */
    }
  }

  private startWorkers(module: WebAssembly.Module): void {
    const ctl = this.ctl();
    const n = this.requestedThreads - 1;
    const source = this.options.testing?.workerSource ?? WORKER_SOURCE;
    const wt = nodeWorkerThreads();
    for (let tid = 1; tid <= n; tid++) {
      Atomics.store(ctl, STATE + tid, 4); // starting
      const data = {
        module, memory: this.memory, ctlOffset: CTL_OFFSET, paramsOffset: PARAMS_OFFSET, tid,
        crashOnJob: this.options.testing?.crashWorkersOnJob,
      };
      const handle: WorkerHandle = { tid, alive: true, terminate: () => {} };
      try {
        if (wt) {
          const w = new wt.Worker(source, { eval: true, workerData: data });
          w.unref();
          w.on('error', (e) => this.markLost(handle, `failed: ${String((e as Error)?.message ?? e)}`));
          w.on('exit', () => this.markLost(handle, 'exited'));
          w.on('message', (m) => {
            const msg = m as { type?: string; message?: string };
            if (msg?.type === 'error') this.markLost(handle, `failed: ${msg.message}`);
          });
          // A 'message' listener refs the worker again; unref last so idle workers never keep
          // the process alive.
          w.unref();
          handle.terminate = () => void w.terminate();
        } else {
          const url = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
          const w = new Worker(url);
          w.onerror = (e) => this.markLost(handle, `failed: ${e.message}`);
          w.onmessage = (e) => {
            if (e.data?.type === 'error') this.markLost(handle, `failed: ${e.data.message}`);
          };
          w.postMessage(data);
          handle.terminate = () => {
            w.terminate();
            URL.revokeObjectURL(url);
          };
        }
      } catch (e) {
        handle.alive = false;
        Atomics.store(ctl, STATE + tid, 2);
        this.warnOnce(`worker ${tid} could not be started (${String((e as Error)?.message ?? e)})`);
      }
      this.workers.push(handle);
    }
    const settled = (): boolean => {
      for (const w of this.workers) {
        const s = this.workerState(w.tid);
        if (w.alive && s === 4) return false;
      }
      return true;
    };
    const failStartup = (): void => {
      for (const w of this.workers) {
        if (this.workerState(w.tid) === 4) this.markLost(w, 'did not start in time');
        else if (this.workerState(w.tid) === 2 && w.alive) this.markLost(w, 'failed to start');
      }
      this.failSeen = Atomics.load(this.ctl(), FAIL);
    };
    const timeout = this.options.workerStartTimeoutMs ?? 10_000;
    if (wt) {
      // Node: wait synchronously (workers boot on their own threads).
      const t0 = performance.now();
      while (!settled()) {
        const left = timeout - (performance.now() - t0);
        if (left <= 0) break;
        Atomics.wait(ctl, READY, Atomics.load(ctl, READY), Math.min(left, 50));
      }
      failStartup();
    } else {
      this.ready = new Promise<void>((resolve) => {
        const t0 = performance.now();
        const poll = (): void => {
          if (settled() || performance.now() - t0 > timeout) {
            failStartup();
            resolve();
          } else setTimeout(poll, 5);
        };
        poll();
      });
    }
  }

  memoryBytes(): number {
    return this.memory.buffer.byteLength;
  }

  allocate(floats: number): EngineBuffer {
    this.checkAlive('allocate');
    if (typeof floats !== 'number' || !Number.isInteger(floats) || floats < 1) {
      throw new ValueError(`AttentionEngine.allocate: argument \`floats\` must be a positive integer; received ${String(floats)}.`);
    }
    const off = this.heap.alloc(floats * 4);
    new Float32Array(this.memory.buffer, off, floats).fill(0);
    const b = new WasmBuffer(this, off, floats);
    this.buffers.add(b);
    return b;
  }

  /** @internal */
  releaseBuffer(b: WasmBuffer): void {
    if (!this.buffers.delete(b)) return;
    if (!this.disposed) this.heap.release(b.byteOffset);
  }

  private checkAlive(fn: string): void {
    if (this.disposed) throw new ValueError(`AttentionEngine.${fn}: the engine was disposed`);
  }

  private resolveArray(arg: string, x: Float32Array | EngineBuffer): Float32Array {
    if (x instanceof Float32Array) return x;
    if (x instanceof WasmBuffer && this.buffers.has(x)) {
      const view = x.view();
      this.inPlace.add(view);
      return view;
    }
    if (x && typeof (x as EngineBuffer).view === 'function') {
      throw new ValueError(
        `AttentionEngine.attention: argument \`problem.${arg}\` must be a Float32Array or an EngineBuffer of this engine that is not freed; received ${(x as EngineBuffer).freed ? 'a freed EngineBuffer' : 'an EngineBuffer of another engine'}.`,
      );
    }
    return x as unknown as Float32Array; // normalizeProblem reports the type error
  }

  attention(problem: EngineProblem): AttentionResult {
    this.checkAlive('attention');
    this.inPlace.clear();
    const arrays = {
      query: this.resolveArray('query', problem?.query),
      key: this.resolveArray('key', problem?.key),
      value: this.resolveArray('value', problem?.value),
    };
    const p = normalizeProblem('AttentionEngine.attention', problem as never, arrays);
    // Dropout and the log-sum-exp are not in the SIMD kernel yet: the plain-JS path computes them.
    if (p.dropoutRate > 0 || p.wantLogSumExp) return attentionJs(p);
    const fully = findFullyMaskedRows(p);
    const result = this.run(p);
    if (fully.length > 0) {
      // Views of EngineBuffers may have been detached by growth during the run: refresh them.
      const fresh = normalizeProblem('AttentionEngine.attention', problem as never, {
        query: this.resolveArray('query', problem.query),
        key: this.resolveArray('key', problem.key),
        value: this.resolveArray('value', problem.value),
      });
      writeFullyMaskedRows(fresh, fully, result.output as Float32Array, result.probabilities as Float32Array | undefined);
    }
    return result;
  }

  attentionBackward(problem: BackwardProblem): BackwardResult {
    this.checkAlive('attentionBackward');
    const { p, saved } = normalizeBackward('AttentionEngine.attentionBackward', problem);
    return attentionBackwardJs(p, saved);
  }

  /** Whether `a` already lives in engine memory (an EngineBuffer view), read in place. */
  private isInPlace(a: Float32Array): boolean {
    return a.buffer === this.memory.buffer || this.inPlace.has(a);
  }

  /**
   * Runs the problem as a sequence of jobs. A job covers `ng` consecutive groups (batch, kv head),
   * a block of query rows and a range of key chunks. Plain-array key/value inputs are staged
   * within `stagingBytes / 2`: whole when they fit (or probabilities are requested), by key chunks
   * of every head for short queries (partials reduced at the end), else per group (the S×H rows
   * of the job's kv heads, a strided gather). EngineBuffers are read in place. The query (unless
   * in place) and the output are staged per job as (ng, rows, G, H), within `stagingBytes`.
   */
  private run(p: NormalizedProblem): AttentionResult {
    const { B, T, S, C, U, V, H, G } = p;
    const threads = this.threads;
    const tq = Math.min(T, Math.max(1, Math.floor(TARGET_ROWS / G)));
    const maxM4 = (tq * G + 3) & ~3;
    const Hp = (H + 3) & ~3;
    const Bc = KEY_TILE;
    const want = p.wantProbabilities;
    const qIn = this.isInPlace(p.query);
    const kIn = this.isInPlace(p.key);
    const sameKV = p.value === p.key;
    const vIn = sameKV ? kIn : this.isInPlace(p.value);
    // Offsets of in-place inputs, read before any allocation (growth detaches non-shared views).
    const qInOff = p.query.byteOffset;
    const kInOff = p.key.byteOffset;
    const vInOff = p.value.byteOffset;
    const nGroups = B * V;
    const GH = G * H;

    const kvArrays = (kIn ? 0 : 1) + (vIn || sameKV ? 0 : 1);
    const partStride = maxM4 * (2 + Hp) * 4;
    const half = this.stagingBytes / 2;

    // Key rows of every head staged with bulk copies and read with the in-place strides: all S
    // rows in one job when they fit half the budget (or probabilities are requested), else, for
    // short queries, key chunks [j0, j0 + SC) in turn, each job leaving (max, sum, output)
    // partials per key chunk, reduced once at the end. Needs the whole query, output and the
    // partials within the budget.
    let chunked = false;
    let SC = S;
    let kChunk = 0;
    let nK = 1;
    if (kvArrays > 0) {
      const nQTall = Math.ceil(T / tq);
      const qoBytes = (qIn ? 1 : 2) * B * T * U * H * 4;
      if (want || (kvArrays * B * S * V * H * 4 <= half && qoBytes <= this.stagingBytes)) {
        chunked = true;
      } else {
        const nsub = threads > 1 ? Math.ceil((4 * threads) / (nGroups * nQTall)) : 1;
        const sc = Math.max(Bc, Math.floor(half / (kvArrays * B * V * H * 4) / Bc) * Bc);
        const kc = Math.max(Bc, Math.floor(sc / nsub / Bc) * Bc);
        const nk = Math.ceil(S / kc);
        if (sc < S && nk * nGroups * nQTall * partStride + qoBytes <= this.stagingBytes) {
          chunked = true;
          kChunk = kc;
          SC = Math.max(kc, Math.floor(sc / kc) * kc);
          nK = nk;
        }
      }
    }
    const split = chunked && SC < S;
    // Otherwise groups per job: all of them when K/V are read in place (or probabilities are
    // requested), else as many (batch, kv head) groups as the key/value budget holds.
    let ng = nGroups;
    if (!chunked && !want && kvArrays > 0) {
      ng = Math.max(1, Math.min(nGroups, Math.floor(half / (kvArrays * S * H * 4))));
    }
    // Query rows per job: all of them with probabilities or key chunks; otherwise blocks of rows
    // whose staged query + output fit the staging budget.
    const rowBytes = (qIn ? 1 : 2) * ng * GH * 4;
    let Tb = T;
    if (!want && !chunked && rowBytes * T > this.stagingBytes) {
      Tb = Math.min(T, Math.max(tq, Math.floor(this.stagingBytes / rowBytes / tq) * tq));
    }
    const nQT = Math.ceil(Tb / tq);
    const base = ng * nQT;
    if (!split) {
      if (!want && threads > 1 && base < 4 * threads && S >= 512) {
        nK = Math.max(1, Math.min(Math.ceil((4 * threads) / base), Math.floor(S / 256)));
      }
      kChunk = Math.ceil(S / nK / Bc) * Bc;
      nK = Math.ceil(S / kChunk);
    }
    const nkj = split ? SC / kChunk : nK; // key chunks per job
    const ntasks = base * nK;
    if (ntasks >= TASK_LIMIT) {
      throw new ValueError(`AttentionEngine.attention: argument \`problem\` is too large (${ntasks} tasks, limit ${TASK_LIMIT - 1}); received B=${B}, T=${T}, V=${V}.`);
    }

    // Persistent per-thread scratch.
    const stride = Math.ceil(((2 * maxM4 * Hp + Bc * maxM4 + 6 * maxM4) * 4) / 64) * 64;
    const needScratch = stride * (1 + this.workers.length);
    if (needScratch > this.scratchBytes) {
      if (this.scratchBytes > 0) this.heap.release(this.scratchOff);
      this.scratchBytes = 0;
      this.scratchOff = this.heap.alloc(needScratch);
      this.scratchBytes = needScratch;
    }

    const owned: number[] = [];
    const alloc = (bytes: number): number => {
      const off = this.heap.alloc(Math.max(64, bytes));
      owned.push(off);
      return off;
    };
    try {
      const kvFloats = chunked ? B * SC * V * H : ng * S * H;
      const kOff = kIn ? kInOff : alloc(kvFloats * 4);
      const vOff = sameKV ? kOff : vIn ? vInOff : alloc(kvFloats * 4);
      const qOff = qIn ? qInOff : alloc(ng * Tb * GH * 4);
      const oOff = alloc(ng * Tb * GH * 4);
      const output = new Float32Array(B * T * U * H);
      const probN = want ? B * U * T * S : 0;
      const probOff = probN > 0 ? alloc(probN * 4) : 0;
      let maskKind = 0;
      let maskOff = 0;
      let ms = [0, 0, 0, 0];
      const m = p.mask;
      if (m !== null && !(m.kind === 'bool' && m.strides[3] === 0)) {
        // (A bool mask constant over keys only decides fully masked rows, handled outside.)
        maskKind = m.kind === 'bool' ? 1 : 2;
        maskOff = alloc(m.data.byteLength);
        if (m.kind === 'bool') new Uint8Array(this.memory.buffer, maskOff, m.data.length).set(m.data as Uint8Array);
        else new Float32Array(this.memory.buffer, maskOff, m.data.length).set(m.data as Float32Array);
        ms = [...m.strides];
      }
      const partOff = nK > 1 ? alloc(ntasks * partStride) : 0;
      const doneOff = alloc(base * nkj * 4);
      const rowFloats = U * H;
      const kvRow = V * H;

      for (let g0 = 0; g0 < nGroups; g0 += ng) {
        const gn = Math.min(ng, nGroups - g0);
        if (!chunked && (!kIn || !vIn)) {
          const mem = this.memory.buffer;
          for (let gi = 0; gi < gn; gi++) {
            const b = Math.floor((g0 + gi) / V);
            const src = (b * C * V + ((g0 + gi) % V)) * H;
            if (!kIn) gather(new Float32Array(mem, kOff, gn * S * H), gi * S * H, p.key, src, S, H, kvRow);
            if (!vIn && !sameKV) gather(new Float32Array(mem, vOff, gn * S * H), gi * S * H, p.value, src, S, H, kvRow);
          }
        }
        for (let t0 = 0; t0 < T; t0 += Tb) {
          const tb = Math.min(Tb, T - t0);
          const nqt = Math.ceil(tb / tq);
          if (!qIn) {
            const qs = new Float32Array(this.memory.buffer, qOff, gn * tb * GH);
            for (let gi = 0; gi < gn; gi++) {
              const b = Math.floor((g0 + gi) / V);
              const src = (b * T + t0) * rowFloats + ((g0 + gi) % V) * GH;
              gather(qs, gi * tb * GH, p.query, src, tb, GH, rowFloats);
            }
          }
          for (let kc0 = 0; kc0 < nK; kc0 += nkj) {
            const j0 = kc0 * kChunk;
            const nkjJob = Math.min(nkj, nK - kc0);
            const jobTasks = nqt * gn * nkjJob;
            if (chunked) {
              // Rows [j0, j1) of every head: contiguous in (B, C, V, H), one bulk copy per batch.
              const j1 = Math.min(S, j0 + SC);
              const mem = this.memory.buffer;
              for (let b = 0; b < B; b++) {
                const from = (b * C + j0) * kvRow;
                const to = (b * C + j1) * kvRow;
                if (!kIn) new Float32Array(mem, kOff, B * SC * kvRow).set(p.key.subarray(from, to), b * SC * kvRow);
                if (!vIn && !sameKV) new Float32Array(mem, vOff, B * SC * kvRow).set(p.value.subarray(from, to), b * SC * kvRow);
              }
            }
            const buf = this.memory.buffer;
            const pi = new Int32Array(buf, PARAMS_OFFSET, 64);
            const pf = new Float32Array(buf, PARAMS_OFFSET, 64);
            // Staged key chunks are addressed as if they started at row 0 (the offset may wrap
            // below zero; the kernel's 32-bit address arithmetic wraps back).
            const shift = chunked ? j0 * kvRow * 4 : 0;
            pi.set([B, tb, S, C, U, V, H, G, qIn ? qOff + t0 * rowFloats * 4 : qOff, kIn ? kOff : kOff - shift, vIn ? vOff : vOff - shift, oOff]);
            pf[12] = p.scale;
            pi[13] = p.causal ? 1 : 0;
            pi[14] = p.window;
            pi[15] = p.p0 + t0;
            pi[16] = maskKind;
            pi[17] = maskOff + t0 * ms[2]! * (maskKind === 2 ? 4 : 1);
            pi[18] = ms[0]!;
            pi[19] = ms[1]!;
            pi[20] = ms[2]!;
            pi[21] = ms[3]!;
            pi[22] = probOff;
            pi[23] = tq;
            pi[24] = Bc;
            pi[25] = nqt;
            pi[26] = nK;
            pi[27] = kChunk;
            pi[28] = jobTasks;
            pi[29] = partOff;
            pi[30] = this.scratchOff;
            pi[31] = stride;
            pi[32] = doneOff;
            pi[33] = NEXT_OFFSET;
            pi[34] = PROGRESS_OFFSET;
            pi[35] = maxM4;
            pi[36] = g0;
            pi[37] = gn;
            // K / V: (b, kvh, gi, row) strides in floats: in place (B, C, V, H), staged key chunks
            // (B, SC, V, H) or staged groups (gn, S, H).
            const kvStaged = chunked ? [SC * kvRow, H, 0, kvRow] : [0, 0, S * H, H];
            pi.set(kIn ? [C * kvRow, H, 0, kvRow] : kvStaged, 38);
            pi.set(vIn ? [C * kvRow, H, 0, kvRow] : kvStaged, 42);
            // Q / O: (b, kvh, gi, row) strides, in place (B, T, U, H) or staged (gn, tb, G, H).
            pi.set(qIn ? [T * rowFloats, GH, 0, rowFloats] : [0, 0, tb * GH, GH], 46);
            pi.set([0, 0, tb * GH, GH], 50);
            pi[54] = kc0;
            pi[55] = nkjJob;
            new Int32Array(buf, doneOff, jobTasks).fill(0);
            this.runJob(jobTasks, doneOff);
          }
          if (nK > 1) {
            // Reduce every key chunk of the jobs above.
            const pi = new Int32Array(this.memory.buffer, PARAMS_OFFSET, 64);
            pi[28] = nqt * gn * nK;
            pi[54] = 0;
            pi[55] = nK;
          }
          if (nK > 1) this.exports.reduce(PARAMS_OFFSET);
          const os = new Float32Array(this.memory.buffer, oOff, gn * tb * GH);
          for (let gi = 0; gi < gn; gi++) {
            const b = Math.floor((g0 + gi) / V);
            const dst = (b * T + t0) * rowFloats + ((g0 + gi) % V) * GH;
            scatter(output, dst, rowFloats, os, gi * tb * GH, tb, GH);
          }
        }
      }
      if (probN > 0) {
        const probabilities = new Float32Array(probN);
        probabilities.set(new Float32Array(this.memory.buffer, probOff, probN));
        return { output, probabilities };
      }
      return { output };
    } finally {
      for (const off of owned) this.heap.release(off);
    }
  }

  private runJob(ntasks: number, doneOff: number): void {
    const buf = this.memory.buffer;
    const ctl = new Int32Array(buf, CTL_OFFSET, 64);
    const words = new Int32Array(buf);
    const nextIdx = NEXT_OFFSET >> 2;
    this.gen = (this.gen % 0x7ff) + 1;
    const gen = this.gen;
    Atomics.store(words, nextIdx, gen << 20);
    const useWorkers = ntasks > 1 && this.threads > 1;
    if (useWorkers) {
      Atomics.store(ctl, GEN, gen);
      Atomics.notify(ctl, GEN);
    }
    try {
      this.exports.work(PARAMS_OFFSET, 0, gen);
      if (useWorkers) this.waitForTasks(ctl, words, ntasks, doneOff >> 2);
    } finally {
      Atomics.store(words, nextIdx, -1);
    }
  }

  private progressSum(words: Int32Array): number {
    let s = 0;
    for (let i = 0; i <= this.workers.length; i++) s += Atomics.load(words, (PROGRESS_OFFSET >> 2) + i);
    return s;
  }

  private waitForTasks(ctl: Int32Array, words: Int32Array, ntasks: number, doneIdx: number): void {
    const block = canBlock();
    let first = 0;
    let lastProgress = this.progressSum(words);
    let lastChange = performance.now();
    for (;;) {
      const fin = Atomics.load(ctl, FINISHED);
      while (first < ntasks && Atomics.load(words, doneIdx + first) === 1) first++;
      if (first >= ntasks) return;
      const fail = Atomics.load(ctl, FAIL);
      if (fail !== this.failSeen) {
        this.failSeen = fail;
        for (const w of this.workers) if (w.alive && this.workerState(w.tid) === 2) this.markLost(w, 'failed during a job');
        this.takeOver(words, ntasks, doneIdx, false);
        continue;
      }
      if (block) Atomics.wait(ctl, FINISHED, fin, 20);
      const now = performance.now();
      const prog = this.progressSum(words);
      if (prog !== lastProgress) {
        lastProgress = prog;
        lastChange = now;
      } else if (now - lastChange > this.stallMs) {
        this.takeOver(words, ntasks, doneIdx, true);
        lastChange = performance.now();
      }
    }
  }

  /** Runs every unfinished task on the calling thread; with `stalled`, busy workers are dropped. */
  private takeOver(words: Int32Array, ntasks: number, doneIdx: number, stalled: boolean): void {
    if (stalled) {
      for (const w of this.workers) if (w.alive && this.workerState(w.tid) === 1) this.markLost(w, 'stopped making progress');
    }
    for (let i = 0; i < ntasks; i++) {
      if (Atomics.load(words, doneIdx + i) !== 1) this.exports.runOne(PARAMS_OFFSET, 0, i);
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const ctl = this.ctl();
    Atomics.store(ctl, QUIT, 1);
    Atomics.add(ctl, GEN, 1);
    Atomics.notify(ctl, GEN);
    for (const w of this.workers) {
      w.alive = false;
      try {
        w.terminate();
      } catch {
        /* ignore */
      }
    }
    for (const b of this.buffers) b.freed = true;
    this.buffers.clear();
  }
}

/** A 1 MiB memory that may grow to 4 GiB (or less where the address space is tight). */
function createMemory(shared: boolean): WebAssembly.Memory {
  let error: unknown;
  for (const maximum of [65536, 32768, 16384, 4096]) {
    try {
      return new WebAssembly.Memory(shared ? { initial: 16, maximum, shared: true } : { initial: 16, maximum });
    } catch (e) {
      error = e;
    }
  }
  throw error;
}

/** Default thread count: available cores. */
export function defaultThreads(): number {
  const g = globalThis as {
    process?: { getBuiltinModule?: (n: string) => unknown; versions?: { node?: string } };
    navigator?: { hardwareConcurrency?: number };
  };
  if (g.process?.versions?.node && typeof g.process.getBuiltinModule === 'function') {
    const os = g.process.getBuiltinModule('node:os') as { availableParallelism?: () => number; cpus: () => unknown[] };
    return os.availableParallelism ? os.availableParallelism() : os.cpus().length;
  }
  return g.navigator?.hardwareConcurrency ?? 1;
}

/** Whether a shared WebAssembly.Memory can be used here. */
export function sharedMemorySupported(): boolean {
  if (typeof SharedArrayBuffer !== 'function') return false;
  const coi = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated;
  if (coi === false) return false;
  try {
    new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    return true;
  } catch {
    return false;
  }
}
