/**
 * Hostile Keras files stay bounded: each class is built here (small bytes, huge declared sizes or
 * shapes; nothing large is committed) and loaded in a child process, which reports its time and
 * peak resident memory. Bounds: refused (or loaded, where Keras loads it) in < 10 s and < 600 MB.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { build } from 'esbuild';
import { strFromU8, strToU8, unzipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { FIXTURE_DIR } from './fixtures.js';

const ROOT = join(import.meta.dirname, '..', '..');
const WORK = join(ROOT, '.scratch', `hostile-${process.pid}`);
const BUNDLE = join(WORK, 'keras.mjs');
const MAX_MS = 10_000;
const MAX_RSS_MB = 600;

interface ZipEntry {
  name: string;
  /** The bytes as stored in the archive (compressed for method 8). */
  stored: Uint8Array;
  method: 0 | 8;
  /** The uncompressed size the archive declares. */
  declared: number;
}

/** A minimal zip writer: local headers, data, central directory (CRCs are not checked by readers here). */
function zip(entries: ZipEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = strToU8(e.name);
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(4, 20, true);
    local.setUint16(8, e.method, true);
    local.setUint32(18, e.stored.length, true);
    local.setUint32(22, e.declared >>> 0, true);
    local.setUint16(26, name.length, true);
    const head = new DataView(new ArrayBuffer(46));
    head.setUint32(0, 0x02014b50, true);
    head.setUint16(4, 20, true);
    head.setUint16(6, 20, true);
    head.setUint16(10, e.method, true);
    head.setUint32(20, e.stored.length, true);
    head.setUint32(24, e.declared >>> 0, true);
    head.setUint16(28, name.length, true);
    head.setUint32(42, offset, true);
    parts.push(new Uint8Array(local.buffer), name, e.stored);
    central.push(new Uint8Array(head.buffer), name);
    offset += 30 + name.length + e.stored.length;
  }
  const centralSize = central.reduce((n, p) => n + p.length, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, entries.length, true);
  end.setUint16(10, entries.length, true);
  end.setUint32(12, centralSize, true);
  end.setUint32(16, offset, true);
  const all = [...parts, ...central, new Uint8Array(end.buffer)];
  const out = new Uint8Array(all.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of all) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const FIXTURE = unzipSync(readFileSync(join(FIXTURE_DIR, 'gqa_layer_v36.keras')));
const stored = (name: string, bytes: Uint8Array): ZipEntry => ({ name, stored: bytes, method: 0, declared: bytes.length });
const configOf = () => JSON.parse(strFromU8(FIXTURE['config.json']!)) as { config: { layers: Array<Record<string, unknown>> } };

/** The fixture archive with other entries, or with config.json replaced. */
function archive(extra: ZipEntry[], config?: ZipEntry): Uint8Array {
  return zip([
    stored('metadata.json', FIXTURE['metadata.json']!),
    config ?? stored('config.json', FIXTURE['config.json']!),
    stored('model.weights.h5', FIXTURE['model.weights.h5']!),
    ...extra,
  ]);
}

/** Runs one load in a fresh Node process; returns its outcome, time and peak RSS. */
function runChild(kind: 'model' | 'weights', file: string): { ok: boolean; message: string; ms: number; rssMb: number } {
  const script = `
    import '@tensorflow/tfjs-backend-cpu';
    import * as tf from '@tensorflow/tfjs-core';
    import { loadKerasModel, loadKerasWeights } from ${JSON.stringify(BUNDLE)};
    await tf.setBackend('cpu');
    const t0 = performance.now();
    let ok = true, message = '';
    try {
      if (${JSON.stringify(kind)} === 'model') (await loadKerasModel(${JSON.stringify(file)})).dispose();
      else {
        const model = await loadKerasModel(${JSON.stringify(join(FIXTURE_DIR, 'gqa_layer_v36.keras'))});
        await loadKerasWeights(model, ${JSON.stringify(file)});
        model.dispose();
      }
    } catch (e) { ok = false; message = e.name + ': ' + e.message; }
    const ms = performance.now() - t0;
    console.log(JSON.stringify({ ok, message, ms, rssMb: process.resourceUsage().maxRSS / 1024 }));
  `;
  const script_path = join(WORK, `child-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(script_path, script);
  const result = spawnSync(process.execPath, [script_path], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  const line = result.stdout.trim().split('\n').pop() ?? '';
  if (result.status !== 0 || !line.startsWith('{')) {
    throw new Error(`child failed (${result.status}): ${result.stderr.slice(-2000)}`);
  }
  return JSON.parse(line) as { ok: boolean; message: string; ms: number; rssMb: number };
}

function write(name: string, bytes: Uint8Array): string {
  const path = join(WORK, name);
  writeFileSync(path, bytes);
  return path;
}

function expectBounded(r: { ms: number; rssMb: number }, what: string): void {
  // Printed so that the numbers can be quoted (with the machine's load).
  console.log(`${what}: ${r.ms.toFixed(0)} ms, peak RSS ${r.rssMb.toFixed(0)} MB`);
  expect(r.ms, `${what}: time`).toBeLessThan(MAX_MS);
  expect(r.rssMb, `${what}: peak RSS`).toBeLessThan(MAX_RSS_MB);
}

beforeAll(async () => {
  mkdirSync(WORK, { recursive: true });
  await build({
    entryPoints: [join(ROOT, 'src/keras/index.ts')], bundle: true, outfile: BUNDLE, platform: 'node',
    format: 'esm', logLevel: 'silent', packages: 'external',
  });
});
afterAll(() => rmSync(WORK, { recursive: true, force: true }));

describe('hostile .keras archives', () => {
  test('unused entries declaring 4 GiB each are never decompressed; the model loads (as in Keras)', () => {
    // Not valid deflate data either: decompressing it would fail, so success proves it was skipped.
    const junk: ZipEntry = { name: 'assets/huge.bin', stored: new Uint8Array(4096).fill(0xff), method: 8, declared: 0xffffffff };
    const r = runChild('model', write('unused_entry.keras', archive([junk, { ...junk, name: 'assets/huge2.bin' }])));
    expect(r.message).toBe('');
    expect(r.ok).toBe(true);
    expectBounded(r, 'unused 4 GiB entries');
  }, 60_000);

  test.each([
    ['400 MB', 400 * 2 ** 20],
    ['1 GiB', 2 ** 30],
  ])('a config.json declaring %s is refused by its size, before decompression', (_label, declared) => {
    const deflated = deflateRawSync(Buffer.alloc(1 << 20, 0x20));
    const config: ZipEntry = { name: 'config.json', stored: deflated, method: 8, declared };
    const r = runChild('model', write(`big_config_${declared}.keras`, archive([], config)));
    expect(r.ok).toBe(false);
    expect(r.message).toMatch(new RegExp(`KerasFileError: .*config\\.json is ${declared} bytes uncompressed, more than the limit of 67108864 \\(raise it with the maxConfigBytes option`));
    expectBounded(r, `config.json declaring ${declared} bytes`);
  }, 60_000);

  test('a config.json that inflates past its declared size stops there (and is not JSON)', () => {
    const real = strToU8(`${strFromU8(FIXTURE['config.json']!)}${' '.repeat(8 << 20)}`);
    const config: ZipEntry = { name: 'config.json', stored: deflateRawSync(real), method: 8, declared: 100 };
    const r = runChild('model', write('lying_config.keras', archive([], config)));
    expect(r.ok).toBe(false);
    expect(r.message).toMatch(/KerasFileError: .*config\.json is not valid JSON/);
    expectBounded(r, 'config.json lying about its size');
  }, 60_000);

  test.each(['constructor', 'toString', 'valueOf', '__proto__', 'hasOwnProperty'])(
    'layer class %s is refused by name', (name) => {
      const config = configOf();
      // An unconnected extra layer, as in the audit.
      config.config.layers.push({ module: 'keras.layers', class_name: name, config: { name: 'odd' }, name: 'odd', inbound_nodes: [] });
      const r = runChild('model', write(`class_${name}.keras`, archive([], stored('config.json', strToU8(JSON.stringify(config))))));
      expect(r.ok).toBe(false);
      expect(r.message).toContain(`KerasConfigError: Layer 'odd' (${name}): unsupported layer class ${name}`);
      expectBounded(r, `class ${name}`);
    }, 60_000);

  test('3,000-deep JSON is refused with a message, not a stack overflow', () => {
    const config = configOf() as unknown as { config: Record<string, unknown> };
    config.config['deep'] = JSON.parse(`${'['.repeat(3000)}${']'.repeat(3000)}`);
    const r = runChild('model', write('deep.keras', archive([], stored('config.json', strToU8(JSON.stringify(config))))));
    expect(r.ok).toBe(false);
    expect(r.message).toMatch(/KerasFileError: .*config\.json nests objects and lists more than 100 deep/);
    expectBounded(r, '3000-deep config.json');
  }, 60_000);
});

describe('hostile weights files', () => {
  /** The fixture's weights file with extra datasets of a declared (never written) shape. */
  async function withBigDatasets(paths: string[], shape: number[]): Promise<Uint8Array> {
    const h5 = await import('h5wasm');
    await h5.ready;
    const FS = h5.FS as unknown as { writeFile(p: string, d: Uint8Array): void; readFile(p: string): Uint8Array; unlink(p: string): void };
    const name = `/hostile-${Math.random().toString(36).slice(2)}.h5`;
    FS.writeFile(name, readFileSync(join(FIXTURE_DIR, 'gqa_layer_v36.weights.h5')));
    const file = new h5.File(name, 'a');
    for (const path of paths) {
      const cut = path.lastIndexOf('/');
      let group = file as unknown as InstanceType<typeof h5.Group>;
      for (const part of path.slice(1, cut).split('/')) {
        group = (group.keys().includes(part) ? group.get(part) : group.create_group(part)) as InstanceType<typeof h5.Group>;
      }
      // Chunked and resized: the file stays small, reading it would allocate the full shape.
      const ds = group.create_dataset({
        name: path.slice(cut + 1), data: new Float32Array(1), shape: [1, 1], dtype: '<f',
        maxshape: [null, null], chunks: [256, 256],
      });
      ds.resize(shape);
    }
    file.close();
    const bytes = FS.readFile(name).slice();
    FS.unlink(name);
    return bytes;
  }

  test('an unused 12000x12000 dataset is never read; the weights load', async () => {
    const bytes = await withBigDatasets(['/extra/big', '/extra/big2'], [12000, 12000]);
    expect(bytes.length).toBeLessThan(1 << 20);
    const r = runChild('weights', write('unused_dataset.weights.h5', bytes));
    expect(r.message).toBe('');
    expect(r.ok).toBe(true);
    expectBounded(r, 'unused 12000x12000 datasets');
  }, 60_000);

  test('a weight with a huge shape is refused by its shape, before its data is read', async () => {
    const base = await withBigDatasets(['/layers/dense/vars/0'], [12000, 12000]);
    const r = runChild('weights', write('huge_weight.weights.h5', base));
    expect(r.ok).toBe(false);
    expect(r.message).toContain('/layers/dense/vars/0: unexpected weight (the model has no layer stored at /layers/dense)');
    expectBounded(r, 'unexpected 12000x12000 weight');
  }, 60_000);
});
