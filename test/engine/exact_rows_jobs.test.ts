/**
 * The WebAssembly kernel reports each query row's max |Q| while it packs the query; the host's
 * exact-row bounds (src/engine/exact-rows.ts) use it instead of scanning the query. These cases cut
 * the problem into many jobs (small staging budgets: row blocks, groups per job, key chunks), put a
 * huge or NaN query row in a late block, and check that exactly the reference's rows follow.
 */
import { describe, expect, test } from 'vitest';
import type { AttentionProblem } from '../../src/engine/index.js';
import { findExactRows } from '../../src/engine/exact-rows.js';
import { normalizeProblem } from '../../src/engine/problem.js';
import { attentionReference, disposedAfterAll, expectSameClassAndClose, randomArray } from './helpers.js';

const engine = disposedAfterAll();
const engines = [
  engine({ threads: 2, testing: { stagingBytes: 3000 } }),
  engine({ threads: 1, testing: { stagingBytes: 20000 } }),
  engine({ sharedMemory: false, testing: { stagingBytes: 64 } }),
  engine({ threads: 2 }),
];

describe('exact rows from the kernel-measured query magnitudes', () => {
  const [B, T, S, U, V, H] = [2, 37, 41, 6, 2, 12];
  // Injections (batch, query row, query head, element, value): logits far beyond the masked-key
  // limit (a masked key then carries weight in Keras), and a NaN.
  const injections: Array<[number, number, number, number, number]> = [
    [1, 30, 5, 11, 3e10],
    [0, 33, 2, 0, Number.NaN],
    [1, 2, 0, 7, -2e10],
  ];

  for (const [b, t, u, h, value] of injections) {
    test(`query (${b}, ${t}, ${u}, ${h}) = ${value}, causal and a bool mask, every staging plan`, () => {
      const query = randomArray(B * T * U * H, 11);
      query[((b * T + t) * U + u) * H + h] = value;
      // Key 38 is masked for this row (causal: the row sees keys <= t + 4; bool: every key 5i + 3) and
      // lines up with the huge element, so Keras's fround(s - 1e9) gives it the row's whole weight.
      const key = randomArray(B * S * V * H, 12, 0.1);
      key[((b * S + 38) * V + Math.floor(u / (U / V))) * H + h] = Math.sign(value) || 1;
      const mask = new Uint8Array(B * S).map((_, i) => (i % 5 === 3 ? 0 : 1));
      for (const extra of [{ causal: true, queryOffset: S - T }, { mask: { kind: 'bool' as const, data: mask, shape: [B, 1, 1, S] as [number, number, number, number] } }]) {
        const problem: AttentionProblem = {
          batch: B, queryLength: T, keyLength: S, numQueryHeads: U, numKeyValueHeads: V, headDim: H,
          query, key, value: randomArray(B * S * V * H, 13), ...extra,
        };
        // The row is one the host must compute exactly (else this case tests nothing).
        const exact = findExactRows(normalizeProblem('test', problem));
        expect(exact).toContain((b * U + u) * T + t);
        const ref = attentionReference(problem);
        for (const e of engines) expectSameClassAndClose(e.attention(problem).output, ref.output, H, `${JSON.stringify(Object.keys(extra))} ${e.threads} thread(s)`);
      }
    });
  }
});
