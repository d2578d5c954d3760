// Which keys a packed query row may see: causal/window bands and the bool or additive mask.
// Shared by the forward tiles and the probabilities pass (and any kernel that rebuilds logits).
import { gCausal, gG, gMask, gMaskKind, gMaskStrideB, gMaskStrideS, gMaskStrideT, gMaskStrideU, gQueryOffset, gS, gWindow } from './generated/params';
import { sHi, sLo, sMR, sS } from './job';

// @ts-ignore: decorator
@inline
export function lowAllowed(p: i32): i32 {
  return gWindow > 0 ? p - gWindow + 1 : 0;
}

// @ts-ignore: decorator
@inline
export function highAllowed(p: i32): i32 {
  if (gCausal) return p;
  if (gWindow > 0) return p + gWindow - 1;
  return gS - 1;
}


/**
 * Applies causal/window bounds and the mask to the logits of keys kt..kt+nk-1: disallowed keys
 * become -inf, additive values are added (fround(s + a)).
 */
export function applyMasks(kt: i32, nk: i32, m4: i32, needBounds: bool, withMask: bool = true): void {
  const m4b = <usize>m4 << 2;
  const ninf = f32x4.splat(-Infinity);
  for (let r = 0; r < m4; r += 4) {
    const rb = <usize>r << 2;
    if (needBounds) {
      const lo = v128.load(sLo + rb);
      const hi = v128.load(sHi + rb);
      for (let j = 0; j < nk; j++) {
        const kj = i32x4.splat(kt + j);
        const ok = v128.and(i32x4.ge_s(kj, lo), i32x4.le_s(kj, hi));
        const p = sS + <usize>j * m4b + rb;
        v128.store(p, v128.bitselect(v128.load(p), ninf, ok));
      }
    }
    if (!withMask) continue;
    if (gMaskKind == 1) {
      const m0 = gMask + <usize>load<i32>(sMR + rb);
      const m1 = gMask + <usize>load<i32>(sMR + rb + 4);
      const m2 = gMask + <usize>load<i32>(sMR + rb + 8);
      const m3 = gMask + <usize>load<i32>(sMR + rb + 12);
      const ss = <usize>gMaskStrideS;
      for (let j = 0; j < nk; j++) {
        const o = <usize>(kt + j) * ss;
        let mv = i32x4.splat(<i32>load<u8>(m0 + o));
        mv = i32x4.replace_lane(mv, 1, <i32>load<u8>(m1 + o));
        mv = i32x4.replace_lane(mv, 2, <i32>load<u8>(m2 + o));
        mv = i32x4.replace_lane(mv, 3, <i32>load<u8>(m3 + o));
        const p = sS + <usize>j * m4b + rb;
        v128.store(p, v128.bitselect(ninf, v128.load(p), i32x4.eq(mv, i32x4.splat(0))));
      }
    } else if (gMaskKind == 2) {
      const m0 = gMask + (<usize>load<i32>(sMR + rb) << 2);
      const m1 = gMask + (<usize>load<i32>(sMR + rb + 4) << 2);
      const m2 = gMask + (<usize>load<i32>(sMR + rb + 8) << 2);
      const m3 = gMask + (<usize>load<i32>(sMR + rb + 12) << 2);
      const ss = <usize>gMaskStrideS << 2;
      for (let j = 0; j < nk; j++) {
        const o = <usize>(kt + j) * ss;
        let mv = f32x4.splat(load<f32>(m0 + o));
        mv = f32x4.replace_lane(mv, 1, load<f32>(m1 + o));
        mv = f32x4.replace_lane(mv, 2, load<f32>(m2 + o));
        mv = f32x4.replace_lane(mv, 3, load<f32>(m3 + o));
        const p = sS + <usize>j * m4b + rb;
        v128.store(p, f32x4.add(v128.load(p), mv));
      }
    }
  }
}



/** {@link boolTileState}: no key of the tile allowed for any row, some, or all for every row. */
export const TILE_NONE_ALLOWED: i32 = 0;
export const TILE_SOME_ALLOWED: i32 = 1;
export const TILE_ALL_ALLOWED: i32 = 2;

/**
 * Classifies the bool mask over keys kt..kt+nk-1 for the tile's rows 0..m4-1 (padded rows repeat
 * the last row): a tile with no allowed key is skipped whole (a key padding mask skips its trailing
 * key tiles), a tile where every key is allowed needs no masking. Rows sharing a mask row (a mask
 * broadcast over heads or query rows) are read once; contiguous keys are read 16 bytes at a time.
 */
export function boolTileState(kt: i32, nk: i32, m4: i32): i32 {
  const ss = <usize>gMaskStrideS;
  let anyAllowed = false;
  let anyMasked = false;
  let prev: i32 = -1;
  for (let r = 0; r < m4; r++) {
    const row = load<i32>(sMR + (<usize>r << 2));
    if (row == prev) continue;
    prev = row;
    let p = gMask + <usize>row + <usize>kt * ss;
    let j = 0;
    if (ss == 1) {
      for (; j + 16 <= nk; j += 16) {
        const zero = i8x16.eq(v128.load(p + <usize>j), i8x16.splat(0));
        if (v128.any_true(zero)) anyMasked = true;
        if (!i8x16.all_true(zero)) anyAllowed = true;
      }
      p += <usize>j;
    }
    for (; j < nk; j++) {
      if (load<u8>(p) == 0) anyMasked = true;
      else anyAllowed = true;
      p += ss;
    }
    if (anyAllowed && anyMasked) return TILE_SOME_ALLOWED;
  }
  return anyAllowed ? TILE_ALL_ALLOWED : TILE_NONE_ALLOWED;
}

/** Per-row bounds (lo, hi) and mask row offsets for the tile's packed rows (padded rows copy the last). */
export function setupRows(b: i32, kvh: i32, t0: i32, nt: i32, m4: i32): void {
  const M = nt * gG;
  for (let r = 0; r < m4; r++) {
    const rr = r < M ? r : M - 1;
    const tl = rr / gG;
    const g = rr - tl * gG;
    const t = t0 + tl;
    const p = gQueryOffset + t;
    store<i32>(sLo + (<usize>r << 2), lowAllowed(p));
    store<i32>(sHi + (<usize>r << 2), highAllowed(p));
    if (gMaskKind != 0) {
      const u = kvh * gG + g;
      store<i32>(sMR + (<usize>r << 2), b * gMaskStrideB + u * gMaskStrideU + t * gMaskStrideT);
    }
  }
}
