/**
 * The Keras file support has its own entry point (`grouped-query-attention/keras`): the root entry
 * must not pull in h5wasm (about 15 MB) or fflate. Checked on the module graph esbuild resolves,
 * dynamic imports included.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { describe, expect, test } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

async function moduleGraph(entry: string): Promise<string[]> {
  const result = await build({
    entryPoints: [join(ROOT, entry)],
    bundle: true,
    write: false,
    metafile: true,
    platform: 'node',
    format: 'esm',
    logLevel: 'silent',
    external: ['@tensorflow/*'],
  });
  return Object.keys(result.metafile.inputs);
}

describe('entry points', () => {
  test('the root entry does not load h5wasm, fflate or the Keras file code', async () => {
    const inputs = await moduleGraph('src/index.ts');
    expect(inputs.some((p) => p.includes('src/layer/'))).toBe(true);
    expect(inputs.filter((p) => /h5wasm|fflate|src\/keras\//.test(p))).toEqual([]);
  });

  test('grouped-query-attention/keras loads them (and the root registrations)', async () => {
    const inputs = await moduleGraph('src/keras/index.ts');
    expect(inputs.some((p) => p.includes('node_modules/fflate'))).toBe(true);
    expect(inputs.some((p) => p.includes('node_modules/h5wasm'))).toBe(true);
    expect(inputs.some((p) => p.endsWith('src/index.ts'))).toBe(true);
  });

  test('package.json exports ./keras', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, unknown> };
    expect(pkg.exports['./keras']).toEqual({ types: './dist/keras/index.d.ts', default: './dist/keras/index.js' });
  });
});
