// Input scan for the host's choice of rows computed exactly (src/engine/exact-rows.ts): the largest
// magnitude of each segment of floats, NaN as soon as one is NaN (f32x4.max and f32.max propagate
// NaN), Infinity for ±Inf. Memory-bound; one pass over Q, K, V and an additive mask per call.

/** out[s] = max |src[s·len + i]| over i < len, for s < segments. */
export function maxAbsSegments(src: usize, segments: i32, len: i32, out: usize): void {
  const len8 = len & ~7;
  const len4 = len & ~3;
  for (let s = 0; s < segments; s++) {
    const p = src + ((<usize>s * <usize>len) << 2);
    let m0 = f32x4.splat(0);
    let m1 = f32x4.splat(0);
    let h = 0;
    for (; h < len8; h += 8) {
      m0 = f32x4.max(m0, f32x4.abs(v128.load(p + (<usize>h << 2))));
      m1 = f32x4.max(m1, f32x4.abs(v128.load(p + (<usize>h << 2) + 16)));
    }
    for (; h < len4; h += 4) m0 = f32x4.max(m0, f32x4.abs(v128.load(p + (<usize>h << 2))));
    const m = f32x4.max(m0, m1);
    let r = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
    for (; h < len; h++) r = max(r, abs(load<f32>(p + (<usize>h << 2))));
    store<f32>(out + (<usize>s << 2), r);
  }
}
