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

// ---- vectorised exp ---------------------------------------------------------------------------
// exp(x) = 2^n · e^r, n = round(x · log2 e), r = x − n·ln 2 (Cody–Waite: the high part of ln 2 has
// 9 significant bits, so n·C1 is exact and both builds round the first reduction step alike),
// e^r = 1 + r + r²·P(r) on |r| ≤ ln2/2 with P of degree 4 (relative error of the polynomial about
// 4e-9, i.e. below 0.1 ulp). Relative error about 1 ulp on [-87.3, 88.3]; exp(x) = 0 below -87.3
// (including -inf); NaN stays NaN; +inf and x > 88.37 give exp(88.37) ≈ 2.4e38 (finite).
//
// Cheap on purpose (it is the inner loop of every softmax): pmin/pmax instead of min/max (one
// instruction each, and the NaN of x still flows through: pmax(NaN, lo) = NaN), and n is rounded
// by adding 1.5·2^23 + 127: x·log2 e is in [-126, 127.5] after the clamps, so the sum lies in
// [2^23, 2^24), where floats are the integers (the add rounds to nearest, ties to even, as
// f32x4.nearest would), and its low mantissa bits hold n + 127: shifting its bits left by 23
// gives 2^n directly (no float-to-int conversion, no bias add). A fused multiply-add rounds the
// exact product instead, which may pick the other n at a tie; P is fitted a little beyond ln2/2.
const EXP_LO: f32 = -87.33654;
const EXP_HI: f32 = 88.37626;
const EXP_LOG2E: f32 = 1.44269504088896341;
/** 1.5·2^23 + 127 (see above). */
const EXP_SHIFTER: f32 = 12583039.0;
const EXP_LN2_HI: f32 = 0.693359375;
const EXP_LN2_LO: f32 = -2.12194440e-4;
// P(r) ≈ (e^r − 1 − r) / r² on |r| ≤ 1.0001·ln2/2: a weighted least-squares fit (Lawson
// iterations toward minimax) of the relative error in e^r, coefficients rounded to float32.
const EXP_P0: f32 = 0.4999999701976776;
const EXP_P1: f32 = 0.1666652113199234;
const EXP_P2: f32 = 0.04166722670197487;
const EXP_P3: f32 = 0.008368701674044132;
const EXP_P4: f32 = 0.0013879680773243308;

// @ts-ignore: decorator
@inline
export function expv(x: v128): v128 {
  const lo = f32x4.splat(EXP_LO);
  const v = f32x4.pmin(f32x4.pmax(x, lo), f32x4.splat(EXP_HI));
  const shifter = f32x4.splat(EXP_SHIFTER);
  const t = madd(v, f32x4.splat(EXP_LOG2E), shifter);
  const n = f32x4.sub(t, shifter);
  let r = madd(n, f32x4.splat(-EXP_LN2_HI), v);
  r = madd(n, f32x4.splat(-EXP_LN2_LO), r);
  let y = madd(f32x4.splat(EXP_P4), r, f32x4.splat(EXP_P3));
  y = madd(y, r, f32x4.splat(EXP_P2));
  y = madd(y, r, f32x4.splat(EXP_P1));
  y = madd(y, r, f32x4.splat(EXP_P0));
  const one = f32x4.splat(1.0);
  if (ASC_FEATURE_RELAXED_SIMD) {
    // fused: 1 + r·(1 + r·P), two roundings
    y = madd(y, r, one);
    y = madd(y, r, one);
  } else {
    // unfused: 1 + (r + r²·P) keeps the small terms together before the last rounding
    y = f32x4.add(madd(y, f32x4.mul(r, r), r), one);
  }
  const pow2n = i32x4.shl(t, 23);
  return v128.andnot(f32x4.mul(y, pow2n), f32x4.lt(x, lo));
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

