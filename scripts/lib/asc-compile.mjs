// Compiles one AssemblyScript entry file to WebAssembly bytes in memory (no files written): used by
// scripts/build-engine.mjs (the engine's kernels) and bench/lib/ceilings.mjs (the GEMM ceiling).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import asc from 'assemblyscript/asc';

/** The flag that turns relaxed SIMD on: `madd` in wasm/simd.ts becomes f32x4.relaxed_madd. */
export const RELAXED_SIMD_FLAGS = ['--enable', 'relaxed-simd'];

/** Compiles `source` (a path) with the asc command-line `flags`; throws with asc's messages on failure. */
export async function compileAssemblyScript(source, flags) {
  let wasm = null;
  const stderr = [];
  const result = await asc.main([source, '--outFile', 'out.wasm', ...flags], {
    readFile: async (name, baseDir) => {
      try {
        return await readFile(join(baseDir, name), 'utf8');
      } catch {
        return null;
      }
    },
    writeFile: (name, contents) => {
      if (name.endsWith('.wasm')) wasm = contents;
    },
    listFiles: () => [],
    stdout: { write: () => true },
    stderr: {
      write: (s) => {
        stderr.push(String(s));
        return true;
      },
    },
  });
  if (result.error || wasm == null) {
    throw new Error(`AssemblyScript compilation of ${source} failed: ${result.error ?? 'no output'}\n${stderr.join('')}`);
  }
  return Buffer.from(wasm);
}
