/**
 * Helpers shared by the GPU browser pages (page.ts, cache_tests.ts, bench.ts, decode_bench.ts): a
 * seeded random source, backend switching that asserts the backend, read-call counting and the
 * pages' log.
 */
import * as tf from '@tensorflow/tfjs-core';

/** The property tests' seeded uniform source on [0, 1) (mulberry32), so Node and browser draw alike. */
export { rng } from '../../property/random.js';

/** Switches to `name` and raises unless it is really active (tfjs may stay on another backend). */
export async function useBackend(name: string): Promise<void> {
  const ok = await tf.setBackend(name);
  await tf.ready();
  if (!ok || tf.getBackend() !== name) throw new Error(`backend ${name} did not initialise (got ${tf.getBackend()})`);
}

/** Counts the active backend's read/readSync calls (GPU→CPU reads) while `fn` runs. */
export async function countReads(fn: () => Promise<void> | void): Promise<number> {
  const be = tf.backend() as unknown as { read: (id: object) => Promise<unknown>; readSync: (id: object) => unknown };
  const { read, readSync } = be;
  let n = 0;
  be.read = function (this: unknown, id: object) { n++; return read.call(this, id); };
  be.readSync = function (this: unknown, id: object) { n++; return readSync.call(this, id); };
  try {
    await fn();
  } finally {
    be.read = read;
    be.readSync = readSync;
  }
  return n;
}

/** A page log: `log(line)` keeps the line (the runner prints them) and shows it in the page's #log. */
export function pageLog(): { lines: string[]; log: (line: string) => void } {
  const lines: string[] = [];
  return {
    lines,
    log: (line) => {
      lines.push(line);
      const el = document.getElementById('log');
      if (el) el.textContent += `${line}\n`;
    },
  };
}
