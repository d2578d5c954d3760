/**
 * A Node process that used the threaded engine exits by itself: idle workers must not keep it alive.
 * Runs the built package (`npm test` builds it first).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

test('the process exits after using the default engine with worker threads', () => {
  const entry = join(root, 'dist', 'engine', 'index.js');
  expect(existsSync(entry), 'dist is built (npm run build)').toBe(true);
  const script = `
    import { getDefaultEngine } from ${JSON.stringify(entry)};
    const e = getDefaultEngine();
    const q = new Float32Array(2 * 4 * 8).fill(0.5);
    const kv = new Float32Array(2 * 16 * 2 * 8).fill(0.25);
    e.attention({ batch: 2, queryLength: 1, keyLength: 16, numQueryHeads: 4, numKeyValueHeads: 2, headDim: 8,
                  query: q, key: kv, value: kv });
    console.log(e.kind + ' ' + e.threads);`;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { timeout: 20_000, encoding: 'utf8' });
  expect(run.error, 'did not time out').toBeUndefined();
  expect(run.status).toBe(0);
  expect(run.stdout.trim()).toMatch(/^wasm [12]$/);
});
