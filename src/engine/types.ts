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
 */
export interface EngineMask {
  readonly kind: 'bool' | 'additive';
  readonly data: Uint8Array | Float32Array;
  /** (B or 1, U or 1, T or 1, S or 1), row-major. */
  readonly shape: readonly [number, number, number, number];
}

/** One attention problem. Inputs are never modified. */
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
  /** Also return the (B, U, T, S) probabilities. */
  readonly returnProbabilities?: boolean;
}

export interface AttentionResult {
  /** (B, T, U, H) row-major. */
  readonly output: Float32Array;
  /** (B, U, T, S) row-major, only when requested. */
  readonly probabilities?: Float32Array;
}

/**
 * Float32 storage inside an engine's own memory (for example a KV cache): `attention()` reads it in
 * place, with no copy. Allocate with {@link AttentionEngine.allocate}.
 *
 * The memory may grow during any later `allocate()` or `attention()` call, which replaces the
 * underlying buffer: always take a fresh {@link EngineBuffer.view} after such calls instead of
 * keeping an old one.
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
 * engine that runs it (read in place). Every AttentionProblem is an EngineProblem.
 */
export interface EngineProblem extends Omit<AttentionProblem, 'query' | 'key' | 'value'> {
  readonly query: Float32Array | EngineBuffer;
  readonly key: Float32Array | EngineBuffer;
  readonly value: Float32Array | EngineBuffer;
}

/** Options of {@link AttentionEngine} creation. */
export interface AttentionEngineOptions {
  /**
   * Threads including the calling thread. Default: available cores
   * (`os.availableParallelism()` in Node, `navigator.hardwareConcurrency` in browsers).
   * Forced to 1 without SharedArrayBuffer.
   */
  readonly threads?: number;
  /** `false` forces the plain-JS path. Default: WebAssembly SIMD when the runtime supports it. */
  readonly simd?: boolean;
  /** `false` forces a non-shared memory (single thread), as without SharedArrayBuffer. */
  readonly sharedMemory?: boolean;
  /** Milliseconds to wait for workers to start in synchronous creation (Node). Default 10000. */
  readonly workerStartTimeoutMs?: number;
  /** Testing hooks (fault injection). Not for production use. */
  readonly testing?: {
    /** Replace the worker source (e.g. one that throws at start). */
    readonly workerSource?: string;
    /** Workers throw when they see a job of this generation or later. */
    readonly crashWorkersOnJob?: number;
    /** Milliseconds without progress before a busy worker is declared lost. Default 2000. */
    readonly stallMs?: number;
    /** Budget of staged query + output bytes per job (query rows go in blocks). Default 4 MiB. */
    readonly stagingBytes?: number;
  };
}

/** A ready attention engine (see `createAttentionEngine` / `getDefaultEngine`). */
export interface AttentionEngine {
  /** `'wasm'` (SIMD kernel) or `'js'` (plain JS). */
  readonly kind: 'wasm' | 'js';
  /** Threads currently used, the calling thread included (workers that failed are not counted). */
  readonly threads: number;
  /** Whether the engine memory is a shared WebAssembly.Memory (needed for threads). */
  readonly sharedMemory: boolean;
  /** Resolves when every worker has started (or failed to start). Calls work before that. */
  readonly ready: Promise<void>;
  /** Computes attention synchronously. Inputs are never modified. */
  attention(problem: EngineProblem): AttentionResult;
  /** Allocates `floats` float32 elements of engine memory (zeroed), e.g. for a KV cache. */
  allocate(floats: number): EngineBuffer;
  /** Current size of the engine memory in bytes (WebAssembly memory never shrinks). */
  memoryBytes(): number;
  /** Stops the workers and releases the memory. Further calls throw. */
  dispose(): void;
}
