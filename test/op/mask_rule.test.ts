/**
 * The op's mask rule (src/op/mask_rule.ts, no tfjs) agrees with its tensor form (src/op/masks.ts):
 * the positional rule, the kind a mask takes, when rows with no allowed key can occur, and Keras's
 * rank expansion. On cpu and wasm.
 */
import * as fc from 'fast-check';
import { beforeAll, describe, expect, test } from 'vitest';
import { allowedByPosition, maskKindOf, maskShapeRank4, rowsMayHaveNoAllowedKey } from '../../src/op/mask_rule.js';
import { positionMask } from '../../src/op/masks.js';
import { BACKENDS, useBackend } from '../helpers/backends.js';

describe.each(BACKENDS)('mask rule on %s', (backend) => {
  beforeAll(() => useBackend(backend));

  test('allowedByPosition is the positional mask the op builds as a tensor (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 0, max: 5 }),
        fc.boolean(), fc.integer({ min: 0, max: 4 }),
        (t, s, queryOffset, causal, slidingWindow) => {
          const options = { causal, queryOffset, slidingWindow };
          const tensor = positionMask(t, s, options);
          const expected = Array.from({ length: t * s }, (_, k) =>
            allowedByPosition(queryOffset + Math.floor(k / s), k % s, options) ? 1 : 0);
          if (tensor == null) {
            expect(expected.every((x) => x === 1)).toBe(true);
          } else {
            expect(Array.from(tensor.dataSync())).toEqual(expected);
            tensor.dispose();
          }
        },
      ),
      { numRuns: 60, seed: 3 },
    );
  });
});

describe('mask rule (no tensors)', () => {
  test('the kind a mask takes: bool stays bool, numeric is additive unless a causal or window mask joins it', () => {
    const none = { causal: false, queryOffset: 0, slidingWindow: 0 };
    expect(maskKindOf(null, none)).toBe('none');
    expect(maskKindOf('bool', none)).toBe('bool');
    expect(maskKindOf('float32', none)).toBe('additive');
    expect(maskKindOf('int32', { ...none, causal: true })).toBe('bool');
    expect(maskKindOf('float32', { ...none, slidingWindow: 2 })).toBe('bool');
  });

  test('rows with no allowed key: possible with bool and positional masks, never with an additive mask', () => {
    const rows = (maskKind: 'none' | 'bool' | 'additive', causal: boolean, slidingWindow: number) =>
      rowsMayHaveNoAllowedKey({ maskKind, causal, slidingWindow });
    expect(rows('none', false, 0)).toBe(false);
    expect(rows('bool', false, 0)).toBe(true);
    expect(rows('none', true, 0)).toBe(true);
    expect(rows('none', false, 3)).toBe(true);
    expect(rows('additive', false, 0)).toBe(false);
  });

  test("Keras's rank expansion inserts axes at -3 and refuses what would enlarge the scores", () => {
    expect(maskShapeRank4([3, 5], [2, 4, 3, 5], 'f', 'm')).toEqual([1, 1, 3, 5]);
    expect(maskShapeRank4([2, 3, 5], [2, 4, 3, 5], 'f', 'm')).toEqual([2, 1, 3, 5]);
    expect(maskShapeRank4([2, 1, 5], [2, 4, 3, 5], 'f', 'm')).toEqual([2, 1, 1, 5]);
    expect(() => maskShapeRank4([2, 3, 6], [2, 4, 3, 5], 'f', 'm')).toThrow(
      /^f: m of shape \[2,3,6\] \(as \[2,1,3,6\]\) does not broadcast to the attention scores \(B, U, T, S\) = \[2,4,3,5\]/);
    expect(() => maskShapeRank4([5], [2, 4, 3, 5], 'f', 'm')).toThrow(/m must have rank 2, 3 or 4.*received shape \[5\]/);
  });
});
