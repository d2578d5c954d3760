/**
 * Flash-decoding for the fused GroupedQueryAttention kernel (tfjs-backend-webgpu): the path for few
 * query positions over many keys (a decode step with a KV cache), where the flash program alone
 * would give each (batch, key/value head) one workgroup walking all S keys in turn.
 *
 * Three programs:
 *   1. `unsafeScanProgram`, (B·V): one workgroup per (b, g) marks (bit 1) whether any input a logit
 *      of the group reads (its queries, its S keys, an additive mask) is at least SAFE_MAGNITUDE or
 *      not finite (../shared/mask_rule.ts), or (with causal or window) one of its S values is
 *      NaN/±Inf, (bit 2) whether one of its values reaches `valueLimit` (the partials then sum
 *      the values times 2⁻³², the combine scales back), and (bit 4, with a bool mask, causal or
 *      window) whether the bound H·max|Qs|·max|K| of its logits reaches MASKED_LOGIT_LIMIT (a wide
 *      spread: the partials walk every key of their chunk with the composite's logits, L − 1e9 at
 *      disallowed keys): flags instead of every chunk rescanning all keys.
 *   2. the flash program of flash_attention_webgpu.ts in mode 'partial': the keys are split into
 *      chunks of SPLIT_CHUNK; workgroup (row block, chunk) runs the online softmax over its chunk
 *      only, the G query heads of the group sharing each K/V tile (each K/V row is read once per
 *      row block), and writes each row's (m, l, flag, Σ exp(x − m)·V). When the scan flagged the
 *      group, chunk 0 takes every key (the non-finite rule needs every logit) and the other chunks
 *      stay empty.
 *   3. `combineProgram`, (B,T,U,H): out = Σ_c e^(m_c − M)·acc_c / Σ_c e^(m_c − M)·l_c with
 *      M = max_c m_c over the non-empty chunks (times 2³² for a group the scan found huge values in),
 *      NaN for rows chunk 0 marked NaN.
 *
 * Same rules and results as the flash program's 'out' mode (sums in another order: agreement to
 * ~1e-6 relative).
 */
import type { GroupedQueryAttentionAttrs } from '../../kernel_names.js';
import {
  LOWEST_FLOAT_BITS, MASKED_LOGIT_LIMIT, ROW_NAN, VALUE_UNSCALE_LITERAL, bandMaySkipKeys, rowsMayHaveNoAllowedKey, u32Literal,
} from '../shared/mask_rule.js';
import type { FlashConfig } from './flash_attention_webgpu.js';
import {
  UNIFORMS, attrsKey, flatCoords, maskSnippet, splitCount, wgslFloat, type Dims, type GpuProgram,
} from './gqa_shader_util_webgpu.js';

/** Whether a call takes the flash-decoding path: one row block along T, and many keys. */
export function useSplitDecode(d: Dims, cfg: FlashConfig, attrs: GroupedQueryAttentionAttrs): boolean {
  return !attrs.returnScores && d.t <= cfg.tq && splitCount(d.s) >= 4;
}

/**
 * (B·V) flags: bit 1 where a logit of group (b, g) may be non-finite, or a value at a key the partial
 * pass may skip is; bit 2 where a value of the group reaches `valueLimit`; bit 4 where its logits
 * may spread widely (../shared/mask_rule.ts). Inputs Qin, Kin, Vin (+ Min
 * with an additive mask).
 */
export function unsafeScanProgram(d: Dims, attrs: GroupedQueryAttentionAttrs, variableNames: string[]): GpuProgram {
  const wg = 64;
  // Only an additive mask is read (a bool mask cannot make a logit non-finite); NaN/±Inf values
  // only matter when the partial pass may skip keys (../shared/mask_rule.ts bandMaySkipKeys).
  const scanValues = bandMaySkipKeys(attrs);
  // With disallowed keys: the maxima of the wide-spread bound (../shared/mask_rule.ts).
  const special = rowsMayHaveNoAllowedKey(attrs);
  const userCode = `
    const WG = ${wg};
    var<workgroup> unsafeA : atomic<u32>;${special ? `
    var<workgroup> qMaxA : atomic<u32>;
    var<workgroup> kMaxA : atomic<u32>;` : ''}
    ${maskSnippet(attrs.maskKind === 'additive' ? attrs : { ...attrs, maskKind: 'none' })}
    fn main(index : i32) {
      let tid = i32(localIndex);
      if (tid == 0) {
        atomicStore(&unsafeA, 0u);${special ? `
        atomicStore(&qMaxA, 0u);
        atomicStore(&kMaxA, 0u);` : ''}
      }
      workgroupBarrier();
      let wid = i32(workgroupId.x);
      let b = wid / uniforms.V;
      let g = wid % uniforms.V;
      let T = uniforms.T;
      let S = uniforms.S;
      let G = uniforms.G;
      let H = uniforms.H;
      ${special ? 'var qMax = 0.0;' : ''}
      for (var i = tid; i < T * G * H; i += WG) {
        let t = i / (G * H);
        let u = g * G + (i / H) % G;
        let qs = Qin[((b * T + t) * uniforms.U + u) * H + i % H] * uniforms.scale;
        if (unsafeValue(qs)) { atomicOr(&unsafeA, 1u); }
        ${special ? 'qMax = max(qMax, abs(qs));' : ''}
      }
      ${special ? 'var kMax = 0.0;' : ''}
      for (var i = tid; i < S * H; i += WG) {
        let src = ((b * uniforms.kRows + i / H) * uniforms.V + g) * H + i % H;
        if (unsafeValue(Kin[src])${scanValues ? ' || nonFinite(Vin[src])' : ''}) { atomicOr(&unsafeA, 1u); }
        if (hugeValue(Vin[src])) { atomicOr(&unsafeA, 2u); }
        ${special ? 'kMax = max(kMax, abs(Kin[src]));' : ''}
      }${special ? `
      atomicMax(&qMaxA, bitcast<u32>(qMax));
      atomicMax(&kMaxA, bitcast<u32>(kMax));` : ''}
      ${attrs.maskKind === 'additive' ? `
      for (var i = tid; i < T * G * S; i += WG) {
        let t = i / (G * S);
        let u = g * G + (i / S) % G;
        if (unsafeValue(maskedLogit(0.0, false, b, u, t, i % S))) { atomicOr(&unsafeA, 1u); }
      }` : ''}
      workgroupBarrier();
      if (tid == 0) {
        var f = atomicLoad(&unsafeA);${special ? `
        // Wide spread (bit 4): H·max|Qs|·max|K| bounds every |logit| of the group; an overflow to
        // +Inf (or a NaN) counts as wide.
        let bound = f32(H) * bitcast<f32>(atomicLoad(&qMaxA)) * bitcast<f32>(atomicLoad(&kMaxA));
        if (!(bound < ${wgslFloat(MASKED_LOGIT_LIMIT)})) { f = f | 4u; }` : ''}
        result[wid] = f32(f);
      }
    }`;
  return {
    outputShape: [d.b * d.v],
    shaderKey: `gqaUnsafeScan_${attrsKey(attrs)}`,
    dispatchLayout: { x: [0] },
    dispatch: [d.b * d.v, 1, 1],
    variableNames,
    uniforms: UNIFORMS,
    workgroupSize: [wg, 1, 1],
    getUserCode: () => userCode,
  };
}

/** The output (B,T,U,H) from the chunks' partials (inputs 'Part' and the scan's 'Unsafe' flags). */
export function combineProgram(d: Dims, cfg: FlashConfig): GpuProgram {
  const outputShape = [d.b, d.t, d.u, d.h];
  const size = outputShape.reduce((a, x) => a * x, 1);
  const wg = 64;
  const userCode = `
    const R = ${cfg.rows};
    const GC = ${cfg.gc};
    const TQ = ${cfg.tq};
    fn main(index : i32) {
      if (index >= uniforms.size) { return; }
      let H = uniforms.H;
      let G = uniforms.G;
      ${flatCoords('index', [['b', 'B'], ['t', 'uniforms.T'], ['u', 'uniforms.U'], ['hh', 'H']])}
      let g = u / G;
      let gi = u % G;
      let gcIdx = gi / GC;
      let tb = t / TQ;
      let r = (t - tb * TQ) * GC + (gi - gcIdx * GC);
      let block = ((b * uniforms.V + g) * uniforms.nGc + gcIdx) * uniforms.nTb + tb;
      let stride = H + 3;
      var mMax = bitcast<f32>(${u32Literal(LOWEST_FLOAT_BITS)});
      for (var c = 0; c < uniforms.nSplit; c++) {
        let o = ((block * uniforms.nSplit + c) * R + r) * stride;
        if (Part[o + 1] > 0.0) { mMax = max(mMax, Part[o]); }
      }
      var num = 0.0;
      var den = 0.0;
      for (var c = 0; c < uniforms.nSplit; c++) {
        let o = ((block * uniforms.nSplit + c) * R + r) * stride;
        let l = Part[o + 1];
        if (l > 0.0) {
          let w = exp(Part[o] - mMax);
          num += w * Part[o + 3 + hh];
          den += w * l;
        }
      }
      var y = num / den;
      // Partials of a group with huge values hold Σ exp(x − m)·v·2^-32 (../shared/mask_rule.ts).
      if ((u32(Unsafe[b * uniforms.V + g]) & 2u) != 0u) { y *= ${VALUE_UNSCALE_LITERAL}; }
      if (Part[(block * uniforms.nSplit * R + r) * stride + 2] == ${ROW_NAN}.0) { y = nanValue(); }
      setOutputAtIndex(index, y);
    }
    fn nanValue() -> f32 { return bitcast<f32>(uniforms.nanBits); }`;
  return {
    outputShape,
    shaderKey: `gqaDecodeCombine_${cfg.rows}_${cfg.gc}_${cfg.tq}`,
    dispatchLayout: { x: outputShape.map((_, i) => i) },
    dispatch: [Math.ceil(size / wg), 1, 1],
    variableNames: ['Part', 'Unsafe'],
    uniforms: UNIFORMS,
    workgroupSize: [wg, 1, 1],
    size: true,
    getUserCode: () => userCode,
  };
}
