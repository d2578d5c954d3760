// The case matrix, deterministic inputs, work measures and the float64 reference.
//
// Layouts follow Keras: query (B, T, U, H), key/value (B, S, V, H), output (B, T, U, H), which is
// also ONNX's 3-D (B, T, U·H) layout. Query head u reads key/value head floor(u / G), G = U / V.
//
// Causal alignment: Keras (and this package) align the causal mask top-left (query i sees keys
// j <= i); ONNX Attention and ORT GroupQueryAttention align it bottom-right (query i sees keys
// j <= i + S - T). The benchmark only uses cases where both agree: causal prefill with T = S, and
// decode (T = 1) where the query sees all S keys (Keras-side rows run it without a causal mask).

export const SHAPES = [
  [32, 8, 128], // Llama-3-8B
  [32, 8, 64], // Llama-3.2-1B
  [14, 2, 64], // Qwen2.5-0.5B (G = 7)
  [8, 1, 256], // MQA, D = 256
  [8, 8, 64], // MHA control (G = 1)
];

/** kind: 'prefill' (causal, T = S), 'decode' (T = 1, all S keys visible), 'masked' (non-causal, key padding). */
export function makeCase(kind, [U, V, H], B, S) {
  const T = kind === 'decode' ? 1 : S;
  const c = { kind, U, V, H, B, T, S, causal: kind === 'prefill' };
  if (kind === 'masked') c.keyLengths = Array.from({ length: B }, (_, b) => S - Math.round((S * (b + 1)) / 8));
  c.id = `${kind} U${U}/V${V}/H${H} B${B} ${kind === 'decode' ? `T1 S${S}` : `T=S=${S}`}`;
  return c;
}

export function allCases(quick) {
  if (quick) {
    return [
      makeCase('prefill', [32, 8, 128], 1, 512),
      makeCase('decode', [32, 8, 128], 1, 2048),
      makeCase('masked', [14, 2, 64], 1, 512),
    ];
  }
  // Batch 1 first: when the time budget runs out, the batch-4 cases are the ones skipped.
  const out = [];
  for (const B of [1, 4]) {
    for (const shape of SHAPES) {
      for (const S of [128, 512, 2048]) out.push(makeCase('prefill', shape, B, S));
      for (const S of [512, 2048, 8192]) out.push(makeCase('decode', shape, B, S));
      out.push(makeCase('masked', shape, B, 512));
    }
  }
  return out;
}

/** Useful FLOPs: 4·B·U·T·S·H, halved for causal prefill (decode and masked cases are not halved). */
export const usefulFlops = (c) => (4 * c.B * c.U * c.T * c.S * c.H) / (c.causal ? 2 : 1);
/** Bytes of K and V (float32) one call must read. */
export const kvBytes = (c) => 2 * 4 * c.B * c.S * c.V * c.H;
/** Bytes of the (B, U, T, S) float32 score tensor that materialising implementations allocate. */
export const scoreBytes = (c) => 4 * c.B * c.U * c.T * c.S;
export const inputBytes = (c) => 4 * (c.B * c.T * c.U * c.H + 2 * c.B * c.S * c.V * c.H);

/** Uniform floats in [−1, 1) from a 32-bit LCG: the same inputs in every process. */
export function rand(n, seed) {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s / 4294967296) * 2 - 1;
  }
  return a;
}

/** Deterministic inputs (same in every process). */
export function makeInputs(c) {
  const { B, T, S, U, V, H } = c;
  const seed = (B * 7919 + T * 104729 + S * 31 + U * 131 + V * 17 + H) >>> 0;
  return {
    q: rand(B * T * U * H, seed + 1),
    k: rand(B * S * V * H, seed + 2),
    v: rand(B * S * V * H, seed + 3),
  };
}

/** Keys visible to query row t of batch b: [0, hi). */
export function visibleKeys(c, b, t) {
  if (c.kind === 'prefill') return t + 1;
  if (c.kind === 'masked') return c.keyLengths[b];
  return c.S;
}

/** (B, 1, 1, S) key-padding mask, 1 = attend. */
export function paddingMask(c) {
  const m = new Uint8Array(c.B * c.S);
  for (let b = 0; b < c.B; b++) m.fill(1, b * c.S, b * c.S + c.keyLengths[b]);
  return m;
}

/** Rows (b, t, u) checked against the float64 reference: all when few, else a deterministic sample. */
export function checkRows(c, max = 384) {
  const { B, T, U } = c;
  const rows = [];
  if (B * T * U <= max) {
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let u = 0; u < U; u++) rows.push([b, t, u]);
    return rows;
  }
  let s = 12345;
  const next = (n) => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s % n;
  };
  for (let u = 0; u < U; u++) rows.push([B - 1, T - 1, u], [0, 0, u]);
  while (rows.length < max) rows.push([next(B), next(T), next(U)]);
  return rows;
}

/** Max |out - ref| over the checked rows (float64 reference with the Keras scale 1/sqrt(H)), and max |ref|. */
export function checkOutput(c, inp, out) {
  const { T, S, U, V, H } = c;
  const G = U / V;
  const scale = Math.fround(1 / Math.fround(Math.sqrt(H)));
  let maxErr = 0;
  let maxRef = 0;
  const p = new Float64Array(S);
  const acc = new Float64Array(H);
  for (const [b, t, u] of checkRows(c)) {
    const qo = ((b * T + t) * U + u) * H;
    const kv = Math.floor(u / G);
    const n = visibleKeys(c, b, t);
    let m = -Infinity;
    for (let j = 0; j < n; j++) {
      const ko = ((b * S + j) * V + kv) * H;
      let d = 0;
      for (let h = 0; h < H; h++) d += inp.q[qo + h] * inp.k[ko + h];
      p[j] = d * scale;
      if (p[j] > m) m = p[j];
    }
    let l = 0;
    for (let j = 0; j < n; j++) l += p[j] = Math.exp(p[j] - m);
    acc.fill(0);
    for (let j = 0; j < n; j++) {
      const vo = ((b * S + j) * V + kv) * H;
      const w = p[j] / l;
      for (let h = 0; h < H; h++) acc[h] += w * inp.v[vo + h];
    }
    for (let h = 0; h < H; h++) {
      const e = Math.abs(out[qo + h] - acc[h]);
      if (!(e <= maxErr)) maxErr = Number.isNaN(e) ? Infinity : Math.max(maxErr, e);
      maxRef = Math.max(maxRef, Math.abs(acc[h]));
    }
  }
  return { maxErr, maxRef };
}

/** (B, S, V, H) (S = rows, default c.S) -> BNSH (B, V, cap, H), rows >= S left zero. */
export function toBNSH(c, x, S = c.S, cap = S) {
  const { B, V, H } = c;
  const out = new Float32Array(B * V * cap * H);
  for (let b = 0; b < B; b++)
    for (let s = 0; s < S; s++)
      for (let v = 0; v < V; v++) {
        const src = ((b * S + s) * V + v) * H;
        out.set(x.subarray(src, src + H), ((b * V + v) * cap + s) * H);
      }
  return out;
}

/** Rows [from, to) of every batch of a (B, S, V, H) tensor, as (B, to - from, V, H). */
export function sliceRows(c, x, from, to) {
  const { B, S, V, H } = c;
  const n = to - from;
  const out = new Float32Array(B * n * V * H);
  for (let b = 0; b < B; b++) out.set(x.subarray((b * S + from) * V * H, (b * S + to) * V * H), b * n * V * H);
  return out;
}
