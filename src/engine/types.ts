/**
 * Types shared by every attention engine path (WebAssembly SIMD, plain JS, naive reference).
 *
 * Shape letters used throughout the package:
 *   B  batch size
 *   T  query (target) length
 *   S  key/value (source) length
 *   U  number of query heads
 *   V  number of key/value heads
 *   H  head dimension
 *   G  query heads per key/value head, G = U / V; query head u reads key/value head floor(u / G)
 *
 * This module imports nothing from TensorFlow.js: the engine works on Float32Arrays.
 */

/**
 * A mask broadcastable to the (B, U, T, S) score tensor: each entry of `shape` is 1 or the full size.
 *
 * - `kind: 'bool'`: nonzero allows the key. A row whose keys are all disallowed is computed as Keras 3.6
 *   does in float32: every logit of that row becomes `fround(s - 1e9)` (uniform weights when all
 *   |s| <= 32, a softmax over a 64-spaced grid otherwise).
 * - `kind: 'additive'`: float32 values added to the scaled logits (`fround(s + a)`), Keras's
 *   `(1 - mask) * -1e9` already applied by the caller. No row is treated specially.
 *
 * @example A key padding mask for batch 2 (keys 0..2 valid in batch 0, all 4 in batch 1):
 * ```ts
 * const mask: EngineMask = { kind: 'bool', data: new Uint8Array([1, 1, 1, 0, 1, 1, 1, 1]), shape: [2, 1, 1, 4] };
 * ```
 */
export interface EngineMask {
  readonly kind: 'bool' | 'additive';
  readonly data: Uint8Array | Float32Array;
  /** (B or 1, U or 1, T or 1, S or 1), row-major. */
  readonly shape: readonly [number, number, number, number];
}

/**
 * One attention problem. Inputs are never modified.
 *
 * @example
 * ```ts
 * const problem: AttentionProblem = {
 *   batch: 1, queryLength: 2, keyLength: 2, numQueryHeads: 2, numKeyValueHeads: 1, headDim: 4,
 *   query: new Float32Array(16), key: new Float32Array(8), value: new Float32Array(8), causal: true,
 * };
 * ```
 */
export interface AttentionProblem {
  readonly batch: number;
  readonly queryLength: number;
  readonly keyLength: number;
  readonly numQueryHeads: number;
  readonly numKeyValueHeads: number;
  readonly headDim: number;
  /** (B, T, U, H) row-major. */
  readonly query: Float32Array;
  /** (B, C, V, H) row-major with C = keyCapacity (default S); only rows 0..S-1 of each batch are read. */
  readonly key: Float32Array;
  /** Same layout as `key`. */
  readonly value: Float32Array;
  /** Rows allocated per batch in `key`/`value` (a KV cache's capacity). Default: keyLength. */
  readonly keyCapacity?: number;
  readonly mask?: EngineMask;
  /** Causal masking: the query at absolute position p sees keys j <= p. */
  readonly causal?: boolean;
  /**
   * Absolute position of query row 0, for causal and window alignment. Default 0 (Keras's top-left
   * alignment); a KV cache passes the cached length (bottom-right alignment).
   */
  readonly queryOffset?: number;
  /** Symmetric band |p - j| < slidingWindow (Keras 3.15); with `causal`, the last w keys. */
  readonly slidingWindow?: number;
  /** Query scale. Default: float32 1/sqrt(H) as Keras computes it, fround(1 / fround(sqrt(H))). */
  readonly scale?: number;
  /** Also return the (B, U, T, S) probabilities (taken before dropout). */
  readonly returnProbabilities?: boolean;
  /**
   * Dropout rate on the probabilities, in [0, 1); 0 (the default) is off. Kept probabilities are
   * scaled by `fround(1 / fround(1 - rate))`; the keep/drop decisions come from the shared hash of
   * `dropout_hash.ts` keyed by `dropoutSeed`.
   */
  readonly dropoutRate?: number;
  /** u32 seed of the dropout hash. Default 0. */
  readonly dropoutSeed?: number;
  /**
   * Also return the per-row log-sum-exp of the softmax (what a backward pass needs), shape (B, U, T).
   * Inference calls leave it off and do not pay for it.
   */
  readonly returnLogSumExp?: boolean;
  /**
   * Where the engines write the results, so that no fresh arrays are made (e.g. views of a tensor
   * library's own buffers): `output` (B, T, U, H), and `probabilities` (B, U, T, S) / `logSumExp`
   * (B, U, T) exactly when they are requested. The result then holds these arrays. They must not
   * overlap an input and must not be views of the engine's own memory; after a call that throws,
   * their contents are unspecified. Default: fresh arrays. (The naive `attentionReference` always
   * returns fresh arrays.)
   *
   * @example
   * ```ts
   * import { createJsEngine } from 'grouped-query-attention/engine';
   * const engine = createJsEngine();
   * const output = new Float32Array(16);
   * const result = engine.attention({
   *   batch: 1, queryLength: 2, keyLength: 2, numQueryHeads: 2, numKeyValueHeads: 1, headDim: 4,
   *   query: new Float32Array(16).fill(0.5), key: new Float32Array(8).fill(0.25),
   *   value: new Float32Array(8).map((_, i) => i), resultInto: { output },
   * });
   * console.log(result.output === output); // true
   * ```
   */
  readonly resultInto?: AttentionResult;
}

/**
 * The result of one problem: fresh arrays owned by the caller (or the problem's `resultInto`).
 *
 * @example
 * ```ts
 * const { output, probabilities } = attentionReference({ ...problem, returnProbabilities: true });
 * ```
 */
export interface AttentionResult {
  /** (B, T, U, H) row-major. */
  readonly output: Float32Array;
  /** (B, U, T, S) row-major, only when requested. */
  readonly probabilities?: Float32Array;
  /**
   * (B, U, T) row-major, only when requested: lse = m + ln(Σ_j exp(s_j - m)) over the float32 logits
   * the softmax uses (mask terms included), so that P_ij = exp(s_ij - lse_i).
   */
  readonly logSumExp?: Float32Array;
}

/**
 * One attention backward problem: the forward problem plus what the forward saved (its output and
 * log-sum-exp) and the gradient of the output. The dropout pattern (same rate and seed as the
 * forward) is regenerated, never stored.
 *
 * @example
 * ```ts
 * import { createJsEngine } from 'grouped-query-attention/engine';
 * const engine = createJsEngine();
 * const problem = {
 *   batch: 1, queryLength: 2, keyLength: 2, numQueryHeads: 2, numKeyValueHeads: 1, headDim: 4,
 *   query: new Float32Array(16).fill(0.5), key: new Float32Array(8).fill(0.25),
 *   value: new Float32Array(8).map((_, i) => i), causal: true,
 * };
 * const { output, logSumExp } = engine.attention({ ...problem, returnLogSumExp: true });
 * const grads = engine.attentionBackward({
 *   ...problem, output, logSumExp: logSumExp!, gradOutput: new Float32Array(16).fill(1),
 * });
 * console.log(grads.dQuery.length, grads.dKey.length, grads.dValue.length); // 16 8 8
 * ```
 */
export interface BackwardProblem extends AttentionProblem {
  /** The forward output (B, T, U, H). */
  readonly output: Float32Array;
  /**
   * The forward's log-sum-exp (B, U, T) (`returnLogSumExp`). Optional: without it the backward
   * computes it first (one more Q·Kᵀ sweep).
   */
  readonly logSumExp?: Float32Array;
  /** Gradient of the loss with respect to the output, (B, T, U, H). */
  readonly gradOutput: Float32Array;
  /**
   * Where the engines write the gradients (e.g. views of a tensor library's own buffers), so that
   * no fresh arrays are made; their result then holds these arrays. Default: fresh arrays. (The
   * naive `attentionBackwardReference` always returns fresh arrays.)
   */
  readonly into?: BackwardResult;
}

/**
 * Gradients of a {@link BackwardProblem}: fresh arrays owned by the caller (or the problem's `into`).
 *
 * @example
 * ```ts
 * const { dQuery, dKey, dValue } = engine.attentionBackward(problem);
 * ```
 */
export interface BackwardResult {
  /** (B, T, U, H). */
  readonly dQuery: Float32Array;
  /** (B, S, V, H) (rows 0..S-1 only, even when the forward read a larger capacity). */
  readonly dKey: Float32Array;
  /** (B, S, V, H). */
  readonly dValue: Float32Array;
}

/**
 * Float32 storage inside an engine's own memory (for example a KV cache): `attention()` reads it in
 * place, with no copy. Allocate with {@link AttentionEngine.allocate}.
 *
 * The memory may grow during any later `allocate()` or `attention()` call, which replaces the
 * underlying buffer: always take a fresh {@link EngineBuffer.view} after such calls instead of
 * keeping an old one.
 *
 * @example A KV cache of capacity C, appended to in place, read by decode steps without copies:
 * ```ts
 * import { getDefaultEngine } from 'grouped-query-attention/engine';
 * const engine = getDefaultEngine();
 * const [B, C, U, V, H] = [1, 1024, 8, 2, 64];
 * const keys = engine.allocate(B * C * V * H);   // (B, C, V, H), zeroed
 * const values = engine.allocate(B * C * V * H);
 * let length = 0;
 * function step(q: Float32Array, k: Float32Array, v: Float32Array): Float32Array {
 *   keys.view().set(k, length * V * H);          // append one row (B = 1)
 *   values.view().set(v, length * V * H);
 *   length += 1;
 *   return engine.attention({
 *     batch: B, queryLength: 1, keyLength: length, keyCapacity: C,
 *     numQueryHeads: U, numKeyValueHeads: V, headDim: H,
 *     query: q, key: keys, value: values, causal: true, queryOffset: length - 1,
 *   }).output;
 * }
 * step(new Float32Array(U * H).fill(0.1), new Float32Array(V * H).fill(1), new Float32Array(V * H).fill(2));
 * keys.free();
 * values.free();
 * ```
 */
export interface EngineBuffer {
  /** Number of float32 elements. */
  readonly length: number;
  /** Byte offset inside the engine's memory (stable for the buffer's life). */
  readonly byteOffset: number;
  /** True after {@link EngineBuffer.free} (or after the engine was disposed). */
  readonly freed: boolean;
  /** A fresh Float32Array view of the storage (valid until the engine's memory next grows). */
  view(): Float32Array;
  /** Returns the storage to the engine. Using the buffer afterwards throws. */
  free(): void;
}

/**
 * An {@link AttentionProblem} whose query, key and value may also be {@link EngineBuffer}s of the
 * engine that runs it: read in place, except key/value of a query with many rows (a prefill into a
 * KV cache), which the engine stages per kv head within its own memory for contiguous reads. Every
 * AttentionProblem is an EngineProblem.
 *
 * @example
 * ```ts
 * const keys = engine.allocate(1 * 16 * 1 * 4);
 * const values = engine.allocate(1 * 16 * 1 * 4);
 * engine.attention({ ...problem, keyLength: 2, keyCapacity: 16, key: keys, value: values });
 * ```
 */
export interface EngineProblem extends Omit<AttentionProblem, 'query' | 'key' | 'value'> {
  readonly query: Float32Array | EngineBuffer;
  readonly key: Float32Array | EngineBuffer;
  readonly value: Float32Array | EngineBuffer;
}

/**
 * Options of {@link AttentionEngine} creation.
 *
 * @example
 * ```ts
 * const single = await createAttentionEngine({ threads: 1 });
 * const plainJs = await createAttentionEngine({ simd: false });
 * ```
 */
export interface AttentionEngineOptions {
  /**
   * Threads including the calling thread: a positive integer. Default: available cores
   * (`os.availableParallelism()` in Node, `navigator.hardwareConcurrency` in browsers). At most 64
   * (`MAX_THREADS` in wasm/interface.mjs): a larger explicit count is capped with a warning, a
   * larger core count silently. Forced to 1 without SharedArrayBuffer.
   */
  readonly threads?: number;
  /** `false` forces the plain-JS path. Default: WebAssembly SIMD when the runtime supports it. */
  readonly simd?: boolean;
  /**
   * `false` forces the plain SIMD128 build of the kernel. Default: the relaxed-SIMD build (fused
   * multiply-add) when the runtime validates it (Node >= 22, Chromium; Node 20 with
   * `--experimental-wasm-relaxed-simd`). `engine.kernel` says which build runs.
   */
  readonly relaxedSimd?: boolean;
  /** `false` forces a non-shared memory (single thread), as without SharedArrayBuffer. */
  readonly sharedMemory?: boolean;
  /**
   * Milliseconds synchronous creation (Node) waits for the next worker to finish starting before it
   * drops the ones still starting (a worker that throws or exits while starting is seen at once).
   * Default 10000.
   */
  readonly workerStartTimeoutMs?: number;
  /** Testing hooks (fault injection). Not for production use. */
  readonly testing?: {
    /** Replace the worker source (e.g. one that throws at start). */
    readonly workerSource?: string;
    /** Workers throw when they see a job of this generation or later. */
    readonly crashWorkersOnJob?: number;
    /** Milliseconds without progress before a busy worker is declared lost. Default 2000. */
    readonly stallMs?: number;
    /**
     * Budget of staged query + output bytes per job (query rows go in blocks); plain-array key/value
     * are staged within half of it (whole, by key chunks or by (batch, kv head) groups, at least one
     * group). Default 4 MiB.
     */
    readonly stagingBytes?: number;
  };
}

/**
 * A ready attention engine (see `createAttentionEngine` / `getDefaultEngine`).
 *
 * @example
 * ```ts
 * import { createAttentionEngineSync } from 'grouped-query-attention/engine';
 * const engine = createAttentionEngineSync({ threads: 2 });
 * const { output, probabilities } = engine.attention({
 *   batch: 1, queryLength: 3, keyLength: 3, numQueryHeads: 4, numKeyValueHeads: 2, headDim: 8,
 *   query: new Float32Array(3 * 4 * 8).fill(0.5), key: new Float32Array(3 * 2 * 8).fill(0.25),
 *   value: new Float32Array(3 * 2 * 8).fill(1), causal: true, returnProbabilities: true,
 * });
 * console.log(output.length, probabilities!.length); // 96 36
 * engine.dispose();
 * ```
 */
export interface AttentionEngine {
  /** `'wasm'` (SIMD kernel) or `'js'` (plain JS). */
  readonly kind: 'wasm' | 'js';
  /**
   * Which code runs: `'wasm-relaxed-simd'` (the kernel's relaxed-SIMD build, fused multiply-add),
   * `'wasm-simd'` (its plain SIMD128 build) or `'js'` (plain JS). The calling thread and every
   * worker run the same build.
   *
   * @example
   * ```ts
   * import { createAttentionEngineSync } from 'grouped-query-attention/engine';
   * const engine = createAttentionEngineSync({ threads: 1 });
   * console.log(engine.kernel); // 'wasm-relaxed-simd' (e.g. Node 22), or 'wasm-simd' (Node 20 without the flag)
   * const plain = createAttentionEngineSync({ threads: 1, relaxedSimd: false });
   * console.log(plain.kernel); // 'wasm-simd'
   * engine.dispose();
   * plain.dispose();
   * ```
   */
  readonly kernel: 'wasm-relaxed-simd' | 'wasm-simd' | 'js';
  /** Threads currently used, the calling thread included (workers that failed are not counted). */
  readonly threads: number;
  /** Whether the engine memory is a shared WebAssembly.Memory (needed for threads). */
  readonly sharedMemory: boolean;
  /** Resolves when every worker has started (or failed to start). Calls work before that. */
  readonly ready: Promise<void>;
  /** Computes attention synchronously. Inputs are never modified. */
  attention(problem: EngineProblem): AttentionResult;
  /**
   * Gradients of attention with respect to query, key and value, synchronously, with no (B,U,T,S)
   * buffer: the probabilities are recomputed tile by tile from the saved log-sum-exp.
   */
  attentionBackward(problem: BackwardProblem): BackwardResult;
  /** Allocates `floats` float32 elements of engine memory (zeroed), e.g. for a KV cache. */
  allocate(floats: number): EngineBuffer;
  /** Current size of the engine memory in bytes (WebAssembly memory never shrinks). */
  memoryBytes(): number;
  /** Stops the workers and releases the memory. Further calls throw. */
  dispose(): void;
}
