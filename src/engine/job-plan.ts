/**
 * Job planning for the WebAssembly engine: pure arithmetic from the problem's sizes, the inputs'
 * placement and the thread count to the tiling, staging and task split the kernel runs.
 *
 * Shape letters: B batch, T query length, S key length, U query heads, V kv heads, H head size,
 * G = U/V. A group is one (batch, kv head) pair; a task is (group, query tile, key chunk).
 */
import { ValueError } from '../errors.js';

/** Query rows packed per tile (tile rows × G ≈ this). */
export const TARGET_TILE_HEIGHT = 64;
/** Keys per tile of the online softmax. */
export const KEY_TILE = 64;
/** Default budget of staged query + output bytes per job (plain-array inputs). */
export const STAGING_BYTES = 4 << 20;
/**
 * Plain-array key/value of a multi-row query are staged per group, (S, H) rows contiguous (the
 * kernel reads key rows H floats apart: rows V·H apart, as in (B, S, V, H), alias in the L1 cache),
 * as many groups per job as this many staging budgets hold (16 MiB by default). When that is every
 * group, a job's query and output rows are bulk copies of (B, rows, U, H) blocks instead of one
 * copy per row and group: the host's copies of a 2048-token prefill shrink while the workers wait.
 */
export const WHOLE_KEY_VALUE_BUDGETS = 4;
/**
 * Key/value already in engine memory (EngineBuffers, e.g. a KV cache) are staged per group too when
 * the query has at least this many query tiles: each key row is then read once per query tile, from
 * consecutive rows of H floats instead of rows V·H floats apart (which alias in the L1 cache). A
 * decode step (one query tile) reads them in place.
 */
export const STAGE_IN_PLACE_QUERY_TILES = 4;
/** Tasks per job must stay below this (the task counter keeps the job generation above 20 bits). */
export const TASK_LIMIT = 1 << 20;

/** What {@link planJobs} needs to know about a problem. */
export interface PlanInput {
  readonly B: number;
  readonly T: number;
  readonly S: number;
  readonly U: number;
  readonly V: number;
  readonly H: number;
  readonly G: number;
  /** Probabilities requested (then every job covers all query rows and all keys). */
  readonly wantProbabilities: boolean;
  /** Inputs already in engine memory (EngineBuffer views), read in place. */
  readonly queryInPlace: boolean;
  readonly keyInPlace: boolean;
  readonly valueInPlace: boolean;
  /** `value` is the same array as `key` (staged once). */
  readonly sameKeyValue: boolean;
  /** Threads that will run the jobs (the caller included). */
  readonly threads: number;
  /** Budget of staged query + output bytes per job; key/value get half of it. */
  readonly stagingBytes: number;
}

/** How a problem is cut into jobs and tasks (see {@link planJobs}). */
export interface JobPlan {
  /** Query rows per tile; the tile packs the G heads of each row (tile height tileRows × G). */
  readonly tileRows: number;
  /** Tile height rounded up to 4 (scratch and partial row count). */
  readonly maxTileHeight: number;
  /** Head size rounded up to 4. */
  readonly paddedHeadSize: number;
  /** Keys per softmax tile. */
  readonly keyTile: number;
  /**
   * Plain-array key/value staged as key rows of every head with bulk copies, `keysPerJob` rows
   * per job (all S when they fit); otherwise staged per group (S × H rows of `groupsPerJob` groups).
   */
  readonly stageKeyRows: boolean;
  /** Key rows per job when `stageKeyRows` (S unless the keys are split across jobs). */
  readonly keysPerJob: number;
  /** The keys are split across jobs (partials reduced once at the end). */
  readonly splitKeysAcrossJobs: boolean;
  /** Keys per key chunk. */
  readonly keyChunkLength: number;
  /** Key chunks over all S keys (partials reduced when > 1). */
  readonly keyChunks: number;
  /** Key chunks run by one job. */
  readonly chunksPerJob: number;
  /** Groups (batch, kv head) per job. */
  readonly groupsPerJob: number;
  /** Query rows per job. */
  readonly rowsPerJob: number;
  /** Tasks per key chunk of a full job (groupsPerJob × query tiles of rowsPerJob rows). */
  readonly tasksPerKeyChunk: number;
  /** Tasks of a full job over all key chunks. */
  readonly tasks: number;
  /** Bytes of one task's (max, sum, output) partials. */
  readonly partialBytes: number;
  /** Bytes of scratch per thread. */
  readonly scratchStride: number;
  /** The kernel reads `key` / `value` where they are (in engine memory); otherwise they are staged. */
  readonly readKeyInPlace: boolean;
  readonly readValueInPlace: boolean;
  /**
   * Query rows go in more than one block, each block one job: two staging areas alternate, so that
   * the host copies the next block's query in and the previous block's output out while the workers
   * run the current block.
   */
  readonly pipelineRows: boolean;
}

const roundUp4 = (n: number): number => (n + 3) & ~3;

/**
 * Plans the jobs of one attention call. Jobs are cut so that each numbers fewer than TASK_LIMIT
 * tasks; only a problem whose single group with all query rows needs more (with probabilities,
 * which need every row in one job) is a ValueError.
 *
 * Plain-array key/value are staged within half the staging budget: whole when they fit (or
 * probabilities are requested); else, for short queries whose query, output and per-chunk
 * partials fit the budget, key rows of every head in chunks (one job per chunk range, partials
 * reduced at the end); else per group, as many groups per job as fit. Key/value already in engine
 * memory are read in place, except by a query of STAGE_IN_PLACE_QUERY_TILES query tiles or more,
 * which stages them per group as well. Query rows go in blocks whose staged query + output fit the
 * budget; more than one block are pipelined, two in flight, each within half the budget. With
 * spare threads and long keys, the keys are split into chunks so that every thread has work
 * (flash-decoding).
 *
 * @example
 * ```ts
 * import { planJobs } from './job-plan.js';
 * const plan = planJobs({
 *   B: 1, T: 1, S: 4096, U: 32, V: 8, H: 128, G: 4, wantProbabilities: false,
 *   queryInPlace: false, keyInPlace: true, valueInPlace: true, sameKeyValue: false,
 *   threads: 4, stagingBytes: 4 << 20,
 * });
 * console.log(plan.keyChunks > 1); // true: a decode step splits its keys across threads
 * ```
 */
export function planJobs(input: PlanInput): JobPlan {
  const { B, T, S, U, V, H, G, threads, stagingBytes } = input;
  const want = input.wantProbabilities;
  const tileRows = Math.min(T, Math.max(1, Math.floor(TARGET_TILE_HEIGHT / G)));
  const maxTileHeight = roundUp4(tileRows * G);
  const paddedHeadSize = roundUp4(H);
  const keyTile = KEY_TILE;
  const groups = B * V;
  const queryTilesAll = Math.ceil(T / tileRows);
  // EngineBuffer key/value of a long query are staged per group (STAGE_IN_PLACE_QUERY_TILES).
  const stageInPlace = !want && queryTilesAll >= STAGE_IN_PLACE_QUERY_TILES;
  const readKeyInPlace = input.keyInPlace && !stageInPlace;
  const readValueInPlace = input.sameKeyValue ? readKeyInPlace : input.valueInPlace && !stageInPlace;
  const stagedKeyValueArrays = (readKeyInPlace ? 0 : 1) + (readValueInPlace || input.sameKeyValue ? 0 : 1);
  const partialBytes = maxTileHeight * (2 + paddedHeadSize) * 4;
  const keyValueBudget = stagingBytes / 2;
  const bytesPerQueryElement = input.queryInPlace ? 4 : 8; // staged query (unless in place) + output

  let stageKeyRows = false;
  let keysPerJob = S;
  let keyChunkLength = 0;
  let keyChunks = 1;
  if (stagedKeyValueArrays > 0 && !(stageInPlace && (input.keyInPlace || input.valueInPlace))) {
    const queryOutputBytes = bytesPerQueryElement * B * T * U * H;
    const keyValueBytes = stagedKeyValueArrays * B * S * V * H * 4;
    if (want || (keyValueBytes <= keyValueBudget && queryOutputBytes <= stagingBytes)) {
      stageKeyRows = true;
    } else {
      // Key rows of every head in chunks: as many rows per job as the budget holds, each job's
      // rows split further so that every thread gets a task.
      const splitsPerJob = threads > 1 ? Math.ceil((4 * threads) / (groups * queryTilesAll)) : 1;
      const rowsInBudget = Math.max(keyTile, Math.floor(keyValueBudget / (stagedKeyValueArrays * B * V * H * 4) / keyTile) * keyTile);
      const chunkLength = Math.max(keyTile, Math.floor(rowsInBudget / splitsPerJob / keyTile) * keyTile);
      const chunks = Math.ceil(S / chunkLength);
      if (rowsInBudget < S && chunks * groups * queryTilesAll * partialBytes + queryOutputBytes <= stagingBytes) {
        stageKeyRows = true;
        keyChunkLength = chunkLength;
        keysPerJob = Math.max(chunkLength, Math.floor(rowsInBudget / chunkLength) * chunkLength);
        keyChunks = chunks;
      }
    }
  }
  const splitKeysAcrossJobs = stageKeyRows && keysPerJob < S;
  // Otherwise groups per job: all of them when key/value are read in place (or probabilities are
  // requested), else as many groups as the key/value budget holds (WHOLE_KEY_VALUE_BUDGETS budgets
  // for a multi-row query, half a budget for one row).
  let groupsPerJob = groups;
  if (!stageKeyRows && !want && stagedKeyValueArrays > 0) {
    const groupBudget = T > 1 ? WHOLE_KEY_VALUE_BUDGETS * stagingBytes : keyValueBudget;
    groupsPerJob = Math.max(1, Math.min(groups, Math.floor(groupBudget / (stagedKeyValueArrays * S * H * 4))));
  }
  // Query rows per job: all of them with probabilities or staged key rows; otherwise blocks of
  // rows whose staged query + output fit the budget.
  const bytesPerRow = bytesPerQueryElement * groupsPerJob * G * H;
  // More than one block: two blocks in flight (pipelineRows), each within half the budget.
  let rowsPerJob = T;
  if (!want && !stageKeyRows && bytesPerRow * T > stagingBytes) {
    rowsPerJob = Math.min(T, Math.max(tileRows, Math.floor(stagingBytes / 2 / bytesPerRow / tileRows) * tileRows));
  }
  let tasksPerKeyChunk = groupsPerJob * Math.ceil(rowsPerJob / tileRows);
  if (!splitKeysAcrossJobs) {
    if (!want && threads > 1 && tasksPerKeyChunk < 4 * threads && S >= 512) {
      keyChunks = Math.max(1, Math.min(Math.ceil((4 * threads) / tasksPerKeyChunk), Math.floor(S / 256)));
    }
    keyChunkLength = Math.ceil(S / keyChunks / keyTile) * keyTile;
    keyChunks = Math.ceil(S / keyChunkLength);
  }
  const chunksPerJob = splitKeysAcrossJobs ? keysPerJob / keyChunkLength : keyChunks;
  // A job's tasks must be numbered below TASK_LIMIT: fewer groups per job (any plan can split its
  // groups across jobs), then, without probabilities, fewer query rows.
  const tilesPerGroup = Math.ceil(rowsPerJob / tileRows) * keyChunks;
  if (groupsPerJob * tilesPerGroup >= TASK_LIMIT) {
    groupsPerJob = Math.max(1, Math.floor((TASK_LIMIT - 1) / tilesPerGroup));
    if (!want && tilesPerGroup >= TASK_LIMIT) rowsPerJob = Math.min(T, Math.max(1, Math.floor((TASK_LIMIT - 1) / keyChunks)) * tileRows);
    tasksPerKeyChunk = groupsPerJob * Math.ceil(rowsPerJob / tileRows);
  }
  const tasks = tasksPerKeyChunk * keyChunks;
  if (tasks >= TASK_LIMIT) {
    throw new ValueError(
      `AttentionEngine.attention: argument \`problem\` is too large (${tasks} tasks, limit ${TASK_LIMIT - 1}); received B=${B}, T=${T}, V=${V}.`,
    );
  }
  const scratchStride = Math.ceil(((2 * maxTileHeight * paddedHeadSize + keyTile * maxTileHeight + 6 * maxTileHeight) * 4) / 64) * 64;
  // Row blocks pipelined: more than one block, each one job (its key chunks all in it).
  const pipelineRows = rowsPerJob < T && !splitKeysAcrossJobs;
  return {
    tileRows, maxTileHeight, paddedHeadSize, keyTile, stageKeyRows, keysPerJob, splitKeysAcrossJobs,
    keyChunkLength, keyChunks, chunksPerJob, groupsPerJob, rowsPerJob, tasksPerKeyChunk, tasks,
    partialBytes, scratchStride, readKeyInPlace, readValueInPlace, pipelineRows,
  };
}
