/**
 * The fused GroupedQueryAttention kernel for tfjs-backend-webgpu: a WGSL flash-attention program
 * run through `backend.runWebGPUProgram`.
 *
 * Work split. One workgroup serves batch b, key/value head g, and a block of rows made of TQ query
 * positions × GC query heads of g's group (GC = min(G, rows)). Query head u reads key/value head
 * floor(u / G) in place: no K/V copies, and the G heads of a group share every K/V tile.
 *
 * Per workgroup:
 *   1. Qs = fround(Q · scale) for its rows → workgroup memory (the composite path's rounding).
 *   2. Mask pre-pass (bool masks, causal, window): which rows have at least one allowed key. Rows
 *      with none are "fully masked" and follow Keras 3.6 float32: every key j in 0..S-1 gets the
 *      logit fround(L − 1e9) and a plain softmax (uniform for |L| ≤ 32, a 64-spaced grid otherwise).
 *   3. Online softmax over key tiles of KC keys: K (and V) tiles in workgroup memory; scores
 *      L = Qs·K; one invocation per row updates its running max m and sum l and turns the scores
 *      into weights; the rows' accumulators (rows × H, spread over the invocations) are rescaled
 *      and get Σ p·V. Tiles outside every row's causal/window band are skipped (unless a row of the
 *      block is fully masked, which needs all keys). Disallowed keys contribute exactly 0.
 *   4. Output = acc / l, written to (B,T,U,H).
 * Additive masks: logit fround(L + a) and a plain softmax over all keys, no special rows.
 *
 * Probabilities (only when `returnScores`): a second run of the same program in "stats" mode writes
 * each row's final (m, l, fully-masked flag) to a (B,U,T,3) buffer, then a per-element program
 * writes p = exp(x − m) / l into (B,U,T,S). Without `returnScores` no (B,U,T,S) buffer exists.
 *
 * Device limits: the tile sizes are chosen to fit 16 KiB of workgroup memory when possible (H=64:
 * 16 rows × 16 keys; H=256: 4 rows × 4 keys), else the device's `maxComputeWorkgroupStorageSize`
 * (32 KiB on SwiftShader), and `maxComputeInvocationsPerWorkgroup`. When even one
 * row and one key do not fit (H beyond ~2000 at 32 KiB), or an output exceeds the storage-buffer
 * binding size, the call runs the composite path and `console.warn`s once.
 *
 * Numerics: same rounding of Qs and of masked logits as the composite path; the sums run in another
 * order (online softmax), so results agree with the composite path to ~1e-6 relative (tested at
 * 1e-5 relative + 1e-5 absolute, 1e-4 against the cpu backend for large H).
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { GroupedQueryAttention, type GroupedQueryAttentionAttrs } from '../../kernel_names.js';
import { compositeKernelOutputs, warnOnce } from './composite_fallback.js';

/** The part of WebGPUProgram (tfjs-backend-webgpu/dist/webgpu_program.d.ts) this file uses. */
interface GpuProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  variableNames: string[];
  uniforms?: string;
  workgroupSize: [number, number, number];
  size?: boolean;
  getUserCode(): string;
}

type Uniform = { type: 'int32' | 'float32'; data: number[] };

interface WebGPUBackendLike {
  device: GPUDevice;
  runWebGPUProgram(program: GpuProgram, inputs: TensorInfo[], dtype: 'float32', uniforms?: Uniform[]): TensorInfo;
  disposeData(dataId: object): boolean;
}

/** Tile configuration of one call. */
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
  return rows * h + 2 * kc * h + rows * kc + 3 * rows + 4;
}

/**
 * Picks tile sizes for head size h, group size g and query length t under the given limits, or
 * null when no tile fits.
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

interface Dims {
  b: number;
  t: number;
  s: number;
  u: number;
  v: number;
  h: number;
  g: number;
}

/** WGSL shared by both programs: the allowed-key and logit rules. */
function maskSnippet(attrs: GroupedQueryAttentionAttrs): string {
  const positional = [
    attrs.causal ? 'ok = ok && (j <= p);' : '',
    attrs.slidingWindow > 0 ? 'ok = ok && (abs(p - j) < uniforms.window);' : '',
  ].join('\n      ');
  const maskIndex = 'b * uniforms.ms0 + u * uniforms.ms1 + t * uniforms.ms2 + j * uniforms.ms3';
  return `
    // Whether key j is allowed for query row (b, u, t) under the bool mask and causal/window rules.
    fn allowedKey(b : i32, u : i32, t : i32, j : i32) -> bool {
      let p = t + uniforms.offset;
      var ok = true;
      ${positional}
      ${attrs.maskKind === 'bool' ? `ok = ok && (Min[${maskIndex}] != 0);` : ''}
      return ok;
    }
    // Keras's logit for key j: the additive mask added in float32, or the -1e9 of a fully masked row.
    fn maskedLogit(score : f32, full : bool, b : i32, u : i32, t : i32, j : i32) -> f32 {
      ${attrs.maskKind === 'additive' ? `return score + Min[${maskIndex}];` : 'if (full) { return score - 1e9; }\n      return score;'}
    }
    // Whether key j enters row (b, u, t)'s softmax.
    fn contributes(full : bool, b : i32, u : i32, t : i32, j : i32) -> bool {
      ${hasSpecialRows(attrs) ? 'return full || allowedKey(b, u, t, j);' : 'return true;'}
    }`;
}

/** Whether rows can be fully masked (bool masks and positional masks; never for additive masks). */
function hasSpecialRows(attrs: GroupedQueryAttentionAttrs): boolean {
  return attrs.maskKind !== 'additive' && (attrs.maskKind === 'bool' || attrs.causal || attrs.slidingWindow > 0);
}

const UNIFORMS =
  'T : i32, S : i32, U : i32, V : i32, G : i32, nGc : i32, nTb : i32, numWG : i32, offset : i32, window : i32, ' +
  'scale : f32, ms0 : i32, ms1 : i32, ms2 : i32, ms3 : i32, H : i32, nKc : i32, nAcc : i32,';

function uniformValues(d: Dims, cfg: FlashConfig | null, attrs: GroupedQueryAttentionAttrs, mask: TensorInfo | null): Uniform[] {
  const nGc = cfg ? Math.ceil(d.g / cfg.gc) : 1;
  const nTb = cfg ? Math.ceil(d.t / cfg.tq) : 1;
  // Broadcast strides of the rank-4 mask: 0 along its size-1 axes.
  let ms = [0, 0, 0, 0];
  if (mask != null) {
    const [m0, m1, m2, m3] = mask.shape as [number, number, number, number];
    const strides = [m1 * m2 * m3, m2 * m3, m3, 1];
    ms = [m0, m1, m2, m3].map((n, i) => (n === 1 ? 0 : strides[i]!));
  }
  const i = (x: number): Uniform => ({ type: 'int32', data: [x] });
  return [
    i(d.t), i(d.s), i(d.u), i(d.v), i(d.g), i(nGc), i(nTb), i(d.b * d.v * nGc * nTb),
    i(attrs.queryOffset), i(attrs.slidingWindow),
    { type: 'float32', data: [attrs.scale] },
    i(ms[0]!), i(ms[1]!), i(ms[2]!), i(ms[3]!),
    // Loop bounds as uniforms, not constants: keeps shader compilers from unrolling the loops.
    i(d.h), i(cfg?.kc ?? 1), i(cfg ? Math.ceil((cfg.rows * d.h) / cfg.wg) : 1),
  ];
}

function attrsKey(attrs: GroupedQueryAttentionAttrs): string {
  return `${attrs.maskKind}_${attrs.causal ? 'c' : ''}${attrs.slidingWindow > 0 ? 'w' : ''}`;
}

/** The code of f(0), ..., f(n − 1): the accumulators are scalars with constant names (registers). */
function unroll(n: number, f: (k: number) => string): string {
  return Array.from({ length: n }, (_, k) => f(k)).join('\n');
}

/** The flash program: mode 'out' writes (B,T,U,H); mode 'stats' writes each row's (m, l, full) to (B,U,T,3). */
function flashProgram(
  mode: 'out' | 'stats',
  d: Dims,
  cfg: FlashConfig,
  attrs: GroupedQueryAttentionAttrs,
  variableNames: string[],
): GpuProgram {
  const { h } = d;
  const { gc, tq, rows, kc, wg } = cfg;
  const acc = Math.ceil((rows * h) / wg);
  const out = mode === 'out';
  const special = hasSpecialRows(attrs);
  const outputShape = out ? [d.b, d.t, d.u, d.h] : [d.b, d.u, d.t, 3];
  const numWG = d.b * d.v * Math.ceil(d.g / gc) * Math.ceil(d.t / tq);
  const userCode = `
    const H = ${h};
    const R = ${rows};
    const GC = ${gc};
    const TQ = ${tq};
    const KC = ${kc};
    const WG = ${wg};
    var<workgroup> qs : array<f32, ${rows * h}>;
    var<workgroup> kt : array<f32, ${kc * h}>;
    ${out ? `var<workgroup> vt : array<f32, ${kc * h}>;` : ''}
    var<workgroup> sc : array<f32, ${rows * kc}>;
    var<workgroup> rowAlpha : array<f32, ${rows}>;
    var<workgroup> rowL : array<f32, ${rows}>;
    var<workgroup> rowHas : array<atomic<u32>, ${rows}>;
    var<workgroup> wgId : i32;
    var<workgroup> wgAnyFull : u32;
    ${maskSnippet(attrs)}

    fn main(index : i32) {
      let tid = i32(localIndex);
      if (tid == 0) {
        wgId = i32(workgroupId.z * numWorkgroups.x * numWorkgroups.y + workgroupId.y * numWorkgroups.x + workgroupId.x);
      }
      if (tid < R) { atomicStore(&rowHas[tid], ${special ? '0u' : '1u'}); }
      let wid = workgroupUniformLoad(&wgId);
      if (wid >= uniforms.numWG) { return; }
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
      ${special ? `
      // 2. Rows with at least one allowed key (the others are fully masked).
      for (var i = tid; i < R * S; i += WG) {
        let r = i / S;
        let t = t0 + r / GC;
        let gi = gi0 + r % GC;
        if (t < T && gi < G && allowedKey(b, g * G + gi, t, i % S)) { atomicStore(&rowHas[r], 1u); }
      }
      workgroupBarrier();
      if (tid == 0) {
        var anyFull = 0u;
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
      if (anyFull == 0u) {
        ${attrs.slidingWindow > 0 ? 'jLo = max(0, pMin - uniforms.window + 1);' : ''}
        ${attrs.causal ? 'jEnd = min(S, pMax + 1);' : attrs.slidingWindow > 0 ? 'jEnd = min(S, pMax + uniforms.window);' : ''}
      }

      // Per-row state, held by invocation r < R.
      var m = -3.402823e+38f;
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
        rowFull = atomicLoad(&rowHas[tid]) == 0u;
      }
      ${unroll(acc, (k) => `var acc${k} = 0.0;`)}

      // 3. Online softmax over key tiles.
      for (var j0 = (jLo / KC) * KC; j0 < jEnd; j0 += KC) {
        for (var i = tid; i < KC * H; i += WG) {
          let j = j0 + i / H;
          var kx = 0.0;
          ${out ? 'var vx = 0.0;' : ''}
          if (j < S) {
            let src = ((b * S + j) * V + g) * H + i % H;
            kx = Kin[src];
            ${out ? 'vx = Vin[src];' : ''}
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
              if (j < S && contributes(rowFull, b, rowU, rowT, j)) {
                let x = maskedLogit(sc[so + c], rowFull, b, rowU, rowT, j);
                sc[so + c] = x;
                tileMax = max(tileMax, x);
              }
            }
            let alpha = exp(m - tileMax);
            var sum = 0.0;
            for (var c = 0; c < uniforms.nKc; c++) {
              let j = j0 + c;
              var p = 0.0;
              if (j < S && contributes(rowFull, b, rowU, rowT, j)) { p = exp(sc[so + c] - tileMax); }
              sc[so + c] = p;
              sum += p;
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
      ${out ? `
      if (tid < R) { rowL[tid] = l; }
      workgroupBarrier();
      ${unroll(acc, (k) => `{
        let i = tid + ${k} * WG;
        if (i < R * H) {
          let r = i / H;
          let t = t0 + r / GC;
          let gi = gi0 + r % GC;
          if (t < T && gi < G) {
            result[((b * T + t) * U + g * G + gi) * H + i % H] = acc${k} / rowL[r];
          }
        }
      }`)}` : `
      if (tid < R && rowValid) {
        let o = ((b * U + rowU) * T + rowT) * 3;
        result[o] = m;
        result[o + 1] = l;
        result[o + 2] = select(0.0, 1.0, rowFull);
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

/** Probabilities (B,U,T,S) from the rows' final (m, l, full): one invocation per element. */
function probabilitiesProgram(d: Dims, attrs: GroupedQueryAttentionAttrs, variableNames: string[]): GpuProgram {
  const outputShape = [d.b, d.u, d.t, d.s];
  const size = outputShape.reduce((a, x) => a * x, 1);
  const wg = 64;
  const userCode = `
    const H = ${d.h};
    ${maskSnippet(attrs)}
    fn main(index : i32) {
      if (index >= uniforms.size) { return; }
      let T = uniforms.T;
      let S = uniforms.S;
      let U = uniforms.U;
      let j = index % S;
      let t = (index / S) % T;
      let u = (index / (S * T)) % U;
      let b = index / (S * T * U);
      let g = u / uniforms.G;
      let so = ((b * U + u) * T + t) * 3;
      let full = Stats[so + 2] > 0.5;
      var p = 0.0;
      if (contributes(full, b, u, t, j)) {
        let qo = ((b * T + t) * U + u) * H;
        let ko = ((b * S + j) * uniforms.V + g) * H;
        var dotv = 0.0;
        for (var hh = 0; hh < uniforms.H; hh++) { dotv += (Qin[qo + hh] * uniforms.scale) * Kin[ko + hh]; }
        p = exp(maskedLogit(dotv, full, b, u, t, j) - Stats[so]) / Stats[so + 1];
      }
      result[index] = p;
    }`;
  return {
    outputShape,
    shaderKey: `gqaProbs_${d.h}_${attrsKey(attrs)}`,
    dispatchLayout: { x: outputShape.map((_, i) => i) },
    dispatch: [Math.ceil(size / wg), 1, 1],
    variableNames,
    uniforms: UNIFORMS,
    workgroupSize: [wg, 1, 1],
    size: true,
    getUserCode: () => userCode,
  };
}

function exceedsLimit(d: Dims, attrs: GroupedQueryAttentionAttrs, device: GPUDevice): string | null {
  const bytes = (n: number) => 4 * n;
  const maxBinding = device.limits.maxStorageBufferBindingSize;
  if (bytes(d.b * d.t * d.u * d.h) > maxBinding) return 'the output exceeds maxStorageBufferBindingSize';
  if (attrs.returnScores && bytes(d.b * d.u * d.t * d.s) > maxBinding) {
    return 'the probabilities exceed maxStorageBufferBindingSize';
  }
  return null;
}

const groupedQueryAttentionWebGPU: KernelFunc = ({ inputs, backend, attrs }) => {
  const gpu = backend as unknown as WebGPUBackendLike;
  const a = attrs as unknown as GroupedQueryAttentionAttrs;
  const query = inputs['query'] as TensorInfo;
  const key = inputs['key'] as TensorInfo;
  const value = inputs['value'] as TensorInfo;
  const mask = inputs['mask'] as TensorInfo | undefined;
  const [b, t, u, h] = query.shape as [number, number, number, number];
  const [, s, v] = key.shape as [number, number, number, number];
  const d: Dims = { b, t, s, u, v, h, g: u / v };
  const limits = gpu.device.limits;
  const cfg = chooseFlashConfig(h, d.g, t, limits);
  const reason =
    cfg == null
      ? `head size H=${h} needs more than maxComputeWorkgroupStorageSize=${limits.maxComputeWorkgroupStorageSize} bytes`
      : exceedsLimit(d, a, gpu.device);
  if (reason != null) {
    warnOnce(
      `grouped-query-attention: the fused webgpu kernel cannot run this call (${reason}); ` +
        'running the composite path instead (same results, more memory).',
    );
    return compositeKernelOutputs({ query, key, value, mask }, a, backend);
  }
  const withMask = a.maskKind !== 'none' && mask != null;
  const names = withMask ? ['Qin', 'Kin', 'Vin', 'Min'] : ['Qin', 'Kin', 'Vin'];
  const ins = withMask ? [query, key, value, mask] : [query, key, value];
  const uniforms = uniformValues(d, cfg, a, withMask ? mask : null);
  const output = gpu.runWebGPUProgram(flashProgram('out', d, cfg!, a, names), ins, 'float32', uniforms);
  if (!a.returnScores) return [output];

  // The stats pass reads no values: its inputs leave V out (unused bindings are not allowed).
  const statNames = withMask ? ['Qin', 'Kin', 'Min'] : ['Qin', 'Kin'];
  const statIns = withMask ? [query, key, mask] : [query, key];
  const stats = gpu.runWebGPUProgram(flashProgram('stats', d, cfg!, a, statNames), statIns, 'float32', uniforms);
  const probNames = withMask ? ['Qin', 'Kin', 'Stats', 'Min'] : ['Qin', 'Kin', 'Stats'];
  const probIns = withMask ? [query, key, stats, mask] : [query, key, stats];
  const probabilities = gpu.runWebGPUProgram(probabilitiesProgram(d, a, probNames), probIns, 'float32', uniforms);
  gpu.disposeData(stats.dataId);
  return [output, probabilities];
};

export const groupedQueryAttentionWebGPUConfig: KernelConfig = {
  kernelName: GroupedQueryAttention,
  backendName: 'webgpu',
  kernelFunc: groupedQueryAttentionWebGPU,
};
