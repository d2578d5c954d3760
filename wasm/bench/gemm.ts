// AssemblyScript source of the bench's WebAssembly GEMM ceiling (bench/lib/ceilings.mjs compiles it
// twice, plain SIMD128 and relaxed SIMD, like the kernels): C = A·B, row-major float32, A (M×K),
// B (K×N), C (M×N), register blocks of R rows × 8 columns, the multiply-add being the kernels' own
// `madd` (wasm/simd.ts). M must be a multiple of R, N of 8. Not part of the engine.
import { madd } from '../simd';

/** R = 4: 8 accumulators. */
export function gemm4(a: usize, b: usize, c: usize, M: i32, N: i32, K: i32): void {
  const kb = <usize>K << 2;
  const nb = <usize>N << 2;
  for (let i = 0; i < M; i += 4) {
    const a0 = a + <usize>i * kb;
    for (let j = 0; j < N; j += 8) {
      let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
      let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
      let bp = b + (<usize>j << 2);
      let ap = a0;
      for (let k = 0; k < K; k++) {
        const b0 = v128.load(bp);
        const b1 = v128.load(bp + 16);
        let s = v128.load32_splat(ap);
        c00 = madd(s, b0, c00); c01 = madd(s, b1, c01);
        s = v128.load32_splat(ap + kb);
        c10 = madd(s, b0, c10); c11 = madd(s, b1, c11);
        s = v128.load32_splat(ap + 2 * kb);
        c20 = madd(s, b0, c20); c21 = madd(s, b1, c21);
        s = v128.load32_splat(ap + 3 * kb);
        c30 = madd(s, b0, c30); c31 = madd(s, b1, c31);
        bp += nb;
        ap += 4;
      }
      const cp = c + <usize>i * nb + (<usize>j << 2);
      v128.store(cp, c00); v128.store(cp + 16, c01);
      v128.store(cp + nb, c10); v128.store(cp + nb + 16, c11);
      v128.store(cp + 2 * nb, c20); v128.store(cp + 2 * nb + 16, c21);
      v128.store(cp + 3 * nb, c30); v128.store(cp + 3 * nb + 16, c31);
    }
  }
}

/** R = 6: 12 accumulators. */
export function gemm6(a: usize, b: usize, c: usize, M: i32, N: i32, K: i32): void {
  const kb = <usize>K << 2;
  const nb = <usize>N << 2;
  for (let i = 0; i < M; i += 6) {
    const a0 = a + <usize>i * kb;
    for (let j = 0; j < N; j += 8) {
      let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
      let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
      let c40 = f32x4.splat(0), c41 = f32x4.splat(0), c50 = f32x4.splat(0), c51 = f32x4.splat(0);
      let bp = b + (<usize>j << 2);
      let ap = a0;
      for (let k = 0; k < K; k++) {
        const b0 = v128.load(bp);
        const b1 = v128.load(bp + 16);
        let s = v128.load32_splat(ap);
        c00 = madd(s, b0, c00); c01 = madd(s, b1, c01);
        s = v128.load32_splat(ap + kb);
        c10 = madd(s, b0, c10); c11 = madd(s, b1, c11);
        s = v128.load32_splat(ap + 2 * kb);
        c20 = madd(s, b0, c20); c21 = madd(s, b1, c21);
        s = v128.load32_splat(ap + 3 * kb);
        c30 = madd(s, b0, c30); c31 = madd(s, b1, c31);
        s = v128.load32_splat(ap + 4 * kb);
        c40 = madd(s, b0, c40); c41 = madd(s, b1, c41);
        s = v128.load32_splat(ap + 5 * kb);
        c50 = madd(s, b0, c50); c51 = madd(s, b1, c51);
        bp += nb;
        ap += 4;
      }
      const cp = c + <usize>i * nb + (<usize>j << 2);
      v128.store(cp, c00); v128.store(cp + 16, c01);
      v128.store(cp + nb, c10); v128.store(cp + nb + 16, c11);
      v128.store(cp + 2 * nb, c20); v128.store(cp + 2 * nb + 16, c21);
      v128.store(cp + 3 * nb, c30); v128.store(cp + 3 * nb + 16, c31);
      v128.store(cp + 4 * nb, c40); v128.store(cp + 4 * nb + 16, c41);
      v128.store(cp + 5 * nb, c50); v128.store(cp + 5 * nb + 16, c51);
    }
  }
}
