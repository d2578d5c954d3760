/**
 * Thread counts: validation, the MAX_THREADS cap, many-core defaults, and worker start-up under any
 * exec flags. The many-thread cases run the built package (`npm test` builds it first) in a child
 * process, so that the process is seen to exit by itself.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test, vi } from 'vitest';
import { createAttentionEngine, createAttentionEngineSync, type AttentionEngine } from '../../src/engine/index.js';
import { MAX_THREADS } from '../../src/engine/wasm/generated/interface.js';
import { attentionReference, buildProblem, expectMatchesReference } from './helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const entry = join(root, 'dist', 'engine', 'index.js');

const created: AttentionEngine[] = [];
afterAll(() => created.forEach((e) => e.dispose()));

/**
 * Runs `body` in a fresh Node process after `prelude` (e.g. an os override), with `engine` bound
 * from the built package; the script prints one JSON line: the engine's kind and threads, the
 * largest difference from the reference, the warnings, the creation time.
 */
function runChild(prelude: string, create: string, flags: string[] = []): { status: number | null; result: Record<string, unknown>; stderr: string } {
  expect(existsSync(entry), 'dist is built (npm run build)').toBe(true);
  const script = `
    ${prelude}
    const warnings = [];
    console.warn = (m) => warnings.push(String(m));
    const api = await import(${JSON.stringify(entry)});
    const t0 = performance.now();
    const engine = ${create};
    const createMs = performance.now() - t0;
    const rand = (n, s) => { const a = new Float32Array(n); let x = s; for (let i = 0; i < n; i++) { x = (Math.imul(x, 1103515245) + 12345) >>> 0; a[i] = x / 2 ** 31 - 1; } return a; };
    const B = 2, T = 33, S = 700, U = 8, V = 2, H = 16;
    const p = { batch: B, queryLength: T, keyLength: S, numQueryHeads: U, numKeyValueHeads: V, headDim: H,
                query: rand(B * T * U * H, 1), key: rand(B * S * V * H, 2), value: rand(B * S * V * H, 3), causal: true };
    const out = engine.attention(p).output;
    const ref = api.attentionReference(p).output;
    let maxError = 0;
    for (let i = 0; i < out.length; i++) maxError = Math.max(maxError, Math.abs(out[i] - ref[i]));
    console.log(JSON.stringify({ kind: engine.kind, threads: engine.threads, maxError, warnings, createMs }));`;
  const run = spawnSync(process.execPath, [...flags, '--input-type=module', '-e', script], { timeout: 120_000, encoding: 'utf8' });
  expect(run.error, 'the child process did not time out').toBeUndefined();
  const line = run.stdout.trim().split('\n').pop() ?? '';
  return { status: run.status, result: line.startsWith('{') ? (JSON.parse(line) as Record<string, unknown>) : {}, stderr: run.stderr };
}

describe('options.threads is validated', () => {
  test.each([0, -3, NaN, 2.5, Infinity, '2', null])('threads = %s is a clear error naming the argument', (threads) => {
    const options = { threads } as unknown as { threads: number };
    expect(() => createAttentionEngineSync(options)).toThrow(
      /^createAttentionEngineSync: argument `options.threads` must be a positive integer .*; received /,
    );
    return expect(createAttentionEngine(options)).rejects.toThrow(/^createAttentionEngine: argument `options.threads` must be a positive integer/);
  });

  test('the message shows what was received', () => {
    expect(() => createAttentionEngineSync({ threads: 0 })).toThrow(/received 0\.$/);
    expect(() => createAttentionEngineSync({ threads: -3 })).toThrow(/received -3\.$/);
    expect(() => createAttentionEngineSync({ threads: NaN })).toThrow(/received NaN\.$/);
  });
});

describe('thread counts above the maximum', () => {
  test(`an explicit count above MAX_THREADS (${MAX_THREADS}) is capped with one warning`, () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    // Without shared memory the engine is single-threaded: the cap and its message still apply.
    const e = createAttentionEngineSync({ threads: 1000, sharedMemory: false });
    created.push(e);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0]![0])).toMatch(new RegExp(`options.threads = 1000 is capped at ${MAX_THREADS} \\(MAX_THREADS`));
    const p = buildProblem({
      B: 1, T: 9, S: 40, V: 2, G: 2, H: 8, extraCapacity: 0, causal: true, offset: 0, window: 0,
      maskKind: 'none', maskDims: [false, false, false, false], density: 1, magnitude: 1, probs: false, seed: 4,
    });
    expectMatchesReference(e.attention(p), attentionReference(p), 'capped engine');
    warn.mockRestore();
  });

  test(`${MAX_THREADS} threads are honoured: a default engine on a ${MAX_THREADS}-core machine runs on its workers, and the process exits`, () => {
    const { status, result, stderr } = runChild(
      `process.getBuiltinModule('node:os').availableParallelism = () => ${MAX_THREADS};`,
      'api.getDefaultEngine()',
    );
    expect(status, stderr).toBe(0);
    expect(result).toMatchObject({ kind: 'wasm', threads: MAX_THREADS, warnings: [] });
    expect(result.maxError as number).toBeLessThan(1e-5);
  }, 180_000);

  test('256 threads (explicit) are capped at MAX_THREADS with a warning, right results, the process exits', () => {
    const explicit = runChild('', 'api.createAttentionEngineSync({ threads: 256 })');
    expect(explicit.status, explicit.stderr).toBe(0);
    expect(explicit.result).toMatchObject({ kind: 'wasm', threads: MAX_THREADS });
    expect(explicit.result.warnings).toEqual([expect.stringMatching(/options.threads = 256 is capped at/)]);
    expect(explicit.result.maxError as number).toBeLessThan(1e-5);
  }, 240_000);
});

describe('worker start-up', () => {
  test('a worker that throws while starting is seen at once, not after the start timeout', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const t0 = performance.now();
    // A long start timeout: only a failure seen as it happens ends creation well before it (the
    // bound is loose because this host may be busy; timing belongs to the benchmarks).
    const e = createAttentionEngineSync({ threads: 3, workerStartTimeoutMs: 60_000, testing: { workerSource: 'throw new Error("boom at start")' } });
    const ms = performance.now() - t0;
    created.push(e);
    expect(e.threads).toBe(1);
    expect(ms).toBeLessThan(20_000);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0]![0])).toMatch(/attention engine: worker \d failed to start; continuing on fewer threads/);
    warn.mockRestore();
  });

  test('a worker that exits while starting is seen at once', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const t0 = performance.now();
    const e = createAttentionEngineSync({ threads: 2, workerStartTimeoutMs: 60_000, testing: { workerSource: 'process.exit(3)' } });
    const ms = performance.now() - t0;
    created.push(e);
    expect(e.threads).toBe(1);
    expect(ms).toBeLessThan(20_000);
    warn.mockRestore();
  });

  test('workers start under exec flags that make eval\'d code an ES module', () => {
    // runChild evaluates its script with --input-type=module; workers must not inherit that.
    for (const flags of [[], ['--experimental-default-type=module']]) {
      const { status, result, stderr } = runChild('', 'api.createAttentionEngineSync({ threads: 2 })', flags);
      expect(status, stderr).toBe(0);
      expect(result).toMatchObject({ kind: 'wasm', threads: 2, warnings: [] });
    }
  });
});
