// Vector math shared by the kernels: the multiply-add, exp and horizontal sums on f32x4.

/**
 * a * b + c on f32x4: the one switch between the two builds of the kernels
 * (scripts/build-engine.mjs). With `--enable relaxed-simd` it is `f32x4.relaxed_madd` (a fused
 * multiply-add where the hardware has one: one rounding instead of two, and one instruction);
 * otherwise SIMD128's mul then add. The branch is decided at compile time.
 */
// @ts-ignore: decorator
@inline
export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

/**
 * Largest row max logit the kernel trusts: beyond it float32 overflow depends on the order of
 * summation; such rows are written as NaN and recomputed exactly by the host (SAFE_MAGNITUDE in
 * src/engine/exact-rows.ts).
 */
export const SAFE_LOGIT: f32 = 1e37;

/** Writes n NaNs at dst (a row the host recomputes exactly). */
export function fillNaN(dst: usize, n: i32): void {
  for (let h = 0; h < n; h++) store<f32>(dst + (<usize>h << 2), NaN);
}

// ---- vectorised exp (Cephes expf: range reduction by ln 2, degree-6 polynomial) -------------
// Relative error about 1-2 ulp on [-87.3, 88.3]; exp(x) = 0 below -87.3 (including -inf).
// @ts-ignore: decorator
@inline
export function expv(x: v128): v128 {
  const lo = f32x4.splat(-87.33654);
  const under = f32x4.lt(x, lo);
  let v = f32x4.min(f32x4.max(x, lo), f32x4.splat(88.37626));
  const fx = f32x4.nearest(f32x4.mul(v, f32x4.splat(1.44269504088896341)));
  v = f32x4.sub(v, f32x4.mul(fx, f32x4.splat(0.693359375)));
  v = f32x4.sub(v, f32x4.mul(fx, f32x4.splat(-2.12194440e-4)));
  let y = f32x4.splat(1.9875691500e-4);
  y = madd(y, v, f32x4.splat(1.3981999507e-3));
  y = madd(y, v, f32x4.splat(8.3334519073e-3));
  y = madd(y, v, f32x4.splat(4.1665795894e-2));
  y = madd(y, v, f32x4.splat(1.6666665459e-1));
  y = madd(y, v, f32x4.splat(5.0000001201e-1));
  y = f32x4.add(f32x4.add(f32x4.mul(f32x4.mul(y, v), v), v), f32x4.splat(1.0));
  const n = i32x4.trunc_sat_f32x4_s(fx);
  const pow2n = i32x4.shl(i32x4.add(n, i32x4.splat(127)), 23);
  const r = f32x4.mul(y, pow2n);
  return v128.andnot(r, under);
}

/** Scalar exp with the same polynomial (exported for tests). */
export function expf(x: f32): f32 {
  return f32x4.extract_lane(expv(f32x4.splat(x)), 0);
}

// @ts-ignore: decorator
@inline
export function hsum4(a0: v128, a1: v128, a2: v128, a3: v128): v128 {
  const u01 = f32x4.add(f32x4.shuffle(a0, a1, 0, 4, 1, 5), f32x4.shuffle(a0, a1, 2, 6, 3, 7));
  const u23 = f32x4.add(f32x4.shuffle(a2, a3, 0, 4, 1, 5), f32x4.shuffle(a2, a3, 2, 6, 3, 7));
  return f32x4.add(f32x4.shuffle(u01, u23, 0, 1, 4, 5), f32x4.shuffle(u01, u23, 2, 3, 6, 7));
}


/**
 * Natural log of a positive finite float (the module has no data segments, so no table-driven
 * Mathf.log): x = 2^e · m with m in [√½, √2), ln m = 2·atanh(s), s = (m − 1)/(m + 1), |s| ≤ 0.172,
 * five series terms in float64 (error below 1e-9).
 */
export function logPositive(x: f32): f32 {
  const bits = reinterpret<i32>(x);
  let e = (bits >> 23) - 127;
  let m = <f64>reinterpret<f32>((bits & 0x7fffff) | 0x3f800000);
  if (m > 1.4142135623730951) {
    m *= 0.5;
    e += 1;
  }
  const s = (m - 1) / (m + 1);
  const s2 = s * s;
  const ln = 2 * s * (1 + s2 * (1.0 / 3 + s2 * (1.0 / 5 + s2 * (1.0 / 7 + s2 * (1.0 / 9)))));
  return <f32>(<f64>e * 0.6931471805599453 + ln);
}

// ---- the dropout hash (contract in src/engine/dropout_hash.ts) --------------------------------
// @ts-ignore: decorator
@inline
export function mix32(x: u32): u32 {
  x ^= x >> 16;
  x *= 0x21f0aaad;
  x ^= x >> 15;
  x *= 0x735a2d97;
  x ^= x >> 15;
  return x;
}

// @ts-ignore: decorator
@inline
export function mix32v(x: v128): v128 {
  x = v128.xor(x, i32x4.shr_u(x, 16));
  x = i32x4.mul(x, i32x4.splat(0x21f0aaad));
  x = v128.xor(x, i32x4.shr_u(x, 15));
  x = i32x4.mul(x, i32x4.splat(0x735a2d97));
  x = v128.xor(x, i32x4.shr_u(x, 15));
  return x;
}

