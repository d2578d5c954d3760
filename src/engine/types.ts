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
