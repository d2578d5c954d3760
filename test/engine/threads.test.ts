/** Threads, faults, interleaved shapes, flat memory, and the in-engine KV cache. */
import { describe, expect, test, vi } from 'vitest';
import type { AttentionEngine, AttentionProblem } from '../../src/engine/index.js';
import {
  CONTROL_WORDS,
  Control,
  PARAMS_OFFSET,
  ParamSlot,
  TASK_BITS,
  TASK_COUNTER_OFFSET,
  WORKER_STATE_BASE,
  WorkerState,
} from '../../src/engine/wasm/generated/interface.js';
import { attentionReference, buildProblem, disposedAfterAll, expectMatchesReference, randomArray } from './helpers.js';

const engine = disposedAfterAll();

function problem(seed: number, T = 70, S = 90): AttentionProblem {
  return buildProblem({
    B: 2, T, S, V: 2, G: 3, H: 16, extraCapacity: 0, causal: seed % 2 === 0, offset: 0, window: 0,
    maskKind: 'bool', maskDims: [true, false, false, true], density: 0.7, magnitude: 1, probs: false, seed,
  });
}

describe('threads', () => {
  test('default thread count is the available cores; explicit counts are honoured', () => {
    expect(engine({}).threads).toBeGreaterThanOrEqual(1);
    expect(engine({ threads: 3 }).threads).toBe(3);
  });

  test('a worker that fails to start is reported once; the engine runs on fewer threads', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const e = engine({ threads: 3, testing: { workerSource: 'throw new Error("boom at start")' }, workerStartTimeoutMs: 300 });
    expect(e.threads).toBe(1);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0]![0])).toMatch(/attention engine: worker \d .*continuing on fewer threads/);
    const p = problem(1);
    expectMatchesReference(e.attention(p), attentionReference(p), 'after start failure');
    warn.mockRestore();
  });

  test('a worker that dies during a job: its tasks are recomputed, never a partial result', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const e = engine({ threads: 2, testing: { crashWorkersOnJob: 2 } });
    // Jobs 1.. run normally; the worker throws when it sees job 2 (whenever it wakes for it).
    for (let i = 0; i < 4 || (i < 200 && warn.mock.calls.length === 0); i++) {
      const p = problem(10 + (i % 4));
      expectMatchesReference(e.attention(p), attentionReference(p), `call ${i}`);
    }
    expect(warn).toHaveBeenCalledTimes(1);
    expect(e.threads).toBe(1);
    warn.mockRestore();
  });

  test('a worker that claims a task and hangs is dropped after the stall timeout', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    // This worker spins until it claims a task of a job by hand, then never finishes it.
    const taskMask = (1 << TASK_BITS) - 1;
    const hang = `
      const { workerData } = require('node:worker_threads');
      const ctl = new Int32Array(workerData.memory.buffer, workerData.ctlOffset, ${CONTROL_WORDS});
      const words = new Int32Array(workerData.memory.buffer);
      Atomics.store(ctl, ${WORKER_STATE_BASE} + workerData.tid, ${WorkerState.IDLE});
      Atomics.add(ctl, ${Control.READY}, 1); Atomics.notify(ctl, ${Control.READY});
      Atomics.wait(ctl, ${Control.GENERATION}, 0);
      Atomics.store(ctl, ${WORKER_STATE_BASE} + workerData.tid, ${WorkerState.BUSY});
      for (;;) {
        const tag = Atomics.load(ctl, ${Control.GENERATION}) << ${TASK_BITS};
        const v = Atomics.load(words, ${TASK_COUNTER_OFFSET >> 2});
        if ((v & ~${taskMask}) !== tag || (v & ${taskMask}) >= words[${(PARAMS_OFFSET >> 2) + ParamSlot.tasks}]) continue;
        if (Atomics.compareExchange(words, ${TASK_COUNTER_OFFSET >> 2}, v, v + 1) === v) break;
      }
      for (;;) {}
    `;
    const e = engine({ threads: 2, testing: { workerSource: hang, stallMs: 150 } });
    expect(e.threads).toBe(2);
    const p = buildProblem({
      B: 1, T: 256, S: 256, V: 2, G: 4, H: 16, extraCapacity: 0, causal: true, offset: 0, window: 0,
      maskKind: 'none', maskDims: [false, false, false, false], density: 1, magnitude: 1, probs: false, seed: 3,
    });
    const ref = attentionReference(p);
    // The worker may wake too late for the first jobs; every result must be complete regardless.
    for (let i = 0; i < 50 && warn.mock.calls.length === 0; i++) expectMatchesReference(e.attention(p), ref, `call ${i} with a hung worker`);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0]![0])).toMatch(/stopped making progress/);
    expect(e.threads).toBe(1);
    warn.mockRestore();
  });

  test('interleaved calls with different shapes are each correct', () => {
    const e = engine({ threads: 2 });
    const ps = [problem(30, 1, 600), problem(31, 40, 40), problem(32, 3, 7), problem(33, 65, 129)];
    const refs = ps.map((p) => attentionReference(p));
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < ps.length; i++) expectMatchesReference(e.attention(ps[i]!), refs[i]!, `round ${round} problem ${i}`);
    }
  });

  test('WebAssembly memory stays flat over 1000 calls of varying shapes', () => {
    const e = engine({ threads: 2 });
    const shapes = [[1, 1, 256], [2, 17, 33], [1, 64, 64], [3, 5, 300], [1, 1, 1], [2, 40, 9]] as const;
    const ps = shapes.map(([B, T, S], i) => buildProblem({
      B, T, S, V: 2, G: [1, 2, 7][i % 3]!, H: [8, 80, 5][i % 3]!, extraCapacity: i % 2, causal: i % 2 === 1, offset: 0, window: i === 3 ? 20 : 0,
      maskKind: i === 2 ? 'bool' : i === 4 ? 'additive' : 'none', maskDims: [false, true, true, true], density: 0.5, magnitude: 1, probs: i === 5, seed: i + 1,
    }));
    let plateau = 0;
    for (let n = 0; n < 1000; n++) {
      e.attention(ps[(n * 7) % ps.length]!);
      if (n === 99) plateau = e.memoryBytes();
    }
    expect(e.memoryBytes()).toBe(plateau);
  });
});

describe('query rows in blocks (bounded staging)', () => {
  test('blocked jobs match the reference: batches, T-dependent masks, causal offset, window, split keys', () => {
    const e = engine({ threads: 2, testing: { stagingBytes: 6000 } });
    for (const [i, causal, window, offset] of [[0, true, 0, 0], [1, false, 9, 3], [2, true, 0, 40]] as const) {
      const p = buildProblem({
        B: 2, T: 45, S: 70, V: 2, G: 2, H: 8, extraCapacity: 1, causal, offset, window,
        maskKind: i === 1 ? 'additive' : 'bool', maskDims: [true, i !== 0, true, true], density: 0.8, magnitude: 1, probs: false, seed: 50 + i,
      });
      expectMatchesReference(e.attention(p), attentionReference(p), `case ${i}`);
    }
  });
});

describe('KV cache in engine memory', () => {
  test('decode steps read EngineBuffers in place; views survive memory growth via view()', () => {
    for (const opts of [{ threads: 2 }, { sharedMemory: false }]) {
      const e = engine(opts);
      const B = 1, V = 2, G = 4, H = 32, C = 40, U = V * G;
      const kCache = e.allocate(B * C * V * H);
      const vCache = e.allocate(B * C * V * H);
      const allK = randomArray(B * C * V * H, 5);
      const allV = randomArray(B * C * V * H, 6);
      let filler: ReturnType<AttentionEngine['allocate']> | null = null;
      for (let S = 1; S <= C; S += 3) {
        // append rows [0, S) (rewriting earlier rows is harmless: same values)
        kCache.view().set(allK.subarray(0, S * V * H));
        vCache.view().set(allV.subarray(0, S * V * H));
        const q = randomArray(B * 1 * U * H, 100 + S);
        const p: AttentionProblem = {
          batch: B, queryLength: 1, keyLength: S, numQueryHeads: U, numKeyValueHeads: V, headDim: H,
          keyCapacity: C, query: q, key: kCache.view(), value: vCache.view(), causal: true, queryOffset: S - 1,
        };
        const ref = attentionReference({ ...p, key: p.key.slice(), value: p.value.slice() });
        expectMatchesReference(e.attention({ ...p, key: kCache, value: vCache }), ref, `S=${S}`);
        if (S === 10) filler = e.allocate(4 << 20); // forces the memory to grow
      }
      expect(Array.from(kCache.view().subarray(0, 10))).toEqual(Array.from(allK.subarray(0, 10)));
      filler!.free();
      kCache.free();
      vCache.free();
    }
  });
});
