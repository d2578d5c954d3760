// Row gathers for the host's staging (src/engine/wasm-engine.ts): the S key (or value) rows of one
// kv head, V·H floats apart in (B, C, V, H), copied to consecutive rows of H floats, the layout the
// tiles read fastest (rows V·H floats apart, often a multiple of 4 KiB, alias in the L1 cache).

/** Copies `rows` rows of `len` floats, `srcStride` floats apart from `src`, to rows `dstStride` floats apart from `dst`. */
export function gatherRows(src: usize, srcStride: i32, rows: i32, len: i32, dst: usize, dstStride: i32): void {
  const len4 = len & ~3;
  const srcStep = <usize>srcStride << 2;
  const dstStep = <usize>dstStride << 2;
  const bytes4 = <usize>len4 << 2;
  const bytes = <usize>len << 2;
  for (let r = 0; r < rows; r++) {
    let o: usize = 0;
    for (; o + 32 <= bytes4; o += 32) {
      const a = v128.load(src + o);
      const b = v128.load(src + o + 16);
      v128.store(dst + o, a);
      v128.store(dst + o + 16, b);
    }
    for (; o < bytes4; o += 16) v128.store(dst + o, v128.load(src + o));
    for (; o < bytes; o += 4) store<f32>(dst + o, load<f32>(src + o));
    src += srcStep;
    dst += dstStep;
  }
}
