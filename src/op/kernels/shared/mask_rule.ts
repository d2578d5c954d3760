/**
 * The parts of the Keras 3.6 mask rule that the WGSL and GLSL kernels share, stated once:
 * which calls can have rows with no allowed key, and the non-finite rule of the composite path.
 *
 * Non-finite values. The composite path (../../composite.ts) adds the mask to every logit and runs a
 * plain softmax over all S keys, masked ones included (their logit is L − 1e9, or L + a for an
 * additive mask). Its row of probabilities is therefore NaN when any of those S logits is NaN or
 * +Inf, or when all of them are −Inf; and a row whose allowed keys all have logit −Inf (but some
 * masked key is finite) is a softmax over the masked keys' L − 1e9: exactly a fully masked row.
 * The kernels reproduce this: they classify every logit by its bits (compilers may fold
 * NaN-producing arithmetic, but not integer tests) and mark the row "nan" or "full".
 * To stay fast on finite data they only do this when an input of the block is at least
 * SAFE_MAGNITUDE in magnitude (or not finite): below it no dot product or mask addition can
 * overflow float32, so no logit can be non-finite.
 * Values: a NaN/±Inf value makes NaN (or ±Inf) in every row of its group and column, even at keys a
 * row does not attend to (see `bandMaySkipKeys`).
 */

/** Which calls can have rows with no allowed key: the op's rule, re-exported for the shader hosts. */
export { rowsMayHaveNoAllowedKey } from '../../mask_rule.js';
import type { GroupedQueryAttentionAttrs } from '../../kernel_names.js';
import { MASKED_LOGIT_LIMIT, SAFE_MAGNITUDE as OUTPUT_SAFE_MAGNITUDE } from '../../../engine/exact-rows.js';

/**
 * Whether the kernels may skip keys outside the rows' causal/window bands. The composite multiplies
 * every probability by every value (P·V over all S keys), so a NaN or ±Inf value at a skipped key
 * still reaches the row (0·NaN = 0·Inf = NaN): when this holds, the kernels scan the values of the
 * first S keys and walk every key (weight 0 outside the band) for a group that holds one. Without
 * causal or window every key is walked anyway (masked keys with weight 0).
 */
export function bandMaySkipKeys(attrs: GroupedQueryAttentionAttrs): boolean {
  return attrs.causal || attrs.slidingWindow > 0;
}

/**
 * Wide logit spreads. Keras gives a disallowed key (bool mask, causal, window) the logit
 * fround(s − 1e9), not −∞; the kernels drop such a key (weight 0, or a skipped key tile), which is
 * the same only while exp(fround(s − 1e9) − m) is 0 in float32, i.e. while every disallowed logit
 * lies more than ~104 below the row's max (float32's exp underflows to 0 below −103.98). Rows
 * where that may fail are walked over every key with the composite's logit (`compositeLogit`: L for
 * allowed keys, L − 1e9 for the others) and a plain softmax: exactly what the kernels already do for
 * a row with no allowed key, so such rows are flagged ROW_FULL ("walk every key").
 *   - webgpu (per row block, before the walk): the bound H·max|Qs|·max|K| of every |logit| of the
 *     block reaches {@link MASKED_LOGIT_LIMIT} (the engine's limit, src/engine/exact-rows.ts: below
 *     it the gap between any allowed and any disallowed logit exceeds 104), or an input is unsafe;
 *   - webgl (per row, in the stats pass, which reads every score anyway): the row's largest
 *     disallowed logit lies within {@link MASKED_KEY_GAP} of its largest allowed one.
 * Normal inputs (|logit| ≪ 1e8) meet neither test: same work and bits as without it.
 */
export { MASKED_LOGIT_LIMIT };

/**
 * A disallowed logit this far below the row's max has weight exp(x − m) = 0 in float32 (it
 * underflows below −103.98; the margin covers any exp approximation of a GPU).
 */
export const MASKED_KEY_GAP = 128;

/**
 * Inputs below this magnitude give finite logits: |q·scale|, |k| < 1e15 bound each of H products
 * by 1e30 (H < 3·10⁸), and |a| < 1e15 keeps L + a and L − 1e9 finite.
 */
export const SAFE_MAGNITUDE = 1e15;

/** The float32 bit pattern of SAFE_MAGNITUDE (a float's magnitude bits order like the float). */
export const SAFE_MAGNITUDE_BITS = new Uint32Array(new Float32Array([SAFE_MAGNITUDE]).buffer)[0]!;

/**
 * Huge values. The kernels' accumulators hold unnormalised sums Σ exp(x − m)·v (each weight ≤ 1,
 * up to S of them, times the dropout keep scale), which overflow float32 where the composite's
 * normalised P·V does not (its weights sum to 1). As in the engine (src/engine/exact-rows.ts, the
 * S·max|V| bound), a group whose values reach `valueLimit` (S·|v|·keepScale ≥ 1e37) is summed with
 * its values scaled by 2⁻³² (VALUE_SCALE_LITERAL) and the output scaled back by 2³²: powers of two,
 * exact except for values below ~1e-28 (then negligible next to the group's ≥ 1e37/S), and finite
 * inputs below the limit keep their exact bits.
 */
export function valueLimit(s: number, keepScale: number): number {
  return Math.fround(OUTPUT_SAFE_MAGNITUDE / (Math.max(1, s) * Math.max(1, keepScale)));
}
/** WGSL / GLSL literals of 2⁻³² and 2³² (powers of two: exact in float32). */
export const VALUE_SCALE_LITERAL = '2.3283064365386963e-10';
export const VALUE_UNSCALE_LITERAL = '4294967296.0';

/**
 * The float32 bits of −3.4028235e38, the lowest finite float: the running max starts there, so a
 * row whose finite logits all lie below −3.402823e38 (a huge negative additive mask) still gets
 * weights exp(x − m) = 1 at its max, as in the composite's softmax, not 0/0.
 */
export const LOWEST_FLOAT_BITS = 0xff7fffff;

/** Bit patterns the shaders test: +Inf, −Inf, and the quiet NaN they write. */
export const POS_INF_BITS = 0x7f800000;
export const NEG_INF_BITS = 0xff800000;
export const NAN_BITS = 0x7fc00000;

/** Row flags of the stats passes: a normal row, a row with no usable allowed key, a NaN row. */
export const ROW_NORMAL = 0;
export const ROW_FULL = 1;
export const ROW_NAN = 2;

/** `0x…u` literal of a u32, for WGSL and GLSL ES 3.00. */
export function u32Literal(x: number): string {
  return `0x${(x >>> 0).toString(16)}u`;
}
