/**
 * The attention engine: fused grouped-query attention on Float32Arrays, with no TensorFlow.js import.
 *
 * Paths (same results within float rounding, all checked against {@link attentionReference}):
 * - `'wasm'`: a WebAssembly SIMD128 flash-attention kernel (online softmax over key tiles, the G
 *   query heads of a kv head packed in one tile, causal/window tiles skipped), on worker threads
 *   that share one WebAssembly.Memory when SharedArrayBuffer exists. Two builds of it: relaxed
 *   SIMD (fused multiply-add, `engine.kernel === 'wasm-relaxed-simd'`) where the runtime has it,
 *   else plain SIMD128 (`'wasm-simd'`);
 * - `'js'`: plain JS, for runtimes without WebAssembly SIMD.
 *
 * @module
 */
import { ValueError, formatValue } from '../errors.js';
import { JsEngine } from './js-engine.js';
import { compileKernel, compileKernelSync, defaultThreads, relaxedSimdSupported, sharedMemorySupported, wasmSimdSupported, type KernelBuild } from './kernel-module.js';
import { WasmEngine } from './wasm-engine.js';
import { MAX_THREADS } from './wasm/generated/interface.js';
import type { AttentionEngine, AttentionEngineOptions } from './types.js';

export type {
  AttentionEngine,
  AttentionEngineOptions,
  AttentionProblem,
  AttentionResult,
  BackwardProblem,
  BackwardResult,
  EngineBuffer,
  EngineMask,
  EngineProblem,
} from './types.js';
export { attentionReference } from './reference.js';
export { attentionBackwardReference } from './backward-reference.js';
export { defaultScale } from './problem.js';
export {
  dropoutHash,
  dropoutKeepScale,
  dropoutKey,
  dropoutRowFactors,
  dropoutThreshold,
  isDropped,
  mix32,
  randomDropoutSeed,
} from './dropout_hash.js';

/**
 * Threads an engine will use: `options.threads` (validated: a positive integer) or the available
 * cores, at most MAX_THREADS (an explicit larger count is capped with a warning), 1 without shared
 * memory.
 */
function plan(fn: string, options: AttentionEngineOptions): { simd: boolean; shared: boolean; threads: number; build: KernelBuild } {
  const requested = options?.threads;
  if (requested !== undefined && !(typeof requested === 'number' && Number.isInteger(requested) && requested >= 1)) {
    throw new ValueError(`${fn}: argument \`options.threads\` must be a positive integer (threads including the calling thread); received ${formatValue(requested)}.`);
  }
  if (requested !== undefined && requested > MAX_THREADS) {
    console.warn(`attention engine: ${fn}: options.threads = ${requested} is capped at ${MAX_THREADS} (MAX_THREADS, the most threads an engine uses).`);
  }
  const simd = options.simd !== false && wasmSimdSupported();
  const shared = simd && options.sharedMemory !== false && sharedMemorySupported();
  const build: KernelBuild = simd && options.relaxedSimd !== false && relaxedSimdSupported() ? 'relaxed-simd' : 'simd';
  const cores = Math.floor(Number(defaultThreads()));
  const wanted = requested ?? (Number.isFinite(cores) && cores >= 1 ? cores : 1);
  const threads = shared ? Math.min(MAX_THREADS, wanted) : 1;
  return { simd, shared, threads, build };
}

/**
 * Creates an engine synchronously: compiles the kernel and, in Node, starts the workers and waits
 * for them with Atomics.wait. Browsers forbid synchronous compilation of large modules on the main
 * thread; there, use {@link createAttentionEngine}.
 *
 * @example
 * ```ts
 * import { createAttentionEngineSync } from 'grouped-query-attention/engine';
 * const engine = createAttentionEngineSync({ threads: 2 });
 * console.log(engine.kind, engine.threads); // 'wasm' 2
 * console.log(engine.kernel); // 'wasm-relaxed-simd' where the runtime has relaxed SIMD, else 'wasm-simd'
 * engine.dispose();
 * ```
 */
export function createAttentionEngineSync(options: AttentionEngineOptions = {}): AttentionEngine {
  const { simd, shared, threads, build } = plan('createAttentionEngineSync', options);
  if (!simd) return new JsEngine();
  return new WasmEngine(compileKernelSync(shared, build), build, shared, threads, options);
}

/**
 * Creates an engine. It is usable as soon as the promise resolves; in browsers, workers that are
 * still starting join later (`engine.ready` resolves when all have started or failed), and until
 * then the calling thread does all the work.
 *
 * @example
 * ```ts
 * import { createAttentionEngine } from 'grouped-query-attention/engine';
 * const engine = await createAttentionEngine({ threads: 2 });
 * const { output } = engine.attention({
 *   batch: 1, queryLength: 1, keyLength: 2, numQueryHeads: 2, numKeyValueHeads: 1, headDim: 4,
 *   query: new Float32Array(8).fill(1), key: new Float32Array(8).fill(1), value: new Float32Array(8).fill(2),
 * });
 * console.log(output); // Float32Array(8) [2, 2, 2, 2, 2, 2, 2, 2]
 * engine.dispose();
 * ```
 */
export async function createAttentionEngine(options: AttentionEngineOptions = {}): Promise<AttentionEngine> {
  const { simd, shared, threads, build } = plan('createAttentionEngine', options);
  if (!simd) return new JsEngine();
  const module = await compileKernel(shared, build);
  return new WasmEngine(module, build, shared, threads, options);
}

let defaultEngine: AttentionEngine | null = null;
let defaultPending: Promise<AttentionEngine> | null = null;

/**
 * The process-wide default engine (all cores, SIMD when available), created synchronously on first
 * use. In Node this compiles the kernel and waits for the workers right away. Where synchronous
 * compilation is refused (a browser main thread), it returns a plain-JS engine for the moment and
 * swaps in the WebAssembly engine once its asynchronous creation finishes; await
 * {@link defaultEngineReady} to avoid that. Disposing the default engine is allowed: the next call
 * creates a fresh one (KV caches allocated in the old one go with it and say so when used).
 *
 * @example
 * ```ts
 * import { getDefaultEngine } from 'grouped-query-attention/engine';
 * const engine = getDefaultEngine(); // ready now, in Node
 * console.log(engine.kind, engine.threads);
 * ```
 */
export function getDefaultEngine(): AttentionEngine {
  if (defaultEngine !== null) return defaultEngine;
  try {
    defaultEngine = watchDisposal(createAttentionEngineSync());
  } catch (error) {
    const fallback = watchDisposal(new JsEngine());
    defaultEngine = fallback;
    if (typeof (globalThis as { document?: unknown }).document === 'undefined') {
      // Not a browser main thread, where synchronous creation is expected to work: say why.
      console.warn(`attention engine: the default WebAssembly engine could not be created (${String((error as Error)?.message ?? error)}); using the plain-JS engine.`);
      return fallback;
    }
    // A browser main thread refusing synchronous compilation: JS until the kernel is ready.
    defaultPending = createAttentionEngine().then(
      (e) => {
        if (defaultEngine === fallback) defaultEngine = watchDisposal(e);
        return defaultEngine ?? e;
      },
      (e: unknown) => {
        console.warn(`attention engine: the default WebAssembly engine could not be created (${String((e as Error)?.message ?? e)}); using the plain-JS engine.`);
        return fallback;
      },
    );
  }
  return defaultEngine;
}

/**
 * Makes `engine.dispose()` also forget it as the default engine when it is the default, so that the
 * next use creates a fresh one instead of failing for the rest of the process. Storage allocated in
 * it (a KV cache) goes with it.
 */
const watched = new WeakSet<AttentionEngine>();
function watchDisposal(engine: AttentionEngine): AttentionEngine {
  if (watched.has(engine)) return engine;
  watched.add(engine);
  const dispose = engine.dispose.bind(engine);
  engine.dispose = () => {
    if (defaultEngine === engine) {
      defaultEngine = null;
      defaultPending = null;
    }
    dispose();
  };
  return engine;
}

/**
 * Resolves to the default engine once it is fully ready (kernel compiled, workers started).
 *
 * @example
 * ```ts
 * import { defaultEngineReady } from 'grouped-query-attention/engine';
 * const engine = await defaultEngineReady();
 * console.log(engine.threads);
 * ```
 */
export async function defaultEngineReady(): Promise<AttentionEngine> {
  if (defaultEngine === null) {
    if (typeof (globalThis as { document?: unknown }).document !== 'undefined') {
      defaultPending = createAttentionEngine().then((e) => (defaultEngine = e));
    } else getDefaultEngine();
  }
  if (defaultPending !== null) await defaultPending;
  await defaultEngine!.ready;
  return defaultEngine!;
}

/**
 * Replaces the default engine (the previous one is not disposed). Useful to pin a thread count for
 * the whole process, e.g. `setDefaultEngine(await createAttentionEngine({ threads: 1 }))`. KV caches
 * keep the engine that allocated them. If `engine` is later disposed while it is the default, the
 * next call creates a fresh default engine.
 *
 * @example
 * ```ts
 * import { createAttentionEngineSync, setDefaultEngine } from 'grouped-query-attention/engine';
 * setDefaultEngine(createAttentionEngineSync({ threads: 1 }));
 * ```
 */
export function setDefaultEngine(engine: AttentionEngine): void {
  defaultEngine = watchDisposal(engine);
  defaultPending = null;
}

/**
 * The plain-JS path as an engine (what runtimes without WebAssembly SIMD get).
 *
 * @example
 * ```ts
 * import { createJsEngine } from 'grouped-query-attention/engine';
 * const engine = createJsEngine();
 * console.log(engine.kind); // 'js'
 * ```
 */
export function createJsEngine(): AttentionEngine {
  return new JsEngine();
}
