/**
 * The mask rule, once, in TypeScript: which keys a query row may see, and the rows with no allowed
 * key. Keras 3.6 (docs/keras-3.6-behaviour.md): a key j is allowed for the query at absolute position
 * `pos` when it lies in the causal/window band and the bool mask (if any) is true there; a disallowed
 * key's logit becomes `fround(s - 1e9)`. An additive mask allows every key (its values are added).
 *
 * Used by the engine's problem checks, the reference, the plain-JS path, the backward and the
 * engine's job planning (through {@link keyBand}); the op side imports it from here
 * (`grouped-query-attention/engine` does not re-export it: it is internal, stable within the package).
 */

/** What the rule needs from a problem (a NormalizedProblem has all of it). */
export interface MaskRuleInput {
  readonly S: number;
  readonly causal: boolean;
  /** Sliding window size, 0 for none. */
  readonly window: number;
  readonly mask: { readonly kind: 'bool' | 'additive'; readonly data: ArrayLike<number>; readonly shape: readonly [number, number, number, number]; readonly strides: readonly [number, number, number, number] } | null;
  readonly B: number;
  readonly U: number;
  readonly T: number;
  /** Absolute position of query row 0. */
  readonly p0: number;
}

/**
 * Whether some key may be disallowed (bool mask, causal or window), i.e. whether rows with no
 * allowed key can exist and disallowed keys get `-1e9`.
 */
export function hasKeyRestrictions(p: Pick<MaskRuleInput, 'causal' | 'window' | 'mask'>): boolean {
  return p.causal || p.window > 0 || (p.mask !== null && p.mask.kind === 'bool');
}

/**
 * {@link hasKeyRestrictions} on a kernel's attributes (src/op/kernel_names.ts): whether rows with no
 * allowed key can exist. The op turns a numeric mask into a bool one when causal or a window is on,
 * so an additive mask never meets them.
 *
 * @example
 * ```ts
 * import { rowsMayHaveNoAllowedKey } from './mask-rule.js';
 * rowsMayHaveNoAllowedKey({ maskKind: 'none', causal: true, slidingWindow: 0 }); // true
 * ```
 */
export function rowsMayHaveNoAllowedKey(attrs: { readonly maskKind: string; readonly causal: boolean; readonly slidingWindow: number }): boolean {
  return attrs.maskKind !== 'additive' && (attrs.maskKind === 'bool' || attrs.causal || attrs.slidingWindow > 0);
}

/**
 * First and last key the causal/window band allows for the query at absolute position `pos`
 * (empty when lo > hi; not clipped to [0, S)). Monotone in `pos`, which tiled kernels rely on.
 *
 * @example
 * ```ts
 * import { keyBand } from './mask-rule.js';
 * keyBand({ S: 10, causal: true, window: 3 }, 5); // [3, 5]
 * ```
 */
export function keyBand(p: Pick<MaskRuleInput, 'S' | 'causal' | 'window'>, pos: number): [number, number] {
  let lo = 0;
  let hi = p.S - 1;
  if (p.window > 0) {
    lo = Math.max(lo, pos - p.window + 1);
    if (!p.causal) hi = Math.min(hi, pos + p.window - 1);
  }
  if (p.causal) hi = Math.min(hi, pos);
  return [lo, hi];
}

/**
 * Whether every query row may see every key 0..S-1 (no bool mask, and the causal/window band of
 * every row covers all keys, e.g. decoding the last position with a causal mask).
 */
export function everyRowSeesEveryKey(p: MaskRuleInput): boolean {
  if (p.mask !== null && p.mask.kind === 'bool') return false;
  if (!p.causal && p.window === 0) return true;
  // The band is monotone in the position: check the first row's end and the last row's start.
  return keyBand(p, p.p0)[1] >= p.S - 1 && keyBand(p, p.p0 + p.T - 1)[0] <= 0;
}

/** Element offset of mask row (b, u, t) in `mask.data` (add `j · strides[3]` for key j). */
export function maskRowBase(mask: NonNullable<MaskRuleInput['mask']>, b: number, u: number, t: number): number {
  return b * mask.strides[0] + u * mask.strides[1] + t * mask.strides[2];
}

/**
 * Whether key j is allowed for row (b, u, t): in the band and, for a bool mask, true there.
 * An additive mask allows every key.
 */
export function isKeyAllowed(p: MaskRuleInput, b: number, u: number, t: number, j: number): boolean {
  const [lo, hi] = keyBand(p, p.p0 + t);
  if (j < lo || j > hi) return false;
  const m = p.mask;
  if (m === null || m.kind !== 'bool') return true;
  return m.data[maskRowBase(m, b, u, t) + j * m.strides[3]] !== 0;
}

/**
 * Flat indices ((b·U + u)·T + t), ascending, of the rows with no allowed key (bool mask AND causal
 * AND window). Such rows take the exact per-row Keras float32 path. Cost: one pass over the mask at
 * most.
 */
export function findRowsWithNoAllowedKey(p: MaskRuleInput): number[] {
  const rows: number[] = [];
  if (!hasKeyRestrictions(p)) return rows;
  const { B, U, T, S } = p;
  const m = p.mask !== null && p.mask.kind === 'bool' ? p.mask : null;
  const ranges: Array<[number, number]> = [];
  for (let t = 0; t < T; t++) ranges.push(keyBand(p, p.p0 + t));
  if (m === null) {
    for (let t = 0; t < T; t++) {
      const [lo, hi] = ranges[t]!;
      if (lo > hi) for (let b = 0; b < B; b++) for (let u = 0; u < U; u++) rows.push((b * U + u) * T + t);
    }
    rows.sort((a, b) => a - b);
    return rows;
  }
  const data = m.data;
  const sS = m.strides[3];
  // With a T-broadcast mask, prefix counts per mask row answer each (row, range) in O(1).
  const prefix = new Map<number, Int32Array>();
  const anyAllowed = (base: number, lo: number, hi: number): boolean => {
    if (sS === 0) return data[base] !== 0;
    if (m.shape[2] === 1 && T > 1) {
      let c = prefix.get(base);
      if (c === undefined) {
        c = new Int32Array(S + 1);
        for (let j = 0; j < S; j++) c[j + 1] = c[j]! + (data[base + j] !== 0 ? 1 : 0);
        prefix.set(base, c);
      }
      return c[hi + 1]! - c[lo]! > 0;
    }
    for (let j = lo; j <= hi; j++) if (data[base + j] !== 0) return true;
    return false;
  };
  // A mask broadcast over heads answers every head of a (b, t) alike: decided once per (b, t).
  const perHead = m.strides[1] !== 0;
  const none = new Uint8Array(T);
  for (let b = 0; b < B; b++) {
    for (let u = 0; u < U; u++) {
      if (perHead || u === 0) {
        for (let t = 0; t < T; t++) {
          const [lo, hi] = ranges[t]!;
          none[t] = lo > hi || !anyAllowed(maskRowBase(m, b, u, t), lo, hi) ? 1 : 0;
        }
      }
      for (let t = 0; t < T; t++) if (none[t] === 1) rows.push((b * U + u) * T + t);
    }
  }
  return rows;
}
