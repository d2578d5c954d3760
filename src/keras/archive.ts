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
  return value as Record<string, unknown>;
}

/** Unpacks a `.keras` archive. */
export function readKerasArchive(bytes: Uint8Array, what: string): KerasArchive {
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(bytes);
  } catch (e) {
    throw new KerasFileError(
      `${what}: truncated or corrupted zip archive (${e instanceof Error ? e.message : String(e)})`);
  }
  for (const entry of ['config.json', 'model.weights.h5']) {
    if (entries[entry] == null) {
      const names = Object.keys(entries);
      throw new KerasFileError(
        `${what}: not a Keras 3 .keras archive, it has no ${entry} (entries: ${names.length ? names.join(', ') : 'none'})`);
    }
  }
  return {
    config: parseJson(entries['config.json']!, 'config.json', what),
    metadata: entries['metadata.json'] != null ? parseJson(entries['metadata.json'], 'metadata.json', what) : null,
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
