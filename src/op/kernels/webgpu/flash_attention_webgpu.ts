/**
 * The flash-attention WGSL program of the fused GroupedQueryAttention kernel (tfjs-backend-webgpu),
 * and the choice of its tile sizes.
 *
 * What it computes. Mode 'out': the attention output (B,T,U,H) = softmax(fround(Q·scale)·Kᵀ + mask
 * rules)·V, in one pass with an online softmax, never materialising the (B,U,T,S) scores. Mode
 * 'stats' (only for `returnScores`): the same pass without V, writing each row's final softmax max
 * m, sum l and fully-masked flag to (B,U,T,3) for attention_probs_webgpu.ts.
 *
 * Workgroup layout. A 1-D dispatch of B·V·ceil(G/GC)·ceil(T/TQ) workgroups of WG = min(128,
 * maxComputeInvocationsPerWorkgroup) invocations; workgroup id = ((b·V + g)·nGc + gcIdx)·nTb + tb.
 * One workgroup serves batch b, key/value head g and a block of R = TQ·GC rows: TQ query positions
 * × GC query heads of g's group (GC = min(G, rows)); row r is position t0 + r / GC, head
 * gi0 + r % GC. Query head u reads key/value head floor(u / G) in place: no K/V copies, and the
 * group's heads share every K/V tile, so each K/V tile is read once per R rows instead of once per
 * row (the point of grouping: G query heads per K/V head).
 *
 * Workgroup memory (floats): qs R·H (scaled queries), kt and vt KC·H (one key/value tile), sc R·KC
 * (the tile's scores, then weights), rowAlpha / rowL / rowHas / rowBad / rowLive R each, plus six scalars
 * (`workgroupFloats`). Tiles are picked from TILE_PREFERENCES (rows, keys) to fit 16 KiB when possible
 * (H=64: 16 rows × 16 keys; H=256: 4 rows × 4 keys): smaller arrays keep more workgroups in flight
 * per core and SwiftShader compiles large workgroup arrays slowly; otherwise the device's whole
 * maxComputeWorkgroupStorageSize (32 KiB on SwiftShader). null when even 1 row × 1 key does not fit
 * (H beyond ~2000 at 32 KiB); the kernel then runs the composite path.
 *
 * Per workgroup:
 *   1. qs = fround(Q · scale) for its rows (the composite path's rounding).
 *   2. Non-finite check (../shared/mask_rule.ts): if a scaled query of the block, a key of head g
 *      or an additive mask value of the block is at least SAFE_MAGNITUDE or not finite, every row's
 *      S logits are computed once (masked keys included) and classified by their bits: the rows the
 *      composite path makes NaN are written as NaN, and rows whose allowed logits are all −Inf
 *      become fully masked rows. Otherwise (finite data: no logit can overflow) only the mask
 *      pre-pass (bool masks, causal, window) runs: which rows have at least one allowed key. Rows
 *      with none are "fully masked" and follow Keras 3.6 float32: every key j in 0..S-1 gets the
 *      logit fround(L − 1e9) and a plain softmax (uniform for |L| ≤ 32, a 64-spaced grid otherwise).
 *      With causal or window, a NaN/±Inf value of head g (first S keys) also marks the block unsafe:
 *      an unsafe block walks every key, weight 0 outside the band, so 0·NaN reaches the rows as in
 *      the composite's P·V.
 *      Wide logit spreads (bool mask, causal or window only; ../shared/mask_rule.ts): when the bound
 *      H·max|Qs|·max|K| of the block's logits reaches MASKED_LOGIT_LIMIT, a disallowed key's logit
 *      fround(L − 1e9) may carry weight, so every row of the block is treated as fully masked: it
 *      walks every key with the composite's logit (L, or L − 1e9 at a disallowed key). The maxima
 *      come from the scan above; in mode 'partial' the scan of decode_webgpu.ts gives the flag.
 *   3. Online softmax over key tiles of KC keys: K (and V) tiles into workgroup memory; scores
 *      L = qs·K, one invocation per (row, key); then invocation r < R updates row r's running max m
 *      and sum l and turns the scores into weights; the rows' accumulators (R × H values, held in
 *      registers acc0..acc{n−1}, n = ceil(R·H / WG), element tid + k·WG) are rescaled and get Σ p·V.
 *      Tiles outside every row's causal/window band are skipped (unless a row of the block is fully
 *      masked, which needs all keys). Disallowed keys contribute exactly 0.
 *   4. Output = acc / l, written to (B,T,U,H) (or m, l, flag in 'stats' mode).
 * Huge values (../shared/mask_rule.ts valueLimit): when a value of head g reaches S·|v|·keepScale ≥
 * 1e37, the block sums V·2⁻³² and multiplies the output by 2³², so the unnormalised acc cannot
 * overflow where the composite's normalised P·V stays finite.
 * Additive masks: logit fround(L + a) and a plain softmax over all keys, no special rows.
 * Dropout (mode 'out', `dropoutRate` > 0): each weight exp(x − m) is multiplied by the keep factor of
 * the shared hash (src/engine/dropout_hash.ts, WGSL copy in gqa_shader_util_webgpu.ts) after it
 * enters l, so output = Σ p·z·V with p the pre-dropout probability, as Keras applies it.
 *
 * Numerics: same rounding of qs and of masked logits as the composite path; the sums run in another
 * order (online softmax), so results agree with the composite path to ~1e-6 relative.
 */
import type { GroupedQueryAttentionAttrs } from '../../kernel_names.js';
import {
  LOWEST_FLOAT_BITS, MASKED_LOGIT_LIMIT, ROW_FULL, ROW_NAN, ROW_NORMAL, VALUE_SCALE_LITERAL, u32Literal, VALUE_UNSCALE_LITERAL, bandMaySkipKeys, rowsMayHaveNoAllowedKey,
} from '../shared/mask_rule.js';
import {
  SPLIT_CHUNK, UNIFORMS, attrsKey, dropoutSnippet, maskSnippet, splitCount, wgslFloat, type Dims, type GpuProgram,
} from './gqa_shader_util_webgpu.js';
import { hasDropout } from '../shared/dropout_hash_shader.js';

/**
 * Tile configuration of one call of the WebGPU flash kernel.
 *
 * @example
 * ```ts
 * import { chooseFlashConfig, type FlashConfig } from 'grouped-query-attention/webgpu';
 *
 * // H = 128, G = 4, T = 512 under SwiftShader-like limits (32 KiB workgroup storage, 256 invocations)
 * const config: FlashConfig | null = chooseFlashConfig(128, 4, 512, { maxComputeWorkgroupStorageSize: 32768, maxComputeInvocationsPerWorkgroup: 256 });
 * console.log(config);
 * ```
 */
export interface FlashConfig {
  /** Query heads of the group per workgroup. */
  gc: number;
  /** Query positions per workgroup. */
  tq: number;
  /** Rows per workgroup = gc · tq. */
  rows: number;
  /** Keys per tile. */
  kc: number;
  /** Invocations per workgroup. */
  wg: number;
  /** Workgroup memory in bytes. */
  bytes: number;
}

const PREFERRED_WORKGROUP_BYTES = 16384;

const TILE_PREFERENCES: ReadonlyArray<readonly [number, number]> = [
  [32, 32], [32, 16], [16, 16], [16, 8], [8, 8], [4, 8], [4, 4], [2, 4], [1, 4], [1, 2], [1, 1],
];

/** Workgroup floats of the flash program for `rows` rows, `kc` keys, head size h. */
function workgroupFloats(rows: number, kc: number, h: number): number {
  return rows * h + 2 * kc * h + rows * kc + 5 * rows + 6;
}

/**
 * Picks tile sizes for head size h, group size g and query length t under the given limits, or
 * null when no tile fits (the kernel then runs the composite path and warns once).
 *
 * @example
 * ```ts
 * import { chooseFlashConfig } from 'grouped-query-attention/webgpu';
 *
 * const limits = { maxComputeWorkgroupStorageSize: 32768, maxComputeInvocationsPerWorkgroup: 256 };
 * console.log(chooseFlashConfig(64, 7, 1, limits));     // a decode tile for G = 7
 * console.log(chooseFlashConfig(4096, 1, 16, limits));  // null: H too large for the device
 * ```
 */
export function chooseFlashConfig(
  h: number,
  g: number,
  t: number,
  limits: { maxComputeWorkgroupStorageSize: number; maxComputeInvocationsPerWorkgroup: number },
): FlashConfig | null {
  const wg = Math.min(128, limits.maxComputeInvocationsPerWorkgroup);
  // Prefer tiles within 16 KiB (more workgroups in flight per core; SwiftShader also compiles
  // large workgroup arrays slowly), then use the device's whole limit before giving up.
  const budgets = [Math.min(PREFERRED_WORKGROUP_BYTES, limits.maxComputeWorkgroupStorageSize), limits.maxComputeWorkgroupStorageSize];
  for (const budget of budgets) {
    for (const [rowsMax, kc] of TILE_PREFERENCES) {
      if (rowsMax > wg) continue;
      const gc = Math.min(g, rowsMax);
      const tq = Math.max(1, Math.min(t, Math.floor(rowsMax / gc)));
      const rows = gc * tq;
      const bytes = 4 * workgroupFloats(rows, kc, h);
      if (bytes <= budget) return { gc, tq, rows, kc, wg, bytes };
    }
  }
  return null;
}

/** The code of f(0), ..., f(n − 1): the accumulators are scalars with constant names (registers). */
function unroll(n: number, f: (k: number) => string): string {
  return Array.from({ length: n }, (_, k) => f(k)).join('\n');
}

/**
 * The flash program: mode 'out' writes (B,T,U,H); mode 'stats' writes each row's (m, l, full) to
 * (B,U,T,3); mode 'partial' (flash-decoding, decode_webgpu.ts) writes each row's (m, l, flag, acc)
 * over one chunk of keys to (numBlocks, nSplit, R, H+3).
 */
export function flashProgram(
  mode: 'out' | 'stats' | 'partial',
  d: Dims,
  cfg: FlashConfig,
  attrs: GroupedQueryAttentionAttrs,
  variableNames: string[],
): GpuProgram {
  const { h } = d;
  const { gc, tq, rows, kc, wg } = cfg;
  const acc = Math.ceil((rows * h) / wg);
  const partial = mode === 'partial';
  // 'out' and 'partial' accumulate P·V; 'partial' writes the unnormalised sums of its key chunk.
  const out = mode !== 'stats';
  const special = rowsMayHaveNoAllowedKey(attrs);
  // 'out' scans the values when it may skip keys ('partial' reads the scan of decode_webgpu.ts).
  const scanValues = mode === 'out' && bandMaySkipKeys(attrs);
  const dropout = hasDropout(attrs);
  const blocks = d.b * d.v * Math.ceil(d.g / gc) * Math.ceil(d.t / tq);
  const nSplit = partial ? splitCount(d.s) : 1;
  const outputShape = partial ? [blocks, nSplit, rows, d.h + 3] : out ? [d.b, d.t, d.u, d.h] : [d.b, d.u, d.t, 3];
  const numWG = blocks * nSplit;
  const userCode = `
    const H = ${h};
    const R = ${rows};
    const GC = ${gc};
    const TQ = ${tq};
    const KC = ${kc};
    const WG = ${wg};
    const CHUNK = ${SPLIT_CHUNK};
    var<workgroup> qs : array<f32, ${rows * h}>;
    var<workgroup> kt : array<f32, ${kc * h}>;
    ${out ? `var<workgroup> vt : array<f32, ${kc * h}>;` : ''}
    var<workgroup> sc : array<f32, ${rows * kc}>;
    var<workgroup> rowAlpha : array<f32, ${rows}>;
    var<workgroup> rowL : array<f32, ${rows}>;
    var<workgroup> rowHas : array<atomic<u32>, ${rows}>;
    var<workgroup> wgId : i32;
    var<workgroup> wgAnyFull : u32;
    var<workgroup> rowBad : array<atomic<u32>, ${rows}>;
    var<workgroup> rowLive : array<atomic<u32>, ${rows}>;
    // Block flags (bit 1 unsafe, bit 2 huge values, bit 4 wide logit spread), gathered, then broadcast.
    var<workgroup> flagsA : atomic<u32>;
    var<workgroup> wgFlags : u32;${special && !partial ? `
    // Bits of max |Qs| over the block's rows and max |K| over head g's keys (magnitudes order like
    // their bits): the wide-spread bound (../shared/mask_rule.ts MASKED_LOGIT_LIMIT).
    var<workgroup> qMaxA : atomic<u32>;
    var<workgroup> kMaxA : atomic<u32>;` : ''}
    ${maskSnippet(attrs)}
    ${out && dropout ? dropoutSnippet : ''}

    fn main(index : i32) {
      // Key chunks per row block: a uniform (flash-decoding), so a growing S compiles nothing.
      let NSPLIT = ${partial ? 'uniforms.nSplit' : '1'};
      let tid = i32(localIndex);
      if (tid == 0) {
        wgId = i32(workgroupId.z * numWorkgroups.x * numWorkgroups.y + workgroupId.y * numWorkgroups.x + workgroupId.x);
      }
      if (tid < R) {
        atomicStore(&rowHas[tid], ${special ? '0u' : '1u'});
        atomicStore(&rowBad[tid], 0u);
        atomicStore(&rowLive[tid], 1u);
      }
      if (tid == 0) {
        atomicStore(&flagsA, 0u);${special && !partial ? `
        atomicStore(&qMaxA, 0u);
        atomicStore(&kMaxA, 0u);` : ''}
      }
      let wid0 = workgroupUniformLoad(&wgId);
      if (wid0 >= uniforms.numWG * NSPLIT) { return; }
      // Key chunk of this workgroup (flash-decoding) and its row block.
      let chunk = ${partial ? 'wid0 % NSPLIT' : '0'};
      let wid = ${partial ? 'wid0 / NSPLIT' : 'wid0'};
      let T = uniforms.T;
      let S = uniforms.S;
      let U = uniforms.U;
      let V = uniforms.V;
      let G = uniforms.G;
      let tb = wid % uniforms.nTb;
      let w1 = wid / uniforms.nTb;
      let gcIdx = w1 % uniforms.nGc;
      let w2 = w1 / uniforms.nGc;
      let g = w2 % V;
      let b = w2 / V;
      let t0 = tb * TQ;
      let gi0 = gcIdx * GC;

      // 1. Scaled queries of the block's rows (row r = query position t0 + r / GC, head gi0 + r % GC).
      for (var i = tid; i < R * H; i += WG) {
        let r = i / H;
        let t = t0 + r / GC;
        let gi = gi0 + r % GC;
        var x = 0.0;
        if (t < T && gi < G) {
          x = Qin[((b * T + t) * U + g * G + gi) * H + i % H] * uniforms.scale;
        }
        qs[i] = x;
      }
      ${partial ? `
      // 2a. Whether a logit of the group may be non-finite (bit 1), whether its values are huge
      // (bit 2) and whether its logits may spread widely (bit 4), from the scan of decode_webgpu.ts.
      if (tid == 0) { atomicStore(&flagsA, u32(Unsafe[b * V + g])); }` : `
      // 2a. Could a logit of the block be non-finite? Only if an input it reads is unsafe
      // (../shared/mask_rule.ts): the block's scaled queries, any key of head g${attrs.maskKind === 'additive' ? ', the additive mask' : ''}.
      // ${scanValues ? 'Also a NaN/±Inf value of head g: then every key is walked (bandMaySkipKeys).' : 'Every key is walked: no NaN/±Inf value scan needed.'}
      // ${out ? 'And huge values of head g (hugeValue): then its values are summed scaled.' : ''}
      // ${special ? 'And the maxima of the wide-spread bound (../shared/mask_rule.ts).' : 'No disallowed keys: no wide-spread bound needed.'}
      ${special ? 'var qMax = 0.0;' : ''}
      for (var i = tid; i < R * H; i += WG) {
        if (unsafeValue(qs[i])) { atomicOr(&flagsA, 1u); }
        ${special ? 'qMax = max(qMax, abs(qs[i]));' : ''}
      }
      ${special ? 'var kMax = 0.0;' : ''}
      for (var i = tid; i < S * H; i += WG) {
        let src = ((b * uniforms.kRows + i / H) * V + g) * H + i % H;
        if (unsafeValue(Kin[src])${scanValues ? ' || nonFinite(Vin[src])' : ''}) { atomicOr(&flagsA, 1u); }
        ${out ? 'if (hugeValue(Vin[src])) { atomicOr(&flagsA, 2u); }' : ''}
        ${special ? 'kMax = max(kMax, abs(Kin[src]));' : ''}
      }${special ? `
      atomicMax(&qMaxA, bitcast<u32>(qMax));
      atomicMax(&kMaxA, bitcast<u32>(kMax));` : ''}
      ${attrs.maskKind === 'additive' ? `
      for (var i = tid; i < R * S; i += WG) {
        let r = i / S;
        let t = t0 + r / GC;
        let gi = gi0 + r % GC;
        if (t < T && gi < G && unsafeValue(maskedLogit(0.0, false, b, g * G + gi, t, i % S))) { atomicOr(&flagsA, 1u); }
      }` : ''}
`}
      workgroupBarrier();
      if (tid == 0) {
        var f = atomicLoad(&flagsA);${special && !partial ? `
        // Wide spread (bit 4): H·max|Qs|·max|K| bounds every |logit| of the block; an overflow to
        // +Inf (or a NaN) counts as wide.
        let bound = f32(uniforms.H) * bitcast<f32>(atomicLoad(&qMaxA)) * bitcast<f32>(atomicLoad(&kMaxA));
        if (!(bound < ${wgslFloat(MASKED_LOGIT_LIMIT)})) { f = f | 4u; }` : ''}
        wgFlags = f;
      }
      let blockFlags = workgroupUniformLoad(&wgFlags);
      let blockUnsafe = blockFlags & 1u;
      // A wide logit spread (bit 4, ../shared/mask_rule.ts): every row walks every key with the
      // composite's logits, as a row with no allowed key does.
      let blockWide = ${special ? '(blockFlags & 4u) != 0u' : 'false'};
      // Huge values: summed times 2^-32, the output times 2^32 (../shared/mask_rule.ts valueLimit).
      let vScale = select(1.0, ${VALUE_SCALE_LITERAL}, (blockFlags & 2u) != 0u);
      let vUnscale = select(1.0, ${VALUE_UNSCALE_LITERAL}, vScale != 1.0);
      if (blockUnsafe != 0u${partial ? ' && chunk == 0' : ''}) {
        // 2b. The composite path's rule on every logit of every row, masked keys included: a NaN or
        // +Inf logit, or no logit above -Inf, makes the row NaN; no allowed logit above -Inf makes
        // it a fully masked row (a softmax over the masked keys' L - 1e9, as the composite gives).
        if (tid < R) { atomicStore(&rowLive[tid], 0u); }
        workgroupBarrier();
        for (var i = tid; i < R * S; i += WG) {
          let r = i / S;
          let j = i % S;
          let t = t0 + r / GC;
          let gi = gi0 + r % GC;
          if (t < T && gi < G) {
            let u = g * G + gi;
            let ko = ((b * uniforms.kRows + j) * V + g) * H;
            var dotv = 0.0;
            for (var hh = 0; hh < uniforms.H; hh++) { dotv += qs[r * H + hh] * Kin[ko + hh]; }
            let x = compositeLogit(dotv, b, u, t, j);
            if (nanOrPosInf(x)) { atomicStore(&rowBad[r], 1u); }
            if (!isNegInf(x)) { atomicStore(&rowLive[r], 1u); }
            ${special ? 'if (!isNegInf(dotv) && allowedKey(b, u, t, j)) { atomicStore(&rowHas[r], 1u); }' : ''}
          }
        }
      }${special ? ` else {
        // 2. Rows with at least one allowed key (the others are fully masked).
        for (var i = tid; i < R * S; i += WG) {
          let r = i / S;
          let t = t0 + r / GC;
          let gi = gi0 + r % GC;
          if (t < T && gi < G && allowedKey(b, g * G + gi, t, i % S)) { atomicStore(&rowHas[r], 1u); }
        }
      }
      workgroupBarrier();
      if (tid == 0) {
        var anyFull = select(0u, 1u, blockWide);
        for (var r = 0; r < R; r++) {
          let t = t0 + r / GC;
          let gi = gi0 + r % GC;
          if (t < T && gi < G && atomicLoad(&rowHas[r]) == 0u) { anyFull = 1u; }
        }
        wgAnyFull = anyFull;
      }
      let anyFull = workgroupUniformLoad(&wgAnyFull);` : `
      workgroupBarrier();
      let anyFull = 0u;`}

      // Key range of the block: the union of its rows' causal/window bands, or all keys.
      let pMin = t0 + uniforms.offset;
      let pMax = min(t0 + TQ, T) - 1 + uniforms.offset;
      var jLo = 0;
      var jEnd = S;
      ${partial ? `
      // Flash-decoding: chunk c takes keys [c·CHUNK, (c+1)·CHUNK). When a logit may be non-finite,
      // chunk 0 takes all keys (its flags need every logit) and the other chunks stay empty.
      if (blockUnsafe != 0u) {
        if (chunk != 0) { jEnd = 0; }
      } else {
        jLo = chunk * CHUNK;
        jEnd = min(S, jLo + CHUNK);
      }` : ''}
      // An unsafe block walks every key: its flags need every logit, and a non-finite value at a
      // key outside the band still reaches the rows (weight 0 times NaN/±Inf is NaN, as in P·V).
      if (anyFull == 0u && blockUnsafe == 0u) {
        ${attrs.slidingWindow > 0 ? 'jLo = max(jLo, pMin - uniforms.window + 1);' : ''}
        ${attrs.causal ? 'jEnd = min(jEnd, pMax + 1);' : attrs.slidingWindow > 0 ? 'jEnd = min(jEnd, pMax + uniforms.window);' : ''}
      }

      // Per-row state, held by invocation r < R.
      var m = bitcast<f32>(${u32Literal(LOWEST_FLOAT_BITS)});
      var l = 0.0;
      var rowT = 0;
      var rowU = 0;
      var rowValid = false;
      var rowFull = false;
      if (tid < R) {
        rowT = t0 + tid / GC;
        let gi = gi0 + tid % GC;
        rowU = g * G + gi;
        rowValid = rowT < T && gi < G;
        rowFull = blockWide || atomicLoad(&rowHas[tid]) == 0u;
      }
      ${unroll(acc, (k) => `var acc${k} = 0.0;`)}

      // 3. Online softmax over key tiles.
      for (var j0 = (jLo / KC) * KC; j0 < jEnd; j0 += KC) {
        for (var i = tid; i < KC * H; i += WG) {
          let j = j0 + i / H;
          var kx = 0.0;
          ${out ? 'var vx = 0.0;' : ''}
          if (j < S) {
            let src = ((b * uniforms.kRows + j) * V + g) * H + i % H;
            kx = Kin[src];
            ${out ? 'vx = Vin[src] * vScale;' : ''}
          }
          kt[i] = kx;
          ${out ? 'vt[i] = vx;' : ''}
        }
        workgroupBarrier();
        for (var i = tid; i < R * KC; i += WG) {
          let qo = (i / KC) * H;
          let ko = (i % KC) * H;
          var dotv = 0.0;
          for (var hh = 0; hh < uniforms.H; hh++) { dotv += qs[qo + hh] * kt[ko + hh]; }
          sc[i] = dotv;
        }
        workgroupBarrier();
        if (tid < R) {
          let so = tid * KC;
          if (rowValid) {
            var tileMax = m;
            for (var c = 0; c < uniforms.nKc; c++) {
              let j = j0 + c;
              if (j < S) {
                let x = keyLogit(sc[so + c], rowFull, b, rowU, rowT, j);
                if (x.y != 0.0) {
                  sc[so + c] = x.x;
                  tileMax = max(tileMax, x.x);
                }
              }
            }
            let alpha = exp(m - tileMax);
            var sum = 0.0;
            for (var c = 0; c < uniforms.nKc; c++) {
              let j = j0 + c;
              var p = 0.0;
              if (j < S && contributes(rowFull, b, rowU, rowT, j)) { p = exp(sc[so + c] - tileMax); }
              // l sums the weights before dropout; the output's weights are dropped and rescaled.
              sum += p;
              ${out && dropout ? 'p *= keepFactor(b, rowU, rowT, j);' : ''}
              sc[so + c] = p;
            }
            l = l * alpha + sum;
            m = tileMax;
            rowAlpha[tid] = alpha;
          } else {
            for (var c = 0; c < uniforms.nKc; c++) { sc[so + c] = 0.0; }
            rowAlpha[tid] = 1.0;
          }
        }
        workgroupBarrier();
        ${out ? `
        ${unroll(acc, (k) => `{
          let i = tid + ${k} * WG;
          if (i < R * H) {
            let r = i / H;
            let hh = i % H;
            var a = acc${k} * rowAlpha[r];
            for (var c = 0; c < uniforms.nKc; c++) { a += sc[r * KC + c] * vt[c * H + hh]; }
            acc${k} = a;
          }
        }`)}
        workgroupBarrier();` : ''}
      }

      // 4. Results.
      ${partial ? `
      // (m, l, flag, Σ p·V) of each row over this chunk; combined by decode_webgpu.ts.
      let po = (wid * NSPLIT + chunk) * R * (H + 3);
      if (tid < R) {
        result[po + tid * (H + 3)] = m;
        result[po + tid * (H + 3) + 1] = l;
        var flag = 0.0;
        if (atomicLoad(&rowBad[tid]) != 0u || atomicLoad(&rowLive[tid]) == 0u) { flag = ${ROW_NAN}.0; }
        result[po + tid * (H + 3) + 2] = flag;
      }
      ${unroll(acc, (k) => `{
        let i = tid + ${k} * WG;
        if (i < R * H) { result[po + (i / H) * (H + 3) + 3 + i % H] = acc${k}; }
      }`)}` : out ? `
      if (tid < R) { rowL[tid] = l; }
      workgroupBarrier();
      ${unroll(acc, (k) => `{
        let i = tid + ${k} * WG;
        if (i < R * H) {
          let r = i / H;
          let t = t0 + r / GC;
          let gi = gi0 + r % GC;
          if (t < T && gi < G) {
            var y = (acc${k} / rowL[r]) * vUnscale;
            if (atomicLoad(&rowBad[r]) != 0u || atomicLoad(&rowLive[r]) == 0u) { y = nanValue(); }
            result[((b * T + t) * U + g * G + gi) * H + i % H] = y;
          }
        }
      }`)}` : `
      if (tid < R && rowValid) {
        let o = ((b * U + rowU) * T + rowT) * 3;
        result[o] = m;
        result[o + 1] = l;
        var flag = select(${ROW_NORMAL}.0, ${ROW_FULL}.0, rowFull);
        if (atomicLoad(&rowBad[tid]) != 0u || atomicLoad(&rowLive[tid]) == 0u) { flag = ${ROW_NAN}.0; }
        result[o + 2] = flag;
      }`}
    }`;
  return {
    outputShape,
    shaderKey: `gqaFlash_${mode}_${h}_${gc}x${tq}_${kc}_${wg}_${attrsKey(attrs)}`,
    dispatchLayout: { x: outputShape.map((_, i) => i) },
    dispatch: [numWG, 1, 1],
    variableNames,
    uniforms: UNIFORMS,
    workgroupSize: [wg, 1, 1],
    getUserCode: () => userCode,
  };
}
