/**
 * Rows with no allowed key, checked against an oracle the engines do not use: every engine computes
 * such rows with the package's own per-row routine (src/engine/reference.ts), so comparing them with
 * `attentionReference` would be circular. Here they are compared with the test-only float64
 * implementation (`float64Attention`, written from the Keras 3.6 float32 rules), and the rows are
 * found by a loop written here.
 */
import fc from 'fast-check';
import { afterAll, expect, test } from 'vitest';
import type { AttentionProblem } from '../../src/engine/index.js';
import { expectClose } from '../helpers/close.js';
import { buildProblem, float64Attention, makeEngines, problemSpec } from './helpers.js';

const engines = makeEngines();
afterAll(() => engines.forEach(({ engine }) => engine.dispose()));

/** (b, u, t) of every row that sees no key: causal, window and bool mask, written out. */
function rowsWithNoAllowedKey(p: AttentionProblem): Array<[number, number, number]> {
  const rows: Array<[number, number, number]> = [];
  const m = p.mask;
  const shape = m?.shape ?? [1, 1, 1, 1];
  for (let b = 0; b < p.batch; b++)
    for (let u = 0; u < p.numQueryHeads; u++)
      for (let t = 0; t < p.queryLength; t++) {
        const pos = (p.queryOffset ?? 0) + t;
        let allowed = 0;
        for (let j = 0; j < p.keyLength; j++) {
          if (p.causal && j > pos) continue;
          if ((p.slidingWindow ?? 0) > 0 && Math.abs(pos - j) >= p.slidingWindow!) continue;
          if (m?.kind === 'bool') {
            const at = (((shape[0] === 1 ? 0 : b) * shape[1] + (shape[1] === 1 ? 0 : u)) * shape[2] + (shape[2] === 1 ? 0 : t)) * shape[3] + (shape[3] === 1 ? 0 : j);
            if (m.data[at] === 0) continue;
          }
          allowed++;
        }
        if (allowed === 0) rows.push([b, u, t]);
      }
  return rows;
}

test('every engine\'s rows with no allowed key match the independent float64 oracle', () => {
  let rowsChecked = 0;
  fc.assert(
    fc.property(
      problemSpec.map((sp) => ({ ...sp, maskKind: sp.maskKind === 'additive' ? ('bool' as const) : sp.maskKind, magnitude: 1, density: Math.min(sp.density, 0.5) })),
      (sp) => {
        const problem = buildProblem(sp);
        const rows = rowsWithNoAllowedKey(problem);
        if (rows.length === 0) return;
        const oracle = float64Attention(problem);
        const { queryLength: T, keyLength: S, numQueryHeads: U, headDim: H } = problem;
        for (const { name, engine } of engines) {
          const got = engine.attention(problem);
          for (const [b, u, t] of rows) {
            const o = ((b * T + t) * U + u) * H;
            expectClose(got.output.subarray(o, o + H), oracle.output.subarray(o, o + H), `${name} output row (${b},${u},${t}) ${JSON.stringify(sp)}`, 1e-5, 1e-5);
            if (oracle.probabilities) {
              const r = ((b * U + u) * T + t) * S;
              expectClose(got.probabilities!.subarray(r, r + S), oracle.probabilities.subarray(r, r + S), `${name} probabilities row (${b},${u},${t})`, 1e-6, 1e-5);
            }
          }
        }
        rowsChecked += rows.length;
      },
    ),
    { numRuns: 60, seed: 20261201 },
  );
  // The property must have met such rows (else it checked nothing).
  expect(rowsChecked).toBeGreaterThan(50);
});
