// AssemblyScript source of the engine's WebAssembly SIMD128 flash-attention kernel.
//
// Compiled by scripts/build-engine.mjs (twice: with a shared imported memory for worker threads,
// and with a plain imported memory for single-threaded use). The module has no data segments and
// never allocates: the JS side owns the memory and passes byte offsets in a parameter block.
//
// Layouts (row-major, float32): query (B,T,U,H), key/value (B,C,V,H), output (B,T,U,H),
// probabilities (B,U,T,S). A task is (batch b, kv head kvh, query tile qt, key chunk kc): the
// G query heads of kv head kvh for tq consecutive query rows are packed into one tile of
// M = tq*G rows (row r = tl*G + g), so every key/value row is loaded once for all of them.
//
// Per key tile the logits are kept transposed, S[j][r] (key-major), so every softmax step works on
// 4 packed rows per v128 lane group: running max m, running sum l and the rescale factor alpha are
// lane-wise, the exp is a vectorised polynomial, and P·V splats P[j][r] straight from memory.
//
// Files: generated/params.ts (the parameter block, generated from interface.mjs), job.ts (derived
// sizes, scratch), simd.ts (exp, sums), masks.ts (bands and masks), tiles.ts (logits, softmax,
// P·V), forward.ts (one task), reduce.ts (key-chunk partials), scan.ts (input magnitudes for the
// host's exact rows), stage.ts (row gathers of the host's staging), backward.ts (the backward
// passes, selected by the `pass` parameter). This file holds the entry points.
import { TASK_BITS, gDone, gPass, gTaskCounter, gTasks } from './generated/params';
import { runBackwardTask } from './backward';

// The dropout hash of the kernels, exported for the test against src/engine/dropout_hash.ts.
export { dropoutHash } from './backward';
// The kernels' causal/window band, exported for the test against src/engine/mask-rule.ts.
export { bandHighAt, bandLowAt } from './masks';
import { loadJob, setScratch } from './job';
import { runTask } from './forward';
import { reducePartials } from './reduce';
import { expf as expScalar } from './simd';
import { maxAbsSegments as maxAbsScan } from './scan';
import { gatherRows as gatherRowsImpl } from './stage';

const TASK_MASK: i32 = (1 << TASK_BITS) - 1;

/**
 * Runs tasks of job `gen` until none is left: claims task indices from the shared counter
 * (generation in the high bits, so a late thread never claims a task of another job), marks each
 * finished task in the done flags. Returns the number of tasks this thread ran.
 */
export function work(params: usize, tid: i32, gen: i32): i32 {
  loadJob(params);
  setScratch(tid);
  const next = gTaskCounter;
  const tag = (gen & ((1 << (31 - TASK_BITS)) - 1)) << TASK_BITS;
  let ran = 0;
  while (true) {
    const v = atomic.load<i32>(next);
    if ((v & ~TASK_MASK) != tag) break;
    const idx = v & TASK_MASK;
    if (idx >= gTasks) break;
    if (atomic.cmpxchg<i32>(next, v, v + 1) != v) continue;
    if (gPass != 0) runBackwardTask(gPass, idx, tid);
    else runTask(idx, tid);
    atomic.store<i32>(gDone + (<usize>idx << 2), 1);
    ran++;
  }
  return ran;
}

/** Runs one task (used by the main thread to take over a task a lost worker claimed). */
export function runOne(params: usize, tid: i32, task: i32): void {
  loadJob(params);
  setScratch(tid);
  if (gPass != 0) runBackwardTask(gPass, task, tid);
  else runTask(task, tid);
  atomic.store<i32>(gDone + (<usize>task << 2), 1);
}

/** Combines the key-chunk partials (m, l, O) of a split job into the output (flash-decoding). */
export function reduce(params: usize): void {
  reducePartials(params);
}

/** out[s] = max |src[s·len + i]| over i < len (NaN if any is NaN), for the host's exact-row checks. */
export function maxAbsSegments(src: usize, segments: i32, len: i32, out: usize): void {
  maxAbsScan(src, segments, len, out);
}

/** Copies `rows` rows of `len` floats, `srcStride` floats apart, to rows `dstStride` floats apart (the host's key/value staging per kv head). */
export function gatherRows(src: usize, srcStride: i32, rows: i32, len: i32, dst: usize, dstStride: i32): void {
  gatherRowsImpl(src, srcStride, rows, len, dst, dstStride);
}

/** Scalar exp with the kernel's polynomial (exported for tests). */
export function expf(x: f32): f32 {
  return expScalar(x);
}
