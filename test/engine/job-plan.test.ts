/** planJobs: the pure job planning of the WebAssembly engine, without running a kernel. */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { KEY_TILE, planJobs, STAGE_IN_PLACE_QUERY_TILES, STAGING_BYTES, TASK_LIMIT, WHOLE_KEY_VALUE_BUDGETS, type PlanInput } from '../../src/engine/job-plan.js';

const base: PlanInput = {
  B: 1, T: 1, S: 4096, U: 32, V: 8, H: 128, G: 4, wantProbabilities: false,
  queryInPlace: false, keyInPlace: false, valueInPlace: false, sameKeyValue: false,
  threads: 4, stagingBytes: STAGING_BYTES,
};

describe('planJobs', () => {
  test('a decode step from an in-place cache splits its keys so every thread has tasks', () => {
    const plan = planJobs({ ...base, keyInPlace: true, valueInPlace: true });
    expect(plan.keyChunks).toBeGreaterThan(1);
    expect(plan.tasks).toBeGreaterThanOrEqual(4 * 4 - plan.tasksPerKeyChunk);
    expect(plan.groupsPerJob).toBe(8);
    expect(plan.stageKeyRows).toBe(false);
    expect(planJobs({ ...base, keyInPlace: true, valueInPlace: true, threads: 1 }).keyChunks).toBe(1);
  });

  test('probabilities: one job over every group, all query rows and all keys, key rows staged whole', () => {
    const plan = planJobs({ ...base, T: 300, S: 700, wantProbabilities: true });
    expect(plan).toMatchObject({ stageKeyRows: true, keysPerJob: 700, splitKeysAcrossJobs: false, groupsPerJob: 8, rowsPerJob: 300, keyChunks: 1 });
  });

  test('short queries over keys that exceed the budget stage key rows in chunks, reduced at the end', () => {
    const plan = planJobs({ ...base, B: 1, T: 2, S: 8192 });
    expect(plan.stageKeyRows).toBe(true);
    expect(plan.splitKeysAcrossJobs).toBe(true);
    expect(plan.keysPerJob).toBeLessThan(8192);
    expect(plan.chunksPerJob * plan.keyChunkLength).toBe(plan.keysPerJob);
  });

  test('long queries over large keys stage per group within WHOLE_KEY_VALUE_BUDGETS budgets, in blocks of query rows', () => {
    // 16 kv heads of 64: 2 MiB of key + value per group, 32 MiB in all (beyond the budgets).
    const plan = planJobs({ ...base, T: 4096, S: 4096, U: 64, V: 16, H: 64 });
    expect(plan.stageKeyRows).toBe(false);
    expect(plan.groupsPerJob).toBe(8);
    expect(plan.groupsPerJob * 4096 * 64 * 4 * 2).toBeLessThanOrEqual(WHOLE_KEY_VALUE_BUDGETS * STAGING_BYTES);
    expect(plan.rowsPerJob).toBeLessThan(4096);
    expect(plan.rowsPerJob % plan.tileRows).toBe(0);
  });

  test('long queries over key/value within WHOLE_KEY_VALUE_BUDGETS budgets stage every group per job, query rows in bulk blocks', () => {
    // (1, 2048, 8, 128) key and value: 8 MiB each, 16 MiB in all = 4 budgets.
    const plan = planJobs({ ...base, T: 2048, S: 2048 });
    expect(plan).toMatchObject({ stageKeyRows: false, groupsPerJob: 8, keyChunks: 1 });
    expect(plan.rowsPerJob * 32 * 128 * 8).toBeLessThanOrEqual(STAGING_BYTES);
    expect(plan.rowsPerJob % plan.tileRows).toBe(0);
    // One key more than the budgets hold: fewer groups per job.
    expect(planJobs({ ...base, T: 2048, S: 2049 }).groupsPerJob).toBe(7);
    // A decode step keeps half a budget of key/value (its key chunks).
    expect(planJobs({ ...base, T: 1, S: 2048 }).splitKeysAcrossJobs).toBe(true);
    expect(WHOLE_KEY_VALUE_BUDGETS * STAGING_BYTES).toBe(16 * 2 ** 20);
  });

  test('in-place key/value are read in place by a short query and staged per group for a long one', () => {
    const inPlace = { ...base, keyInPlace: true, valueInPlace: true };
    const decode = planJobs(inPlace);
    expect([decode.readKeyInPlace, decode.readValueInPlace]).toEqual([true, true]);
    // G = 4: 16 query rows per tile; STAGE_IN_PLACE_QUERY_TILES tiles and more are staged.
    const shortest = 16 * (STAGE_IN_PLACE_QUERY_TILES - 1) + 1;
    const short = planJobs({ ...inPlace, T: shortest - 1, S: 2048 });
    expect([short.readKeyInPlace, short.readValueInPlace, short.stageKeyRows]).toEqual([true, true, false]);
    const long = planJobs({ ...inPlace, T: shortest, S: 2048 });
    expect([long.readKeyInPlace, long.readValueInPlace, long.stageKeyRows]).toEqual([false, false, false]);
    expect(long.groupsPerJob * 2048 * 128 * 4 * 2).toBeLessThanOrEqual(WHOLE_KEY_VALUE_BUDGETS * STAGING_BYTES);
    // Only the array that lives in engine memory changes; the same array for key and value stays one.
    expect(planJobs({ ...base, keyInPlace: true, T: 2048, S: 2048 })).toMatchObject({ readKeyInPlace: false, readValueInPlace: false });
    expect(planJobs({ ...inPlace, sameKeyValue: true, T: 2048, S: 2048 })).toMatchObject({ readKeyInPlace: false, readValueInPlace: false });
    // Probabilities stage key rows whole; in-place arrays stay in place.
    expect(planJobs({ ...inPlace, T: 300, S: 700, wantProbabilities: true })).toMatchObject({ readKeyInPlace: true, readValueInPlace: true });
  });

  test('query rows in more than one block are pipelined, two blocks within one budget', () => {
    const plan = planJobs({ ...base, T: 2048, S: 2048 });
    expect(plan.pipelineRows).toBe(true);
    expect(2 * plan.rowsPerJob * 32 * 128 * 8).toBeLessThanOrEqual(STAGING_BYTES);
    expect(planJobs({ ...base, T: 64, S: 64 }).pipelineRows).toBe(false);
    // Keys split across jobs (several jobs per block): not pipelined.
    expect(planJobs({ ...base, T: 2, S: 8192 }).pipelineRows).toBe(false);
  });

  test('many groups: jobs are cut so each numbers fewer tasks than the counter holds, with or without probabilities', () => {
    for (const wantProbabilities of [false, true]) {
      const plan = planJobs({ ...base, B: 65536, V: 16, U: 16, G: 1, H: 1, T: 1, S: 1, wantProbabilities });
      expect(plan.tasks).toBeLessThan(TASK_LIMIT);
      expect(plan.groupsPerJob).toBeLessThan(65536 * 16);
      expect(plan.rowsPerJob).toBe(1);
    }
    // Without probabilities even one group's query rows are cut.
    const long = planJobs({ ...base, B: 1, V: 1, U: 1, G: 1, T: 64 * TASK_LIMIT, S: 1, keyInPlace: true, valueInPlace: true, queryInPlace: true });
    expect(long.tasks).toBeLessThan(TASK_LIMIT);
    expect(long.rowsPerJob).toBeLessThan(64 * TASK_LIMIT);
  });

  test('a single group whose probabilities need more tasks than the counter holds is a clear error before any work', () => {
    expect(() => planJobs({ ...base, B: 1, V: 1, U: 1, G: 1, T: 64 * TASK_LIMIT, S: 1, wantProbabilities: true })).toThrow(
      /AttentionEngine\.attention: argument `problem` is too large \(\d+ tasks, limit 1048575\)/,
    );
  });

  test('invariants over random sizes: chunks cover the keys, tiles cover the rows, budgets hold', () => {
    fc.assert(
      fc.property(
        fc.record({
          B: fc.integer({ min: 1, max: 4 }), T: fc.integer({ min: 1, max: 3000 }), S: fc.integer({ min: 1, max: 20000 }),
          V: fc.integer({ min: 1, max: 8 }), G: fc.constantFrom(1, 2, 7), H: fc.integer({ min: 1, max: 256 }),
          want: fc.boolean(), qIn: fc.boolean(), kIn: fc.boolean(), vIn: fc.boolean(), same: fc.boolean(),
          threads: fc.integer({ min: 1, max: 64 }), staging: fc.constantFrom(6000, 1 << 16, 1 << 20, STAGING_BYTES),
        }),
        (r) => {
          const input: PlanInput = {
            B: r.B, T: r.T, S: r.S, U: r.V * r.G, V: r.V, H: r.H, G: r.G, wantProbabilities: r.want,
            queryInPlace: r.qIn, keyInPlace: r.kIn, valueInPlace: r.same ? r.kIn : r.vIn, sameKeyValue: r.same,
            threads: r.threads, stagingBytes: r.staging,
          };
          let plan: ReturnType<typeof planJobs>;
          try {
            plan = planJobs(input);
          } catch (e) {
            expect(String(e)).toMatch(/too large/);
            return;
          }
          expect(plan.tileRows).toBeGreaterThanOrEqual(1);
          expect(plan.tileRows * r.G).toBeLessThanOrEqual(Math.max(64, r.G));
          expect(plan.maxTileHeight % 4).toBe(0);
          expect(plan.keyChunkLength % KEY_TILE).toBe(0);
          expect(plan.keyChunks * plan.keyChunkLength).toBeGreaterThanOrEqual(r.S);
          expect((plan.keyChunks - 1) * plan.keyChunkLength).toBeLessThan(r.S);
          expect(plan.chunksPerJob).toBeGreaterThanOrEqual(1);
          expect(plan.chunksPerJob).toBeLessThanOrEqual(plan.keyChunks);
          expect(plan.groupsPerJob).toBeGreaterThanOrEqual(1);
          expect(plan.groupsPerJob).toBeLessThanOrEqual(r.B * r.V);
          expect(plan.rowsPerJob).toBeGreaterThanOrEqual(Math.min(r.T, plan.tileRows));
          expect(plan.rowsPerJob).toBeLessThanOrEqual(r.T);
          expect(plan.tasks).toBe(plan.tasksPerKeyChunk * plan.keyChunks);
          expect(plan.tasks).toBeLessThan(TASK_LIMIT);
          if (r.want) expect(plan.rowsPerJob).toBe(r.T);
          if (r.want) expect(plan).toMatchObject({ rowsPerJob: r.T, keyChunks: 1 });
          if (plan.splitKeysAcrossJobs) expect(plan.chunksPerJob * plan.keyChunkLength).toBe(plan.keysPerJob);
          else expect(plan.chunksPerJob).toBe(plan.keyChunks);
        },
      ),
      { numRuns: 300 },
    );
  });
});
