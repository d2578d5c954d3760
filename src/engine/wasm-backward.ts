/**
 * Host side of the WebAssembly backward (wasm/backward.ts): stages the inputs, plans the passes and
 * runs them on the engine's threads, then computes on this thread the few rows whose
 * probabilities need their own max and sum (rows with no allowed key, rows with a far-from-zero
 * log-sum-exp: see backward-js.ts), whose log-sum-exp the kernel sees as +inf (they contribute
 * nothing there).
 *
 * Memory: query, dO and dQ (B, T, U, H); key, value, dK and dV (B, S, V, H); log-sum-exp and D
 * (B, U, T); the dQ partials, `chunks` copies of (B, T, U, Hp); per-thread scratch of a few tiles.
 * Nothing of size T×S.
 *
 * Threads: pass 1 (only without the forward's log-sum-exp) has a task per (query tile, group) and
 * writes its rows' log-sum-exp; pass 2 has a task per (group, chunk of key tiles) and writes its
 * dK/dV rows and its own dQ partial; pass 3 has a task per (query tile, group) and sums the
 * partials of its dQ rows. No two tasks write the same float.
 */
import { backwardRow, needsExactRow, rowScratch } from './backward-js.js';
import { backwardCounters, type SavedForward } from './backward-problem.js';
import { dropoutKeepScale, dropoutKey, dropoutThreshold } from './dropout_hash.js';
import { findRowsWithNoAllowedKey } from './mask-rule.js';
import type { NormalizedProblem } from './problem.js';
import { copyOut } from './staging.js';
import type { BackwardResult } from './types.js';
import { PROGRESS_OFFSET, TASK_COUNTER_OFFSET, writeParams, type KernelParams } from './wasm/generated/interface.js';

/** Query rows per tile (times G heads ≈ this many packed rows), and keys per tile. */
const TARGET_ROWS = 64;
const KEY_TILE = 64;
/**
 * Pass 2 tasks per thread the chunking aims at (more tasks balance better; each chunk of a group
 * costs one dQ partial of the group's rows).
 */
const TASKS_PER_THREAD = 2;
/** Slack after every staged array: vector loads of a row's last 4-float group may run past H. */
const SLACK = 16;

/** What the engine lends the backward. */
export interface BackwardHost {
  readonly memory: WebAssembly.Memory;
  /** Staging bytes, released by the caller after the call. */
  alloc(bytes: number): number;
  /** The persistent per-thread scratch, at least `bytes`; returns its offset. */
  scratch(bytes: number): number;
  /** Threads that may run tasks (scratch slots). */
  readonly threads: number;
  stageMask(p: NormalizedProblem): { kind: number; offset: number; strides: readonly [number, number, number, number] };
  runJob(tasks: number, doneOffset: number): void;
}

export function runBackwardWasm(host: BackwardHost, p: NormalizedProblem, saved: SavedForward): BackwardResult {
  const { B, T, S, C, U, V, H, G } = p;
  const tileRows = Math.min(T, Math.max(1, Math.floor(TARGET_ROWS / G)));
  const maxTileHeight = (tileRows * G + 3) & ~3;
  const Hp = (H + 3) & ~3;
  // Floats per thread: Qs, dO (M4·Hp each), dK/dV (2·Bc·Hp), P and dS (M4·Bc each), 8 row
  // arrays of M4, the padding rows' dQ sink (4·Hp); wasm/backward.ts setBackwardScratch.
  const scratchStride =
    Math.ceil(((2 * maxTileHeight * Hp + Math.max(maxTileHeight, 2 * KEY_TILE) * Hp + 2 * maxTileHeight * KEY_TILE + 8 * maxTileHeight + 4 * Hp) * 4) / 64) * 64;
  const queryTiles = Math.ceil(T / tileRows);
  const keyTiles = Math.ceil(S / KEY_TILE);
  const groups = B * V;
  const chunks = Math.max(1, Math.min(keyTiles, Math.ceil((TASKS_PER_THREAD * host.threads) / groups)));
  const partialFloats = (T * G + 4) * Hp; // wasm/backward.ts partialFloats()
  const rowsQ = B * T * U * H;
  const rowsK = B * S * V * H;
  const rows = B * U * T;

  // Allocations first (the memory may grow and detach views), then views.
  const scratch = host.scratch(scratchStride * host.threads);
  const qOff = host.alloc(rowsQ * 4 + SLACK);
  const dOOff = host.alloc(rowsQ * 4 + SLACK);
  const dQOff = host.alloc(rowsQ * 4 + SLACK);
  const kOff = host.alloc(rowsK * 4 + SLACK);
  const vOff = host.alloc(rowsK * 4 + SLACK);
  const dKOff = host.alloc(rowsK * 4 + SLACK);
  const dVOff = host.alloc(rowsK * 4 + SLACK);
  const lseOff = host.alloc(rows * 4);
  const dOff = host.alloc(rows * 4);
  const partialsOff = host.alloc(chunks * groups * partialFloats * 4);
  const doneOff = host.alloc(Math.max(queryTiles, chunks) * groups * 4);
  const mask = host.stageMask(p);

  let buf = host.memory.buffer;
  new Float32Array(buf, qOff, rowsQ).set(p.query);
  new Float32Array(buf, dOOff, rowsQ).set(saved.gradOutput);
  const kStage = new Float32Array(buf, kOff, rowsK);
  const vStage = new Float32Array(buf, vOff, rowsK);
  for (let b = 0; b < B; b++) {
    // Rows 0..S-1 of each batch of the (B, C, V, H) inputs.
    kStage.set(p.key.subarray(b * C * V * H, (b * C + S) * V * H), b * S * V * H);
    vStage.set(p.value.subarray(b * C * V * H, (b * C + S) * V * H), b * S * V * H);
  }
  // D = rowsum(dO ∘ O) per (b, u, t).
  const D = new Float32Array(buf, dOff, rows);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let u = 0; u < U; u++) {
        const base = ((b * T + t) * U + u) * H;
        let d = 0;
        for (let h = 0; h < H; h++) d += saved.gradOutput[base + h]! * saved.output[base + h]!;
        D[(b * U + u) * T + t] = d;
      }
    }
  }
  const fully = new Set(findRowsWithNoAllowedKey(p));
  const given = saved.logSumExp;
  const exact: number[] = [];
  const markExact = (lse: Float32Array): void => {
    for (let row = 0; row < rows; row++) {
      if (needsExactRow(lse[row]!, fully.has(row))) {
        exact.push(row);
        lse[row] = Infinity;
      }
    }
  };
  if (!given) backwardCounters.logSumExpRecomputed++;
  if (given) {
    const lse = new Float32Array(buf, lseOff, rows);
    lse.set(given);
    markExact(lse);
  }

  const rate = p.dropoutRate;
  const params: KernelParams = {
    B, T, S, C: S, U, V, H, G,
    query: qOff, key: kOff, value: vOff, output: 0,
    scale: p.scale, causal: p.causal ? 1 : 0, window: p.window, queryOffset: p.p0,
    maskKind: mask.kind, mask: mask.offset,
    maskStrideB: mask.strides[0], maskStrideU: mask.strides[1], maskStrideT: mask.strides[2], maskStrideS: mask.strides[3],
    probabilities: 0, tileRows, keyTile: KEY_TILE, queryTiles, keyChunks: 1, keyChunkLength: S,
    tasks: queryTiles * groups, partials: 0, scratch, scratchStride, done: doneOff,
    taskCounter: TASK_COUNTER_OFFSET, progress: PROGRESS_OFFSET, maxTileHeight,
    groupStart: 0, groupCount: groups,
    keyStrideB: 0, keyStrideHead: 0, keyStrideGroup: 0, keyStrideRow: 0,
    valueStrideB: 0, valueStrideHead: 0, valueStrideGroup: 0, valueStrideRow: 0,
    queryStrideB: 0, queryStrideHead: 0, queryStrideGroup: 0, queryStrideRow: 0,
    outputStrideB: 0, outputStrideHead: 0, outputStrideGroup: 0, outputStrideRow: 0,
    firstChunk: 0, chunksInJob: 1,
    pass: 1, gradOutput: dOOff, logSumExp: lseOff, rowDelta: dOff,
    gradQuery: dQOff, gradKey: dKOff, gradValue: dVOff, keyTiles,
    computeLogSumExp: given ? 0 : 1,
    dropoutThreshold: rate > 0 ? dropoutThreshold(rate) : 0,
    dropoutKeepScale: rate > 0 ? dropoutKeepScale(rate) : 1,
    dropoutKey: dropoutKey(p.dropoutSeed),
    callRows: T,
    callRowStart: 0,
    gradChunks: chunks,
    gradQueryPartials: partialsOff,
    rowQueryMax: 0,
  };
  const run = (pass: number, tasks: number): void => {
    // Passes 2 and 3 read the log-sum-exp pass 1 wrote (or the forward's).
    writeParams(host.memory.buffer, { ...params, pass, tasks, computeLogSumExp: pass === 1 ? params.computeLogSumExp : 0 });
    new Int32Array(host.memory.buffer, doneOff, tasks).fill(0);
    host.runJob(tasks, doneOff);
  };
  if (!given) {
    run(1, queryTiles * groups);
    markExact(new Float32Array(host.memory.buffer, lseOff, rows));
  }
  run(2, chunks * groups);
  run(3, queryTiles * groups);

  buf = host.memory.buffer;
  // Out of engine memory: into the caller's arrays when given (no fresh allocation), else copies.
  const dQuery = copyOut(new Float32Array(buf, dQOff, rowsQ), saved.into?.dQuery);
  const dKey = copyOut(new Float32Array(buf, dKOff, rowsK), saved.into?.dKey);
  const dValue = copyOut(new Float32Array(buf, dVOff, rowsK), saved.into?.dValue);
  if (exact.length > 0) {
    const rowSaved: SavedForward = { output: saved.output, gradOutput: saved.gradOutput };
    const scratchRow = rowScratch(p);
    for (const row of exact) {
      const t = row % T;
      const u = Math.floor(row / T) % U;
      const b = Math.floor(row / (T * U));
      backwardRow(p, rowSaved, b, u, t, fully.has(row), true, dQuery, dKey, dValue, scratchRow);
    }
  }
  return { dQuery, dKey, dValue };
}
