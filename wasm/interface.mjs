// The host <-> WebAssembly interface of the attention engine, written once.
//
// scripts/build-engine.mjs generates every reader and writer from this table:
//   - wasm/generated/params.ts               the kernel's parameter globals and `loadParams` (AssemblyScript),
//   - src/engine/wasm/generated/interface.ts the memory map, control words, worker states, slot
//                                            indices and the typed `writeParams` (TypeScript),
//   - the constants prelude of the worker source (wasm/worker.js uses the names, never the numbers).
// A slot's position is its place in PARAMS: moving or adding a line moves every reader and writer.
// Adding a parameter is one line here; the kernel then reads it as the global `g<Name>`
// (e.g. `keyTile` -> `gKeyTile`) and the host must set it (the writer's type requires every field).

/** Worker threads an engine may use, the calling thread included (documented in src/engine/README.md). */
export const MAX_THREADS = 64;

/** Byte offset of the control block; everything up to HEAP_BASE is laid out from the tables below. */
export const CONTROL_OFFSET = 1024;

/** First byte of the engine's heap (KV-cache buffers, scratch, staging). */
export const HEAP_BASE = 65536;

/**
 * Control block: Int32 words at CONTROL_OFFSET, then one state word per thread (WORKER_STATES).
 * [name, meaning]
 */
export const CONTROL = [
  ['GENERATION', 'job generation; idle workers Atomics.wait on it, the host bumps it to start a job'],
  ['QUIT', 'non-zero: workers leave their loop (engine disposed)'],
  ['READY', 'workers that finished starting (success or failure); the host waits on it'],
  ['FAILED', 'workers that failed (at start or during a job); the host compares it with what it has seen'],
  ['FINISHED', 'jobs finished by workers; the host waits on it while tasks remain'],
];

/** Values of a thread's state word. [name, meaning] */
export const WORKER_STATES = [
  ['IDLE', 'waiting for a job'],
  ['BUSY', 'running tasks of a job'],
  ['FAILED', 'threw (at start or in a job), or dropped by the host; never used again'],
  ['STOPPED', 'left its loop after QUIT'],
  ['STARTING', 'created, not yet running'],
];

/**
 * The parameter block: one 32-bit slot per line, [name, type, meaning].
 * Types: 'i32' integer, 'f32' float, 'ptr' byte offset in engine memory (unsigned; may wrap, see `key`).
 * Shape letters: B batch, T query rows of this job, S key length, C key capacity, U query heads,
 * V kv heads, H head size, G = U/V.
 */
export const PARAMS = [
  // problem shape
  ['B', 'i32', 'batch size'],
  ['T', 'i32', 'query rows in this job (a block of the query)'],
  ['S', 'i32', 'key length (keys 0..S-1 are attended)'],
  ['C', 'i32', 'key capacity (rows allocated per batch in key/value)'],
  ['U', 'i32', 'query heads'],
  ['V', 'i32', 'key/value heads'],
  ['H', 'i32', 'head size'],
  ['G', 'i32', 'query heads per key/value head (U / V)'],
  // inputs and outputs (layouts given by the strides below)
  ['query', 'ptr', 'query rows of this job'],
  ['key', 'ptr', 'key; staged key chunks are addressed as if they started at row 0 (the offset may wrap below zero)'],
  ['value', 'ptr', 'value, addressed like `key`'],
  ['output', 'ptr', 'output rows of this job (staged)'],
  ['scale', 'f32', 'logit scale, applied to the query first: fround(q * scale)'],
  // which keys a query row sees
  ['causal', 'i32', '1: row at position p sees keys <= p'],
  ['window', 'i32', '> 0: row at position p sees keys in (p - window, p + window)'],
  ['queryOffset', 'i32', 'position of the job\'s first query row'],
  ['maskKind', 'i32', '0 none (or decided outside), 1 bool (0 = masked), 2 additive float'],
  ['mask', 'ptr', 'mask element of the job\'s first query row'],
  ['maskStrideB', 'i32', 'mask stride over batch, in elements'],
  ['maskStrideU', 'i32', 'mask stride over query heads, in elements'],
  ['maskStrideT', 'i32', 'mask stride over query rows, in elements'],
  ['maskStrideS', 'i32', 'mask stride over keys, in elements'],
  ['probabilities', 'ptr', '0, or where the (B, U, T, S) probabilities go'],
  // tiling and tasks
  ['tileRows', 'i32', 'query rows per tile (the G heads of each are packed: tile height tileRows * G)'],
  ['keyTile', 'i32', 'keys per tile of the online softmax'],
  ['queryTiles', 'i32', 'query tiles of this job'],
  ['keyChunks', 'i32', 'key chunks the keys are split into (partials reduced when > 1)'],
  ['keyChunkLength', 'i32', 'keys per chunk'],
  ['tasks', 'i32', 'tasks of this job (reduce: query tiles x groups x keyChunks)'],
  ['partials', 'ptr', '(max, sum, output) partials per task when keyChunks > 1'],
  ['scratch', 'ptr', 'per-thread scratch of thread 0; thread t uses scratch + t * scratchStride'],
  ['scratchStride', 'i32', 'bytes of scratch per thread'],
  ['done', 'ptr', 'one done flag (i32) per task'],
  ['taskCounter', 'ptr', 'the shared task counter word (job generation in the high bits)'],
  ['progress', 'ptr', 'one progress counter (i32) per thread, bumped per key tile'],
  ['maxTileHeight', 'i32', 'tile height rounded up to 4 (the scratch and partials row count)'],
  // groups (batch, kv head) of this job: flat index b * V + kvh in [groupStart, groupStart + groupCount)
  ['groupStart', 'i32', 'first group of the job'],
  ['groupCount', 'i32', 'groups of the job'],
  // strides in floats: X(b, kvh, gi, row) = X + b*XStrideB + kvh*XStrideHead + gi*XStrideGroup + row*XStrideRow
  ['keyStrideB', 'i32', 'key stride over batch'],
  ['keyStrideHead', 'i32', 'key stride over kv heads'],
  ['keyStrideGroup', 'i32', 'key stride over the job\'s groups (staged per group)'],
  ['keyStrideRow', 'i32', 'key stride over key rows'],
  ['valueStrideB', 'i32', 'value stride over batch'],
  ['valueStrideHead', 'i32', 'value stride over kv heads'],
  ['valueStrideGroup', 'i32', 'value stride over the job\'s groups'],
  ['valueStrideRow', 'i32', 'value stride over key rows'],
  ['queryStrideB', 'i32', 'query stride over batch'],
  ['queryStrideHead', 'i32', 'query stride over kv heads'],
  ['queryStrideGroup', 'i32', 'query stride over the job\'s groups'],
  ['queryStrideRow', 'i32', 'query stride over query rows'],
  ['outputStrideB', 'i32', 'output stride over batch'],
  ['outputStrideHead', 'i32', 'output stride over kv heads'],
  ['outputStrideGroup', 'i32', 'output stride over the job\'s groups'],
  ['outputStrideRow', 'i32', 'output stride over query rows'],
  // key chunks of a chunked job sequence (otherwise firstChunk = 0, chunksInJob = keyChunks)
  ['firstChunk', 'i32', 'first key chunk this job runs'],
  ['chunksInJob', 'i32', 'key chunks this job runs (partials are indexed as if all keyChunks ran)'],
  // backward (wasm/backward.ts); a forward job sets pass = 0. Layouts: query, gradOutput, gradQuery
  // (B, T, U, H); key, value, gradKey, gradValue (B, S, V, H); logSumExp, rowDelta (B, U, T).
  ['pass', 'i32', '0 forward; backward: 1 log-sum-exp (a task per query tile), 2 dK/dV and dQ partials (a task per group and key-tile chunk), 3 dQ from its partials (a task per query tile)'],
  ['gradOutput', 'ptr', 'backward: gradient of the output'],
  ['logSumExp', 'ptr', 'per-row log-sum-exp (B, U, T): forward writes it when non-zero; backward reads it (+inf marks a row the host computes itself)'],
  ['rowDelta', 'ptr', 'backward: D = rowsum(dO * O) per row'],
  ['gradQuery', 'ptr', 'backward: dQ'],
  ['gradKey', 'ptr', 'backward: dK'],
  ['gradValue', 'ptr', 'backward: dV'],
  ['keyTiles', 'i32', 'backward: key tiles of keyTile keys (the dK/dV pass has one task per key tile and group)'],
  ['computeLogSumExp', 'i32', 'backward dQ pass: 1 computes each row\'s log-sum-exp first and writes it to logSumExp'],
  ['dropoutThreshold', 'i32', 'dropout: drop when (hash >> 8) < threshold (unsigned); 0 = no dropout'],
  ['dropoutKeepScale', 'f32', 'dropout: factor of kept probabilities, fround(1 / fround(1 - rate))'],
  ['dropoutKey', 'i32', 'dropout: mix32(seed), the hash key of this call (src/engine/dropout_hash.ts)'],
  ['callRows', 'i32', 'forward: query rows of the whole call (T of the log-sum-exp layout)'],
  ['callRowStart', 'i32', 'forward: index within the call of the job\'s first query row (the hash\'s row index, the log-sum-exp row)'],
  ['gradChunks', 'i32', 'backward: key-tile chunks per group (pass 2 tasks per group; dQ partials per group)'],
  ['gradQueryPartials', 'ptr', 'backward: dQ partials, per (chunk, group) (T*G + 4) packed rows of Hp floats'],
  ['rowQueryMax', 'ptr', 'forward: 0, or where max |query| of each row goes, (B, callRows, U) (the host\'s exact-row bounds, src/engine/exact-rows.ts)'],
];

/** Bits of the task counter word that hold the task index (the job generation is above them). */
export const TASK_BITS = 20;

const align = (n, to) => Math.ceil(n / to) * to;

/**
 * Derives the memory map below HEAP_BASE from the tables: control words, then a state word per
 * thread; the parameter block; the task counter; a progress counter per thread. Throws if it does
 * not fit below HEAP_BASE.
 */
export function layout() {
  const names = new Set();
  for (const [name, type] of PARAMS) {
    if (names.has(name)) throw new Error(`wasm/interface.mjs: parameter slot ${name} is listed twice`);
    if (!['i32', 'f32', 'ptr'].includes(type)) throw new Error(`wasm/interface.mjs: slot ${name} has unknown type ${type}`);
    names.add(name);
  }
  const controlWords = CONTROL.length;
  const workerStateBase = align(controlWords, 16);
  const controlBytes = (workerStateBase + MAX_THREADS) * 4;
  const paramsOffset = align(CONTROL_OFFSET + controlBytes, 64);
  const paramsBytes = PARAMS.length * 4;
  const taskCounterOffset = align(paramsOffset + paramsBytes, 64);
  const progressOffset = align(taskCounterOffset + 4, 64);
  const end = progressOffset + MAX_THREADS * 4;
  if (end > HEAP_BASE) throw new Error(`wasm/interface.mjs: the engine's memory map needs ${end} bytes, more than HEAP_BASE ${HEAP_BASE}`);
  return {
    controlOffset: CONTROL_OFFSET,
    controlWords: workerStateBase + MAX_THREADS,
    workerStateBase,
    paramsOffset,
    paramSlots: PARAMS.length,
    taskCounterOffset,
    progressOffset,
    heapBase: HEAP_BASE,
    maxThreads: MAX_THREADS,
    taskBits: TASK_BITS,
  };
}
