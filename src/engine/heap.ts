/**
 * A small first-fit allocator over a WebAssembly.Memory (64-byte aligned blocks, coalescing free
 * list). Memory grows only when no free block fits, so repeated calls of varying shapes settle on a
 * fixed footprint. Growth replaces `memory.buffer`: never keep views across an allocation.
 */
export class WasmHeap {
  private readonly free: Array<{ off: number; size: number }> = [];
  private readonly used = new Map<number, number>();

  constructor(
    readonly memory: WebAssembly.Memory,
    base: number,
  ) {
    const end = memory.buffer.byteLength;
    if (end > base) this.free.push({ off: base, size: end - base });
  }

  /** Bytes currently allocated. */
  get usedBytes(): number {
    let n = 0;
    for (const s of this.used.values()) n += s;
    return n;
  }

  /** Allocates `bytes` (rounded up to 64) and returns the byte offset. */
  alloc(bytes: number): number {
    const size = Math.max(64, Math.ceil(bytes / 64) * 64);
    for (let i = 0; i < this.free.length; i++) {
      const blk = this.free[i]!;
      if (blk.size >= size) {
        const off = blk.off;
        if (blk.size === size) this.free.splice(i, 1);
        else {
          blk.off += size;
          blk.size -= size;
        }
        this.used.set(off, size);
        return off;
      }
    }
    // Grow: extend the last free block if it reaches the end of memory.
    const end = this.memory.buffer.byteLength;
    const last = this.free[this.free.length - 1];
    const tailFree = last && last.off + last.size === end ? last.size : 0;
    const needed = size - tailFree;
    const pages = Math.ceil(needed / 65536);
    try {
      this.memory.grow(pages);
    } catch (e) {
      throw new RangeError(`attention engine: cannot grow WebAssembly memory by ${pages} pages to allocate ${bytes} bytes (${String(e)})`);
    }
    const added = pages * 65536;
    if (tailFree > 0) last!.size += added;
    else this.free.push({ off: end, size: added });
    return this.alloc(bytes);
  }

  /** Frees a block returned by {@link alloc}. */
  release(off: number): void {
    const size = this.used.get(off);
    if (size === undefined) throw new Error(`attention engine: double free or foreign offset ${off}`);
    this.used.delete(off);
    let i = 0;
    while (i < this.free.length && this.free[i]!.off < off) i++;
    this.free.splice(i, 0, { off, size });
    // coalesce with the next, then the previous
    const cur = this.free[i]!;
    const next = this.free[i + 1];
    if (next && cur.off + cur.size === next.off) {
      cur.size += next.size;
      this.free.splice(i + 1, 1);
    }
    const prev = this.free[i - 1];
    if (prev && prev.off + prev.size === cur.off) {
      prev.size += cur.size;
      this.free.splice(i, 1);
    }
  }
}
