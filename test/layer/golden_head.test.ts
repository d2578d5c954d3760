/**
 * Keras 3.16 golden cases (sliding window, gate) through the eager contract, on cpu and wasm.
 * Rows with no allowed key keep Keras 3.6's numbers (additive masking) by design; current Keras gives
 * zeros there (explicit path) or uniform weights (fast path). Those rows are checked for the 3.6
 * behaviour instead, and every other row must match Keras 3.16.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, test } from 'vitest';
import { BACKENDS, useBackend } from '../helpers/backends.js';
import { expectClose } from '../helpers/close.js';
import { goldenCases, type GoldenCase } from '../helpers/golden.js';
import { runGoldenCase } from '../helpers/run_golden.js';

const cases = goldenCases('golden_head');

/** (b, t) pairs whose effective mask row is all false for some head (a mask batch of 1 broadcasts). */
function fullyMaskedRows(c: GoldenCase): Set<string> {
  const m = c.effective_attention_mask;
  const rows = new Set<string>();
  if (m == null) return rows;
  const [b, ...rest] = m.shape;
  const batch = c.expected.output.shape[0]!;
  const s = rest[rest.length - 1]!;
  const t = rest[rest.length - 2]!;
  const heads = rest.length === 3 ? rest[0]! : 1;
  for (let bi = 0; bi < b!; bi++)
    for (let hi = 0; hi < heads; hi++)
      for (let ti = 0; ti < t; ti++) {
        const base = ((bi * heads + hi) * t + ti) * s;
        if (m.data.slice(base, base + s).some(Boolean)) continue;
        for (let ob = 0; ob < batch; ob++) if (b === batch ? ob === bi : true) rows.add(`${ob},${ti}`);
      }
  return rows;
}

describe.each(BACKENDS)('Keras 3.16 golden cases on %s', (backend) => {
  beforeAll(() => useBackend(backend));

  test.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const got = runGoldenCase(c);
    const [b, t, dq] = c.expected.output.shape as [number, number, number];
    const masked = fullyMaskedRows(c);
    expect(masked.size > 0).toBe((c.fully_masked_rows_count_over_B_U_T ?? 0) > 0);
    const keep = (flat: ArrayLike<number>) => {
      const out: number[] = [];
      for (let bi = 0; bi < b; bi++)
        for (let ti = 0; ti < t; ti++)
          if (!masked.has(`${bi},${ti}`)) for (let d = 0; d < dq; d++) out.push(flat[(bi * t + ti) * dq + d]!);
      return out;
    };
    expectClose(keep(got.output), keep(c.expected.output.data as number[]), `${c.name} output rows with an allowed key`);
    if (c.expected.attention_scores) {
      const [, u, , s] = c.expected.attention_scores.shape as [number, number, number, number];
      const exp = c.expected.attention_scores.data as number[];
      for (let bi = 0; bi < b; bi++)
        for (let ui = 0; ui < u; ui++)
          for (let ti = 0; ti < t; ti++) {
            const base = ((bi * u + ui) * t + ti) * s;
            const row = Array.from(got.scores!.slice(base, base + s));
            if (masked.has(`${bi},${ti}`)) {
              // Keras 3.6: every logit is fround(s − 1e9); these small logits give uniform weights.
              expectClose(row, new Array(s).fill(1 / s), `${c.name} row with no allowed key (${bi},${ui},${ti})`);
              expect(exp.slice(base, base + s).every((x) => x === 0), 'Keras 3.16 gives zeros there').toBe(true);
            } else {
              expectClose(row, exp.slice(base, base + s), `${c.name} scores row (${bi},${ui},${ti})`);
            }
          }
    }
  });

  test('the gate adds gate/kernel and gate/bias between key and value', () => {
    const c = cases.find((x) => x.name === 'gate_bias')!;
    expect(c.weights.map((w) => w.name)).toEqual([
      'query/kernel', 'query/bias', 'key/kernel', 'key/bias', 'gate/kernel', 'gate/bias',
      'value/kernel', 'value/bias', 'attention_output/kernel', 'attention_output/bias',
    ]);
    const before = tf.memory().numTensors;
    runGoldenCase(c);
    expect(tf.memory().numTensors).toBe(before);
  });
});
