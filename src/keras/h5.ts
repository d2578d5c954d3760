/**
 * HDF5 through h5wasm (HDF5 compiled to WebAssembly) on its in-memory file system, so the same code
 * reads and writes bytes in Node and in browsers. Only the few HDF5 features Keras weight files use:
 * groups, float datasets and a string attribute `name` on the `vars` groups.
 */
import { KerasFileError } from './errors.js';

type H5Module = typeof import('h5wasm');

let loading: Promise<H5Module> | null = null;

/** Loads h5wasm once (about 4 MB of JavaScript and WebAssembly), on first use. */
async function h5(): Promise<H5Module> {
  loading ??= (async () => {
    const mod = await import('h5wasm');
    await mod.ready;
    return mod;
  })();
  return loading;
}

let fileCounter = 0;
function scratchName(): string {
  fileCounter += 1;
  return `/gqa-keras-${Date.now().toString(36)}-${fileCounter}.h5`;
}

/** The 8-byte HDF5 signature. */
const SIGNATURE = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a];

function signatureAt(bytes: Uint8Array, offset: number): boolean {
  if (bytes.length < offset + 8) return false;
  return SIGNATURE.every((b, i) => bytes[offset + i] === b);
}

/** True when the bytes start with the HDF5 signature (Keras writes no user block). */
export function looksLikeHdf5(bytes: Uint8Array): boolean {
  return signatureAt(bytes, 0);
}

function readUint(bytes: Uint8Array, offset: number, size: number): number {
  let value = 0;
  for (let i = size - 1; i >= 0; i--) value = value * 256 + bytes[offset + i]!;
  return value;
}

/**
 * Checks the signature and the end-of-file address in the superblock, so that a truncated file is
 * reported as such (HDF5 itself only says it cannot open the file).
 */
function checkSuperblock(bytes: Uint8Array, what: string): void {
  let base = -1;
  for (const offset of [0, 512, 1024, 2048, 4096, 8192]) {
    if (signatureAt(bytes, offset)) {
      base = offset;
      break;
    }
  }
  if (base < 0) {
    throw new KerasFileError(`${what}: not an HDF5 file (no HDF5 signature; received ${bytes.length} bytes)`);
  }
  const version = bytes[base + 8];
  let eofOffset: number;
  let sizeOfOffsets: number;
  if (version === 0 || version === 1) {
    sizeOfOffsets = bytes[base + 13] ?? 0;
    eofOffset = base + (version === 0 ? 24 : 28) + 2 * sizeOfOffsets;
  } else if (version === 2 || version === 3) {
    sizeOfOffsets = bytes[base + 9] ?? 0;
    eofOffset = base + 12 + 2 * sizeOfOffsets;
  } else {
    return; // unknown superblock version: let HDF5 decide
  }
  if (![2, 4, 8].includes(sizeOfOffsets) || bytes.length < eofOffset + sizeOfOffsets) {
    throw new KerasFileError(`${what}: truncated or corrupted HDF5 file (the superblock is incomplete; ${bytes.length} bytes)`);
  }
  const stored = readUint(bytes, eofOffset, sizeOfOffsets);
  if (stored > bytes.length - base && stored < 2 ** 52) {
    throw new KerasFileError(
      `${what}: truncated HDF5 file: its superblock says ${stored + base} bytes, received ${bytes.length}`);
  }
}

/** A dataset of an HDF5 file: its name, shape and type always, its data only when it was selected. */
export interface H5Dataset {
  /** Absolute path, e.g. `/layers/dense/vars/0`. */
  path: string;
  shape: number[];
  /** h5wasm's dtype string, e.g. `<f` (float32), `<d` (float64). */
  dtype: string;
  /** The values as float32; null for a dataset that was not selected (its data was never read). */
  data: Float32Array | null;
}

/** A dataset's description, before any of its data is read. */
export type H5DatasetInfo = Omit<H5Dataset, 'data'>;

/** Groups (with their string attributes) and datasets of an HDF5 file. */
export interface H5Contents {
  groups: Map<string, Record<string, string>>;
  datasets: Map<string, H5Dataset>;
}

/** At most this many groups and datasets are listed: a Keras weights file has a few per layer. */
export const MAX_H5_OBJECTS = 200_000;

/** Groups nest at most this deep (Keras: `/layers/<layer>/<sub-layer>/vars`, a few levels). */
export const MAX_H5_DEPTH = 32;

/** True for h5wasm dtypes of real numbers (float or integer, any size or byte order). */
export function isNumericDtype(dtype: string): boolean {
  return /^[<>|=]?[fiuedb]\d*$/.test(dtype) || /^[<>|=]?[fiu]$/.test(dtype);
}

type H5Group = InstanceType<H5Module['Group']>;

function toFloat32(value: unknown, path: string, what: string): Float32Array {
  if (value instanceof Float32Array) return value;
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    const src = value as unknown as ArrayLike<number | bigint>;
    const out = new Float32Array(src.length);
    for (let i = 0; i < src.length; i++) out[i] = Number(src[i]);
    return out;
  }
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') {
    return new Float32Array([Number(value)]);
  }
  throw new KerasFileError(`${what}: dataset ${path} is not numeric`);
}

/**
 * Lists every group and dataset of an HDF5 file given as bytes, and reads the data of the datasets
 * `select` accepts (all when it is omitted) - only after every name, shape and type is known, so that
 * an unused or oversized dataset costs nothing. Throws {@link KerasFileError} for bytes that are not
 * HDF5, truncated or corrupted, or a file with more than {@link MAX_H5_OBJECTS} objects.
 */
export async function readH5(
  bytes: Uint8Array, what: string, select?: (info: H5DatasetInfo) => boolean,
): Promise<H5Contents> {
  checkSuperblock(bytes, what);
  const mod = await h5();
  const FS = mod.FS as unknown as {
    writeFile(path: string, data: Uint8Array): void;
    unlink(path: string): void;
  };
  const name = scratchName();
  FS.writeFile(name, bytes);
  const throwing = mod.Module.activate_throwing_error_handler() >= 0;
  let file: InstanceType<H5Module['File']> | null = null;
  try {
    try {
      file = new mod.File(name, 'r');
    } catch (e) {
      throw new KerasFileError(`${what}: corrupted HDF5 file, HDF5 cannot open it (${firstLine(e)})`);
    }
    const contents: H5Contents = { groups: new Map(), datasets: new Map() };
    const handles = new Map<string, InstanceType<H5Module['Dataset']>>();
    let objects = 0;
    const walk = (group: H5Group, path: string, depth: number) => {
      if (depth > MAX_H5_DEPTH) {
        throw new KerasFileError(`${what}: HDF5 groups nested more than ${MAX_H5_DEPTH} deep at ${path.slice(0, 200)}…`);
      }
      contents.groups.set(path === '' ? '/' : path, readAttrs(group));
      for (const key of group.keys()) {
        objects += 1;
        if (objects > MAX_H5_OBJECTS) {
          throw new KerasFileError(
            `${what}: more than ${MAX_H5_OBJECTS} HDF5 groups and datasets; not a Keras weights file`);
        }
        const child = group.get(key);
        const childPath = `${path}/${key}`;
        if (child instanceof mod.Group) {
          walk(child, childPath, depth + 1);
        } else if (child instanceof mod.Dataset) {
          // Metadata only: the data is read below, for the selected datasets.
          contents.datasets.set(childPath, { path: childPath, shape: child.shape ?? [], dtype: String(child.dtype), data: null });
          handles.set(childPath, child);
        }
      }
    };
    try {
      walk(file, '', 0);
      for (const ds of contents.datasets.values()) {
        if (select != null && !select({ path: ds.path, shape: ds.shape, dtype: ds.dtype })) continue;
        if (!isNumericDtype(ds.dtype)) throw new KerasFileError(`${what}: dataset ${ds.path} is not numeric (dtype ${ds.dtype})`);
        ds.data = toFloat32(handles.get(ds.path)!.value, ds.path, what);
      }
    } catch (e) {
      if (e instanceof KerasFileError) throw e;
      throw new KerasFileError(`${what}: corrupted HDF5 file, reading it failed (${firstLine(e)})`);
    }
    return contents;
  } finally {
    try {
      file?.close();
    } catch {
      // already reported
    }
    if (throwing) mod.Module.deactivate_throwing_error_handler();
    FS.unlink(name);
  }
}

function readAttrs(group: H5Group): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, attr] of Object.entries(group.attrs)) {
    const value = (attr as { value: unknown }).value;
    out[key] = typeof value === 'string' ? value : JSON.stringify(value);
  }
  return out;
}

function firstLine(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
  // HDF5's stack: the innermost entry says what went wrong.
  const detail = lines.filter((l) => /^#\d+/.test(l)).pop() ?? lines[0] ?? 'unknown error';
  return detail.replace(/^#\d+:\s*\S+\s+line\s+\d+\s+in\s+/, '');
}

/** A group to write, with its string attributes. */
export interface H5GroupSpec {
  path: string;
  attrs?: Record<string, string>;
}

/** A float32 dataset to write. */
export interface H5DatasetSpec {
  path: string;
  shape: number[];
  data: Float32Array;
}

/**
 * Writes an HDF5 file (groups in the given order, contiguous little-endian float32 datasets) and
 * returns its bytes.
 */
export async function writeH5(groups: H5GroupSpec[], datasets: H5DatasetSpec[]): Promise<Uint8Array> {
  const mod = await h5();
  const FS = mod.FS as unknown as {
    readFile(path: string): Uint8Array;
    unlink(path: string): void;
  };
  const name = scratchName();
  const throwing = mod.Module.activate_throwing_error_handler() >= 0;
  const file = new mod.File(name, 'w');
  let closed = false;
  try {
    const opened = new Map<string, H5Group>([['/', file]]);
    const ensure = (path: string): H5Group => {
      const existing = opened.get(path);
      if (existing) return existing;
      const cut = path.lastIndexOf('/');
      const parent = ensure(cut <= 0 ? '/' : path.slice(0, cut));
      const group = parent.create_group(path.slice(cut + 1));
      opened.set(path, group);
      return group;
    };
    for (const g of groups) {
      const group = ensure(g.path);
      for (const [key, value] of Object.entries(g.attrs ?? {})) group.create_attribute(key, value);
    }
    for (const d of datasets) {
      const cut = d.path.lastIndexOf('/');
      const parent = ensure(cut <= 0 ? '/' : d.path.slice(0, cut));
      parent.create_dataset({ name: d.path.slice(cut + 1), data: d.data, shape: d.shape, dtype: '<f' });
    }
    file.flush();
    file.close();
    closed = true;
    return FS.readFile(name).slice();
  } finally {
    if (!closed) {
      try {
        file.close();
      } catch {
        // nothing more to do
      }
    }
    if (throwing) mod.Module.deactivate_throwing_error_handler();
    FS.unlink(name);
  }
}
