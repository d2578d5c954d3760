import { defineConfig } from 'vitest/config';

/**
 * Test files run a second time with relaxed SIMD on (Node 20 needs the flag; Node >= 22 has it by
 * default): the engine then runs the kernel's relaxed-SIMD build (fused multiply-add), checked
 * against the same references and tolerances as the plain SIMD128 build in the first run.
 */
const RELAXED_SIMD_FILES = [
  'test/engine/paths.test.ts',
  'test/engine/masking.test.ts',
  'test/engine/non_finite.test.ts',
  'test/engine/fully_masked_oracle.test.ts',
  'test/engine/backward.test.ts',
  'test/engine/threads.test.ts',
  'test/engine/mask_tiles.test.ts',
  'test/engine/kernel_exp.test.ts',
  'test/engine/tile_max.test.ts',
  'test/op/fused.test.ts',
  'test/layer/golden.test.ts',
];

/** Node 20 and 21 need the flag; later Node has relaxed SIMD on by default (and may drop the flag). */
const RELAXED_SIMD_EXEC_ARGV = Number(process.versions.node.split('.')[0]) < 22 ? ['--experimental-wasm-relaxed-simd'] : [];

export default defineConfig({
  test: {
    setupFiles: ['test/setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // tfjs keeps one global engine per process; files run in separate forks.
    pool: 'forks',
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: { name: 'node', include: ['test/**/*.test.ts'], exclude: ['test/browser/**', 'node_modules/**'] },
      },
      {
        extends: true,
        test: {
          name: 'relaxed-simd',
          include: RELAXED_SIMD_FILES,
          execArgv: RELAXED_SIMD_EXEC_ARGV,
          env: { GQA_EXPECT_KERNEL: 'wasm-relaxed-simd' },
        },
      },
    ],
  },
});
