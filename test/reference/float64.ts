/**
 * An independent float64 reference of Keras 3.6 `GroupQueryAttention`, written from the closed form of
 * the behavioural spec (keras-gqa-3.6.md §3–§6) with plain loops over Float64Array. It shares no code
 * with src/: no tfjs, no mask helpers, no broadcasting helpers.
 *
 * Shape letters: B batch · T query length · S key/value length · Dq/Dk/Dv feature sizes ·
 * U query heads · V key/value heads · H head size · R = U / V (query head u reads kv head ⌊u/R⌋).
 *
 * Precision choices (the one place where float64 and float32 Keras differ, spec §6):
 * - Everything is float64 except the query scale, which is Keras's float32 constant
 *   `fl32(1 / fl32(sqrt(H)))` (spec §3.5), because that constant *is* the definition.
 * - A masked logit is `Math.fround(fl32(s) − 1e9)`, i.e. what float32 Keras stores. In a row with at
 *   least one unmasked key this changes nothing (exp(−1e9 + …) underflows to exactly 0 in both
 *   precisions). In a fully masked row float32 Keras computes a softmax over the 64-spaced grid
 *   `−1e9 + 64·round(s/64)` (exactly uniform when every |s| < 32), whereas a plain float64 pipeline would
 *   return the *unmasked* softmax (the `expected_float64_policy` numbers). We want the float32 Keras
 *   numbers, so we round like float32 Keras. The rounding is discontinuous at |s| = 32, 96, …; callers
 *   that compare against a float32 implementation must keep fully-masked logits away from those
 *   points (the property tests bound |s| < 32 by construction, and `maxFullyMaskedLogit` reports the
 *   largest one so a test can assert it).
 */

export interface Tensor64 {
  shape: number[];
  data: Float64Array;
}

/**
 * A mask of any rank; masks follow NumPy broadcasting. Bool semantics (nonzero is true) unless
 * `numeric` is set on an attention mask, see `effectiveMask`.
 */
export interface Mask64 {
  shape: number[];
  data: ArrayLike<number | boolean>;
  /** An int/float attention mask (Keras keeps its values when no other mask is AND-ed in). */
  numeric?: boolean;
}

export function tensor64(shape: number[], data: ArrayLike<number>): Tensor64 {
  const size = shape.reduce((a, b) => a * b, 1);
  if (data.length !== size) throw new Error(`tensor64: ${data.length} values for shape [${shape}]`);
  return { shape: shape.slice(), data: Float64Array.from(data) };
}

const LARGE_NEGATIVE = -1e9;

/** Keras 3.6's float32 query scale (spec §3.5). */
export function kerasScale(headDim: number): number {
  return Math.fround(1 / Math.fround(Math.sqrt(headDim)));
}

// ------------------------------------------------------------------------------------------------
// NumPy broadcasting, written out (right-aligned; a dim of 1 stretches).

export function broadcastShape(a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const x = i - (rank - a.length) >= 0 ? a[i - (rank - a.length)]! : 1;
    const y = i - (rank - b.length) >= 0 ? b[i - (rank - b.length)]! : 1;
    if (x !== y && x !== 1 && y !== 1) {
      throw new Error(`operands could not be broadcast together with shapes [${a}] [${b}]`);
    }
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** Value of `m` at multi-index `idx` of a shape `m` broadcasts to (right-aligned). */
function maskValueAt(m: Mask64, idx: readonly number[]): number {
  let flat = 0;
  const off = idx.length - m.shape.length;
  for (let i = 0; i < m.shape.length; i++) {
    const d = m.shape[i]!;
    flat = flat * d + (d === 1 ? 0 : idx[off + i]!);
  }
  return Number(m.data[flat]);
}

/** Bool semantics: any nonzero is true. */
function maskAt(m: Mask64, idx: readonly number[]): boolean {
  return maskValueAt(m, idx) !== 0;
}

function materialize(shape: number[], f: (idx: number[]) => boolean): Mask64 {
  const size = shape.reduce((a, b) => a * b, 1);
  const data = new Uint8Array(size);
  const idx = new Array<number>(shape.length).fill(0);
  for (let flat = 0; flat < size; flat++) {
    let r = flat;
    for (let i = shape.length - 1; i >= 0; i--) {
      idx[i] = r % shape[i]!;
      r = Math.floor(r / shape[i]!);
    }
    data[flat] = f(idx) ? 1 : 0;
  }
  return { shape, data };
}

function and(a: Mask64, b: Mask64): Mask64 {
  const shape = broadcastShape(a.shape, b.shape);
  return materialize(shape, (idx) => maskAt(a, idx) && maskAt(b, idx));
}

/**
 * Keras 3.6 `_compute_attention_mask` (spec §4) followed by `_masked_softmax`'s rank expansion (§5): query (B,T) → (B,T,1); value and key (B,S) → (B,1,S); causal (1,T,S) top-left
 * aligned, j ≤ i; all AND-ed right-aligned with the attention mask; then `expand_dims(axis=-3)` until
 * rank 4. Returns null when nothing masks. Throws (like NumPy) when the shapes do not broadcast.
 * A numeric attention mask with no other mask stays numeric (the result has `numeric: true`, and
 * `attention64` adds `(1 − m)·(−1e9)`, Keras 3.6's non-binary quirk); with any other mask it is cast
 * to bool first.
 */
export function effectiveMask(
  t: number,
  s: number,
  masks: { queryMask?: Mask64 | null; valueMask?: Mask64 | null; keyMask?: Mask64 | null; attentionMask?: Mask64 | null },
  causal: boolean,
): Mask64 | null {
  let auto: Mask64 | null = null;
  const add = (m: Mask64) => {
    auto = auto == null ? m : and(auto, m);
  };
  if (masks.queryMask) add({ shape: [masks.queryMask.shape[0]!, masks.queryMask.shape[1]!, 1], data: masks.queryMask.data });
  if (masks.valueMask) add({ shape: [masks.valueMask.shape[0]!, 1, masks.valueMask.shape[1]!], data: masks.valueMask.data });
  if (masks.keyMask) add({ shape: [masks.keyMask.shape[0]!, 1, masks.keyMask.shape[1]!], data: masks.keyMask.data });
  if (causal) add(materialize([1, t, s], ([, i, j]) => j! <= i!));
  let m: Mask64 | null = masks.attentionMask ?? null;
  if (auto != null) m = m == null ? auto : and(m, auto);
  if (m == null) return null;
  if (m.shape.length < 2 || m.shape.length > 4) throw new Error(`mask of rank ${m.shape.length}`);
  let shape = m.shape.slice();
  while (shape.length < 4) shape = [...shape.slice(0, shape.length - 2), 1, ...shape.slice(-2)];
  return { shape, data: m.data, numeric: auto == null && Boolean(m.numeric) };
}

// ------------------------------------------------------------------------------------------------
// Attention on projected heads (the op's contract).

export interface AttentionResult {
  /** (B, T, U, H). */
  output: Float64Array;
  /** (B, U, T, S), before dropout. */
  scores: Float64Array;
  /** Largest |fl32(s)| over the fully masked rows (0 if there are none). */
  maxFullyMaskedLogit: number;
  /**
   * Smallest distance of a fully masked row's fl32(s) to a rounding tie of the −1e9 grid (an odd
   * multiple of 32), Infinity if there are none. Below ~1e-3 a float32 implementation's own rounding
   * noise in s could land on the other grid point, so a comparison there would not be meaningful.
   */
  minTieDistance: number;
  fullyMaskedRows: number;
}

/**
 * q (B,T,U,H), k and v (B,S,V,H); `mask` rank 4, broadcastable to (B,U,T,S) (see `effectiveMask`).
 */
export function attention64(q: Tensor64, k: Tensor64, v: Tensor64, mask: Mask64 | null, scale: number): AttentionResult {
  const [b, t, u, h] = q.shape as [number, number, number, number];
  const [, s, nkv] = k.shape as [number, number, number, number];
  if (u % nkv !== 0) throw new Error(`U=${u} is not a multiple of V=${nkv}`);
  if (mask != null) {
    const full = broadcastShape(mask.shape, [b, u, t, s]);
    if (full.join() !== [b, u, t, s].join()) throw new Error(`mask [${mask.shape}] enlarges the scores`);
  }
  const r = u / nkv;
  const output = new Float64Array(b * t * u * h);
  const scores = new Float64Array(b * u * t * s);
  const logits = new Float64Array(s);
  let maxFullyMaskedLogit = 0;
  let minTieDistance = Infinity;
  let fullyMaskedRows = 0;
  for (let bi = 0; bi < b; bi++) {
    for (let ui = 0; ui < u; ui++) {
      const g = Math.floor(ui / r);
      for (let ti = 0; ti < t; ti++) {
        let anyKept = false;
        const adders: number[] = [];
        for (let si = 0; si < s; si++) {
          // Qs = q·c (Keras scales the query), L = Σ_h Qs·K.
          let acc = 0;
          for (let hi = 0; hi < h; hi++) {
            acc += q.data[((bi * t + ti) * u + ui) * h + hi]! * scale * k.data[((bi * s + si) * nkv + g) * h + hi]!;
          }
          logits[si] = acc;
          // Keras's adder (1 − M)·(−1e9) in float32: −0 (kept) or −1e9 for a bool mask.
          const m = mask == null ? 1 : mask.numeric ? maskValueAt(mask, [bi, ui, ti, si]) : maskAt(mask, [bi, ui, ti, si]) ? 1 : 0;
          const adder = Math.fround(Math.fround(1 - m) * LARGE_NEGATIVE);
          adders.push(adder);
          anyKept ||= adder === 0;
        }
        if (!anyKept) {
          fullyMaskedRows++;
          for (let si = 0; si < s; si++) {
            const s32 = Math.fround(logits[si]!);
            maxFullyMaskedLogit = Math.max(maxFullyMaskedLogit, Math.abs(s32));
            minTieDistance = Math.min(minTieDistance, Math.abs(s32 - 32 - 64 * Math.round((s32 - 32) / 64)));
          }
        }
        for (let si = 0; si < s; si++) {
          // A nonzero adder is added in float32: fl32(fl32(s) + adder), e.g. fl32(s − 1e9).
          if (adders[si] !== 0) logits[si] = Math.fround(Math.fround(logits[si]!) + adders[si]!);
        }
        let max = -Infinity;
        for (let si = 0; si < s; si++) max = Math.max(max, logits[si]!);
        let sum = 0;
        const row = ((bi * u + ui) * t + ti) * s;
        for (let si = 0; si < s; si++) {
          const e = Math.exp(logits[si]! - max);
          scores[row + si] = e;
          sum += e;
        }
        for (let si = 0; si < s; si++) scores[row + si] = scores[row + si]! / sum;
        // O[b,t,u,:] = Σ_s P·V[b,s,g,:]
        for (let hi = 0; hi < h; hi++) {
          let acc = 0;
          for (let si = 0; si < s; si++) acc += scores[row + si]! * v.data[((bi * s + si) * nkv + g) * h + hi]!;
          output[((bi * t + ti) * u + ui) * h + hi] = acc;
        }
      }
    }
  }
  return { output, scores, maxFullyMaskedLogit, minTieDistance, fullyMaskedRows };
}

// ------------------------------------------------------------------------------------------------
// The whole layer.

/** Weights in Keras's `get_weights` order and shapes (spec §2); biases null when useBias=false. */
export interface LayerWeights64 {
  queryKernel: Float64Array; // (Dq, U, H)
  queryBias: Float64Array | null; // (U, H)
  keyKernel: Float64Array; // (Dk, V, H)
  keyBias: Float64Array | null; // (V, H)
  valueKernel: Float64Array; // (Dv, V, H)
  valueBias: Float64Array | null; // (V, H)
  outputKernel: Float64Array; // (U, H, Dq)
  outputBias: Float64Array | null; // (Dq)
}

/** `bqm,mnh->bqnh` + bias: x (B,L,D), kernel (D,N,H), bias (N,H) → (B,L,N,H). */
export function project64(x: Tensor64, kernel: Float64Array, bias: Float64Array | null, n: number, h: number): Tensor64 {
  const [b, l, d] = x.shape as [number, number, number];
  if (kernel.length !== d * n * h) throw new Error(`kernel has ${kernel.length} values, expected ${d}·${n}·${h}`);
  const out = new Float64Array(b * l * n * h);
  for (let row = 0; row < b * l; row++) {
    for (let j = 0; j < n * h; j++) {
      let acc = 0;
      for (let m = 0; m < d; m++) acc += x.data[row * d + m]! * kernel[m * n * h + j]!;
      out[row * n * h + j] = acc + (bias ? bias[j]! : 0);
    }
  }
  return { shape: [b, l, n, h], data: out };
}

export interface LayerResult64 extends AttentionResult {
  /** (B, T, Dq). */
  layerOutput: Float64Array;
}

/** Keras 3.6 `GroupQueryAttention.call` in float64 (spec §3 closed form). */
export function gqaLayer64(args: {
  query: Tensor64;
  value: Tensor64;
  key?: Tensor64 | null;
  numQueryHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  weights: LayerWeights64;
  queryMask?: Mask64 | null;
  valueMask?: Mask64 | null;
  keyMask?: Mask64 | null;
  attentionMask?: Mask64 | null;
  useCausalMask?: boolean;
}): LayerResult64 {
  const { query, value, numQueryHeads: u, numKeyValueHeads: nkv, headDim: h, weights: w } = args;
  const key = args.key ?? value;
  const [b, t, dq] = query.shape as [number, number, number];
  const s = value.shape[1]!;
  if (key.shape[1] !== s) throw new Error('key and value lengths differ');
  const mask = effectiveMask(t, s, args, args.useCausalMask ?? false);
  const q = project64(query, w.queryKernel, w.queryBias, u, h);
  const k = project64(key, w.keyKernel, w.keyBias, nkv, h);
  const v = project64(value, w.valueKernel, w.valueBias, nkv, h);
  const att = attention64(q, k, v, mask, kerasScale(h));
  // Y[b,t,m] = Σ_{u,h} O[b,t,u,h]·Wo[u,h,m] + bo[m]
  const layerOutput = new Float64Array(b * t * dq);
  for (let row = 0; row < b * t; row++) {
    for (let m = 0; m < dq; m++) {
      let acc = 0;
      for (let j = 0; j < u * h; j++) acc += att.output[row * u * h + j]! * w.outputKernel[j * dq + m]!;
      layerOutput[row * dq + m] = acc + (w.outputBias ? w.outputBias[m]! : 0);
    }
  }
  return { ...att, layerOutput };
}

// ------------------------------------------------------------------------------------------------
// Comparison with a stated tolerance.

/**
 * float32 results against this float64 reference: |got − want| ≤ atol + rtol·|want|, where
 * atol = 1e-5·max(1, max|want|) and rtol = 1e-5. The absolute term scales with the tensor's magnitude
 * because every entry is a float32 dot product whose rounding error is relative to the sizes of its
 * terms, not to the (possibly cancelling) result. Returns a description of the worst element, or null.
 */
export function compare64(got: ArrayLike<number>, want: ArrayLike<number>, rtol = 1e-5, atolScale = 1e-5): string | null {
  if (got.length !== want.length) return `length ${got.length} ≠ ${want.length}`;
  let maxAbs = 0;
  for (let i = 0; i < want.length; i++) maxAbs = Math.max(maxAbs, Math.abs(want[i]!));
  const atol = atolScale * Math.max(1, maxAbs);
  let worst: string | null = null;
  let worstExcess = 0;
  for (let i = 0; i < want.length; i++) {
    const excess = Math.abs(got[i]! - want[i]!) - (atol + rtol * Math.abs(want[i]!));
    if (!(excess <= 0) && (worst == null || excess > worstExcess || Number.isNaN(excess))) {
      worst = `index ${i}: got ${got[i]}, want ${want[i]} (atol ${atol.toExponential(2)}, rtol ${rtol})`;
      worstExcess = Number.isNaN(excess) ? Infinity : excess;
    }
  }
  return worst;
}
