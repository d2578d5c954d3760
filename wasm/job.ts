// The current job as the kernel sees it: the parameter block (read by the generated loadParams,
// see wasm/interface.mjs), sizes derived from it, and this thread's scratch.
import { gG, gGroupCount, gGroupStart, gH, gKeyTile, gMaxTileHeight, gOutput, gOutputStrideB, gOutputStrideGroup, gOutputStrideHead, gOutputStrideRow, gQueryTiles, gScratch, gScratchStride, gT, gTileRows, gV, loadParams } from './generated/params';

// ---- sizes derived from the parameters --------------------------------------------------------
/** Head size rounded up to 4 (row length of the packed query and output tiles). */
export let gHp: i32 = 0;
/** Head size rounded down to 4 and to 8 (vector loop bounds). */
export let gH4: i32 = 0;
export let gH8: i32 = 0;

/** Loads the job's parameters at `p` and derives the sizes above. */
export function loadJob(p: usize): void {
  loadParams(p);
  gHp = (gH + 3) & ~3;
  gH4 = gH & ~3;
  gH8 = gH & ~7;
}

// ---- per-thread scratch pointers (M4 = tile height rounded up to 4) ----------------------------
export let sQ: usize = 0; // packed, scaled query tile [M4][Hp]
export let sO: usize = 0; // output accumulator [M4][Hp]
export let sS: usize = 0; // logits / probabilities, transposed [Bc][M4]
export let sM: usize = 0; // running max [M4]
export let sL: usize = 0; // running sum [M4]
export let sA: usize = 0; // rescale factor [M4]; between computeLogits and softmaxTile, the tile's row max
export let sLo: usize = 0; // first allowed key per row [M4] (i32)
export let sHi: usize = 0; // last allowed key per row [M4] (i32)
export let sMR: usize = 0; // mask row base (element index) per row [M4] (i32)

/** Points the scratch pointers at thread `tid`'s scratch (after loadJob). */
export function setScratch(tid: i32): void {
  const base = gScratch + <usize>tid * <usize>gScratchStride;
  const m4 = <usize>gMaxTileHeight;
  sQ = base;
  sO = sQ + m4 * <usize>gHp * 4;
  sS = sO + m4 * <usize>gHp * 4;
  sM = sS + <usize>gKeyTile * m4 * 4;
  sL = sM + m4 * 4;
  sA = sL + m4 * 4;
  sLo = sA + m4 * 4;
  sHi = sLo + m4 * 4;
  sMR = sHi + m4 * 4;
}

/** Byte address of output row t of query head kvh*G + g in group (b, kvh), job-local index gi. */
// @ts-ignore: decorator
@inline
export function outRow(b: i32, kvh: i32, gi: i32, t: i32, g: i32): usize {
  return gOutput + ((<usize>b * <usize>gOutputStrideB + <usize>kvh * <usize>gOutputStrideHead + <usize>gi * <usize>gOutputStrideGroup + <usize>t * <usize>gOutputStrideRow + <usize>g * <usize>gH) << 2);
}

// ---- the tile of a task (set by locateTile) ----------------------------------------------------
/** Job-local group index gi; the group is (batch tileBatch, kv head tileKvHead) = groupStart + gi. */
export let tileGroup: i32 = 0;
export let tileBatch: i32 = 0;
export let tileKvHead: i32 = 0;
/** First query row of the tile (in the job) and its row count; tileHeight = tileRowCount * G packed rows. */
export let tileFirstRow: i32 = 0;
export let tileRowCount: i32 = 0;
export let tileHeight: i32 = 0;

/**
 * Sets the tile of index `tile` = queryTileFromEnd * groupCount + gi: tiles are numbered largest
 * query tiles (most causal work) first, so they are claimed first.
 */
export function locateTile(tile: i32): void {
  tileGroup = tile % gGroupCount;
  const group = gGroupStart + tileGroup;
  tileKvHead = group % gV;
  tileBatch = group / gV;
  tileFirstRow = (gQueryTiles - 1 - tile / gGroupCount) * gTileRows;
  tileRowCount = min(gTileRows, gT - tileFirstRow);
  tileHeight = tileRowCount * gG;
}
