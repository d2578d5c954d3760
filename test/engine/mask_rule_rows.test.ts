// findRowsWithNoAllowedKey (the fast row search the engines use) against the definition: a row
// has no allowed key when isKeyAllowed is false for every key. Masks broadcast over any subset of
// (B, U, T, S), with causal bands, windows and query offsets.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { findRowsWithNoAllowedKey, isKeyAllowed, type MaskRuleInput } from '../../src/engine/mask-rule.js';

describe('findRowsWithNoAllowedKey', () => {
  it('equals a key-by-key search over isKeyAllowed', () => {
    fc.assert(
      fc.property(
        fc.record({
          B: fc.integer({ min: 1, max: 3 }), U: fc.integer({ min: 1, max: 4 }), T: fc.integer({ min: 1, max: 9 }),
          S: fc.integer({ min: 1, max: 12 }), causal: fc.boolean(), window: fc.constantFrom(0, 0, 1, 2, 5),
          p0: fc.constantFrom(0, 0, 1, 4), dims: fc.tuple(fc.boolean(), fc.boolean(), fc.boolean(), fc.boolean()),
          density: fc.constantFrom(0, 0.2, 0.6, 1), withMask: fc.boolean(), seed: fc.integer({ min: 1, max: 1 << 30 }),
        }),
        (r) => {
          let mask: MaskRuleInput['mask'] = null;
          if (r.withMask) {
            const shape = [r.B, r.U, r.T, r.S].map((d, i) => (r.dims[i] ? d : 1)) as [number, number, number, number];
            const n = shape[0] * shape[1] * shape[2] * shape[3];
            let s = r.seed;
            const data = new Uint8Array(n).map(() => {
              s = (Math.imul(s, 1103515245) + 12345) >>> 0;
              return s / 2 ** 32 < r.density ? 1 : 0;
            });
            const strides: [number, number, number, number] = [
              shape[0] === 1 ? 0 : shape[1] * shape[2] * shape[3],
              shape[1] === 1 ? 0 : shape[2] * shape[3],
              shape[2] === 1 ? 0 : shape[3],
              shape[3] === 1 ? 0 : 1,
            ];
            mask = { kind: 'bool', data, shape, strides };
          }
          const p: MaskRuleInput = { B: r.B, U: r.U, T: r.T, S: r.S, causal: r.causal, window: r.window, p0: r.p0, mask };
          const want: number[] = [];
          for (let b = 0; b < r.B; b++) {
            for (let u = 0; u < r.U; u++) {
              for (let t = 0; t < r.T; t++) {
                let any = false;
                for (let j = 0; j < r.S && !any; j++) any = isKeyAllowed(p, b, u, t, j);
                if (!any) want.push((b * r.U + u) * r.T + t);
              }
            }
          }
          expect(findRowsWithNoAllowedKey(p)).toEqual(want);
        },
      ),
      { numRuns: 400, seed: 20261201 },
    );
  });
});
