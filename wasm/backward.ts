// The attention backward (FlashAttention-2 style) in WebAssembly SIMD128: from Q, K, V, dO, the
// per-row log-sum-exp and D = rowsum(dO ∘ O), the gradients dQ, dK, dV with no (T, S) buffer.
//
// Passes, each split into tasks that write disjoint floats (no races, no atomics on floats):
//   pass 1 (only without the forward's statistics), a task per (query tile, group): the rows'
//     log-sum-exp (one Q·Kᵀ sweep with an online max/sum), written to logSumExp.
//   pass 2, a task per (group, chunk of key tiles): for each key tile of the chunk and every query
//     tile that may see it (all G heads of the group), the probabilities P = exp(s − lse),
//     dP = dO·Vᵀ, dS = P ∘ (dP − D), then dV += Pᵀ·dO and dK += dSᵀ·Qs (written once per key
//     tile) and dQ += dS·K into the chunk's own dQ partial (its rows of the group, packed as the
//     tiles pack them). One sweep computes every product once: five tile products per block.
//   pass 3, a task per (query tile, group): dQ = scale · Σ over the group's chunks of the partials.
// The G heads share every key/value row; nothing is copied per head. A chunk takes key tiles
// c, c + chunks, ... so that under a causal mask the chunks of a group carry similar work.
// Every multiply-add of the tile products goes through `madd` (wasm/simd.ts), so the relaxed-SIMD
// build fuses them as it does the forward's.
// Dropout decisions come from the shared hash (src/engine/dropout_hash.ts), regenerated per tile:
// kept P and dP are scaled by keepScale, dropped ones are 0.
//
// Layouts (row-major, float32): query, gradOutput, gradQuery (B, T, U, H); key, value, gradKey,
// gradValue (B, S, V, H); logSumExp, rowDelta (B, U, T). A tile packs the G heads of tileRows
// query rows, row r = tl*G + g (as the forward). Rows whose logSumExp is +inf (padding, rows the
// host computes exactly) get P = 0 and contribute nothing.
import {
  gB, gCausal, gComputeLogSumExp, gDropoutKeepScale, gDropoutKey, gDropoutThreshold, gG, gGradChunks, gGradKey,
  gGradOutput, gGradQuery, gGradQueryPartials, gGradValue, gH, gKey, gKeyTile, gKeyTiles, gLogSumExp, gMask, gMaskKind, gMaskStrideB, gMaskStrideS,
  gMaskStrideT, gMaskStrideU, gMaxTileHeight, gProgress, gQuery, gQueryOffset, gQueryTiles, gRowDelta, gS, gScale,
  gScratch, gScratchStride, gT, gTileRows, gU, gV, gValue, gWindow,
} from './generated/params';
import { gH4, gHp } from './job';
import { highAllowed, lowAllowed } from './masks';
import { expv, hsum4, logPositive, madd, mix32, mix32v } from './simd';

// ---- per-thread scratch (M4 = maxTileHeight, Bc = keyTile, Hp = H rounded up to 4) -------------
let bQ: usize = 0; // scaled query rows [M4][Hp]
let bDO: usize = 0; // output-gradient rows [M4][Hp]
let bAcc: usize = 0; // pass 2: dK [Bc][Hp] then dV [Bc][Hp]
let bP: usize = 0; // probabilities after dropout [M4][Bc]
let bDS: usize = 0; // dS [M4][Bc]
let bLse: usize = 0; // [M4]
let bD: usize = 0; // [M4]
let bLo: usize = 0; // first allowed key [M4] (i32)
let bHi: usize = 0; // last allowed key [M4] (i32)
let bMR: usize = 0; // mask row base (elements) [M4] (i32)
let bRH: usize = 0; // dropout hash of the row prefix (key, b, u, t) [M4] (u32)
let bM: usize = 0; // running max [M4] (log-sum-exp sweep)
let bL: usize = 0; // running sum [M4]
let bSink: usize = 0; // 4 rows of Hp: where the dQ of a tile's padding rows goes

/** Bytes of backward scratch per thread (the host sizes scratchStride with the same formula). */
function setBackwardScratch(tid: i32): void {
  const m4 = <usize>gMaxTileHeight;
  const hp = <usize>gHp;
  const bc = <usize>gKeyTile;
  bQ = gScratch + <usize>tid * <usize>gScratchStride;
  bDO = bQ + m4 * hp * 4;
  bAcc = bDO + m4 * hp * 4;
  const acc = max(m4, 2 * bc) * hp * 4;
  bP = bAcc + acc;
  bDS = bP + m4 * bc * 4;
  bLse = bDS + m4 * bc * 4;
  bD = bLse + m4 * 4;
  bLo = bD + m4 * 4;
  bHi = bLo + m4 * 4;
  bMR = bHi + m4 * 4;
  bRH = bMR + m4 * 4;
  bM = bRH + m4 * 4;
  bL = bM + m4 * 4;
  bSink = bL + m4 * 4;
}

/** Exported for the contract test: the hash of (b, u, i, j) under `key`. */
export function dropoutHash(key: u32, b: u32, u: u32, i: u32, j: u32): u32 {
  return mix32(mix32(mix32(mix32(key ^ b) ^ u) ^ i) ^ j);
}

// ---- packing ------------------------------------------------------------------------------------

/** Packs rows t0..t0+nt-1 of group (b, kvh): scaled query, dO, lse, D, bounds, mask rows, row hashes. */
function packRows(b: i32, kvh: i32, t0: i32, nt: i32, m4: i32): void {
  const hp4 = <usize>gHp << 2;
  const M = nt * gG;
  const scale = f32x4.splat(gScale);
  for (let r = 0; r < m4; r++) {
    const q = bQ + <usize>r * hp4;
    const d = bDO + <usize>r * hp4;
    const rb = <usize>r << 2;
    if (r >= M) {
      memory.fill(q, 0, hp4);
      memory.fill(d, 0, hp4);
      store<f32>(bLse + rb, Infinity);
      store<f32>(bD + rb, 0);
      store<i32>(bLo + rb, 1);
      store<i32>(bHi + rb, 0);
      store<i32>(bMR + rb, 0);
      store<u32>(bRH + rb, 0);
      continue;
    }
    const tl = r / gG;
    const g = r - tl * gG;
    const t = t0 + tl;
    const u = kvh * gG + g;
    const src = (<usize>((b * gT + t) * gU + u) * <usize>gH) << 2;
    let h = 0;
    for (; h < gH4; h += 4) {
      const o = <usize>h << 2;
      v128.store(q + o, f32x4.mul(v128.load(gQuery + src + o), scale));
      v128.store(d + o, v128.load(gGradOutput + src + o));
    }
    for (; h < gH; h++) {
      const o = <usize>h << 2;
      store<f32>(q + o, load<f32>(gQuery + src + o) * gScale);
      store<f32>(d + o, load<f32>(gGradOutput + src + o));
    }
    for (; h < gHp; h++) {
      store<f32>(q + (<usize>h << 2), 0);
      store<f32>(d + (<usize>h << 2), 0);
    }
    const row = <usize>((b * gU + u) * gT + t) << 2;
    store<f32>(bLse + rb, gComputeLogSumExp ? 0 : load<f32>(gLogSumExp + row));
    store<f32>(bD + rb, load<f32>(gRowDelta + row));
    const p = gQueryOffset + t;
    store<i32>(bLo + rb, max(0, lowAllowed(p)));
    store<i32>(bHi + rb, min(gS - 1, highAllowed(p)));
    store<i32>(bMR + rb, b * gMaskStrideB + u * gMaskStrideU + t * gMaskStrideT);
    store<u32>(bRH + rb, mix32(mix32(mix32(<u32>gDropoutKey ^ <u32>b) ^ <u32>u) ^ <u32>t));
  }
}

// ---- one (query tile, key tile) block -----------------------------------------------------------

/** Logits of row r against 4 keys: (Qs[r]·K[j..j+3]) with the rows' bounds and mask applied. */
// @ts-ignore: decorator
@inline
function maskedLogits(s: v128, r: i32, jv: v128, jEnd: i32): v128 {
  const rb = <usize>r << 2;
  let ok = v128.and(i32x4.ge_s(jv, i32x4.splat(load<i32>(bLo + rb))), i32x4.le_s(jv, i32x4.splat(load<i32>(bHi + rb))));
  ok = v128.and(ok, i32x4.lt_s(jv, i32x4.splat(jEnd)));
  if (gMaskKind == 1) {
    const mb = gMask + <usize>load<i32>(bMR + rb);
    const ss = <usize>gMaskStrideS;
    const j0 = <usize>min(i32x4.extract_lane(jv, 0), gS - 1);
    const j1 = <usize>min(i32x4.extract_lane(jv, 1), gS - 1);
    const j2 = <usize>min(i32x4.extract_lane(jv, 2), gS - 1);
    const j3 = <usize>min(i32x4.extract_lane(jv, 3), gS - 1);
    let mv = i32x4.splat(<i32>load<u8>(mb + j0 * ss));
    mv = i32x4.replace_lane(mv, 1, <i32>load<u8>(mb + j1 * ss));
    mv = i32x4.replace_lane(mv, 2, <i32>load<u8>(mb + j2 * ss));
    mv = i32x4.replace_lane(mv, 3, <i32>load<u8>(mb + j3 * ss));
    ok = v128.and(ok, v128.not(i32x4.eq(mv, i32x4.splat(0))));
  } else if (gMaskKind == 2) {
    const mb = gMask + (<usize>load<i32>(bMR + rb) << 2);
    const ss = <usize>gMaskStrideS << 2;
    const j0 = <usize>min(i32x4.extract_lane(jv, 0), gS - 1);
    const j1 = <usize>min(i32x4.extract_lane(jv, 1), gS - 1);
    const j2 = <usize>min(i32x4.extract_lane(jv, 2), gS - 1);
    const j3 = <usize>min(i32x4.extract_lane(jv, 3), gS - 1);
    let mv = f32x4.splat(load<f32>(mb + j0 * ss));
    mv = f32x4.replace_lane(mv, 1, load<f32>(mb + j1 * ss));
    mv = f32x4.replace_lane(mv, 2, load<f32>(mb + j2 * ss));
    mv = f32x4.replace_lane(mv, 3, load<f32>(mb + j3 * ss));
    s = f32x4.add(s, mv);
  }
  return v128.bitselect(s, f32x4.splat(-Infinity), ok);
}

/** Byte address of key (or value) row j of kv head kvh in batch b (clamped to S - 1). */
// @ts-ignore: decorator
@inline
function kvRow(base: usize, b: i32, j: i32, kvh: i32): usize {
  return base + ((<usize>((b * gS + min(j, gS - 1)) * gV + kvh) * <usize>gH) << 2);
}

/** Second result of dots2 (row x1). */
let gDot1: v128 = f32x4.splat(0);

/**
 * Dot products of two packed rows x0, x1 (Hp floats, zero padded) with 4 rows of H floats, the 4
 * row loads shared: 8 accumulators over h in [0, H4), then the scalar tail. Returns row x0's
 * dots; row x1's are left in gDot1.
 */
// @ts-ignore: decorator
@inline
function dots2(x0: usize, x1: usize, k0: usize, k1: usize, k2: usize, k3: usize): v128 {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
  const h4b = <usize>gH4 << 2;
  for (let o: usize = 0; o < h4b; o += 16) {
    const y0 = v128.load(k0 + o), y1 = v128.load(k1 + o), y2 = v128.load(k2 + o), y3 = v128.load(k3 + o);
    const xa = v128.load(x0 + o);
    a0 = madd(xa, y0, a0);
    a1 = madd(xa, y1, a1);
    a2 = madd(xa, y2, a2);
    a3 = madd(xa, y3, a3);
    const xb = v128.load(x1 + o);
    b0 = madd(xb, y0, b0);
    b1 = madd(xb, y1, b1);
    b2 = madd(xb, y2, b2);
    b3 = madd(xb, y3, b3);
  }
  let s0 = hsum4(a0, a1, a2, a3);
  let s1 = hsum4(b0, b1, b2, b3);
  if (gH4 < gH) {
    s0 = f32x4.add(s0, tailDots4(x0, k0, k1, k2, k3));
    s1 = f32x4.add(s1, tailDots4(x1, k0, k1, k2, k3));
  }
  gDot1 = s1;
  return s0;
}

/** Dot products over h in [H4, H) of packed row x with 4 key rows. */
function tailDots4(x: usize, k0: usize, k1: usize, k2: usize, k3: usize): v128 {
  let s0: f32 = 0, s1: f32 = 0, s2: f32 = 0, s3: f32 = 0;
  for (let h = gH4; h < gH; h++) {
    const o = <usize>h << 2;
    const xv = load<f32>(x + o);
    s0 += xv * load<f32>(k0 + o);
    s1 += xv * load<f32>(k1 + o);
    s2 += xv * load<f32>(k2 + o);
    s3 += xv * load<f32>(k3 + o);
  }
  let t = f32x4.splat(s0);
  t = f32x4.replace_lane(t, 1, s1);
  t = f32x4.replace_lane(t, 2, s2);
  t = f32x4.replace_lane(t, 3, s3);
  return t;
}

/**
 * Masked logits of packed query rows r and r + 1 against the 4 keys at k0..k3 (positions jv, keys
 * from jEnd on masked): row r's are returned, row r + 1's left in gDot1.
 */
// @ts-ignore: decorator
@inline
function maskedLogits2(r: i32, jv: v128, jEnd: i32, k0: usize, k1: usize, k2: usize, k3: usize): v128 {
  const hp4 = <usize>gHp << 2;
  const q0 = bQ + <usize>r * hp4;
  const s0 = dots2(q0, q0 + hp4, k0, k1, k2, k3);
  gDot1 = maskedLogits(gDot1, r + 1, jv, jEnd);
  return maskedLogits(s0, r, jv, jEnd);
}

/**
 * For keys kt..kt+nk-1 of group (b, kvh) and the packed rows: P (after dropout) into bP and
 * dS = P ∘ (dP − D) into bDS, both [M4][Bc] (keys padded to 4 give 0).
 */
function blockGradients(b: i32, kvh: i32, kt: i32, nk: i32, m4: i32): void {
  const hp4 = <usize>gHp << 2;
  const bcb = <usize>gKeyTile << 2;
  const jEnd = kt + nk;
  const dropping = gDropoutThreshold != 0;
  const threshold = i32x4.splat(gDropoutThreshold);
  const keep = f32x4.splat(gDropoutKeepScale);
  for (let j = 0; j < nk; j += 4) {
    const jv = i32x4.add(i32x4.splat(kt + j), i32x4(0, 1, 2, 3));
    const k0 = kvRow(gKey, b, kt + j, kvh), k1 = kvRow(gKey, b, kt + j + 1, kvh);
    const k2 = kvRow(gKey, b, kt + j + 2, kvh), k3 = kvRow(gKey, b, kt + j + 3, kvh);
    const v0 = kvRow(gValue, b, kt + j, kvh), v1 = kvRow(gValue, b, kt + j + 1, kvh);
    const v2 = kvRow(gValue, b, kt + j + 2, kvh), v3 = kvRow(gValue, b, kt + j + 3, kvh);
    for (let r = 0; r < m4; r += 2) {
      // Two rows at a time (m4 is a multiple of 4): the key and value loads are shared.
      const s0 = maskedLogits2(r, jv, jEnd, k0, k1, k2, k3);
      const s1 = gDot1;
      const d0 = bDO + <usize>r * hp4;
      const dp0 = dots2(d0, d0 + hp4, v0, v1, v2, v3);
      const dp1 = gDot1;
      const o = <usize>r * bcb + (<usize>j << 2);
      blockRow(r, s0, dp0, jv, o, dropping, threshold, keep);
      blockRow(r + 1, s1, dp1, jv, o + bcb, dropping, threshold, keep);
    }
  }
}

/** P (after dropout) and dS of row r for 4 keys from its masked logits s and dP = dO·V. */
// @ts-ignore: decorator
@inline
function blockRow(r: i32, s: v128, dp: v128, jv: v128, o: usize, dropping: bool, threshold: v128, keep: v128): void {
  const rb = <usize>r << 2;
  const p = expv(f32x4.sub(s, f32x4.splat(load<f32>(bLse + rb))));
  let pd = p;
  if (dropping) {
    const hv = mix32v(v128.xor(i32x4.splat(load<i32>(bRH + rb)), jv));
    const kept = i32x4.ge_u(i32x4.shr_u(hv, 8), threshold);
    const z = v128.bitselect(keep, f32x4.splat(0), kept);
    pd = f32x4.mul(p, z);
    dp = f32x4.mul(dp, z);
  }
  const ds = f32x4.mul(p, f32x4.sub(dp, f32x4.splat(load<f32>(bD + rb))));
  v128.store(bP + o, pd);
  v128.store(bDS + o, ds);
}

// ---- accumulation micro-kernel --------------------------------------------------------------------

/**
 * The one tile product of the backward's accumulations: for the 4 accumulator rows c0..c3 (Hp
 * floats each), c_i += Σ_{n < count} w[i][n] · x[n], where weight w[i][n] is the float at byte
 * `w + i·wRow + n·wStep` and x[n] the row at byte `x + n·xStep`. 8 floats of Hp per step: 8
 * accumulators, per n 2 row loads and 4 broadcasts; then 4 floats at a time up to Hp. The
 * summation order over n is the loop order, one multiply-add (`madd`) per term.
 */
// @ts-ignore: decorator
@inline
function accumulate4(c0: usize, c1: usize, c2: usize, c3: usize, w: usize, wRow: usize, wStep: usize, x: usize, xStep: usize, count: i32): void {
  const hp8 = <usize>(gHp & ~7) << 2;
  const hpb = <usize>gHp << 2;
  const w2 = 2 * wRow;
  const w3 = 3 * wRow;
  let o: usize = 0;
  for (; o < hp8; o += 32) {
    let c00 = v128.load(c0 + o), c01 = v128.load(c0 + o + 16);
    let c10 = v128.load(c1 + o), c11 = v128.load(c1 + o + 16);
    let c20 = v128.load(c2 + o), c21 = v128.load(c2 + o + 16);
    let c30 = v128.load(c3 + o), c31 = v128.load(c3 + o + 16);
    let xn = x + o;
    let wn = w;
    for (let n = 0; n < count; n++) {
      const x0 = v128.load(xn), x1 = v128.load(xn + 16);
      let s = v128.load32_splat(wn);
      c00 = madd(s, x0, c00);
      c01 = madd(s, x1, c01);
      s = v128.load32_splat(wn + wRow);
      c10 = madd(s, x0, c10);
      c11 = madd(s, x1, c11);
      s = v128.load32_splat(wn + w2);
      c20 = madd(s, x0, c20);
      c21 = madd(s, x1, c21);
      s = v128.load32_splat(wn + w3);
      c30 = madd(s, x0, c30);
      c31 = madd(s, x1, c31);
      xn += xStep;
      wn += wStep;
    }
    v128.store(c0 + o, c00); v128.store(c0 + o + 16, c01);
    v128.store(c1 + o, c10); v128.store(c1 + o + 16, c11);
    v128.store(c2 + o, c20); v128.store(c2 + o + 16, c21);
    v128.store(c3 + o, c30); v128.store(c3 + o + 16, c31);
  }
  for (; o < hpb; o += 16) {
    let d0 = v128.load(c0 + o), d1 = v128.load(c1 + o), d2 = v128.load(c2 + o), d3 = v128.load(c3 + o);
    let xn = x + o;
    let wn = w;
    for (let n = 0; n < count; n++) {
      const xv = v128.load(xn);
      d0 = madd(v128.load32_splat(wn), xv, d0);
      d1 = madd(v128.load32_splat(wn + wRow), xv, d1);
      d2 = madd(v128.load32_splat(wn + w2), xv, d2);
      d3 = madd(v128.load32_splat(wn + w3), xv, d3);
      xn += xStep;
      wn += wStep;
    }
    v128.store(c0 + o, d0); v128.store(c1 + o, d1); v128.store(c2 + o, d2); v128.store(c3 + o, d3);
  }
}

/**
 * acc[r] += Σ_j bDS[r][j] K[j] for keys j < nk (K rows from `k0`, V·H floats apart), rows 0..m4-1
 * four at a time. acc holds packed rows of Hp floats; rows M..m4-1 (tile padding, dS = 0) go to
 * the sink instead, so that they never touch another tile's rows.
 */
function accumulateDQ(acc: usize, k0: usize, nk: i32, M: i32, m4: i32): void {
  const hp4 = <usize>gHp << 2;
  const bcb = <usize>gKeyTile << 2;
  const kStride = <usize>(gV * gH) << 2;
  for (let r = 0; r < m4; r += 4) {
    const a0 = r < M ? acc + <usize>r * hp4 : bSink;
    const a1 = r + 1 < M ? a0 + hp4 : bSink + hp4;
    const a2 = r + 2 < M ? a1 + hp4 : bSink + 2 * hp4;
    const a3 = r + 3 < M ? a2 + hp4 : bSink + 3 * hp4;
    // w[i][j] = dS[r + i][j]: rows Bc floats apart, keys consecutive.
    accumulate4(a0, a1, a2, a3, bDS + <usize>r * bcb, bcb, 4, k0, kStride, nk);
  }
}

/**
 * acc[j] += Σ_r w[r][j] x[r] for keys j < nk rounded up to 4 (w is [M4][Bc] with padded keys 0,
 * acc [Bc][Hp]), x packed rows [M4][Hp], rows 0..m4-1.
 */
function accumulateKeys(acc: usize, w: usize, x: usize, nk: i32, m4: i32): void {
  const hp4 = <usize>gHp << 2;
  const bcb = <usize>gKeyTile << 2;
  const n4 = (nk + 3) & ~3;
  for (let j = 0; j < n4; j += 4) {
    const a0 = acc + <usize>j * hp4;
    // w[i][r] = w[r][j + i]: keys consecutive, rows Bc floats apart.
    accumulate4(a0, a0 + hp4, a0 + 2 * hp4, a0 + 3 * hp4, w + (<usize>j << 2), 4, bcb, x, hp4, m4);
  }
}

// ---- pass 1: row statistics and dQ ---------------------------------------------------------------

/**
 * The rows' log-sum-exp over keys kLo..kHi, written to bLse and logSumExp: per key tile the
 * masked logits go to bP (two rows per step), then each row's tile max (NaN-propagating, so a
 * non-finite row stays non-finite and the host computes it exactly) and one online update.
 */
function rowStatistics(b: i32, kvh: i32, t0: i32, nt: i32, m4: i32, kLo: i32, kHi: i32): void {
  const bcb = <usize>gKeyTile << 2;
  for (let r = 0; r < m4; r++) {
    store<f32>(bM + (<usize>r << 2), -Infinity);
    store<f32>(bL + (<usize>r << 2), 0);
  }
  for (let kt = kLo; kt <= kHi; kt += gKeyTile) {
    const nk = min(gKeyTile, kHi + 1 - kt);
    const n4b = <usize>((nk + 3) & ~3) << 2;
    for (let j = 0; j < nk; j += 4) {
      const jv = i32x4.add(i32x4.splat(kt + j), i32x4(0, 1, 2, 3));
      const k0 = kvRow(gKey, b, kt + j, kvh), k1 = kvRow(gKey, b, kt + j + 1, kvh);
      const k2 = kvRow(gKey, b, kt + j + 2, kvh), k3 = kvRow(gKey, b, kt + j + 3, kvh);
      for (let r = 0; r < m4; r += 2) {
        const o = bP + <usize>r * bcb + (<usize>j << 2);
        v128.store(o, maskedLogits2(r, jv, kHi + 1, k0, k1, k2, k3));
        v128.store(o + bcb, gDot1);
      }
    }
    for (let r = 0; r < m4; r++) {
      const rb = <usize>r << 2;
      const row = bP + <usize>r * bcb;
      let mv = f32x4.splat(-Infinity);
      for (let o: usize = 0; o < n4b; o += 16) mv = f32x4.max(mv, v128.load(row + o));
      const mt = max(max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)), max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
      const mOld = load<f32>(bM + rb);
      const mNew = max(mOld, mt);
      if (mNew == -Infinity) continue;
      const ms = f32x4.splat(mNew);
      let sv = f32x4.splat(0);
      for (let o: usize = 0; o < n4b; o += 16) sv = f32x4.add(sv, expv(f32x4.sub(v128.load(row + o), ms)));
      const sum = f32x4.extract_lane(sv, 0) + f32x4.extract_lane(sv, 1) + f32x4.extract_lane(sv, 2) + f32x4.extract_lane(sv, 3);
      const alpha = mOld == -Infinity ? <f32>0 : f32x4.extract_lane(expv(f32x4.splat(mOld - mNew)), 0);
      store<f32>(bL + rb, load<f32>(bL + rb) * alpha + sum);
      store<f32>(bM + rb, mNew);
    }
  }
  const M = nt * gG;
  for (let r = 0; r < M; r++) {
    const rb = <usize>r << 2;
    const m = load<f32>(bM + rb);
    const lse: f32 = m == -Infinity ? Infinity : m + logPositive(load<f32>(bL + rb));
    store<f32>(bLse + rb, lse);
    const tl = r / gG;
    const g = r - tl * gG;
    store<f32>(gLogSumExp + (<usize>((b * gU + kvh * gG + g) * gT + t0 + tl) << 2), lse);
  }
}

/** Pass 1: the log-sum-exp of one (query tile, group). */
function statisticsTask(task: i32): void {
  const groups = gB * gV;
  const grp = task % groups;
  const qt = gQueryTiles - 1 - task / groups; // largest causal tiles first
  const b = grp / gV;
  const kvh = grp % gV;
  const t0 = qt * gTileRows;
  const nt = min(gTileRows, gT - t0);
  const m4 = (nt * gG + 3) & ~3;
  packRows(b, kvh, t0, nt, m4);
  const kLo = max(0, lowAllowed(gQueryOffset + t0));
  const kHi = min(gS - 1, highAllowed(gQueryOffset + t0 + nt - 1));
  rowStatistics(b, kvh, t0, nt, m4, kLo, kHi);
}

/** Floats of one dQ partial: the group's T·G packed rows (plus 4 of slack) of Hp floats. */
// @ts-ignore: decorator
@inline
function partialFloats(): usize {
  return <usize>(gT * gG + 4) * <usize>gHp;
}

// ---- pass 2: dK, dV and the dQ partials ------------------------------------------------------------

function gradientTask(task: i32, tid: i32): void {
  const groups = gB * gV;
  const grp = task % groups;
  const chunk = task / groups;
  const b = grp / gV;
  const kvh = grp % gV;
  const hp4 = <usize>gHp << 2;
  const dQ = gGradQueryPartials + ((<usize>(chunk * groups + grp) * partialFloats()) << 2);
  memory.fill(dQ, 0, partialFloats() << 2);
  const dK = bAcc;
  const dV = bAcc + <usize>gKeyTile * hp4;
  const progress = gProgress + (<usize>tid << 2);
  for (let kti = chunk; kti < gKeyTiles; kti += gGradChunks) {
    const kt = kti * gKeyTile;
    const nk = min(gKeyTile, gS - kt);
    memory.fill(bAcc, 0, 2 * <usize>gKeyTile * hp4);
    // Query rows (positions p = queryOffset + t) that may see a key of [kt, kt + nk).
    let tLo = 0;
    let tHi = gT - 1;
    const jLast = kt + nk - 1;
    if (gCausal) tLo = max(tLo, kt - gQueryOffset);
    if (gWindow > 0) {
      tHi = min(tHi, jLast + gWindow - 1 - gQueryOffset);
      if (!gCausal) tLo = max(tLo, kt - gWindow + 1 - gQueryOffset);
    }
    const kRow = kvRow(gKey, b, kt, kvh);
    for (let t0 = tLo; t0 <= tHi; t0 += gTileRows) {
      const nt = min(gTileRows, tHi + 1 - t0);
      const M = nt * gG;
      const m4 = (M + 3) & ~3;
      packRows(b, kvh, t0, nt, m4);
      blockGradients(b, kvh, kt, nk, m4);
      // dV[j] += Σ_r P[r][j] dO[r];  dK[j] += Σ_r dS[r][j] Qs[r];  dQ[r] += Σ_j dS[r][j] K[j]
      accumulateKeys(dV, bP, bDO, nk, m4);
      accumulateKeys(dK, bDS, bQ, nk, m4);
      accumulateDQ(dQ + <usize>(t0 * gG) * hp4, kRow, nk, M, m4);
      atomic.add<i32>(progress, 1);
    }
    for (let j = 0; j < nk; j++) {
      const off = (<usize>((b * gS + kt + j) * gV + kvh) * <usize>gH) << 2;
      const dk = dK + <usize>j * hp4;
      const dv = dV + <usize>j * hp4;
      let h = 0;
      for (; h < gH4; h += 4) {
        const o = <usize>h << 2;
        v128.store(gGradKey + off + o, v128.load(dk + o));
        v128.store(gGradValue + off + o, v128.load(dv + o));
      }
      for (; h < gH; h++) {
        const o = <usize>h << 2;
        store<f32>(gGradKey + off + o, load<f32>(dk + o));
        store<f32>(gGradValue + off + o, load<f32>(dv + o));
      }
    }
  }
}

// ---- pass 3: dQ from its partials ----------------------------------------------------------------

function reduceTask(task: i32): void {
  const groups = gB * gV;
  const grp = task % groups;
  const qt = task / groups;
  const b = grp / gV;
  const kvh = grp % gV;
  const t0 = qt * gTileRows;
  const M = min(gTileRows, gT - t0) * gG;
  const hp4 = <usize>gHp << 2;
  const chunkBytes = (<usize>groups * partialFloats()) << 2;
  const first = gGradQueryPartials + ((<usize>grp * partialFloats()) << 2) + <usize>(t0 * gG) * hp4;
  const scale = f32x4.splat(gScale);
  for (let r = 0; r < M; r++) {
    const tl = r / gG;
    const g = r - tl * gG;
    const dst = gGradQuery + ((<usize>((b * gT + t0 + tl) * gU + kvh * gG + g) * <usize>gH) << 2);
    const src = first + <usize>r * hp4;
    let h = 0;
    for (; h < gH4; h += 4) {
      const o = <usize>h << 2;
      let acc = v128.load(src + o);
      for (let c = 1; c < gGradChunks; c++) acc = f32x4.add(acc, v128.load(src + <usize>c * chunkBytes + o));
      v128.store(dst + o, f32x4.mul(acc, scale));
    }
    for (; h < gH; h++) {
      const o = <usize>h << 2;
      let acc = load<f32>(src + o);
      for (let c = 1; c < gGradChunks; c++) acc += load<f32>(src + <usize>c * chunkBytes + o);
      store<f32>(dst + o, acc * gScale);
    }
  }
}

/** Runs backward task `task` of the current job (pass 1, 2 or 3) on thread `tid`. */
export function runBackwardTask(pass: i32, task: i32, tid: i32): void {
  setBackwardScratch(tid);
  if (pass == 1) statisticsTask(task);
  else if (pass == 2) gradientTask(task, tid);
  else reduceTask(task);
}
