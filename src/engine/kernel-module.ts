/**
 * Loading the engine's WebAssembly kernel and detecting what the runtime offers (SIMD, shared
 * memory, cores, Node's worker_threads, blocking waits).
 */
import {
  KERNEL_RELAXED_SHARED_BASE64,
  KERNEL_RELAXED_SINGLE_BASE64,
  KERNEL_SHARED_BASE64,
  KERNEL_SINGLE_BASE64,
  RELAXED_SIMD_PROBE_BASE64,
} from './wasm/generated/kernel.js';

/** The kernel's exports (wasm/flash.ts). */
export interface KernelExports {
  work(params: number, tid: number, gen: number): number;
  runOne(params: number, tid: number, task: number): void;
  reduce(params: number): void;
  expf(x: number): number;
  /** The kernels' copy of the dropout hash (tested against src/engine/dropout_hash.ts). */
  dropoutHash(key: number, b: number, u: number, i: number, j: number): number;
  maxAbsSegments(src: number, segments: number, len: number, out: number): void;
  /** Copies `rows` rows of `len` floats, `srcStride` floats apart from byte offset `src`, to rows `dstStride` floats apart from `dst`. */
  gatherRows(src: number, srcStride: number, rows: number, len: number, dst: number, dstStride: number): void;
}

/**
 * The two builds of the same kernel sources (scripts/build-engine.mjs): `'relaxed-simd'` uses
 * `f32x4.relaxed_madd` for every multiply-add of the tiles (wasm/simd.ts `madd`), `'simd'` is plain
 * SIMD128 (mul then add).
 */
export type KernelBuild = 'relaxed-simd' | 'simd';

function decodeBase64(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

let kernelCache = new Map<string, WebAssembly.Module>();

const cacheKey = (shared: boolean, build: KernelBuild): string => `${build}/${shared ? 'shared' : 'single'}`;

/** Kernel bytes of the given build for the given memory kind. */
export function kernelBytes(shared: boolean, build: KernelBuild = 'simd'): Uint8Array {
  if (build === 'relaxed-simd') return decodeBase64(shared ? KERNEL_RELAXED_SHARED_BASE64 : KERNEL_RELAXED_SINGLE_BASE64);
  return decodeBase64(shared ? KERNEL_SHARED_BASE64 : KERNEL_SINGLE_BASE64);
}

/** Whether this runtime validates the SIMD kernel. */
export function wasmSimdSupported(): boolean {
  try {
    return typeof WebAssembly === 'object' && WebAssembly.validate(kernelBytes(false) as BufferSource);
  } catch {
    return false;
  }
}

let relaxedKnown: boolean | null = null;

/**
 * Whether this runtime has relaxed SIMD: `WebAssembly.validate` of a tiny module using
 * `f32x4.relaxed_madd` (on by default in Node >= 22 and Chromium; Node 20 needs
 * `--experimental-wasm-relaxed-simd`). Checked once.
 */
export function relaxedSimdSupported(): boolean {
  if (relaxedKnown === null) {
    try {
      relaxedKnown = typeof WebAssembly === 'object' && WebAssembly.validate(decodeBase64(RELAXED_SIMD_PROBE_BASE64) as BufferSource);
    } catch {
      relaxedKnown = false;
    }
  }
  return relaxedKnown;
}

/** Compiles (synchronously) and caches the kernel module of `build`. */
export function compileKernelSync(shared: boolean, build: KernelBuild = 'simd'): WebAssembly.Module {
  const key = cacheKey(shared, build);
  let m = kernelCache.get(key);
  if (!m) {
    m = new WebAssembly.Module(kernelBytes(shared, build) as BufferSource);
    kernelCache.set(key, m);
  }
  return m;
}

/** Compiles (asynchronously) and caches the kernel module of `build`. */
export async function compileKernel(shared: boolean, build: KernelBuild = 'simd'): Promise<WebAssembly.Module> {
  const key = cacheKey(shared, build);
  let m = kernelCache.get(key);
  if (!m) {
    m = await WebAssembly.compile(kernelBytes(shared, build) as BufferSource);
    kernelCache.set(key, m);
  }
  return m;
}

/** For tests: drop cached modules. */
export function clearKernelCache(): void {
  kernelCache = new Map();
}

/** A 1 MiB memory that may grow to 4 GiB (or less where the address space is tight). */
export function createMemory(shared: boolean): WebAssembly.Memory {
  let error: unknown;
  for (const maximum of [65536, 32768, 16384, 4096]) {
    try {
      return new WebAssembly.Memory(shared ? { initial: 16, maximum, shared: true } : { initial: 16, maximum });
    } catch (e) {
      error = e;
    }
  }
  throw error;
}

/** Whether a shared WebAssembly.Memory can be used here. */
export function sharedMemorySupported(): boolean {
  if (typeof SharedArrayBuffer !== 'function') return false;
  const coi = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated;
  if (coi === false) return false;
  try {
    new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    return true;
  } catch {
    return false;
  }
}

interface NodeProcess {
  versions?: { node?: string };
  getBuiltinModule?: (name: string) => unknown;
}

/** Node's `process` when this is Node with `process.getBuiltinModule` (no `require` needed). */
function nodeProcess(): (NodeProcess & { getBuiltinModule: (name: string) => unknown }) | null {
  const proc = (globalThis as { process?: NodeProcess }).process;
  if (proc?.versions?.node && typeof proc.getBuiltinModule === 'function') {
    return proc as NodeProcess & { getBuiltinModule: (name: string) => unknown };
  }
  return null;
}

/** Node's worker_threads, as much of it as the engine uses. */
export interface NodeWorkerThreads {
  Worker: new (
    src: string,
    opts: { eval: boolean; workerData: unknown; execArgv: string[] },
  ) => {
    on(ev: string, cb: (x: unknown) => void): void;
    unref(): void;
    terminate(): Promise<number>;
  };
}

/** Node's worker_threads module, or null outside Node. */
export function nodeWorkerThreads(): NodeWorkerThreads | null {
  return (nodeProcess()?.getBuiltinModule('node:worker_threads') as NodeWorkerThreads | undefined) ?? null;
}

/** Whether the calling thread may block in Atomics.wait (Node main thread and any worker: yes). */
export function canBlock(): boolean {
  const g = globalThis as { process?: { versions?: { node?: string } }; document?: unknown };
  if (g.process?.versions?.node) return true;
  return typeof g.document === 'undefined';
}

/** Default thread count: available cores. */
export function defaultThreads(): number {
  const proc = nodeProcess();
  if (proc) {
    const os = proc.getBuiltinModule('node:os') as { availableParallelism?: () => number; cpus: () => unknown[] };
    return os.availableParallelism ? os.availableParallelism() : os.cpus().length;
  }
  return (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1;
}
