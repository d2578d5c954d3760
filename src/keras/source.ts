/**
 * Where a Keras file comes from: a path (Node), a URL (fetch), bytes, or a browser File/Blob.
 */
import { KerasFileError } from './errors.js';

/**
 * A Keras file: a file path (Node only), an `http(s):`/`file:`/`blob:`/`data:` URL string or `URL`
 * (read with `fetch`, or from disk for `file:` in Node), an `ArrayBuffer`, a typed array or
 * `DataView` over the bytes, or a browser `Blob`/`File`.
 *
 * @example
 * ```ts
 * import '@tensorflow/tfjs-backend-cpu';
 * import { readFileSync } from 'node:fs';
 * import { loadKerasModel, type KerasSource } from 'grouped-query-attention/keras';
 *
 * const sources: KerasSource[] = [
 *   'test/data/fixtures/gqa_layer_v36.keras',                    // a path (Node) or a URL string
 *   readFileSync('test/data/fixtures/gqa_layer_v36.keras'),      // bytes (a File or Blob in browsers)
 * ];
 * for (const source of sources) (await loadKerasModel(source)).dispose();
 * ```
 */
export type KerasSource = string | URL | ArrayBuffer | ArrayBufferView | Blob;

const URL_SCHEME = /^(https?|blob|data|file):/i;

/** Imports a Node built-in without bundlers trying to resolve it for browsers. */
async function nodeModule<T>(name: string): Promise<T> {
  const specifier = `node:${name}`;
  return (await import(/* @vite-ignore */ /* webpackIgnore: true */ specifier)) as T;
}

function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return p?.versions?.node != null;
}

/** Reads a {@link KerasSource} into bytes. `what` names the source in error messages. */
export async function readSource(source: KerasSource, kind: string): Promise<{ bytes: Uint8Array; what: string }> {
  if (source instanceof Uint8Array) return { bytes: source, what: `${kind} (${source.length} bytes)` };
  if (source instanceof ArrayBuffer) {
    return { bytes: new Uint8Array(source), what: `${kind} (${source.byteLength} bytes)` };
  }
  if (ArrayBuffer.isView(source)) {
    const bytes = new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
    return { bytes, what: `${kind} (${bytes.length} bytes)` };
  }
  if (typeof Blob !== 'undefined' && source instanceof Blob) {
    const name = (source as { name?: string }).name;
    const what = name ? `${kind} '${name}'` : `${kind} (Blob of ${source.size} bytes)`;
    return { bytes: new Uint8Array(await source.arrayBuffer()), what };
  }
  if (source instanceof URL || (typeof source === 'string' && URL_SCHEME.test(source))) {
    const url = source.toString();
    const what = `${kind} '${url}'`;
    if (isNode() && url.toLowerCase().startsWith('file:')) {
      const { fileURLToPath } = await nodeModule<typeof import('node:url')>('url');
      return { bytes: await readPath(fileURLToPath(url), what), what };
    }
    let response: Response;
    try {
      response = await fetch(url);
    } catch (e) {
      throw new KerasFileError(`${what}: fetch failed (${e instanceof Error ? e.message : String(e)})`);
    }
    if (!response.ok) throw new KerasFileError(`${what}: fetch failed with HTTP ${response.status} ${response.statusText}`);
    return { bytes: new Uint8Array(await response.arrayBuffer()), what };
  }
  if (typeof source === 'string') {
    const what = `${kind} '${source}'`;
    if (!isNode()) {
      // In a browser a plain string is a relative URL.
      return readSource(new URL(source, (globalThis as { location?: { href: string } }).location?.href), kind);
    }
    return { bytes: await readPath(source, what), what };
  }
  throw new KerasFileError(
    `${kind}: cannot read a source of type ${source === null ? 'null' : typeof source}; pass a path, a URL, ` +
    'an ArrayBuffer or Uint8Array, or a File/Blob');
}

async function readPath(path: string, what: string): Promise<Uint8Array> {
  const fs = await nodeModule<typeof import('node:fs/promises')>('fs/promises');
  try {
    return new Uint8Array(await fs.readFile(path));
  } catch (e) {
    throw new KerasFileError(`${what}: cannot read the file (${e instanceof Error ? e.message : String(e)})`);
  }
}
