/**
 * The WebAssembly SIMD engine: one WebAssembly.Memory (shared when SharedArrayBuffer exists) holds
 * every buffer; the calling thread and worker threads (worker-pool.ts) run the same kernel on it.
 *
 * Memory map (generated from wasm/interface.mjs): below HEAP_BASE the control block, the job
 * parameters, the task counter and per-thread progress counters; above it a first-fit heap with
 * KV-cache buffers, per-thread scratch (kept and reused) and per-call staging (bounded copies of
 * Float32Array inputs, the output, the mask; freed at the end of each call).
 *
 * A call is planned by planJobs (job-plan.ts) into jobs; each job's parameters are written by name
 * (writeParams) and its tasks run on the pool.
 *
 * Shape letters: B batch, T query length, S key length, C key capacity, U query heads, V kv heads,
 * H head size, G = U/V. A group is one (batch, kv head) pair.
 */
import { formatValue, ValueError } from '../errors.js';
import { normalizeBackward } from './backward-problem.js';
import { WasmHeap } from './heap.js';
import { runBackwardWasm } from './wasm-backward.js';
import { planJobs, STAGING_BYTES } from './job-plan.js';
import { dropoutKeepScale, dropoutKey, dropoutThreshold } from './dropout_hash.js';
import { everyRowSeesEveryKey, findExactRows, findNonFiniteOutputRows, scanSegmentsJs } from './exact-rows.js';
import { writeExactRows } from './js-path.js';
import { createMemory, type KernelBuild, type KernelExports } from './kernel-module.js';
import { normalizeInto, normalizeProblem, type NormalizedProblem } from './problem.js';
import { copyOut, gather, scatter } from './staging.js';
import type {
  AttentionEngine,
  AttentionEngineOptions,
  AttentionResult,
  BackwardProblem,
  BackwardResult,
  EngineBuffer,
  EngineProblem,
} from './types.js';
import { HEAP_BASE, MAX_THREADS, PARAMS_OFFSET, PROGRESS_OFFSET, TASK_COUNTER_OFFSET, writeParams, type KernelParams } from './wasm/generated/interface.js';
import { WorkerPool } from './worker-pool.js';

/** Floats per block of the SIMD input scan (and of its outputs). */
const SCAN_FLOATS = 1 << 16;
/** Bytes of the pass area through which plain-array key/value rows are staged per group. */
const PASS_BYTES = 256 << 10;

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

/** The backward-only parameters, off in forward jobs. */
const FORWARD_ONLY = {
  pass: 0, gradOutput: 0, rowDelta: 0, gradQuery: 0, gradKey: 0, gradValue: 0, keyTiles: 0, computeLogSumExp: 0,
  gradChunks: 0, gradQueryPartials: 0,
} as const;

export class WasmEngine implements AttentionEngine {
  readonly kind = 'wasm' as const;
  readonly kernel: 'wasm-relaxed-simd' | 'wasm-simd';
  readonly memory: WebAssembly.Memory;
  readonly sharedMemory: boolean;
  private readonly exports: KernelExports;
  private readonly heap: WasmHeap;
  private readonly pool: WorkerPool;
  private readonly stagingBytes: number;
  private readonly buffers = new Set<WasmBuffer>();
  /** Views of the current call's EngineBuffers, read in place. */
  private readonly inPlace = new Set<Float32Array>();
  private scratchOffset = 0;
  private scratchBytes = 0;
  /** Input/output area of the SIMD scan (scanSegments), allocated once so scans never grow memory. */
  private readonly scanOffset: number;
  private disposed = false;

  /**
   * `module` is the kernel compiled as `build` for this memory kind; the workers instantiate the
   * same module, so every thread runs the same build.
   */
  constructor(module: WebAssembly.Module, build: KernelBuild, shared: boolean, threads: number, options: AttentionEngineOptions) {
    this.kernel = build === 'relaxed-simd' ? 'wasm-relaxed-simd' : 'wasm-simd';
    this.sharedMemory = shared;
    this.memory = createMemory(shared);
    const instance = new WebAssembly.Instance(module, { env: { memory: this.memory } });
    this.exports = instance.exports as unknown as KernelExports;
    this.heap = new WasmHeap(this.memory, HEAP_BASE);
    this.stagingBytes = options.testing?.stagingBytes ?? STAGING_BYTES;
    this.scanOffset = this.heap.alloc(2 * SCAN_FLOATS * 4);
    const requested = shared ? Math.max(1, Math.min(MAX_THREADS, threads)) : 1;
    this.pool = new WorkerPool(this.memory, this.exports, module, requested, options);
  }

  get ready(): Promise<void> {
    return this.pool.ready;
  }

  get threads(): number {
    return this.disposed ? 1 : this.pool.threads;
  }

  memoryBytes(): number {
    return this.memory.buffer.byteLength;
  }

  allocate(floats: number): EngineBuffer {
    this.checkAlive('allocate');
    if (typeof floats !== 'number' || !Number.isInteger(floats) || floats < 1) {
      throw new ValueError(`AttentionEngine.allocate: argument \`floats\` must be a positive integer; received ${formatValue(floats)}.`);
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
    const into = normalizeInto('AttentionEngine.attention', problem as never, p, this.memory.buffer);
    // Where inputs that live in engine memory (EngineBuffers or raw views of it) are, read before
    // the run: growth during the run detaches views of a non-shared memory.
    const places = { query: this.placeOf(p.query), key: this.placeOf(p.key), value: this.placeOf(p.value) };
    // Rows computed exactly (exact-rows.ts): no allowed key, or inputs that may make them non-finite.
    // When every row reads every key, the kernel's own NaN rows say which (no extra pass over K/V);
    // otherwise the kernel reports each row's max |Q| while it packs the query (no host pass over Q).
    const everyKey = everyRowSeesEveryKey(p);
    const { result, rowQueryMax } = this.run(p, into, !everyKey);
    const fresh: NormalizedProblem = {
      ...p,
      query: this.reviewed(p.query, places.query),
      key: this.reviewed(p.key, places.key),
      value: this.reviewed(p.value, places.value),
    };
    const exact = everyKey
      ? findNonFiniteOutputRows(fresh, result.output as Float32Array)
      : findExactRows(fresh, this.scanSegments, rowQueryMax);
    if (exact.length > 0) writeExactRows(fresh, exact, result.output as Float32Array, result.probabilities as Float32Array | undefined, result.logSumExp as Float32Array | undefined);
    return result;
  }

  /** Engine-memory blocks for one call (at least 64 bytes each), all freed by `releaseAll`. */
  private callAllocator(): { alloc: (bytes: number) => number; releaseAll: () => void } {
    const owned: number[] = [];
    return {
      alloc: (bytes) => {
        const offset = this.heap.alloc(Math.max(64, bytes));
        owned.push(offset);
        return offset;
      },
      releaseAll: () => {
        for (const offset of owned) this.heap.release(offset);
      },
    };
  }

  /** Byte offset and length of `a` if it lives in engine memory, else null. */
  private placeOf(a: Float32Array): { byteOffset: number; length: number } | null {
    return a.buffer === this.memory.buffer ? { byteOffset: a.byteOffset, length: a.length } : null;
  }

  /** `a`, or a view of the same floats over the current engine memory if it lived there. */
  private reviewed(a: Float32Array, place: { byteOffset: number; length: number } | null): Float32Array {
    if (place === null || a.buffer === this.memory.buffer) return a;
    return new Float32Array(this.memory.buffer, place.byteOffset, place.length);
  }

  attentionBackward(problem: BackwardProblem): BackwardResult {
    this.checkAlive('attentionBackward');
    const { p, saved } = normalizeBackward('AttentionEngine.attentionBackward', problem);
    const { alloc, releaseAll } = this.callAllocator();
    try {
      return runBackwardWasm(
        {
          memory: this.memory,
          alloc,
          scratch: (bytes) => {
            this.ensureScratch(bytes);
            return this.scratchOffset;
          },
          threads: 1 + this.pool.workerSlots,
          stageMask: (q) => this.stageMask(q, alloc),
          runJob: (tasks, doneOffset) => this.pool.runJob(tasks, doneOffset),
        },
        p,
        saved,
      );
    } finally {
      releaseAll();
    }
  }

  /** Whether `a` already lives in engine memory (an EngineBuffer view), read in place. */
  private isInPlace(a: Float32Array): boolean {
    return a.buffer === this.memory.buffer || this.inPlace.has(a);
  }

  /**
   * Runs the problem as the jobs {@link planJobs} plans. A job covers `groupsPerJob` consecutive
   * groups, a block of query rows and a range of key chunks. Plain-array inputs are staged into
   * engine memory within the staging budget; EngineBuffers are read in place. Results go to `resultInto`'s
   * arrays when given (no fresh allocation: first writes to fresh memory cost a page fault each).
   */
  private run(
    p: NormalizedProblem,
    into: AttentionResult | undefined,
    wantRowQueryMax: boolean,
  ): { result: AttentionResult; rowQueryMax?: Float32Array } {
    const { B, T, S, C, U, V, H, G } = p;
    const queryInPlace = this.isInPlace(p.query);
    const keyInEngine = this.isInPlace(p.key);
    const sameKeyValue = p.value === p.key;
    const valueInEngine = sameKeyValue ? keyInEngine : this.isInPlace(p.value);
    // Offsets of in-place inputs, read before any allocation (growth detaches non-shared views).
    const queryInPlaceOffset = p.query.byteOffset;
    const keyInPlaceOffset = p.key.byteOffset;
    const valueInPlaceOffset = p.value.byteOffset;
    const plan = planJobs({
      B, T, S, U, V, H, G, wantProbabilities: p.wantProbabilities, queryInPlace, keyInPlace: keyInEngine,
      valueInPlace: valueInEngine, sameKeyValue, threads: this.threads, stagingBytes: this.stagingBytes,
    });
    // Key / value read where they are, or staged (plain arrays; EngineBuffers of a long query).
    const keyInPlace = plan.readKeyInPlace;
    const valueInPlace = plan.readValueInPlace;
    const { tileRows, stageKeyRows, keysPerJob, keyChunks, chunksPerJob, groupsPerJob, rowsPerJob } = plan;
    const groups = B * V;
    const headsRow = G * H; // floats of one query row of one kv head's G query heads
    const queryRow = U * H; // floats of one query (and output) row in (B, T, U, H)
    const keyRow = V * H; // floats of one key (and value) row in (B, C, V, H)
    // Every job holds all B·V groups: staged query and output rows keep the (B, rows, U, H) layout.
    const wholeBatches = groupsPerJob === groups;
    this.ensureScratch(plan.scratchStride * (1 + this.pool.workerSlots));

    const { alloc, releaseAll } = this.callAllocator();
    try {
      const stagedKeyFloats = stageKeyRows ? B * keysPerJob * keyRow : groupsPerJob * S * H;
      const keyOffset = keyInPlace ? keyInPlaceOffset : alloc(stagedKeyFloats * 4);
      const valueOffset = sameKeyValue ? keyOffset : valueInPlace ? valueInPlaceOffset : alloc(stagedKeyFloats * 4);
      // One query/output staging area per row block in flight: two when blocks are pipelined.
      const blockFloats = groupsPerJob * rowsPerJob * headsRow;
      const slots = plan.pipelineRows ? 2 : 1;
      const queryOffsets = Array.from({ length: slots }, () => (queryInPlace ? queryInPlaceOffset : alloc(blockFloats * 4)));
      const outputOffsets = Array.from({ length: slots }, () => alloc(blockFloats * 4));
      // Plain-array key/value staged per group pass through whole (C, V, H) rows of engine memory.
      const passRows = Math.max(1, Math.min(S, Math.floor(PASS_BYTES / (keyRow * 4))));
      const passOffset = !stageKeyRows && ((!keyInPlace && !keyInEngine) || (!valueInPlace && !valueInEngine)) ? alloc(passRows * keyRow * 4) : 0;
      const output = into?.output ?? new Float32Array(B * T * U * H);
      const probabilityCount = p.wantProbabilities ? B * U * T * S : 0;
      const probabilitiesOffset = probabilityCount > 0 ? alloc(probabilityCount * 4) : 0;
      const mask = this.stageMask(p, alloc);
      const logSumExpOffset = p.wantLogSumExp ? alloc(B * U * T * 4) : 0;
      const partialsOffset = keyChunks > 1 ? alloc(plan.tasks * plan.partialBytes) : 0;
      const doneOffset = alloc(plan.tasksPerKeyChunk * chunksPerJob * 4);
      const rowQueryMaxOffset = wantRowQueryMax ? alloc(B * T * U * 4) : 0;

      for (let groupStart = 0; groupStart < groups; groupStart += groupsPerJob) {
        const groupCount = Math.min(groupsPerJob, groups - groupStart);
        if (!stageKeyRows && (!keyInPlace || !valueInPlace)) {
          // The S × H rows of each group's kv head, one after the other.
          if (!keyInPlace) this.stageGroups(keyOffset, keyInEngine ? keyInPlaceOffset : p.key, passOffset, passRows, groupStart, groupCount, p);
          if (!valueInPlace && !sameKeyValue) this.stageGroups(valueOffset, valueInEngine ? valueInPlaceOffset : p.value, passOffset, passRows, groupStart, groupCount, p);
        }
        /** Stages the query rows of block `block` into slot `slot` (not in place). */
        const stageQuery = (block: number, slot: number): void => {
          const rowStart = block * rowsPerJob;
          const rows = Math.min(rowsPerJob, T - rowStart);
          if (wholeBatches) {
            // Rows [rowStart, rowStart + rows) of every batch: contiguous in (B, T, U, H), one bulk copy per batch.
            const staged = new Float32Array(this.memory.buffer, queryOffsets[slot]!, B * rows * queryRow);
            for (let b = 0; b < B; b++) staged.set(p.query.subarray((b * T + rowStart) * queryRow, (b * T + rowStart + rows) * queryRow), b * rows * queryRow);
            return;
          }
          const staged = new Float32Array(this.memory.buffer, queryOffsets[slot]!, groupCount * rows * headsRow);
          for (let gi = 0; gi < groupCount; gi++) {
            const b = Math.floor((groupStart + gi) / V);
            const from = (b * T + rowStart) * queryRow + ((groupStart + gi) % V) * headsRow;
            gather(staged, gi * rows * headsRow, p.query, from, rows, headsRow, queryRow);
          }
        };
        /** Copies the output rows of block `block` out of slot `slot`. */
        const copyOutput = (block: number, slot: number): void => {
          const rowStart = block * rowsPerJob;
          const rows = Math.min(rowsPerJob, T - rowStart);
          if (wholeBatches) {
            const staged = new Float32Array(this.memory.buffer, outputOffsets[slot]!, B * rows * queryRow);
            for (let b = 0; b < B; b++) output.set(staged.subarray(b * rows * queryRow, (b + 1) * rows * queryRow), (b * T + rowStart) * queryRow);
            return;
          }
          const staged = new Float32Array(this.memory.buffer, outputOffsets[slot]!, groupCount * rows * headsRow);
          for (let gi = 0; gi < groupCount; gi++) {
            const b = Math.floor((groupStart + gi) / V);
            const to = (b * T + rowStart) * queryRow + ((groupStart + gi) % V) * headsRow;
            scatter(output, to, queryRow, staged, gi * rows * headsRow, rows, headsRow);
          }
        };
        const blocks = Math.ceil(T / rowsPerJob);
        if (!queryInPlace) stageQuery(0, 0);
        for (let block = 0; block < blocks; block++) {
          const rowStart = block * rowsPerJob;
          const rows = Math.min(rowsPerJob, T - rowStart);
          const queryTiles = Math.ceil(rows / tileRows);
          const slot = block % slots;
          if (!queryInPlace && slots === 1 && block > 0) stageQuery(block, 0);
          // Host work of other blocks, done while the workers run this block's first job (pipelined
          // blocks): the next block's query in, the previous block's output out.
          let overlapDone = slots === 1;
          const overlap = (): void => {
            if (overlapDone) return;
            overlapDone = true;
            if (block + 1 < blocks && !queryInPlace) stageQuery(block + 1, 1 - slot);
            if (block > 0) copyOutput(block - 1, 1 - slot);
          };
          for (let firstChunk = 0; firstChunk < keyChunks; firstChunk += chunksPerJob) {
            const firstKey = firstChunk * plan.keyChunkLength;
            const chunksInJob = Math.min(chunksPerJob, keyChunks - firstChunk);
            const tasks = queryTiles * groupCount * chunksInJob;
            if (stageKeyRows) {
              // Key rows [firstKey, lastKey) of every head: contiguous in (B, C, V, H), one bulk copy per batch.
              const lastKey = Math.min(S, firstKey + keysPerJob);
              const memory = this.memory.buffer;
              for (let b = 0; b < B; b++) {
                const from = (b * C + firstKey) * keyRow;
                const to = (b * C + lastKey) * keyRow;
                if (!keyInPlace) new Float32Array(memory, keyOffset, B * keysPerJob * keyRow).set(p.key.subarray(from, to), b * keysPerJob * keyRow);
                if (!valueInPlace && !sameKeyValue) new Float32Array(memory, valueOffset, B * keysPerJob * keyRow).set(p.value.subarray(from, to), b * keysPerJob * keyRow);
              }
            }
            // Staged key rows are addressed as if they started at row 0 (the offset may wrap
            // below zero; the kernel's 32-bit address arithmetic wraps back).
            const stagedKeyShift = stageKeyRows ? firstKey * keyRow * 4 : 0;
            // Key / value strides in floats: in place (B, C, V, H), staged key rows
            // (B, keysPerJob, V, H) or staged groups (groupCount, S, H).
            const inPlaceKeyStrides = { b: C * keyRow, head: H, group: 0, row: keyRow };
            const stagedKeyStrides = stageKeyRows ? { b: keysPerJob * keyRow, head: H, group: 0, row: keyRow } : { b: 0, head: 0, group: S * H, row: H };
            const keyStrides = keyInPlace ? inPlaceKeyStrides : stagedKeyStrides;
            const valueStrides = valueInPlace ? inPlaceKeyStrides : stagedKeyStrides;
            // Query / output strides: in place (B, T, U, H), or staged as (B, rows, U, H) when the job
            // holds every group (bulk copies), else as (groupCount, rows, G, H).
            const stagedRowStrides = wholeBatches
              ? { b: rows * queryRow, head: headsRow, group: 0, row: queryRow }
              : { b: 0, head: 0, group: rows * headsRow, row: headsRow };
            const queryStrides = queryInPlace ? { b: T * queryRow, head: headsRow, group: 0, row: queryRow } : stagedRowStrides;
            const params: KernelParams = {
              B, T: rows, S, C, U, V, H, G,
              query: queryInPlace ? queryInPlaceOffset + rowStart * queryRow * 4 : queryOffsets[slot]!,
              key: keyInPlace ? keyOffset : keyOffset - stagedKeyShift,
              value: valueInPlace ? valueOffset : valueOffset - stagedKeyShift,
              output: outputOffsets[slot]!,
              scale: p.scale,
              causal: p.causal ? 1 : 0,
              window: p.window,
              queryOffset: p.p0 + rowStart,
              maskKind: mask.kind,
              mask: mask.offset + rowStart * mask.strides[2] * (mask.kind === 2 ? 4 : 1),
              maskStrideB: mask.strides[0],
              maskStrideU: mask.strides[1],
              maskStrideT: mask.strides[2],
              maskStrideS: mask.strides[3],
              probabilities: probabilitiesOffset,
              tileRows,
              keyTile: plan.keyTile,
              queryTiles,
              keyChunks,
              keyChunkLength: plan.keyChunkLength,
              tasks,
              partials: partialsOffset,
              scratch: this.scratchOffset,
              scratchStride: plan.scratchStride,
              done: doneOffset,
              taskCounter: TASK_COUNTER_OFFSET,
              progress: PROGRESS_OFFSET,
              maxTileHeight: plan.maxTileHeight,
              groupStart,
              groupCount,
              keyStrideB: keyStrides.b,
              keyStrideHead: keyStrides.head,
              keyStrideGroup: keyStrides.group,
              keyStrideRow: keyStrides.row,
              valueStrideB: valueStrides.b,
              valueStrideHead: valueStrides.head,
              valueStrideGroup: valueStrides.group,
              valueStrideRow: valueStrides.row,
              queryStrideB: queryStrides.b,
              queryStrideHead: queryStrides.head,
              queryStrideGroup: queryStrides.group,
              queryStrideRow: queryStrides.row,
              outputStrideB: stagedRowStrides.b,
              outputStrideHead: stagedRowStrides.head,
              outputStrideGroup: stagedRowStrides.group,
              outputStrideRow: stagedRowStrides.row,
              firstChunk,
              chunksInJob,
              ...FORWARD_ONLY,
              logSumExp: logSumExpOffset,
              callRows: T,
              callRowStart: rowStart,
              dropoutThreshold: p.dropoutRate > 0 ? dropoutThreshold(p.dropoutRate) : 0,
              dropoutKeepScale: p.dropoutRate > 0 ? dropoutKeepScale(p.dropoutRate) : 1,
              dropoutKey: dropoutKey(p.dropoutSeed),
              rowQueryMax: rowQueryMaxOffset,
            };
            writeParams(this.memory.buffer, params);
            new Int32Array(this.memory.buffer, doneOffset, tasks).fill(0);
            // A fresh output array costs a page fault per 4 KiB on its first write: the calling
            // thread takes them for this job's rows (every head: so only in the first group block,
            // before any output is copied out) while the workers start on its tasks, so the copy out
            // finds the pages in place (the call's arrays are never shared with the workers).
            const freshOutput = into === undefined && groupStart === 0 && firstChunk === 0;
            this.pool.runJob(tasks, doneOffset, freshOutput || !overlapDone ? () => {
              if (freshOutput) for (let b = 0; b < B; b++) output.fill(0, (b * T + rowStart) * queryRow, (b * T + rowStart + rows) * queryRow);
              overlap();
            } : undefined);
            if (keyChunks > 1 && firstChunk + chunksPerJob >= keyChunks) {
              // Reduce the partials of every key chunk of the jobs above.
              writeParams(this.memory.buffer, { ...params, tasks: queryTiles * groupCount * keyChunks, firstChunk: 0, chunksInJob: keyChunks });
              this.exports.reduce(PARAMS_OFFSET);
            }
          }
          // Without workers (or pipelining) the other blocks' host work runs here.
          overlap();
          if (slots === 1) copyOutput(block, 0);
        }
        if (slots === 2) copyOutput(blocks - 1, (blocks - 1) % 2);
      }
      const logSumExp = p.wantLogSumExp ? copyOut(new Float32Array(this.memory.buffer, logSumExpOffset, B * U * T), into?.logSumExp) : undefined;
      const probabilities = probabilityCount > 0 ? copyOut(new Float32Array(this.memory.buffer, probabilitiesOffset, probabilityCount), into?.probabilities) : undefined;
      const rowQueryMax = wantRowQueryMax ? new Float32Array(this.memory.buffer, rowQueryMaxOffset, B * T * U).slice() : undefined;
      return {
        result: { output, ...(probabilities ? { probabilities } : {}), ...(logSumExp ? { logSumExp } : {}) },
        ...(rowQueryMax ? { rowQueryMax } : {}),
      };
    } finally {
      releaseAll();
    }
  }

  /**
   * Stages the key (or value) rows of groups [groupStart, groupStart + groupCount) to `to`, laid out
   * (groupCount, S, H). `from` is the byte offset of an array in engine memory, or a plain array,
   * which passes through the pass area `passRows` whole (V, H) rows at a time (one bulk copy); the
   * kernel's gatherRows then lays out each kv head's rows.
   */
  private stageGroups(to: number, from: number | Float32Array, passOffset: number, passRows: number, groupStart: number, groupCount: number, p: NormalizedProblem): void {
    const { S, C, V, H } = p;
    const keyRow = V * H;
    const inEngine = typeof from === 'number';
    const chunk = inEngine ? S : passRows;
    const lastGroup = groupStart + groupCount;
    for (let first = groupStart; first < lastGroup; ) {
      // The range's groups of batch b share its (C, V, H) rows: each chunk of rows is read once for all.
      const b = Math.floor(first / V);
      const end = Math.min(lastGroup, (b + 1) * V);
      for (let s0 = 0; s0 < S; s0 += chunk) {
        const n = Math.min(chunk, S - s0);
        let rows: number;
        if (inEngine) {
          rows = from + (b * C + s0) * keyRow * 4;
        } else {
          new Float32Array(this.memory.buffer, passOffset, n * keyRow).set(from.subarray((b * C + s0) * keyRow, (b * C + s0 + n) * keyRow));
          rows = passOffset;
        }
        for (let g = first; g < end; g++) {
          this.exports.gatherRows(rows + (g % V) * H * 4, keyRow, n, H, to + ((g - groupStart) * S + s0) * H * 4, H);
        }
      }
      first = end;
    }
  }

  /**
   * The SIMD {@link SegmentScan}: in place for arrays in engine memory, else through the scan area
   * in blocks of whole segments (TypedArray.set is a memcpy); the plain-JS scan for segments longer
   * than the area.
   */
  private readonly scanSegments = (a: Float32Array, start: number, segments: number, len: number): Float32Array => {
    if (len > SCAN_FLOATS || len === 0) return scanSegmentsJs(a, start, segments, len);
    const out = new Float32Array(segments);
    const inPlace = a.buffer === this.memory.buffer;
    const block = Math.max(1, Math.floor(SCAN_FLOATS / len));
    const outOffset = this.scanOffset + SCAN_FLOATS * 4;
    for (let s0 = 0; s0 < segments; s0 += block) {
      const n = Math.min(block, segments - s0);
      const from = start + s0 * len;
      let src: number;
      if (inPlace) {
        src = a.byteOffset + from * 4;
      } else {
        new Float32Array(this.memory.buffer, this.scanOffset, n * len).set(a.subarray(from, from + n * len));
        src = this.scanOffset;
      }
      this.exports.maxAbsSegments(src, n, len, outOffset);
      out.set(new Float32Array(this.memory.buffer, outOffset, n), s0);
    }
    return out;
  };

  /** Grows the persistent per-thread scratch to at least `bytes`. */
  private ensureScratch(bytes: number): void {
    if (bytes <= this.scratchBytes) return;
    if (this.scratchBytes > 0) this.heap.release(this.scratchOffset);
    this.scratchBytes = 0;
    this.scratchOffset = this.heap.alloc(bytes);
    this.scratchBytes = bytes;
  }

  /**
   * Copies the mask into engine memory: kind 0 (none), 1 (bool) or 2 (additive), its offset and
   * (B, U, T, S) strides. A bool mask constant over keys only decides fully masked rows, which are
   * handled outside the kernel, so it is not staged.
   */
  private stageMask(p: NormalizedProblem, alloc: (bytes: number) => number): { kind: number; offset: number; strides: readonly [number, number, number, number] } {
    const m = p.mask;
    if (m === null || (m.kind === 'bool' && m.strides[3] === 0)) return { kind: 0, offset: 0, strides: [0, 0, 0, 0] };
    const offset = alloc(m.data.byteLength);
    if (m.kind === 'bool') new Uint8Array(this.memory.buffer, offset, m.data.length).set(m.data as Uint8Array);
    else new Float32Array(this.memory.buffer, offset, m.data.length).set(m.data as Float32Array);
    return { kind: m.kind === 'bool' ? 1 : 2, offset, strides: m.strides };
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.pool.dispose();
    for (const b of this.buffers) b.freed = true;
    this.buffers.clear();
  }
}
