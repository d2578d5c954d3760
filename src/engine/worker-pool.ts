/**
 * The worker threads of a WebAssembly engine and the running of one job on them.
 *
 * Workers share the engine's WebAssembly.Memory and talk to the host only through the control
 * block (words and states named in wasm/interface.mjs). A job is a list of tasks claimed from a
 * counter tagged with the job generation, so a late worker never claims a task of another job;
 * every finished task sets its done flag. The caller runs tasks too, then waits (Atomics.wait, or
 * spinning where waiting is not allowed) until every flag is set. A worker that throws or stops
 * making progress is reported once, dropped, and its tasks are recomputed by the caller (tasks
 * write only their own rows, so recomputing is idempotent): results are never partial.
 */
import type { AttentionEngineOptions } from './types.js';
import { canBlock, nodeWorkerThreads, type KernelExports } from './kernel-module.js';
import {
  CONTROL_OFFSET,
  CONTROL_WORDS,
  Control,
  PARAMS_OFFSET,
  PROGRESS_OFFSET,
  TASK_BITS,
  TASK_COUNTER_OFFSET,
  WORKER_STATE_BASE,
  WorkerState,
} from './wasm/generated/interface.js';
import { WORKER_SOURCE } from './wasm/generated/kernel.js';

interface WorkerHandle {
  tid: number;
  alive: boolean;
  terminate(): void;
}

/**
 * The code a Node worker evaluates: runs `source` with a `require` limited to Node's built-in
 * modules (so it needs no CommonJS wrapper), and if it throws, or the thread exits, while the worker
 * is still starting, marks it failed in the control block and wakes the host at once (the host is
 * blocked in Atomics.wait and would not see the worker's 'error' event until it gives up).
 */
function nodeBootstrap(source: string): string {
  return `'use strict';
var workerThreads = process.getBuiltinModule('node:worker_threads');
var data = workerThreads.workerData;
function failedWhileStarting() {
  var ctl = new Int32Array(data.memory.buffer, data.ctlOffset, ${CONTROL_WORDS});
  var state = ${WORKER_STATE_BASE} + data.tid;
  if (Atomics.compareExchange(ctl, state, ${WorkerState.STARTING}, ${WorkerState.FAILED}) !== ${WorkerState.STARTING}) return;
  Atomics.add(ctl, ${Control.FAILED}, 1);
  Atomics.notify(ctl, ${Control.READY});
}
process.on('exit', failedWhileStarting);
try {
  new Function('require', ${JSON.stringify(source)})(function (name) { return process.getBuiltinModule(name); });
} catch (e) {
  failedWhileStarting();
  workerThreads.parentPort.postMessage({ type: 'error', message: String((e && e.message) || e) });
}
`;
}

/** Generations cycle through 1..GENERATIONS (they must fit above the task bits of the counter). */
const GENERATIONS = (1 << (31 - TASK_BITS)) - 1;

export class WorkerPool {
  /** Resolves when every worker has started or failed (at once for synchronous starts in Node). */
  ready: Promise<void> = Promise.resolve();
  private readonly workers: WorkerHandle[] = [];
  private readonly stallMs: number;
  private generation = 0;
  private failuresSeen = 0;
  private warned = false;
  private disposed = false;

  /** Starts `threads - 1` workers on `module` (none when `threads` is 1). */
  constructor(
    private readonly memory: WebAssembly.Memory,
    private readonly exports: KernelExports,
    module: WebAssembly.Module,
    threads: number,
    private readonly options: AttentionEngineOptions,
  ) {
    this.stallMs = options.testing?.stallMs ?? 2000;
    if (threads > 1) this.startWorkers(module, threads - 1);
  }

  /** Workers started (alive or not): the scratch has one slot per worker plus the caller's. */
  get workerSlots(): number {
    return this.workers.length;
  }

  /** Threads currently usable, the caller included. */
  get threads(): number {
    this.reapWorkers();
    let n = 1;
    for (const w of this.workers) if (w.alive && this.workerState(w.tid) !== WorkerState.FAILED) n++;
    return n;
  }

  private control(): Int32Array {
    return new Int32Array(this.memory.buffer, CONTROL_OFFSET, CONTROL_WORDS);
  }

  private workerState(tid: number): number {
    return Atomics.load(this.control(), WORKER_STATE_BASE + tid);
  }

  /** Drops (and reports once) workers that flagged a failure in the control block. */
  private reapWorkers(): void {
    if (this.disposed) return;
    for (const w of this.workers) if (w.alive && this.workerState(w.tid) === WorkerState.FAILED) this.markLost(w, 'failed');
  }

  private warnOnce(message: string): void {
    if (this.warned) return;
    this.warned = true;
    console.warn(`attention engine: ${message}; continuing on fewer threads.`);
  }

  private markLost(w: WorkerHandle, why: string): void {
    if (!w.alive) return;
    w.alive = false;
    Atomics.store(this.control(), WORKER_STATE_BASE + w.tid, WorkerState.FAILED);
    this.warnOnce(`worker ${w.tid} ${why}`);
    try {
      w.terminate();
    } catch {
      /* already gone */
    }
  }

  private startWorkers(module: WebAssembly.Module, count: number): void {
    const ctl = this.control();
    const source = this.options.testing?.workerSource ?? WORKER_SOURCE;
    const wt = nodeWorkerThreads();
    for (let tid = 1; tid <= count; tid++) {
      Atomics.store(ctl, WORKER_STATE_BASE + tid, WorkerState.STARTING);
      const data = {
        module, memory: this.memory, ctlOffset: CONTROL_OFFSET, paramsOffset: PARAMS_OFFSET, tid,
        crashOnJob: this.options.testing?.crashWorkersOnJob,
      };
      const handle: WorkerHandle = { tid, alive: true, terminate: () => {} };
      try {
        if (wt) {
          // No exec flags: the worker runs as a plain script whatever the parent was started with
          // (e.g. `--input-type=module`); the bootstrap reports a start failure at once.
          const w = new wt.Worker(nodeBootstrap(source), { eval: true, workerData: data, execArgv: [] });
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
        Atomics.store(ctl, WORKER_STATE_BASE + tid, WorkerState.FAILED);
        this.warnOnce(`worker ${tid} could not be started (${String((e as Error)?.message ?? e)})`);
      }
      this.workers.push(handle);
    }
    const settled = (): boolean => {
      for (const w of this.workers) {
        if (w.alive && this.workerState(w.tid) === WorkerState.STARTING) return false;
      }
      return true;
    };
    const failStartup = (): void => {
      for (const w of this.workers) {
        const state = this.workerState(w.tid);
        if (state === WorkerState.STARTING) this.markLost(w, 'did not start in time');
        else if (state === WorkerState.FAILED && w.alive) this.markLost(w, 'failed to start');
      }
      this.failuresSeen = Atomics.load(this.control(), Control.FAILED);
    };
    const timeout = this.options.workerStartTimeoutMs ?? 10_000;
    if (wt) {
      // Node: wait synchronously (workers boot on their own threads). The timeout runs from the
      // last worker that finished starting, so many workers on a busy machine are not dropped
      // while they keep coming up, and one that hangs is dropped `timeout` ms after the others.
      let lastStarted = performance.now();
      let started = Atomics.load(ctl, Control.READY) + Atomics.load(ctl, Control.FAILED);
      while (!settled()) {
        const now = performance.now();
        const startedNow = Atomics.load(ctl, Control.READY) + Atomics.load(ctl, Control.FAILED);
        if (startedNow !== started) {
          started = startedNow;
          lastStarted = now;
        }
        const left = timeout - (now - lastStarted);
        if (left <= 0) break;
        Atomics.wait(ctl, Control.READY, Atomics.load(ctl, Control.READY), Math.min(left, 50));
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

  /**
   * Runs the job whose parameters are in the parameter block: `tasks` tasks with done flags at
   * byte offset `doneOffset` (zeroed by the caller). Returns when every task is done.
   * `whileWorkersStart`, when workers take part, runs on the calling thread after they are woken and
   * before it claims tasks itself: host work that then overlaps theirs (it must not touch the
   * parameter block or anything the tasks read or write).
   */
  runJob(tasks: number, doneOffset: number, whileWorkersStart?: () => void): void {
    const buf = this.memory.buffer;
    const ctl = new Int32Array(buf, CONTROL_OFFSET, CONTROL_WORDS);
    const words = new Int32Array(buf);
    const counterIndex = TASK_COUNTER_OFFSET >> 2;
    this.generation = (this.generation % GENERATIONS) + 1;
    const generation = this.generation;
    Atomics.store(words, counterIndex, generation << TASK_BITS);
    const useWorkers = tasks > 1 && this.threads > 1;
    if (useWorkers) {
      Atomics.store(ctl, Control.GENERATION, generation);
      Atomics.notify(ctl, Control.GENERATION);
    }
    try {
      if (useWorkers) whileWorkersStart?.();
      this.exports.work(PARAMS_OFFSET, 0, generation);
      if (useWorkers) this.waitForTasks(ctl, words, tasks, doneOffset >> 2);
    } finally {
      Atomics.store(words, counterIndex, -1);
    }
  }

  private progressSum(words: Int32Array): number {
    let sum = 0;
    for (let i = 0; i <= this.workers.length; i++) sum += Atomics.load(words, (PROGRESS_OFFSET >> 2) + i);
    return sum;
  }

  private waitForTasks(ctl: Int32Array, words: Int32Array, tasks: number, doneIndex: number): void {
    const block = canBlock();
    let firstUnfinished = 0;
    let lastProgress = this.progressSum(words);
    let lastChange = performance.now();
    for (;;) {
      const finished = Atomics.load(ctl, Control.FINISHED);
      while (firstUnfinished < tasks && Atomics.load(words, doneIndex + firstUnfinished) === 1) firstUnfinished++;
      if (firstUnfinished >= tasks) return;
      const failures = Atomics.load(ctl, Control.FAILED);
      if (failures !== this.failuresSeen) {
        this.failuresSeen = failures;
        for (const w of this.workers) if (w.alive && this.workerState(w.tid) === WorkerState.FAILED) this.markLost(w, 'failed during a job');
        this.takeOver(words, tasks, doneIndex, false);
        continue;
      }
      if (block) Atomics.wait(ctl, Control.FINISHED, finished, 20);
      const now = performance.now();
      const progress = this.progressSum(words);
      if (progress !== lastProgress) {
        lastProgress = progress;
        lastChange = now;
      } else if (now - lastChange > this.stallMs) {
        this.takeOver(words, tasks, doneIndex, true);
        lastChange = performance.now();
      }
    }
  }

  /** Runs every unfinished task on the calling thread; with `stalled`, busy workers are dropped. */
  private takeOver(words: Int32Array, tasks: number, doneIndex: number, stalled: boolean): void {
    if (stalled) {
      for (const w of this.workers) if (w.alive && this.workerState(w.tid) === WorkerState.BUSY) this.markLost(w, 'stopped making progress');
    }
    for (let i = 0; i < tasks; i++) {
      if (Atomics.load(words, doneIndex + i) !== 1) this.exports.runOne(PARAMS_OFFSET, 0, i);
    }
  }

  /** Tells the workers to quit and terminates them. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const ctl = this.control();
    Atomics.store(ctl, Control.QUIT, 1);
    Atomics.add(ctl, Control.GENERATION, 1);
    Atomics.notify(ctl, Control.GENERATION);
    for (const w of this.workers) {
      w.alive = false;
      try {
        w.terminate();
      } catch {
        /* ignore */
      }
    }
  }
}
