// One forward task (batch, kv head, query tile, key chunk) and the probabilities it may return.
import { gCallRows, gCallRowStart, gCausal, gChunksInJob, gDropoutKeepScale, gDropoutThreshold, gFirstChunk, gG, gGroupCount, gGroupStart, gH, gKey, gKeyChunkLength, gKeyChunks, gKeyStrideB, gKeyStrideGroup, gKeyStrideHead, gKeyStrideRow, gKeyTile, gLogSumExp, gMaskKind, gMaxTileHeight, gPartials, gProbabilities, gProgress, gQueryOffset, gQueryTiles, gS, gT, gTileRows, gU, gV, gValue, gValueStrideB, gValueStrideGroup, gValueStrideHead, gValueStrideRow, gWindow } from './generated/params';
import { gH4, gHp, locateTile, outRow, sL, sM, sO, sS, tileBatch, tileFirstRow, tileGroup, tileHeight, tileKvHead, tileRowCount } from './job';
import { expv, fillNaN, logPositive, SAFE_LOGIT } from './simd';
import { dropTile } from './dropout';
import { applyMasks, boolTileState, highAllowed, lowAllowed, setupRows, TILE_ALL_ALLOWED, TILE_NONE_ALLOWED } from './masks';
import { accumulatePV, computeLogits, packQuery, softmaxTile, touchRows } from './tiles';

/** Runs forward task `task` of the job on thread `tid`'s scratch. */
export function runTask(task: i32, tid: i32): void {
  // task = ((qtRev * B + b) * V + kvh) * nK + kc, largest query tiles (most causal work) first
  // (in general (qtRev * NG + gi) * nK + kc, group b*V + kvh = G0 + gi)
  // with key chunks kc = KC0 + (task % NKJ); partials are indexed as if all NK chunks ran.
  let rest = task;
  const kc = gFirstChunk + rest % gChunksInJob;
  rest = rest / gChunksInJob;
  const pidx = rest * gKeyChunks + kc;
  locateTile(rest);
  const gi = tileGroup;
  const kvh = tileKvHead;
  const b = tileBatch;
  const t0 = tileFirstRow;
  const nt = tileRowCount;
  const M = tileHeight;
  const m4 = (M + 3) & ~3;
  const hp4 = <usize>gHp << 2;
  const m4b = <usize>m4 << 2;

  packQuery(b, kvh, gi, t0, nt, m4);
  setupRows(b, kvh, t0, nt, m4);
  memory.fill(sO, 0, <usize>m4 * hp4);
  const ninf = f32x4.splat(-Infinity);
  for (let r = 0; r < m4; r += 4) {
    v128.store(sM + (<usize>r << 2), ninf);
    v128.store(sL + (<usize>r << 2), f32x4.splat(0));
  }

  // Key range any row of the tile may see (lo/hi are monotone in the row's position).
  const pFirst = gQueryOffset + t0;
  const pLast = gQueryOffset + t0 + nt - 1;
  const kLo = max(0, lowAllowed(pFirst));
  const kHi = min(gS - 1, highAllowed(pLast));
  const rowLoMax = lowAllowed(pLast);
  const rowHiMin = highAllowed(pFirst);
  const hasBounds = gCausal != 0 || gWindow > 0;

  const cStart = max(kLo, kc * gKeyChunkLength);
  const cEnd = min(kHi + 1, min(gS, (kc + 1) * gKeyChunkLength));
  const kBase = gKey + ((<usize>b * <usize>gKeyStrideB + <usize>kvh * <usize>gKeyStrideHead + <usize>gi * <usize>gKeyStrideGroup) << 2);
  const vBase = gValue + ((<usize>b * <usize>gValueStrideB + <usize>kvh * <usize>gValueStrideHead + <usize>gi * <usize>gValueStrideGroup) << 2);
  const progress = gProgress + (<usize>tid << 2);

  for (let kt = cStart; kt < cEnd; kt += gKeyTile) {
    const nk = min(gKeyTile, cEnd - kt);
    // A bool-mask tile with no allowed key changes nothing (its weights are 0; the host recomputes
    // rows where that differs from the composite, src/engine/exact-rows.ts): skipped whole.
    let withMask = gMaskKind != 0;
    if (gMaskKind == 1) {
      const state = boolTileState(kt, nk, m4);
      if (state == TILE_NONE_ALLOWED) {
        atomic.add<i32>(progress, 1);
        continue;
      }
      withMask = state != TILE_ALL_ALLOWED;
    }
    touchRows(kBase, gKeyStrideRow, kt, nk);
    touchRows(vBase, gValueStrideRow, kt, nk);
    computeLogits(kBase, kt, nk, m4);
    const needBounds = hasBounds && (kt < rowLoMax || kt + nk - 1 > rowHiMin);
    const changed = needBounds || withMask;
    if (changed) applyMasks(kt, nk, m4, needBounds, withMask);
    softmaxTile(nk, m4, !changed);
    if (gDropoutThreshold != 0) dropTile(b, kvh, t0, kt, nk, m4);
    accumulatePV(vBase, kt, nk, m4);
    atomic.add<i32>(progress, 1);
  }

  if (gKeyChunks == 1) {
    // Normalise and write the output rows.
    for (let r = 0; r < M; r++) {
      const tl = r / gG;
      const g = r - tl * gG;
      const l = load<f32>(sL + (<usize>r << 2));
      const dst = outRow(b, kvh, gi, t0 + tl, g);
      const src = sO + <usize>r * hp4;
      // A row whose sum is 0 (no key, or every logit -Inf) or NaN, or whose max logit is huge, is
      // written as NaN: the host recomputes every non-finite row exactly (src/engine/exact-rows.ts).
      if (l > 0 && abs(load<f32>(sM + (<usize>r << 2))) < SAFE_LOGIT) {
        const lv = f32x4.splat(l);
        const keep = f32x4.splat(gDropoutKeepScale);
        let h = 0;
        for (; h < gH4; h += 4) v128.store(dst + (<usize>h << 2), f32x4.mul(f32x4.div(v128.load(src + (<usize>h << 2)), lv), keep));
        for (; h < gH; h++) store<f32>(dst + (<usize>h << 2), load<f32>(src + (<usize>h << 2)) / l * gDropoutKeepScale);
      } else {
        fillNaN(dst, gH);
      }
      if (gLogSumExp != 0) {
        const lse: f32 = l > 0 ? load<f32>(sM + (<usize>r << 2)) + logPositive(l) : Infinity;
        store<f32>(gLogSumExp + (<usize>((b * gU + kvh * gG + g) * gCallRows + gCallRowStart + t0 + tl) << 2), lse);
      }
    }
    if (gProbabilities != 0) writeProbabilities(b, kvh, t0, nt, m4, kBase, kLo, kHi, hasBounds, rowLoMax, rowHiMin);
  } else {
    // Partial (m, l, unnormalised O) for the reduction.
    const partStride = <usize>gMaxTileHeight * (2 + <usize>gHp) << 2;
    const part = gPartials + <usize>pidx * partStride;
    memory.copy(part, sM, m4b);
    memory.copy(part + (<usize>gMaxTileHeight << 2), sL, m4b);
    memory.copy(part + (<usize>gMaxTileHeight << 3), sO, <usize>m4 * hp4);
  }
}

export function writeProbabilities(
  b: i32, kvh: i32, t0: i32, nt: i32, m4: i32, kBase: usize,
  kLo: i32, kHi: i32, hasBounds: bool, rowLoMax: i32, rowHiMin: i32,
): void {
  const M = nt * gG;
  const m4b = <usize>m4 << 2;
  const zero = f32x4.splat(0);
  const ninf = f32x4.splat(-Infinity);
  for (let kt = 0; kt < gS; kt += gKeyTile) {
    const nk = min(gKeyTile, gS - kt);
    if (kt + nk - 1 < kLo || kt > kHi) {
      for (let r = 0; r < M; r++) {
        const tl = r / gG;
        const g = r - tl * gG;
        const dst = gProbabilities + ((<usize>((b * gU + kvh * gG + g) * gT + t0 + tl) * <usize>gS + <usize>kt) << 2);
        memory.fill(dst, 0, <usize>nk << 2);
      }
      continue;
    }
    computeLogits(kBase, kt, nk, m4);
    const needBounds = hasBounds && (kt < rowLoMax || kt + nk - 1 > rowHiMin);
    if (needBounds || gMaskKind != 0) applyMasks(kt, nk, m4, needBounds);
    for (let r = 0; r < m4; r += 4) {
      const rb = <usize>r << 2;
      const m = v128.load(sM + rb);
      const mSafe = v128.bitselect(zero, m, f32x4.eq(m, ninf));
      const l = v128.load(sL + rb);
      const lSafe = v128.bitselect(f32x4.splat(1), l, f32x4.eq(l, zero));
      for (let j = 0; j < nk; j++) {
        const p = sS + <usize>j * m4b + rb;
        v128.store(p, f32x4.div(expv(f32x4.sub(v128.load(p), mSafe)), lSafe));
      }
    }
    for (let r = 0; r < M; r++) {
      const tl = r / gG;
      const g = r - tl * gG;
      const dst = gProbabilities + ((<usize>((b * gU + kvh * gG + g) * gT + t0 + tl) * <usize>gS + <usize>kt) << 2);
      let src = sS + (<usize>r << 2);
      for (let j = 0; j < nk; j++) {
        store<f32>(dst + (<usize>j << 2), load<f32>(src));
        src += m4b;
      }
    }
  }
}

