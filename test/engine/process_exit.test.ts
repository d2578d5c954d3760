/**
 * A Node process that used the threaded engine exits by itself (idle workers must not keep it
 * alive), and its workers start under `node --input-type=module -e`, whose flag they must not
 * inherit, quickly. Runs the built package (`npm test` builds it first).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

test('under --input-type=module the default engine starts both threads in < 2 s and the process exits', () => {
  const entry = join(root, 'dist', 'engine', 'index.js');
  expect(existsSync(entry), 'dist is built (npm run build)').toBe(true);
  // Two cores whatever the machine has, so that the expected thread count is known.
  const script = `
    process.getBuiltinModule('node:os').availableParallelism = () => 2;
    const { getDefaultEngine } = await import(${JSON.stringify(entry)});
    const t0 = performance.now();
    const e = getDefaultEngine();
    const ms = performance.now() - t0;
    const q = new Float32Array(2 * 4 * 8).fill(0.5);
    const kv = new Float32Array(2 * 16 * 2 * 8).fill(0.25);
    e.attention({ batch: 2, queryLength: 1, keyLength: 16, numQueryHeads: 4, numKeyValueHeads: 2, headDim: 8,
                  query: q, key: kv, value: kv });
    console.log(e.kind + ' ' + e.threads + ' ' + Math.round(ms));`;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { timeout: 20_000, encoding: 'utf8' });
  expect(run.error, 'did not time out').toBeUndefined();
  expect(run.status, run.stderr).toBe(0);
  const [kind, threads, ms] = run.stdout.trim().split(' ');
  expect(`${kind} ${threads}`).toBe('wasm 2');
  expect(Number(ms), 'engine creation time in ms').toBeLessThan(2000);
  expect(run.stderr).not.toMatch(/attention engine:/);
});
