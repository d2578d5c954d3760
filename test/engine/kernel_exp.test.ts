// The kernels' vectorised exp (wasm/simd.ts expv, exported as the scalar `expf`): its accuracy
// against Math.exp over the whole float32 range it serves, and its special values, on every
// kernel build this runtime validates (the relaxed-SIMD build fuses the multiply-adds).
import { describe, expect, it } from 'vitest';
import { compileKernelSync, relaxedSimdSupported, type KernelBuild, type KernelExports } from '../../src/engine/kernel-module.js';

function kernelExp(build: KernelBuild): (x: number) => number {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536 });
  const exports = new WebAssembly.Instance(compileKernelSync(false, build), { env: { memory } }).exports as unknown as KernelExports;
  return (x) => exports.expf(x);
}

/** Spacing of float32 values at |y| (y a positive normal float64): the unit in the last place. */
function ulpOf(y: number): number {
  const f = new Float32Array([y]);
  const bits = new Uint32Array(f.buffer);
  bits[0] = bits[0]! & 0x7f800000; // 2^exponent of fround(y)
  return f[0]! * 2 ** -23;
}

/** About `count` float32 values spread evenly over the bit patterns of [lo, hi] (lo <= 0 <= hi). */
function floatsBetween(lo: number, hi: number, count: number): number[] {
  const f = new Float32Array(1);
  const bits = new Uint32Array(f.buffer);
  const out: number[] = [];
  for (const [end, sign] of [[hi, 1], [-lo, -1]] as const) {
    f[0] = end;
    const last = bits[0]!;
    const step = Math.max(1, Math.floor(last / (count / 2)));
    for (let u = 0; u <= last; u += step) {
      bits[0] = u;
      out.push(sign * f[0]!);
    }
  }
  return out;
}

const builds: KernelBuild[] = relaxedSimdSupported() ? ['simd', 'relaxed-simd'] : ['simd'];

describe.each(builds)('the kernel exp (%s build)', (build) => {
  const expf = kernelExp(build);

  it('is within 1.25 ulp of exp over [-87.3, 88.3], the softmax range [-20, 0] sampled densely', () => {
    let worst = 0;
    let worstAt = 0;
    for (const [lo, hi] of [[-87.3, 88.3], [-20, 0], [-1, 1]] as const) {
      for (const x of floatsBetween(lo, hi, 400_000)) {
        const exact = Math.exp(x);
        if (exact < 2 ** -126) continue; // below the normal range the kernel returns 0 (next test)
        const err = Math.abs(expf(x) - exact) / ulpOf(exact);
        if (err > worst) {
          worst = err;
          worstAt = x;
        }
      }
    }
    expect(worst, `worst error ${worst} ulp at x = ${worstAt}`).toBeLessThanOrEqual(1.25);
  });

  it('gives exp(0) = 1, 0 below -87.34 and for -Infinity, NaN for NaN, a finite value at the top', () => {
    expect(expf(0)).toBe(1);
    expect(expf(-0)).toBe(1);
    for (const x of [-87.34, -87.5, -100, -1e30, -Infinity]) expect(expf(x), `exp(${x})`).toBe(0);
    expect(expf(Number.NaN)).toBeNaN();
    expect(expf(-87.33)).toBeGreaterThan(0);
    for (const x of [88.3, 88.37, 1e30, Infinity]) {
      expect(Number.isFinite(expf(x)), `exp(${x}) finite`).toBe(true);
      expect(expf(x)).toBeGreaterThan(2 ** 127);
    }
  });
});
