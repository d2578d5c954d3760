// AssemblyScript source of the engine's WebAssembly SIMD128 flash-attention kernel.
//
// Compiled by scripts/build-engine.mjs (twice: with a shared imported memory for worker threads,
// and with a plain imported memory for single-threaded use). The module has no data segments and
// never allocates: the JS side owns the memory and passes byte offsets in a parameter block.
//
// Layouts (row-major, float32): query (B,T,U,H), key/value (B,C,V,H), output (B,T,U,H),
// probabilities (B,U,T,S). A task is (batch b, kv head kvh, query tile qt, key chunk kc): the
// G query heads of kv head kvh for tq consecutive query rows are packed into one tile of
// M = tq*G rows (row r = tl*G + g), so every key/value row is loaded once for all of them.
//
// Per key tile the logits are kept transposed, S[j][r] (key-major), so every softmax step works on
// 4 packed rows per v128 lane group: running max m, running sum l and the rescale factor alpha are
// lane-wise, the exp is a vectorised polynomial, and P·V splats P[j][r] straight from memory.

// ---- parameter block (i32 slots) -------------------------------------------------------------
const P_B: i32 = 0;
const P_T: i32 = 1;
const P_S: i32 = 2;
const P_C: i32 = 3;
const P_U: i32 = 4;
const P_V: i32 = 5;
const P_H: i32 = 6;
const P_G: i32 = 7;
const P_Q: i32 = 8;
const P_K: i32 = 9;
const P_VAL: i32 = 10;
const P_O: i32 = 11;
const P_SCALE: i32 = 12;
const P_CAUSAL: i32 = 13;
const P_WINDOW: i32 = 14;
const P_P0: i32 = 15;
const P_MASKKIND: i32 = 16;
const P_MASK: i32 = 17;
const P_MSB: i32 = 18;
const P_MSU: i32 = 19;
const P_MST: i32 = 20;
const P_MSS: i32 = 21;
const P_PROB: i32 = 22;
const P_TQ: i32 = 23;
const P_BC: i32 = 24;
const P_NQT: i32 = 25;
const P_NK: i32 = 26;
const P_KCHUNK: i32 = 27;
const P_NTASKS: i32 = 28;
const P_PART: i32 = 29;
const P_SCRATCH: i32 = 30;
const P_SCRATCHSTRIDE: i32 = 31;
const P_DONE: i32 = 32;
const P_NEXT: i32 = 33;
const P_PROGRESS: i32 = 34;
const P_MAXM4: i32 = 35;
// A job covers the NG groups (batch, kv head) with flat index b*V + kvh in [G0, G0 + NG); gi is
// the index inside the job. Input layouts are strides in floats, so inputs can be read in place
// or from per-group staging:
//   K(b, j, kvh)   = K + b*KBS + kvh*KHS + gi*KGS + j*KRS        (V likewise)
//   Q(b, t, kvh, g) = Q + b*QBS + kvh*QHS + gi*QGS + t*QTS + g*H (O likewise)
const P_G0: i32 = 36;
const P_NG: i32 = 37;
const P_KBS: i32 = 38;
const P_KHS: i32 = 39;
const P_KGS: i32 = 40;
const P_KRS: i32 = 41;
const P_VBS: i32 = 42;
const P_VHS: i32 = 43;
const P_VGS: i32 = 44;
const P_VRS: i32 = 45;
const P_QBS: i32 = 46;
const P_QHS: i32 = 47;
const P_QGS: i32 = 48;
const P_QTS: i32 = 49;
const P_OBS: i32 = 50;
const P_OHS: i32 = 51;
const P_OGS: i32 = 52;
const P_OTS: i32 = 53;
// The job runs key chunks KC0 .. KC0 + NKJ - 1 of the NK chunks (a key-chunked job sequence
// whose partials are reduced once at the end; otherwise KC0 = 0, NKJ = NK).
const P_KC0: i32 = 54;
const P_NKJ: i32 = 55;

const TASK_BITS: i32 = 20;
const TASK_MASK: i32 = (1 << TASK_BITS) - 1;

// ---- job state (per instance globals, loaded from the parameter block) -----------------------
let gB: i32 = 0;
let gT: i32 = 0;
let gS: i32 = 0;
let gC: i32 = 0;
let gU: i32 = 0;
let gV: i32 = 0;
let gH: i32 = 0;
let gG: i32 = 0;
let gHp: i32 = 0;
let gH4: i32 = 0;
let gH8: i32 = 0;
let gQ: usize = 0;
let gK: usize = 0;
let gVal: usize = 0;
let gO: usize = 0;
let gScale: f32 = 1;
let gCausal: i32 = 0;
let gWindow: i32 = 0;
let gP0: i32 = 0;
let gMaskKind: i32 = 0;
let gMask: usize = 0;
let gMsB: i32 = 0;
let gMsU: i32 = 0;
let gMsT: i32 = 0;
let gMsS: i32 = 0;
let gProb: usize = 0;
let gTq: i32 = 0;
let gBc: i32 = 0;
let gNqt: i32 = 0;
let gNk: i32 = 0;
let gKChunk: i32 = 0;
let gNTasks: i32 = 0;
let gPart: usize = 0;
let gMaxM4: i32 = 0;
let gDone: usize = 0;
let gProgress: usize = 0;
let gG0: i32 = 0;
let gNg: i32 = 1;
let gKbs: i32 = 0;
let gKhs: i32 = 0;
let gKgs: i32 = 0;
let gKrs: i32 = 0;
let gVbs: i32 = 0;
let gVhs: i32 = 0;
let gVgs: i32 = 0;
let gVrs: i32 = 0;
let gQbs: i32 = 0;
let gQhs: i32 = 0;
let gQgs: i32 = 0;
let gQts: i32 = 0;
let gObs: i32 = 0;
let gOhs: i32 = 0;
let gOgs: i32 = 0;
let gOts: i32 = 0;
let gKc0: i32 = 0;
let gNkj: i32 = 1;

// per-thread scratch pointers
let sQ: usize = 0; // packed, scaled query tile [M4][Hp]
let sO: usize = 0; // output accumulator [M4][Hp]
let sS: usize = 0; // logits / probabilities, transposed [Bc][M4]
let sM: usize = 0; // running max [M4]
let sL: usize = 0; // running sum [M4]
let sA: usize = 0; // rescale factor [M4]
let sLo: usize = 0; // first allowed key per row [M4] (i32)
let sHi: usize = 0; // last allowed key per row [M4] (i32)
let sMR: usize = 0; // mask row base (element index) per row [M4] (i32)

function loadParams(p: usize): void {
  gB = load<i32>(p + (<usize>P_B << 2));
  gT = load<i32>(p + (<usize>P_T << 2));
  gS = load<i32>(p + (<usize>P_S << 2));
  gC = load<i32>(p + (<usize>P_C << 2));
  gU = load<i32>(p + (<usize>P_U << 2));
  gV = load<i32>(p + (<usize>P_V << 2));
  gH = load<i32>(p + (<usize>P_H << 2));
  gG = load<i32>(p + (<usize>P_G << 2));
  gHp = (gH + 3) & ~3;
  gH4 = gH & ~3;
  gH8 = gH & ~7;
  gQ = <usize>load<i32>(p + (<usize>P_Q << 2));
  gK = <usize>load<i32>(p + (<usize>P_K << 2));
  gVal = <usize>load<i32>(p + (<usize>P_VAL << 2));
  gO = <usize>load<i32>(p + (<usize>P_O << 2));
  gScale = load<f32>(p + (<usize>P_SCALE << 2));
  gCausal = load<i32>(p + (<usize>P_CAUSAL << 2));
  gWindow = load<i32>(p + (<usize>P_WINDOW << 2));
  gP0 = load<i32>(p + (<usize>P_P0 << 2));
  gMaskKind = load<i32>(p + (<usize>P_MASKKIND << 2));
  gMask = <usize>load<i32>(p + (<usize>P_MASK << 2));
  gMsB = load<i32>(p + (<usize>P_MSB << 2));
  gMsU = load<i32>(p + (<usize>P_MSU << 2));
  gMsT = load<i32>(p + (<usize>P_MST << 2));
  gMsS = load<i32>(p + (<usize>P_MSS << 2));
  gProb = <usize>load<i32>(p + (<usize>P_PROB << 2));
  gTq = load<i32>(p + (<usize>P_TQ << 2));
  gBc = load<i32>(p + (<usize>P_BC << 2));
  gNqt = load<i32>(p + (<usize>P_NQT << 2));
  gNk = load<i32>(p + (<usize>P_NK << 2));
  gKChunk = load<i32>(p + (<usize>P_KCHUNK << 2));
  gNTasks = load<i32>(p + (<usize>P_NTASKS << 2));
  gPart = <usize>load<i32>(p + (<usize>P_PART << 2));
  gMaxM4 = load<i32>(p + (<usize>P_MAXM4 << 2));
  gDone = <usize>load<i32>(p + (<usize>P_DONE << 2));
  gProgress = <usize>load<i32>(p + (<usize>P_PROGRESS << 2));
  gG0 = load<i32>(p + (<usize>P_G0 << 2));
  gNg = load<i32>(p + (<usize>P_NG << 2));
  gKbs = load<i32>(p + (<usize>P_KBS << 2));
  gKhs = load<i32>(p + (<usize>P_KHS << 2));
  gKgs = load<i32>(p + (<usize>P_KGS << 2));
  gKrs = load<i32>(p + (<usize>P_KRS << 2));
  gVbs = load<i32>(p + (<usize>P_VBS << 2));
  gVhs = load<i32>(p + (<usize>P_VHS << 2));
  gVgs = load<i32>(p + (<usize>P_VGS << 2));
  gVrs = load<i32>(p + (<usize>P_VRS << 2));
  gQbs = load<i32>(p + (<usize>P_QBS << 2));
  gQhs = load<i32>(p + (<usize>P_QHS << 2));
  gQgs = load<i32>(p + (<usize>P_QGS << 2));
  gQts = load<i32>(p + (<usize>P_QTS << 2));
  gObs = load<i32>(p + (<usize>P_OBS << 2));
  gOhs = load<i32>(p + (<usize>P_OHS << 2));
  gOgs = load<i32>(p + (<usize>P_OGS << 2));
  gOts = load<i32>(p + (<usize>P_OTS << 2));
  gKc0 = load<i32>(p + (<usize>P_KC0 << 2));
  gNkj = load<i32>(p + (<usize>P_NKJ << 2));
}

/** Byte address of output row t of query head kvh*G + g in group (b, kvh), job-local index gi. */
// @ts-ignore: decorator
@inline
function outRow(b: i32, kvh: i32, gi: i32, t: i32, g: i32): usize {
  return gO + ((<usize>b * <usize>gObs + <usize>kvh * <usize>gOhs + <usize>gi * <usize>gOgs + <usize>t * <usize>gOts + <usize>g * <usize>gH) << 2);
}

function setScratch(p: usize, tid: i32): void {
  const base = <usize>load<i32>(p + (<usize>P_SCRATCH << 2)) + <usize>tid * <usize>load<i32>(p + (<usize>P_SCRATCHSTRIDE << 2));
  const m4 = <usize>gMaxM4;
  sQ = base;
  sO = sQ + m4 * <usize>gHp * 4;
  sS = sO + m4 * <usize>gHp * 4;
  sM = sS + <usize>gBc * m4 * 4;
  sL = sM + m4 * 4;
  sA = sL + m4 * 4;
  sLo = sA + m4 * 4;
  sHi = sLo + m4 * 4;
  sMR = sHi + m4 * 4;
}

// ---- vectorised exp (Cephes expf: range reduction by ln 2, degree-6 polynomial) -------------
// Relative error about 1-2 ulp on [-87.3, 88.3]; exp(x) = 0 below -87.3 (including -inf).
// @ts-ignore: decorator
@inline
function expv(x: v128): v128 {
  const lo = f32x4.splat(-87.33654);
  const under = f32x4.lt(x, lo);
  let v = f32x4.min(f32x4.max(x, lo), f32x4.splat(88.37626));
  const fx = f32x4.nearest(f32x4.mul(v, f32x4.splat(1.44269504088896341)));
  v = f32x4.sub(v, f32x4.mul(fx, f32x4.splat(0.693359375)));
  v = f32x4.sub(v, f32x4.mul(fx, f32x4.splat(-2.12194440e-4)));
  let y = f32x4.splat(1.9875691500e-4);
  y = f32x4.add(f32x4.mul(y, v), f32x4.splat(1.3981999507e-3));
  y = f32x4.add(f32x4.mul(y, v), f32x4.splat(8.3334519073e-3));
  y = f32x4.add(f32x4.mul(y, v), f32x4.splat(4.1665795894e-2));
  y = f32x4.add(f32x4.mul(y, v), f32x4.splat(1.6666665459e-1));
  y = f32x4.add(f32x4.mul(y, v), f32x4.splat(5.0000001201e-1));
  y = f32x4.add(f32x4.add(f32x4.mul(f32x4.mul(y, v), v), v), f32x4.splat(1.0));
  const n = i32x4.trunc_sat_f32x4_s(fx);
  const pow2n = i32x4.shl(i32x4.add(n, i32x4.splat(127)), 23);
  const r = f32x4.mul(y, pow2n);
  return v128.andnot(r, under);
}

/** Scalar exp with the same polynomial (exported for tests). */
export function expf(x: f32): f32 {
  return f32x4.extract_lane(expv(f32x4.splat(x)), 0);
}

// @ts-ignore: decorator
@inline
function hsum4(a0: v128, a1: v128, a2: v128, a3: v128): v128 {
  const u01 = f32x4.add(f32x4.shuffle(a0, a1, 0, 4, 1, 5), f32x4.shuffle(a0, a1, 2, 6, 3, 7));
  const u23 = f32x4.add(f32x4.shuffle(a2, a3, 0, 4, 1, 5), f32x4.shuffle(a2, a3, 2, 6, 3, 7));
  return f32x4.add(f32x4.shuffle(u01, u23, 0, 1, 4, 5), f32x4.shuffle(u01, u23, 2, 3, 6, 7));
}

// @ts-ignore: decorator
@inline
function lowAllowed(p: i32): i32 {
  return gWindow > 0 ? p - gWindow + 1 : 0;
}

// @ts-ignore: decorator
@inline
function highAllowed(p: i32): i32 {
  if (gCausal) return p;
  if (gWindow > 0) return p + gWindow - 1;
  return gS - 1;
}

// ---- the tile pipeline -------------------------------------------------------------------------

/** Q tile: Qs = fround(Q * scale), packed [M4][Hp], zero padded. */
function packQuery(b: i32, kvh: i32, gi: i32, t0: i32, nt: i32, m4: i32): void {
  const scale = f32x4.splat(gScale);
  const hp = <usize>gHp;
  const M = nt * gG;
  for (let r = 0; r < M; r++) {
    const tl = r / gG;
    const g = r - tl * gG;
    const src = gQ + ((<usize>b * <usize>gQbs + <usize>kvh * <usize>gQhs + <usize>gi * <usize>gQgs + <usize>(t0 + tl) * <usize>gQts + <usize>g * <usize>gH) << 2);
    const dst = sQ + (<usize>r * hp << 2);
    let h = 0;
    for (; h < gH4; h += 4) v128.store(dst + (<usize>h << 2), f32x4.mul(v128.load(src + (<usize>h << 2)), scale));
    for (; h < gH; h++) store<f32>(dst + (<usize>h << 2), load<f32>(src + (<usize>h << 2)) * gScale);
    for (; h < gHp; h++) store<f32>(dst + (<usize>h << 2), 0);
  }
  for (let r = M; r < m4; r++) memory.fill(sQ + (<usize>r * hp << 2), 0, hp << 2);
}

/** Logits for keys kt..kt+nk-1 into sS[j][r] (transposed), rows 0..m4-1. */
function computeLogits(kBase: usize, kt: i32, nk: i32, m4: i32): void {
  const kStride = <usize>gKrs << 2;
  const hp4 = <usize>gHp << 2;
  const h4b = <usize>gH4 << 2;
  const m4b = <usize>m4 << 2;
  const tail = gH4 < gH;
  for (let r = 0; r < m4; r += 4) {
    const q0 = sQ + <usize>r * hp4;
    const q1 = q0 + hp4;
    const q2 = q1 + hp4;
    const q3 = q2 + hp4;
    let j = 0;
    for (; j + 1 < nk; j += 2) {
      const k0 = kBase + <usize>(kt + j) * kStride;
      const k1 = k0 + kStride;
      let a00 = f32x4.splat(0), a01 = f32x4.splat(0);
      let a10 = f32x4.splat(0), a11 = f32x4.splat(0);
      let a20 = f32x4.splat(0), a21 = f32x4.splat(0);
      let a30 = f32x4.splat(0), a31 = f32x4.splat(0);
      for (let h: usize = 0; h < h4b; h += 16) {
        const kv0 = v128.load(k0 + h);
        const kv1 = v128.load(k1 + h);
        let x = v128.load(q0 + h);
        a00 = f32x4.add(a00, f32x4.mul(x, kv0));
        a01 = f32x4.add(a01, f32x4.mul(x, kv1));
        x = v128.load(q1 + h);
        a10 = f32x4.add(a10, f32x4.mul(x, kv0));
        a11 = f32x4.add(a11, f32x4.mul(x, kv1));
        x = v128.load(q2 + h);
        a20 = f32x4.add(a20, f32x4.mul(x, kv0));
        a21 = f32x4.add(a21, f32x4.mul(x, kv1));
        x = v128.load(q3 + h);
        a30 = f32x4.add(a30, f32x4.mul(x, kv0));
        a31 = f32x4.add(a31, f32x4.mul(x, kv1));
      }
      let s0 = hsum4(a00, a10, a20, a30);
      let s1 = hsum4(a01, a11, a21, a31);
      if (tail) {
        s0 = f32x4.add(s0, tailDots(q0, hp4, k0));
        s1 = f32x4.add(s1, tailDots(q0, hp4, k1));
      }
      const d = sS + <usize>j * m4b + (<usize>r << 2);
      v128.store(d, s0);
      v128.store(d + m4b, s1);
    }
    if (j < nk) {
      const k0 = kBase + <usize>(kt + j) * kStride;
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      for (let h: usize = 0; h < h4b; h += 16) {
        const kv0 = v128.load(k0 + h);
        a0 = f32x4.add(a0, f32x4.mul(v128.load(q0 + h), kv0));
        a1 = f32x4.add(a1, f32x4.mul(v128.load(q1 + h), kv0));
        a2 = f32x4.add(a2, f32x4.mul(v128.load(q2 + h), kv0));
        a3 = f32x4.add(a3, f32x4.mul(v128.load(q3 + h), kv0));
      }
      let s0 = hsum4(a0, a1, a2, a3);
      if (tail) s0 = f32x4.add(s0, tailDots(q0, hp4, k0));
      v128.store(sS + <usize>j * m4b + (<usize>r << 2), s0);
    }
  }
}

let gSink: i32 = 0;

/**
 * Loads one float of every cache line of the tile's key (or value) rows in a burst, so the
 * misses overlap (rows are V*H floats apart, often a page, which defeats hardware prefetch).
 */
function touchRows(base: usize, rowStride: i32, kt: i32, nk: i32): void {
  const stride = <usize>rowStride << 2;
  const rowBytes = <usize>gH << 2;
  let p = base + <usize>kt * stride;
  let acc: i32 = 0;
  for (let j = 0; j < nk; j++) {
    for (let o: usize = 0; o < rowBytes; o += 64) acc ^= load<i32>(p + o);
    p += stride;
  }
  gSink ^= acc;
}

/** Dot products over h in [H4, H) for 4 consecutive packed query rows against one key row. */
function tailDots(q0: usize, hp4: usize, k: usize): v128 {
  let s0: f32 = 0, s1: f32 = 0, s2: f32 = 0, s3: f32 = 0;
  for (let h = gH4; h < gH; h++) {
    const o = <usize>h << 2;
    const kv = load<f32>(k + o);
    s0 += load<f32>(q0 + o) * kv;
    s1 += load<f32>(q0 + hp4 + o) * kv;
    s2 += load<f32>(q0 + 2 * hp4 + o) * kv;
    s3 += load<f32>(q0 + 3 * hp4 + o) * kv;
  }
  let v = f32x4.splat(s0);
  v = f32x4.replace_lane(v, 1, s1);
  v = f32x4.replace_lane(v, 2, s2);
  v = f32x4.replace_lane(v, 3, s3);
  return v;
}

/**
 * Applies causal/window bounds and the mask to the logits of keys kt..kt+nk-1: disallowed keys
 * become -inf, additive values are added (fround(s + a)).
 */
function applyMasks(kt: i32, nk: i32, m4: i32, needBounds: bool): void {
  const m4b = <usize>m4 << 2;
  const ninf = f32x4.splat(-Infinity);
  for (let r = 0; r < m4; r += 4) {
    const rb = <usize>r << 2;
    if (needBounds) {
      const lo = v128.load(sLo + rb);
      const hi = v128.load(sHi + rb);
      for (let j = 0; j < nk; j++) {
        const kj = i32x4.splat(kt + j);
        const ok = v128.and(i32x4.ge_s(kj, lo), i32x4.le_s(kj, hi));
        const p = sS + <usize>j * m4b + rb;
        v128.store(p, v128.bitselect(v128.load(p), ninf, ok));
      }
    }
    if (gMaskKind == 1) {
      const m0 = gMask + <usize>load<i32>(sMR + rb);
      const m1 = gMask + <usize>load<i32>(sMR + rb + 4);
      const m2 = gMask + <usize>load<i32>(sMR + rb + 8);
      const m3 = gMask + <usize>load<i32>(sMR + rb + 12);
      const ss = <usize>gMsS;
      for (let j = 0; j < nk; j++) {
        const o = <usize>(kt + j) * ss;
        let mv = i32x4.splat(<i32>load<u8>(m0 + o));
        mv = i32x4.replace_lane(mv, 1, <i32>load<u8>(m1 + o));
        mv = i32x4.replace_lane(mv, 2, <i32>load<u8>(m2 + o));
        mv = i32x4.replace_lane(mv, 3, <i32>load<u8>(m3 + o));
        const p = sS + <usize>j * m4b + rb;
        v128.store(p, v128.bitselect(ninf, v128.load(p), i32x4.eq(mv, i32x4.splat(0))));
      }
    } else if (gMaskKind == 2) {
      const m0 = gMask + (<usize>load<i32>(sMR + rb) << 2);
      const m1 = gMask + (<usize>load<i32>(sMR + rb + 4) << 2);
      const m2 = gMask + (<usize>load<i32>(sMR + rb + 8) << 2);
      const m3 = gMask + (<usize>load<i32>(sMR + rb + 12) << 2);
      const ss = <usize>gMsS << 2;
      for (let j = 0; j < nk; j++) {
        const o = <usize>(kt + j) * ss;
        let mv = f32x4.splat(load<f32>(m0 + o));
        mv = f32x4.replace_lane(mv, 1, load<f32>(m1 + o));
        mv = f32x4.replace_lane(mv, 2, load<f32>(m2 + o));
        mv = f32x4.replace_lane(mv, 3, load<f32>(m3 + o));
        const p = sS + <usize>j * m4b + rb;
        v128.store(p, f32x4.add(v128.load(p), mv));
      }
    }
  }
}

/** Online softmax over one key tile, 4 rows per vector: updates m, l, alpha; sS becomes P. */
function softmaxTile(nk: i32, m4: i32): void {
  const m4b = <usize>m4 << 2;
  const ninf = f32x4.splat(-Infinity);
  const zero = f32x4.splat(0);
  for (let r = 0; r < m4; r += 4) {
    const rb = <usize>r << 2;
    const mOld = v128.load(sM + rb);
    let mt = ninf;
    for (let j = 0; j < nk; j++) mt = f32x4.pmax(mt, v128.load(sS + <usize>j * m4b + rb));
    const mNew = f32x4.pmax(mOld, mt);
    const mSafe = v128.bitselect(zero, mNew, f32x4.eq(mNew, ninf));
    const alpha = expv(f32x4.sub(mOld, mSafe));
    let sum = zero;
    for (let j = 0; j < nk; j++) {
      const p = sS + <usize>j * m4b + rb;
      const e = expv(f32x4.sub(v128.load(p), mSafe));
      v128.store(p, e);
      sum = f32x4.add(sum, e);
    }
    v128.store(sL + rb, f32x4.add(f32x4.mul(v128.load(sL + rb), alpha), sum));
    v128.store(sM + rb, mNew);
    v128.store(sA + rb, alpha);
  }
}

/** O[r] = O[r] * alpha[r] + Σ_j P[j][r] V[j] for the key tile. */
function accumulatePV(vBase: usize, kt: i32, nk: i32, m4: i32): void {
  const vStride = <usize>gVrs << 2;
  const hp4 = <usize>gHp << 2;
  const m4b = <usize>m4 << 2;
  const h8b = <usize>gH8 << 2;
  const h4b = <usize>gH4 << 2;
  const v0base = vBase + <usize>kt * vStride;
  for (let r = 0; r < m4; r += 4) {
    const rb = <usize>r << 2;
    const al = v128.load(sA + rb);
    const al0 = f32x4.splat(f32x4.extract_lane(al, 0));
    const al1 = f32x4.splat(f32x4.extract_lane(al, 1));
    const al2 = f32x4.splat(f32x4.extract_lane(al, 2));
    const al3 = f32x4.splat(f32x4.extract_lane(al, 3));
    const o0 = sO + <usize>r * hp4;
    const o1 = o0 + hp4;
    const o2 = o1 + hp4;
    const o3 = o2 + hp4;
    const pb = sS + rb;
    let h: usize = 0;
    for (; h < h8b; h += 32) {
      let c00 = f32x4.mul(v128.load(o0 + h), al0), c01 = f32x4.mul(v128.load(o0 + h + 16), al0);
      let c10 = f32x4.mul(v128.load(o1 + h), al1), c11 = f32x4.mul(v128.load(o1 + h + 16), al1);
      let c20 = f32x4.mul(v128.load(o2 + h), al2), c21 = f32x4.mul(v128.load(o2 + h + 16), al2);
      let c30 = f32x4.mul(v128.load(o3 + h), al3), c31 = f32x4.mul(v128.load(o3 + h + 16), al3);
      let vp = v0base + h;
      let pp = pb;
      for (let j = 0; j < nk; j++) {
        const v0 = v128.load(vp);
        const v1 = v128.load(vp + 16);
        let p = v128.load32_splat(pp);
        c00 = f32x4.add(c00, f32x4.mul(p, v0));
        c01 = f32x4.add(c01, f32x4.mul(p, v1));
        p = v128.load32_splat(pp + 4);
        c10 = f32x4.add(c10, f32x4.mul(p, v0));
        c11 = f32x4.add(c11, f32x4.mul(p, v1));
        p = v128.load32_splat(pp + 8);
        c20 = f32x4.add(c20, f32x4.mul(p, v0));
        c21 = f32x4.add(c21, f32x4.mul(p, v1));
        p = v128.load32_splat(pp + 12);
        c30 = f32x4.add(c30, f32x4.mul(p, v0));
        c31 = f32x4.add(c31, f32x4.mul(p, v1));
        vp += vStride;
        pp += m4b;
      }
      v128.store(o0 + h, c00); v128.store(o0 + h + 16, c01);
      v128.store(o1 + h, c10); v128.store(o1 + h + 16, c11);
      v128.store(o2 + h, c20); v128.store(o2 + h + 16, c21);
      v128.store(o3 + h, c30); v128.store(o3 + h + 16, c31);
    }
    for (; h < h4b; h += 16) {
      let c0 = f32x4.mul(v128.load(o0 + h), al0);
      let c1 = f32x4.mul(v128.load(o1 + h), al1);
      let c2 = f32x4.mul(v128.load(o2 + h), al2);
      let c3 = f32x4.mul(v128.load(o3 + h), al3);
      let vp = v0base + h;
      let pp = pb;
      for (let j = 0; j < nk; j++) {
        const v0 = v128.load(vp);
        c0 = f32x4.add(c0, f32x4.mul(v128.load32_splat(pp), v0));
        c1 = f32x4.add(c1, f32x4.mul(v128.load32_splat(pp + 4), v0));
        c2 = f32x4.add(c2, f32x4.mul(v128.load32_splat(pp + 8), v0));
        c3 = f32x4.add(c3, f32x4.mul(v128.load32_splat(pp + 12), v0));
        vp += vStride;
        pp += m4b;
      }
      v128.store(o0 + h, c0);
      v128.store(o1 + h, c1);
      v128.store(o2 + h, c2);
      v128.store(o3 + h, c3);
    }
    // scalar tail h in [H4, H)
    for (let hs = gH4; hs < gH; hs++) {
      const hb = <usize>hs << 2;
      for (let i = 0; i < 4; i++) {
        const ob = sO + <usize>(r + i) * hp4 + hb;
        let c: f32 = load<f32>(ob) * load<f32>(sA + rb + (<usize>i << 2));
        let vp = v0base + hb;
        let pp = pb + (<usize>i << 2);
        for (let j = 0; j < nk; j++) {
          c += load<f32>(pp) * load<f32>(vp);
          vp += vStride;
          pp += m4b;
        }
        store<f32>(ob, c);
      }
    }
  }
}

/** Per-row bounds (lo, hi) and mask row offsets for the tile's packed rows (padded rows copy the last). */
function setupRows(b: i32, kvh: i32, t0: i32, nt: i32, m4: i32): void {
  const M = nt * gG;
  for (let r = 0; r < m4; r++) {
    const rr = r < M ? r : M - 1;
    const tl = rr / gG;
    const g = rr - tl * gG;
    const t = t0 + tl;
    const p = gP0 + t;
    store<i32>(sLo + (<usize>r << 2), lowAllowed(p));
    store<i32>(sHi + (<usize>r << 2), highAllowed(p));
    if (gMaskKind != 0) {
      const u = kvh * gG + g;
      store<i32>(sMR + (<usize>r << 2), b * gMsB + u * gMsU + t * gMsT);
    }
  }
}

function runTask(task: i32, tid: i32): void {
  // task = ((qtRev * B + b) * V + kvh) * nK + kc, largest query tiles (most causal work) first
  // (in general (qtRev * NG + gi) * nK + kc, group b*V + kvh = G0 + gi)
  // with key chunks kc = KC0 + (task % NKJ); partials are indexed as if all NK chunks ran.
  let rest = task;
  const kc = gKc0 + rest % gNkj;
  rest = rest / gNkj;
  const pidx = rest * gNk + kc;
  const gi = rest % gNg;
  const grp = gG0 + gi;
  const kvh = grp % gV;
  const b = grp / gV;
  const qt = gNqt - 1 - rest / gNg;
  const t0 = qt * gTq;
  const nt = min(gTq, gT - t0);
  const M = nt * gG;
  const m4 = (M + 3) & ~3;
  const hp4 = <usize>gHp << 2;
  const m4b = <usize>m4 << 2;

  packQuery(b, kvh, gi, t0, nt, m4);
  setupRows(b, kvh, t0, nt, m4);
  memory.fill(sO, 0, <usize>m4 * hp4);
  const ninf = f32x4.splat(-Infinity);
  for (let r = 0; r < m4; r += 4) {
    v128.store(sM + (<usize>r << 2), ninf);
    v128.store(sL + (<usize>r << 2), f32x4.splat(0));
  }

  // Key range any row of the tile may see (lo/hi are monotone in the row's position).
  const pFirst = gP0 + t0;
  const pLast = gP0 + t0 + nt - 1;
  const kLo = max(0, lowAllowed(pFirst));
  const kHi = min(gS - 1, highAllowed(pLast));
  const rowLoMax = lowAllowed(pLast);
  const rowHiMin = highAllowed(pFirst);
  const hasBounds = gCausal != 0 || gWindow > 0;

  const cStart = max(kLo, kc * gKChunk);
  const cEnd = min(kHi + 1, min(gS, (kc + 1) * gKChunk));
  const kBase = gK + ((<usize>b * <usize>gKbs + <usize>kvh * <usize>gKhs + <usize>gi * <usize>gKgs) << 2);
  const vBase = gVal + ((<usize>b * <usize>gVbs + <usize>kvh * <usize>gVhs + <usize>gi * <usize>gVgs) << 2);
  const progress = gProgress + (<usize>tid << 2);

  for (let kt = cStart; kt < cEnd; kt += gBc) {
    const nk = min(gBc, cEnd - kt);
    touchRows(kBase, gKrs, kt, nk);
    touchRows(vBase, gVrs, kt, nk);
    computeLogits(kBase, kt, nk, m4);
    const needBounds = hasBounds && (kt < rowLoMax || kt + nk - 1 > rowHiMin);
    if (needBounds || gMaskKind != 0) applyMasks(kt, nk, m4, needBounds);
    softmaxTile(nk, m4);
    accumulatePV(vBase, kt, nk, m4);
    atomic.add<i32>(progress, 1);
  }

  if (gNk == 1) {
    // Normalise and write the output rows.
    for (let r = 0; r < M; r++) {
      const tl = r / gG;
      const g = r - tl * gG;
      const l = load<f32>(sL + (<usize>r << 2));
      const dst = outRow(b, kvh, gi, t0 + tl, g);
      const src = sO + <usize>r * hp4;
      if (l > 0) {
        const lv = f32x4.splat(l);
        let h = 0;
        for (; h < gH4; h += 4) v128.store(dst + (<usize>h << 2), f32x4.div(v128.load(src + (<usize>h << 2)), lv));
        for (; h < gH; h++) store<f32>(dst + (<usize>h << 2), load<f32>(src + (<usize>h << 2)) / l);
      } else {
        memory.fill(dst, 0, <usize>gH << 2);
      }
    }
    if (gProb != 0) writeProbabilities(b, kvh, t0, nt, m4, kBase, kLo, kHi, hasBounds, rowLoMax, rowHiMin);
  } else {
    // Partial (m, l, unnormalised O) for the reduction.
    const partStride = <usize>gMaxM4 * (2 + <usize>gHp) << 2;
    const part = gPart + <usize>pidx * partStride;
    memory.copy(part, sM, m4b);
    memory.copy(part + (<usize>gMaxM4 << 2), sL, m4b);
    memory.copy(part + (<usize>gMaxM4 << 3), sO, <usize>m4 * hp4);
  }
}

function writeProbabilities(
  b: i32, kvh: i32, t0: i32, nt: i32, m4: i32, kBase: usize,
  kLo: i32, kHi: i32, hasBounds: bool, rowLoMax: i32, rowHiMin: i32,
): void {
  const M = nt * gG;
  const m4b = <usize>m4 << 2;
  const zero = f32x4.splat(0);
  const ninf = f32x4.splat(-Infinity);
  for (let kt = 0; kt < gS; kt += gBc) {
    const nk = min(gBc, gS - kt);
    if (kt + nk - 1 < kLo || kt > kHi) {
      for (let r = 0; r < M; r++) {
        const tl = r / gG;
        const g = r - tl * gG;
        const dst = gProb + ((<usize>((b * gU + kvh * gG + g) * gT + t0 + tl) * <usize>gS + <usize>kt) << 2);
        memory.fill(dst, 0, <usize>nk << 2);
      }
      continue;
    }
    computeLogits(kBase, kt, nk, m4);
    const needBounds = hasBounds && (kt < rowLoMax || kt + nk - 1 > rowHiMin);
    if (needBounds || gMaskKind != 0) applyMasks(kt, nk, m4, needBounds);
    for (let r = 0; r < m4; r += 4) {
      const rb = <usize>r << 2;
      const m = v128.load(sM + rb);
      const mSafe = v128.bitselect(zero, m, f32x4.eq(m, ninf));
      const l = v128.load(sL + rb);
      const lSafe = v128.bitselect(f32x4.splat(1), l, f32x4.eq(l, zero));
      for (let j = 0; j < nk; j++) {
        const p = sS + <usize>j * m4b + rb;
        v128.store(p, f32x4.div(expv(f32x4.sub(v128.load(p), mSafe)), lSafe));
      }
    }
    for (let r = 0; r < M; r++) {
      const tl = r / gG;
      const g = r - tl * gG;
      const dst = gProb + ((<usize>((b * gU + kvh * gG + g) * gT + t0 + tl) * <usize>gS + <usize>kt) << 2);
      let src = sS + (<usize>r << 2);
      for (let j = 0; j < nk; j++) {
        store<f32>(dst + (<usize>j << 2), load<f32>(src));
        src += m4b;
      }
    }
  }
}

// ---- exported entry points ---------------------------------------------------------------------

/**
 * Runs tasks of job `gen` until none is left: claims task indices from the shared counter
 * (generation in the high bits, so a late thread never claims a task of another job), marks each
 * finished task in the done flags. Returns the number of tasks this thread ran.
 */
export function work(params: usize, tid: i32, gen: i32): i32 {
  loadParams(params);
  setScratch(params, tid);
  const next = <usize>load<i32>(params + (<usize>P_NEXT << 2));
  const tag = (gen & 0x7ff) << TASK_BITS;
  let ran = 0;
  while (true) {
    const v = atomic.load<i32>(next);
    if ((v & ~TASK_MASK) != tag) break;
    const idx = v & TASK_MASK;
    if (idx >= gNTasks) break;
    if (atomic.cmpxchg<i32>(next, v, v + 1) != v) continue;
    runTask(idx, tid);
    atomic.store<i32>(gDone + (<usize>idx << 2), 1);
    ran++;
  }
  return ran;
}

/** Runs one task (used by the main thread to take over a task a lost worker claimed). */
export function runOne(params: usize, tid: i32, task: i32): void {
  loadParams(params);
  setScratch(params, tid);
  runTask(task, tid);
  atomic.store<i32>(gDone + (<usize>task << 2), 1);
}

/** Combines the key-chunk partials (m, l, O) of a split job into the output (flash-decoding). */
export function reduce(params: usize): void {
  loadParams(params);
  const partStride = <usize>gMaxM4 * (2 + <usize>gHp) << 2;
  const hp4 = <usize>gHp << 2;
  for (let group = 0; group < gNTasks / gNk; group++) {
    const gi = group % gNg;
    const grp = gG0 + gi;
    const kvh = grp % gV;
    const b = grp / gV;
    const qt = gNqt - 1 - group / gNg;
    const t0 = qt * gTq;
    const nt = min(gTq, gT - t0);
    const M = nt * gG;
    const first = gPart + <usize>(group * gNk) * partStride;
    for (let r = 0; r < M; r++) {
      const rb = <usize>r << 2;
      let mx: f32 = -Infinity;
      for (let c = 0; c < gNk; c++) mx = max(mx, load<f32>(first + <usize>c * partStride + rb));
      const tl = r / gG;
      const g = r - tl * gG;
      const dst = outRow(b, kvh, gi, t0 + tl, g);
      if (mx == -Infinity) {
        memory.fill(dst, 0, <usize>gH << 2);
        continue;
      }
      let l: f32 = 0;
      for (let c = 0; c < gNk; c++) {
        const pc = first + <usize>c * partStride;
        const mc = load<f32>(pc + rb);
        if (mc == -Infinity) continue;
        l += load<f32>(pc + (<usize>gMaxM4 << 2) + rb) * expf(mc - mx);
      }
      let h = 0;
      for (; h < gH4; h += 4) {
        let acc = f32x4.splat(0);
        for (let c = 0; c < gNk; c++) {
          const pc = first + <usize>c * partStride;
          const mc = load<f32>(pc + rb);
          if (mc == -Infinity) continue;
          const w = f32x4.splat(expf(mc - mx));
          acc = f32x4.add(acc, f32x4.mul(v128.load(pc + (<usize>gMaxM4 << 3) + <usize>r * hp4 + (<usize>h << 2)), w));
        }
        v128.store(dst + (<usize>h << 2), f32x4.div(acc, f32x4.splat(l)));
      }
      for (; h < gH; h++) {
        let acc: f32 = 0;
        for (let c = 0; c < gNk; c++) {
          const pc = first + <usize>c * partStride;
          const mc = load<f32>(pc + rb);
          if (mc == -Infinity) continue;
          acc += load<f32>(pc + (<usize>gMaxM4 << 3) + <usize>r * hp4 + (<usize>h << 2)) * expf(mc - mx);
        }
        store<f32>(dst + (<usize>h << 2), acc / l);
      }
    }
  }
}
