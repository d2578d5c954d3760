// The tile pipeline of the forward kernel: pack the query tile, logits (Q·Kᵀ) into the key-major
// tile, online softmax over a key tile, and P·V accumulation.
import { gCallRows, gCallRowStart, gG, gH, gKeyStrideRow, gQuery, gQueryStrideB, gQueryStrideGroup, gQueryStrideHead, gQueryStrideRow, gRowQueryMax, gScale, gU, gValueStrideRow } from './generated/params';
import { gH4, gH8, gHp, sA, sL, sM, sO, sQ, sS } from './job';
import { expv, hsum4, madd } from './simd';

/** Mask of the non-sign bits of a float32 lane. */
const ABS_BITS = i32x4.splat(0x7fffffff);

/**
 * Q tile: Qs = fround(Q * scale), packed [M4][Hp], zero padded. When rowQueryMax is set, also
 * writes max |Q| of each row (NaN if the row holds a NaN) for the host's exact-row bounds
 * (src/engine/exact-rows.ts), so the host need not scan the query itself.
 */
export function packQuery(b: i32, kvh: i32, gi: i32, t0: i32, nt: i32, m4: i32): void {
  const scale = f32x4.splat(gScale);
  const hp = <usize>gHp;
  const M = nt * gG;
  for (let r = 0; r < M; r++) {
    const tl = r / gG;
    const g = r - tl * gG;
    const src = gQuery + ((<usize>b * <usize>gQueryStrideB + <usize>kvh * <usize>gQueryStrideHead + <usize>gi * <usize>gQueryStrideGroup + <usize>(t0 + tl) * <usize>gQueryStrideRow + <usize>g * <usize>gH) << 2);
    const dst = sQ + (<usize>r * hp << 2);
    // max |x| on the bits: |x| clears the sign, and non-negative floats order as their bits do, NaNs
    // above +Inf, so a row holding a NaN gets a NaN (as the host scan's Math.max gives). Two
    // one-instruction ops per vector, where f32x4.max with NaN propagation takes several.
    let big = i32x4.splat(0);
    let h = 0;
    for (; h < gH4; h += 4) {
      const x = v128.load(src + (<usize>h << 2));
      big = i32x4.max_s(big, v128.and(x, ABS_BITS));
      v128.store(dst + (<usize>h << 2), f32x4.mul(x, scale));
    }
    let bigTail: i32 = 0;
    for (; h < gH; h++) {
      const x = load<f32>(src + (<usize>h << 2));
      bigTail = max(bigTail, reinterpret<i32>(x) & 0x7fffffff);
      store<f32>(dst + (<usize>h << 2), x * gScale);
    }
    for (; h < gHp; h++) store<f32>(dst + (<usize>h << 2), 0);
    if (gRowQueryMax != 0) {
      const m = max(max(max(i32x4.extract_lane(big, 0), i32x4.extract_lane(big, 1)), max(i32x4.extract_lane(big, 2), i32x4.extract_lane(big, 3))), bigTail);
      store<f32>(gRowQueryMax + (<usize>((b * gCallRows + gCallRowStart + t0 + tl) * gU + kvh * gG + g) << 2), reinterpret<f32>(m));
    }
  }
  for (let r = M; r < m4; r++) memory.fill(sQ + (<usize>r * hp << 2), 0, hp << 2);
}

/**
 * Logits for keys kt..kt+nk-1 into sS[j][r] (transposed), rows 0..m4-1, and each row's max over
 * them into sA (taken while the logits are in registers, in the order softmaxTile's own max pass
 * would take it; valid for softmaxTile only while nothing changes the logits in between).
 */
export function computeLogits(kBase: usize, kt: i32, nk: i32, m4: i32): void {
  const kStride = <usize>gKeyStrideRow << 2;
  const hp4 = <usize>gHp << 2;
  const h4b = <usize>gH4 << 2;
  const m4b = <usize>m4 << 2;
  const tail = gH4 < gH;
  for (let r = 0; r < m4; r += 4) {
    const q0 = sQ + <usize>r * hp4;
    const q1 = q0 + hp4;
    const q2 = q1 + hp4;
    const q3 = q2 + hp4;
    let mt = f32x4.splat(-Infinity);
    let j = 0;
    for (; j + 1 < nk; j += 2) {
      const k0 = kBase + <usize>(kt + j) * kStride;
      const k1 = k0 + kStride;
      let a00 = f32x4.splat(0), a01 = f32x4.splat(0);
      let a10 = f32x4.splat(0), a11 = f32x4.splat(0);
      let a20 = f32x4.splat(0), a21 = f32x4.splat(0);
      let a30 = f32x4.splat(0), a31 = f32x4.splat(0);
      for (let h: usize = 0; h < h4b; h += 16) {
        const kv0 = v128.load(k0 + h);
        const kv1 = v128.load(k1 + h);
        let x = v128.load(q0 + h);
        a00 = madd(x, kv0, a00);
        a01 = madd(x, kv1, a01);
        x = v128.load(q1 + h);
        a10 = madd(x, kv0, a10);
        a11 = madd(x, kv1, a11);
        x = v128.load(q2 + h);
        a20 = madd(x, kv0, a20);
        a21 = madd(x, kv1, a21);
        x = v128.load(q3 + h);
        a30 = madd(x, kv0, a30);
        a31 = madd(x, kv1, a31);
      }
      let s0 = hsum4(a00, a10, a20, a30);
      let s1 = hsum4(a01, a11, a21, a31);
      if (tail) {
        s0 = f32x4.add(s0, tailDots(q0, hp4, k0));
        s1 = f32x4.add(s1, tailDots(q0, hp4, k1));
      }
      const d = sS + <usize>j * m4b + (<usize>r << 2);
      v128.store(d, s0);
      v128.store(d + m4b, s1);
      mt = f32x4.pmax(f32x4.pmax(mt, s0), s1);
    }
    if (j < nk) {
      const k0 = kBase + <usize>(kt + j) * kStride;
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      for (let h: usize = 0; h < h4b; h += 16) {
        const kv0 = v128.load(k0 + h);
        a0 = madd(v128.load(q0 + h), kv0, a0);
        a1 = madd(v128.load(q1 + h), kv0, a1);
        a2 = madd(v128.load(q2 + h), kv0, a2);
        a3 = madd(v128.load(q3 + h), kv0, a3);
      }
      let s0 = hsum4(a0, a1, a2, a3);
      if (tail) s0 = f32x4.add(s0, tailDots(q0, hp4, k0));
      v128.store(sS + <usize>j * m4b + (<usize>r << 2), s0);
      mt = f32x4.pmax(mt, s0);
    }
    v128.store(sA + (<usize>r << 2), mt);
  }
}

let gSink: i32 = 0;

/**
 * Loads one float of every cache line of the tile's key (or value) rows in a burst, so the
 * misses overlap (rows are V*H floats apart, often a page, which defeats hardware prefetch).
 */
export function touchRows(base: usize, rowStride: i32, kt: i32, nk: i32): void {
  const stride = <usize>rowStride << 2;
  const rowBytes = <usize>gH << 2;
  let p = base + <usize>kt * stride;
  let acc: i32 = 0;
  for (let j = 0; j < nk; j++) {
    for (let o: usize = 0; o < rowBytes; o += 64) acc ^= load<i32>(p + o);
    p += stride;
  }
  gSink ^= acc;
}

/** Dot products over h in [H4, H) for 4 consecutive packed query rows against one key row. */
export function tailDots(q0: usize, hp4: usize, k: usize): v128 {
  let s0: f32 = 0, s1: f32 = 0, s2: f32 = 0, s3: f32 = 0;
  for (let h = gH4; h < gH; h++) {
    const o = <usize>h << 2;
    const kv = load<f32>(k + o);
    s0 += load<f32>(q0 + o) * kv;
    s1 += load<f32>(q0 + hp4 + o) * kv;
    s2 += load<f32>(q0 + 2 * hp4 + o) * kv;
    s3 += load<f32>(q0 + 3 * hp4 + o) * kv;
  }
  let v = f32x4.splat(s0);
  v = f32x4.replace_lane(v, 1, s1);
  v = f32x4.replace_lane(v, 2, s2);
  v = f32x4.replace_lane(v, 3, s3);
  return v;
}


/**
 * Online softmax over one key tile, 4 rows per vector: updates m, l, alpha; sS becomes P.
 * `maxInA`: sA holds each row's max over the tile's logits (computeLogits', when no mask or bound
 * changed them since), so the max pass is skipped.
 */
export function softmaxTile(nk: i32, m4: i32, maxInA: bool): void {
  const m4b = <usize>m4 << 2;
  const tileBytes = <usize>nk * m4b;
  for (let r = 0; r < m4; r += 4) {
    const rb = <usize>r << 2;
    const mOld = v128.load(sM + rb);
    const mNew = f32x4.pmax(mOld, tileMax(nk, m4b, rb, maxInA));
    const mSafe = finiteOrZero(mNew);
    let sum = f32x4.splat(0);
    const end = sS + rb + tileBytes;
    for (let p = sS + rb; p < end; p += m4b) {
      const e = expv(f32x4.sub(v128.load(p), mSafe));
      v128.store(p, e);
      sum = f32x4.add(sum, e);
    }
    const alpha = expv(f32x4.sub(mOld, mSafe));
    v128.store(sL + rb, f32x4.add(f32x4.mul(v128.load(sL + rb), alpha), sum));
    v128.store(sM + rb, mNew);
    v128.store(sA + rb, alpha);
  }
}

/** The tile's max of the 4 rows at byte offset rb: from sA (maxInA) or by a pass over the tile. */
// @ts-ignore: decorator
@inline
function tileMax(nk: i32, m4b: usize, rb: usize, maxInA: bool): v128 {
  if (maxInA) return v128.load(sA + rb);
  let mt = f32x4.splat(-Infinity);
  let p = sS + rb;
  for (let j = 0; j < nk; j++) {
    mt = f32x4.pmax(mt, v128.load(p));
    p += m4b;
  }
  return mt;
}

/** m, or 0 where m is -Inf (a row with no allowed key so far: exp(-Inf - 0) = 0, not NaN). */
// @ts-ignore: decorator
@inline
function finiteOrZero(m: v128): v128 {
  return v128.bitselect(f32x4.splat(0), m, f32x4.eq(m, f32x4.splat(-Infinity)));
}

/** O[r] = O[r] * alpha[r] + Σ_j P[j][r] V[j] for the key tile. */
export function accumulatePV(vBase: usize, kt: i32, nk: i32, m4: i32): void {
  const vStride = <usize>gValueStrideRow << 2;
  const hp4 = <usize>gHp << 2;
  const m4b = <usize>m4 << 2;
  const h8b = <usize>gH8 << 2;
  const h4b = <usize>gH4 << 2;
  const v0base = vBase + <usize>kt * vStride;
  for (let r = 0; r < m4; r += 4) {
    const rb = <usize>r << 2;
    const al = v128.load(sA + rb);
    const al0 = f32x4.splat(f32x4.extract_lane(al, 0));
    const al1 = f32x4.splat(f32x4.extract_lane(al, 1));
    const al2 = f32x4.splat(f32x4.extract_lane(al, 2));
    const al3 = f32x4.splat(f32x4.extract_lane(al, 3));
    const o0 = sO + <usize>r * hp4;
    const o1 = o0 + hp4;
    const o2 = o1 + hp4;
    const o3 = o2 + hp4;
    const pb = sS + rb;
    let h: usize = 0;
    for (; h < h8b; h += 32) {
      let c00 = f32x4.mul(v128.load(o0 + h), al0), c01 = f32x4.mul(v128.load(o0 + h + 16), al0);
      let c10 = f32x4.mul(v128.load(o1 + h), al1), c11 = f32x4.mul(v128.load(o1 + h + 16), al1);
      let c20 = f32x4.mul(v128.load(o2 + h), al2), c21 = f32x4.mul(v128.load(o2 + h + 16), al2);
      let c30 = f32x4.mul(v128.load(o3 + h), al3), c31 = f32x4.mul(v128.load(o3 + h + 16), al3);
      let vp = v0base + h;
      let pp = pb;
      for (let j = 0; j < nk; j++) {
        const v0 = v128.load(vp);
        const v1 = v128.load(vp + 16);
        let p = v128.load32_splat(pp);
        c00 = madd(p, v0, c00);
        c01 = madd(p, v1, c01);
        p = v128.load32_splat(pp + 4);
        c10 = madd(p, v0, c10);
        c11 = madd(p, v1, c11);
        p = v128.load32_splat(pp + 8);
        c20 = madd(p, v0, c20);
        c21 = madd(p, v1, c21);
        p = v128.load32_splat(pp + 12);
        c30 = madd(p, v0, c30);
        c31 = madd(p, v1, c31);
        vp += vStride;
        pp += m4b;
      }
      v128.store(o0 + h, c00); v128.store(o0 + h + 16, c01);
      v128.store(o1 + h, c10); v128.store(o1 + h + 16, c11);
      v128.store(o2 + h, c20); v128.store(o2 + h + 16, c21);
      v128.store(o3 + h, c30); v128.store(o3 + h + 16, c31);
    }
    for (; h < h4b; h += 16) {
      let c0 = f32x4.mul(v128.load(o0 + h), al0);
      let c1 = f32x4.mul(v128.load(o1 + h), al1);
      let c2 = f32x4.mul(v128.load(o2 + h), al2);
      let c3 = f32x4.mul(v128.load(o3 + h), al3);
      let vp = v0base + h;
      let pp = pb;
      for (let j = 0; j < nk; j++) {
        const v0 = v128.load(vp);
        c0 = madd(v128.load32_splat(pp), v0, c0);
        c1 = madd(v128.load32_splat(pp + 4), v0, c1);
        c2 = madd(v128.load32_splat(pp + 8), v0, c2);
        c3 = madd(v128.load32_splat(pp + 12), v0, c3);
        vp += vStride;
        pp += m4b;
      }
      v128.store(o0 + h, c0);
      v128.store(o1 + h, c1);
      v128.store(o2 + h, c2);
      v128.store(o3 + h, c3);
    }
    // scalar tail h in [H4, H)
    for (let hs = gH4; hs < gH; hs++) {
      const hb = <usize>hs << 2;
      for (let i = 0; i < 4; i++) {
        const ob = sO + <usize>(r + i) * hp4 + hb;
        let c: f32 = load<f32>(ob) * load<f32>(sA + rb + (<usize>i << 2));
        let vp = v0base + hb;
        let pp = pb + (<usize>i << 2);
        for (let j = 0; j < nk; j++) {
          c += load<f32>(pp) * load<f32>(vp);
          vp += vStride;
          pp += m4b;
        }
        store<f32>(ob, c);
      }
    }
  }
}
