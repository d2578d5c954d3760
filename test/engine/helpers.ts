/** Shared helpers of the engine tests: problem generators, an independent float64 oracle, engines. */
import fc from 'fast-check';
import { afterAll, expect } from 'vitest';
import { expectClose } from '../helpers/close.js';
import {
  attentionReference,
  createAttentionEngineSync,
  createJsEngine,
  type AttentionEngine,
  type AttentionProblem,
  type AttentionResult,
} from '../../src/engine/index.js';

/** Deterministic uniform floats in [-scale, scale), rounded to float32. */
export function randomArray(n: number, seed: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    a[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return a;
}

/**
 * A `createAttentionEngineSync` whose engines are disposed after the calling test file's last test.
 * Call it at the top level of a test file.
 */
export function disposedAfterAll(): (options?: Parameters<typeof createAttentionEngineSync>[0]) => AttentionEngine {
  const created: AttentionEngine[] = [];
  afterAll(() => created.forEach((e) => e.dispose()));
  return (options) => {
    const e = createAttentionEngineSync(options);
    created.push(e);
    return e;
  };
}

/**
 * The engine paths every test runs: wasm + threads, wasm on one thread, wasm without shared memory,
 * JS; these take the kernel build the runtime offers (relaxed SIMD where it validates). Where that is
 * the relaxed-SIMD build, the plain SIMD128 build on threads is added, so both builds are checked.
 */
export function makeEngines(): Array<{ name: string; engine: AttentionEngine }> {
  const engines = [
    { name: 'wasm-threads', engine: createAttentionEngineSync({ threads: 2 }) },
    { name: 'wasm-1-thread', engine: createAttentionEngineSync({ threads: 1 }) },
    { name: 'wasm-unshared', engine: createAttentionEngineSync({ sharedMemory: false }) },
    { name: 'js', engine: createJsEngine() },
  ];
  if (engines[0]!.engine.kernel === 'wasm-relaxed-simd') {
    engines.push({ name: 'wasm-simd-threads', engine: createAttentionEngineSync({ threads: 2, relaxedSimd: false }) });
  }
  return engines;
}

/**
 * The kernel build this test run must get: `GQA_EXPECT_KERNEL` when the run sets it (the
 * relaxed-SIMD project of vitest.config.ts), else whatever the runtime offers.
 */
export function expectedKernel(): string | undefined {
  return process.env['GQA_EXPECT_KERNEL'];
}

/**
 * An independent float64 implementation of the Keras 3.6 float32 semantics, written from the spec:
 * logits in float64 from fround(Q*scale); disallowed keys take fround(fround(s) - 1e9) (the
 * float32 64-grid), additive masks fround(fround(s) + a); softmax and P·V in float64.
 */
export function float64Attention(p: AttentionProblem): AttentionResult {
  const B = p.batch, T = p.queryLength, S = p.keyLength, U = p.numQueryHeads, V = p.numKeyValueHeads, H = p.headDim;
  const C = p.keyCapacity ?? S;
  const G = U / V;
  const scale = p.scale ?? Math.fround(1 / Math.fround(Math.sqrt(H)));
  const p0 = p.queryOffset ?? 0;
  const w = p.slidingWindow ?? 0;
  const m = p.mask;
  const ms = m ? m.shape : [1, 1, 1, 1];
  const output = new Float32Array(B * T * U * H);
  const probs = p.returnProbabilities ? new Float32Array(B * U * T * S) : undefined;
  const boolish = p.causal === true || w > 0 || m?.kind === 'bool';
  for (let b = 0; b < B; b++)
    for (let u = 0; u < U; u++)
      for (let t = 0; t < T; t++) {
        const kv = Math.floor(u / G);
        const pos = p0 + t;
        const x = new Float64Array(S);
        for (let j = 0; j < S; j++) {
          let s = 0;
          for (let h = 0; h < H; h++) {
            s += Math.fround(p.query[((b * T + t) * U + u) * H + h]! * scale) * p.key[((b * C + j) * V + kv) * H + h]!;
          }
          const mi =
            (((ms[0] === 1 ? 0 : b) * ms[1] + (ms[1] === 1 ? 0 : u)) * ms[2] + (ms[2] === 1 ? 0 : t)) * ms[3] +
            (ms[3] === 1 ? 0 : j);
          if (m?.kind === 'additive') s = Math.fround(Math.fround(s) + m.data[mi]!);
          let allowed = true;
          if (p.causal && j > pos) allowed = false;
          if (w > 0 && Math.abs(pos - j) >= w) allowed = false;
          if (m?.kind === 'bool' && m.data[mi] === 0) allowed = false;
          if (boolish && !allowed) s = Math.fround(Math.fround(s) - 1e9);
          x[j] = s;
        }
        let mx = -Infinity;
        for (let j = 0; j < S; j++) mx = Math.max(mx, x[j]!);
        let sum = 0;
        for (let j = 0; j < S; j++) {
          x[j] = Math.exp(x[j]! - mx);
          sum += x[j]!;
        }
        for (let h = 0; h < H; h++) {
          let o = 0;
          for (let j = 0; j < S; j++) o += (x[j]! / sum) * p.value[((b * C + j) * V + kv) * H + h]!;
          output[((b * T + t) * U + u) * H + h] = o;
        }
        if (probs) for (let j = 0; j < S; j++) probs[((b * U + u) * T + t) * S + j] = x[j]! / sum;
      }
  return probs ? { output, probabilities: probs } : { output };
}

export interface ProblemSpec {
  B: number;
  T: number;
  S: number;
  V: number;
  G: number;
  H: number;
  extraCapacity: number;
  causal: boolean;
  offset: number;
  window: number;
  maskKind: 'none' | 'bool' | 'additive';
  maskDims: [boolean, boolean, boolean, boolean];
  density: number;
  magnitude: number;
  probs: boolean;
  seed: number;
}

/** fast-check arbitrary over small problems covering the contract's corners. */
export const problemSpec: fc.Arbitrary<ProblemSpec> = fc.record({
  B: fc.integer({ min: 1, max: 2 }),
  T: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 40 })),
  S: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 80 })),
  V: fc.integer({ min: 1, max: 2 }),
  G: fc.constantFrom(1, 2, 7),
  H: fc.constantFrom(1, 5, 80, 128),
  extraCapacity: fc.constantFrom(0, 0, 3),
  causal: fc.boolean(),
  offset: fc.constantFrom(0, 0, 2, 17),
  window: fc.constantFrom(0, 0, 1, 3, 16),
  maskKind: fc.constantFrom('none', 'bool', 'bool', 'additive'),
  maskDims: fc.tuple(fc.boolean(), fc.boolean(), fc.boolean(), fc.boolean()),
  density: fc.constantFrom(0, 0.1, 0.5, 0.9, 1),
  magnitude: fc.constantFrom(1, 1, 3),
  probs: fc.boolean(),
  seed: fc.integer({ min: 1, max: 1 << 30 }),
});

/** Builds the problem a spec describes. */
export function buildProblem(sp: ProblemSpec): AttentionProblem {
  const U = sp.V * sp.G;
  const C = sp.S + sp.extraCapacity;
  const full = [sp.B, U, sp.T, sp.S] as const;
  let mask: AttentionProblem['mask'];
  if (sp.maskKind !== 'none') {
    const shape = full.map((d, i) => (sp.maskDims[i] ? d : 1)) as [number, number, number, number];
    const n = shape[0] * shape[1] * shape[2] * shape[3];
    const r = randomArray(n, sp.seed + 7);
    if (sp.maskKind === 'bool') {
      const data = new Uint8Array(n);
      for (let i = 0; i < n; i++) data[i] = (r[i]! + 1) / 2 < sp.density ? 1 : 0;
      mask = { kind: 'bool', data, shape };
    } else {
      const data = new Float32Array(n);
      // -1e9 entries (Keras's pre-applied bool masks) only without causal/window: combining them is
      // documented as outside the exact contract.
      const big = !sp.causal && sp.window === 0;
      for (let i = 0; i < n; i++) data[i] = (r[i]! + 1) / 2 < sp.density ? 0 : big && r[i]! > 0.8 ? -1e9 : r[i]! * 3;
      mask = { kind: 'additive', data, shape };
    }
  }
  return {
    batch: sp.B,
    queryLength: sp.T,
    keyLength: sp.S,
    numQueryHeads: U,
    numKeyValueHeads: sp.V,
    headDim: sp.H,
    keyCapacity: sp.extraCapacity > 0 ? C : undefined,
    query: randomArray(sp.B * sp.T * U * sp.H, sp.seed, sp.magnitude),
    key: randomArray(sp.B * C * sp.V * sp.H, sp.seed + 1, sp.magnitude),
    value: randomArray(sp.B * C * sp.V * sp.H, sp.seed + 2),
    mask,
    causal: sp.causal,
    queryOffset: sp.offset,
    slidingWindow: sp.window > 0 ? sp.window : undefined,
    returnProbabilities: sp.probs,
  };
}

/** Asserts an engine result against the reference (and checks the probabilities when present). */
export function expectMatchesReference(got: AttentionResult, ref: AttentionResult, what: string, tol = 1e-5): void {
  expectClose(got.output, ref.output, `${what}: output`, tol, tol);
  if (ref.probabilities) {
    if (!got.probabilities) throw new Error(`${what}: probabilities missing`);
    expectClose(got.probabilities, ref.probabilities, `${what}: probabilities`, tol, tol);
  }
}

/** 'nan' | '+inf' | '-inf' | 'finite'. */
function numberClass(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return '+inf';
  if (x === -Infinity) return '-inf';
  return 'finite';
}

/**
 * Same non-finite class at every index; finite values within 1e-5 of the reference, relative to the
 * largest finite magnitude of their row of `rowLength` values (huge values may share a row).
 */
export function expectSameClassAndClose(got: ArrayLike<number>, want: ArrayLike<number>, rowLength: number, what: string, tol = 1e-5): void {
  expect(got.length, what).toBe(want.length);
  for (let r = 0; r < want.length; r += rowLength) {
    let scale = 1;
    for (let i = r; i < r + rowLength; i++) if (Number.isFinite(want[i]!)) scale = Math.max(scale, Math.abs(want[i]!));
    for (let i = r; i < r + rowLength; i++) {
      const g = got[i]!;
      const w = want[i]!;
      if (numberClass(g) !== numberClass(w)) {
        throw new Error(`${what}: element ${i}: got ${g}, expected ${w} (class ${numberClass(w)})`);
      }
      if (Number.isFinite(w) && !(Math.abs(g - w) <= tol * scale)) {
        throw new Error(`${what}: element ${i}: got ${g}, expected ${w} (tolerance ${tol * scale})`);
      }
    }
  }
}

export { attentionReference };
