// Flash-decoding reduction: combines the per-key-chunk partials (max, sum, output) of a split job.
import { gCallRows, gCallRowStart, gDropoutKeepScale, gG, gGroupCount, gGroupStart, gH, gKeyChunks, gLogSumExp, gMaxTileHeight, gPartials, gQueryTiles, gT, gTasks, gTileRows, gU, gV } from './generated/params';
import { gH4, gHp, loadJob, locateTile, outRow, tileBatch, tileFirstRow, tileGroup, tileHeight, tileKvHead } from './job';
import { expf, fillNaN, logPositive, SAFE_LOGIT } from './simd';

/** Combines the key-chunk partials (m, l, O) of a split job into the output (flash-decoding). */
export function reducePartials(params: usize): void {
  loadJob(params);
  const partStride = <usize>gMaxTileHeight * (2 + <usize>gHp) << 2;
  const hp4 = <usize>gHp << 2;
  for (let group = 0; group < gTasks / gKeyChunks; group++) {
    locateTile(group);
    const b = tileBatch;
    const kvh = tileKvHead;
    const t0 = tileFirstRow;
    const first = gPartials + <usize>(group * gKeyChunks) * partStride;
    for (let r = 0; r < tileHeight; r++) {
      const rb = <usize>r << 2;
      let mx: f32 = -Infinity;
      for (let c = 0; c < gKeyChunks; c++) mx = max(mx, load<f32>(first + <usize>c * partStride + rb));
      const tl = r / gG;
      const g = r - tl * gG;
      const dst = outRow(tileBatch, tileKvHead, tileGroup, tileFirstRow + tl, g);
      // No finite max (no key, or every logit -Inf) or a huge one: NaN, recomputed exactly by the
      // host (src/engine/exact-rows.ts). Chunks whose max is -Inf are not skipped below: their
      // weight is exp(-Inf) = 0, and 0·NaN keeps a NaN of their values.
      if (!(abs(mx) < SAFE_LOGIT)) {
        fillNaN(dst, gH);
        if (gLogSumExp != 0) store<f32>(gLogSumExp + (<usize>((b * gU + kvh * gG + g) * gCallRows + gCallRowStart + t0 + tl) << 2), NaN);
        continue;
      }
      let l: f32 = 0;
      for (let c = 0; c < gKeyChunks; c++) {
        const pc = first + <usize>c * partStride;
        const mc = load<f32>(pc + rb);
        l += load<f32>(pc + (<usize>gMaxTileHeight << 2) + rb) * expf(mc - mx);
      }
      let h = 0;
      for (; h < gH4; h += 4) {
        let acc = f32x4.splat(0);
        for (let c = 0; c < gKeyChunks; c++) {
          const pc = first + <usize>c * partStride;
          const mc = load<f32>(pc + rb);
          const w = f32x4.splat(expf(mc - mx));
          acc = f32x4.add(acc, f32x4.mul(v128.load(pc + (<usize>gMaxTileHeight << 3) + <usize>r * hp4 + (<usize>h << 2)), w));
        }
        v128.store(dst + (<usize>h << 2), f32x4.mul(f32x4.div(acc, f32x4.splat(l)), f32x4.splat(gDropoutKeepScale)));
      }
      for (; h < gH; h++) {
        let acc: f32 = 0;
        for (let c = 0; c < gKeyChunks; c++) {
          const pc = first + <usize>c * partStride;
          const mc = load<f32>(pc + rb);
          acc += load<f32>(pc + (<usize>gMaxTileHeight << 3) + <usize>r * hp4 + (<usize>h << 2)) * expf(mc - mx);
        }
        store<f32>(dst + (<usize>h << 2), acc / l * gDropoutKeepScale);
      }
      if (gLogSumExp != 0) {
        store<f32>(gLogSumExp + (<usize>((b * gU + kvh * gG + g) * gCallRows + gCallRowStart + t0 + tl) << 2), mx + logPositive(l));
      }
    }
  }
}
