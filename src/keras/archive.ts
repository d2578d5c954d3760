/**
 * The `.keras` archive: a zip of `metadata.json`, `config.json` and `model.weights.h5` (Keras writes
 * them uncompressed, in that order).
 */
import { strFromU8, strToU8, unzipSync, zipSync, type Zippable } from 'fflate';
import { KerasFileError } from './errors.js';

/** The entries of a `.keras` archive. */
export interface KerasArchive {
  config: Record<string, unknown>;
  metadata: Record<string, unknown> | null;
  weights: Uint8Array;
}

/** True for bytes that start like a zip file (local file header or empty-archive record). */
export function looksLikeZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b &&
    ((bytes[2] === 0x03 && bytes[3] === 0x04) || (bytes[2] === 0x05 && bytes[3] === 0x06));
}

/**
 * Limits for reading Keras files. A hostile file can declare a huge entry or nest its JSON deeply;
 * these bounds make it fail early with a message instead of exhausting memory or the stack.
 *
 * @example
 * ```ts
 * import '@tensorflow/tfjs-backend-cpu';
 * import { loadKerasModel, type KerasReadOptions } from 'grouped-query-attention/keras';
 *
 * const options: KerasReadOptions = { maxConfigBytes: 256 * 2 ** 20 };   // a very large config.json
 * (await loadKerasModel('test/data/fixtures/tiny_decoder_v36.keras', options)).dispose();
 * ```
 */
export interface KerasReadOptions {
  /** Largest `config.json` accepted, in bytes (uncompressed). Default 64 MiB. */
  maxConfigBytes?: number;
  /** Largest `model.weights.h5` accepted, in bytes (uncompressed). Default 2 GiB. */
  maxWeightsBytes?: number;
  /**
   * Receives the notice when a file holds training state that is not loaded (a `compile_config` or
   * optimizer variables: tfjs optimizers are not restored). Default `console.warn`; pass `() => {}`
   * to silence it.
   */
  warn?: (message: string) => void;
}

export const DEFAULT_MAX_CONFIG_BYTES = 64 * 2 ** 20;
export const DEFAULT_MAX_WEIGHTS_BYTES = 2 * 2 ** 30;
const MAX_METADATA_BYTES = 2 ** 20;
/** JSON nesting accepted in config.json: Keras configs nest about 10 deep. */
export const MAX_JSON_DEPTH = 100;

/** The entries a `.keras` archive is read for, and their limits; every other entry is skipped unread. */
function entryLimits(options: KerasReadOptions): Map<string, { limit: number; option: string }> {
  return new Map([
    ['config.json', { limit: options.maxConfigBytes ?? DEFAULT_MAX_CONFIG_BYTES, option: 'maxConfigBytes' }],
    ['model.weights.h5', { limit: options.maxWeightsBytes ?? DEFAULT_MAX_WEIGHTS_BYTES, option: 'maxWeightsBytes' }],
    ['metadata.json', { limit: MAX_METADATA_BYTES, option: '' }],
  ]);
}

/** The deepest nesting of a parsed JSON value, walked without recursion; stops past `limit`. */
function jsonDepth(value: unknown, limit: number): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v == null || typeof v !== 'object') continue;
    deepest = Math.max(deepest, depth);
    if (deepest > limit) return deepest;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (child != null && typeof child === 'object') stack.push([child, depth + 1]);
    }
  }
  return deepest;
}

function parseJson(bytes: Uint8Array, entry: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(strFromU8(bytes));
  } catch (e) {
    throw new KerasFileError(`${what}: ${entry} is not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (value == null || typeof value !== 'object' || Array.isArray(value)) {
    throw new KerasFileError(`${what}: ${entry} must hold a JSON object`);
  }
  if (jsonDepth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
    throw new KerasFileError(
      `${what}: ${entry} nests objects and lists more than ${MAX_JSON_DEPTH} deep; a Keras config nests about 10 deep`);
  }
  return value as Record<string, unknown>;
}

/**
 * Unpacks a `.keras` archive: only `config.json`, `model.weights.h5` and `metadata.json` are
 * decompressed, each after its declared size is checked against its limit (and decompression cannot
 * write past the declared size).
 */
export function readKerasArchive(bytes: Uint8Array, what: string, options: KerasReadOptions = {}): KerasArchive {
  const limits = entryLimits(options);
  const names: string[] = [];
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(bytes, {
      filter: (file) => {
        if (names.length < 20) names.push(file.name);
        const wanted = limits.get(file.name);
        if (wanted == null) return false;
        if (file.originalSize > wanted.limit) {
          throw new KerasFileError(
            `${what}: ${file.name} is ${file.originalSize} bytes uncompressed, more than the limit of ${wanted.limit}` +
            (wanted.option ? ` (raise it with the ${wanted.option} option if the file is trusted)` : ''));
        }
        return true;
      },
    });
  } catch (e) {
    if (e instanceof KerasFileError) throw e;
    throw new KerasFileError(
      `${what}: truncated or corrupted zip archive (${e instanceof Error ? e.message : String(e)})`);
  }
  for (const entry of ['config.json', 'model.weights.h5']) {
    if (!Object.hasOwn(entries, entry)) {
      throw new KerasFileError(
        `${what}: not a Keras 3 .keras archive, it has no ${entry} (entries: ${names.length ? names.join(', ') : 'none'})`);
    }
  }
  return {
    config: parseJson(entries['config.json']!, 'config.json', what),
    metadata: Object.hasOwn(entries, 'metadata.json') ? parseJson(entries['metadata.json']!, 'metadata.json', what) : null,
    weights: entries['model.weights.h5']!,
  };
}

/** Packs a `.keras` archive as Keras does: stored (uncompressed) entries in Keras's order. */
export function writeKerasArchive(config: unknown, metadata: unknown, weights: Uint8Array): Uint8Array {
  // A fixed date keeps the bytes reproducible; Keras only reads the entries' contents.
  const options = { level: 0 as const, mtime: new Date(Date.UTC(2024, 0, 1)) };
  const files: Zippable = {
    'metadata.json': [strToU8(JSON.stringify(metadata)), options],
    'config.json': [strToU8(JSON.stringify(config)), options],
    'model.weights.h5': [weights, options],
  };
  return zipSync(files, options);
}
