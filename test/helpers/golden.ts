/** Loading the Keras golden cases (test/data/golden*, produced by real Keras; see their index.json). */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const DATA_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'data');

export { layerArgs, toTensor, type GoldenCase, type JsonTensor } from './golden_case.js';
import type { GoldenCase } from './golden_case.js';

/** Every numeric case file in a golden folder (meta_* and index.json excluded). */
export function goldenCases(folder: 'golden' | 'golden_head'): GoldenCase[] {
  const dir = join(DATA_DIR, folder);
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json') && !f.startsWith('meta_') && f !== 'index.json' && f !== 'version_diffs.json')
    .sort()
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as GoldenCase);
}

export function readJson<T>(...parts: string[]): T {
  return JSON.parse(readFileSync(join(DATA_DIR, ...parts), 'utf8')) as T;
}

