// Dropout inside the forward tiles: the shared keep/drop hash (src/engine/dropout_hash.ts) zeroes
// the dropped exponentials of a key tile after the online softmax summed them (so the sum, and the
// returned probabilities, are taken before dropout); the kept ones are scaled by keepScale when
// the output is normalised.
import { gCallRowStart, gDropoutKey, gDropoutThreshold, gG } from './generated/params';
import { sS } from './job';
import { mix32, mix32v } from './simd';

/** Hash prefix mix32(mix32(mix32(key ^ b) ^ u) ^ i) of packed row r of a tile starting at t0. */
// @ts-ignore: decorator
@inline
function rowHash(b: i32, kvh: i32, t0: i32, r: i32): u32 {
  const tl = r / gG;
  const g = r - tl * gG;
  const u = kvh * gG + g;
  const i = gCallRowStart + t0 + tl;
  return mix32(mix32(mix32(<u32>gDropoutKey ^ <u32>b) ^ <u32>u) ^ <u32>i);
}

/** Zeroes the dropped entries of the key tile kt..kt+nk-1 in sS[j][r] (key-major), rows 0..m4-1. */
export function dropTile(b: i32, kvh: i32, t0: i32, kt: i32, nk: i32, m4: i32): void {
  const m4b = <usize>m4 << 2;
  const threshold = i32x4.splat(gDropoutThreshold);
  for (let r = 0; r < m4; r += 4) {
    let rh = i32x4.splat(<i32>rowHash(b, kvh, t0, r));
    rh = i32x4.replace_lane(rh, 1, <i32>rowHash(b, kvh, t0, r + 1));
    rh = i32x4.replace_lane(rh, 2, <i32>rowHash(b, kvh, t0, r + 2));
    rh = i32x4.replace_lane(rh, 3, <i32>rowHash(b, kvh, t0, r + 3));
    let p = sS + (<usize>r << 2);
    for (let j = 0; j < nk; j++) {
      const hv = mix32v(v128.xor(rh, i32x4.splat(kt + j)));
      const kept = i32x4.ge_u(i32x4.shr_u(hv, 8), threshold);
      v128.store(p, v128.and(v128.load(p), kept));
      p += m4b;
    }
  }
}
