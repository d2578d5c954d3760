/** Copies between plain arrays and engine memory: strided row gathers and scatters into and out of the staging areas, and results out. */

/** Copies `rows` rows of `len` floats, `srcStride` apart in `src` from `srcOff`, to consecutive rows of `dst`. */
export function gather(dst: Float32Array, dstOff: number, src: Float32Array, srcOff: number, rows: number, len: number, srcStride: number): void {
  if (srcStride === len) {
    dst.set(src.subarray(srcOff, srcOff + rows * len), dstOff);
  } else if (len >= 32) {
    for (let r = 0; r < rows; r++, srcOff += srcStride, dstOff += len) dst.set(src.subarray(srcOff, srcOff + len), dstOff);
  } else {
    for (let r = 0; r < rows; r++, srcOff += srcStride - len) for (let i = 0; i < len; i++) dst[dstOff++] = src[srcOff++]!;
  }
}

/** Copies consecutive rows of `len` floats from `src` to rows `dstStride` apart in `dst`. */
export function scatter(dst: Float32Array, dstOff: number, dstStride: number, src: Float32Array, srcOff: number, rows: number, len: number): void {
  if (dstStride === len) {
    dst.set(src.subarray(srcOff, srcOff + rows * len), dstOff);
  } else if (len >= 32) {
    for (let r = 0; r < rows; r++, srcOff += len, dstOff += dstStride) dst.set(src.subarray(srcOff, srcOff + len), dstOff);
  } else {
    for (let r = 0; r < rows; r++, dstOff += dstStride - len) for (let i = 0; i < len; i++) dst[dstOff++] = src[srcOff++]!;
  }
}

/** `view` (of engine memory) copied into `into` when the caller gave one, else into a fresh array. */
export function copyOut(view: Float32Array, into: Float32Array | undefined): Float32Array {
  if (into === undefined) return view.slice();
  into.set(view);
  return into;
}
