// The WebAssembly kernels' causal/window band (wasm/masks.ts: lowAllowed/highAllowed, used by the
// forward tiles and the backward) against the one TypeScript rule (src/engine/mask-rule.ts keyBand):
// exhaustively over small sizes, and at random large ones.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileKernelSync } from '../../src/engine/kernel-module.js';
import { keyBand } from '../../src/engine/mask-rule.js';
import { PARAMS_OFFSET, PARAM_SLOTS, ParamSlot } from '../../src/engine/wasm/generated/interface.js';

interface BandExports {
  bandLowAt(params: number, pos: number): number;
  bandHighAt(params: number, pos: number): number;
}

function kernelBand(): (S: number, causal: boolean, window: number, pos: number) => [number, number] {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536 });
  const exports = new WebAssembly.Instance(compileKernelSync(false), { env: { memory } }).exports as unknown as BandExports;
  const slots = new Int32Array(memory.buffer, PARAMS_OFFSET, PARAM_SLOTS);
  return (S, causal, window, pos) => {
    slots.fill(0);
    slots[ParamSlot.S] = S;
    slots[ParamSlot.causal] = causal ? 1 : 0;
    slots[ParamSlot.window] = window;
    return [exports.bandLowAt(PARAMS_OFFSET, pos), exports.bandHighAt(PARAMS_OFFSET, pos)];
  };
}

/** The keys 0..S-1 a band allows, as [first, last], or null when it allows none. */
function allowedKeys(S: number, [lo, hi]: [number, number]): [number, number] | null {
  const a = Math.max(0, lo);
  const b = Math.min(S - 1, hi);
  return a <= b ? [a, b] : null;
}

describe('the WebAssembly band equals the TypeScript mask rule', () => {
  const band = kernelBand();

  it('for every S <= 12, causal or not, window 0..S+2 and position -3..2S+3', () => {
    let checked = 0;
    for (let S = 1; S <= 12; S++) {
      for (const causal of [false, true]) {
        for (let window = 0; window <= S + 2; window++) {
          for (let pos = -3; pos <= 2 * S + 3; pos++) {
            const want = allowedKeys(S, keyBand({ S, causal, window }, pos));
            const got = allowedKeys(S, band(S, causal, window, pos));
            if (JSON.stringify(got) !== JSON.stringify(want)) {
              expect({ S, causal, window, pos, got }).toEqual({ S, causal, window, pos, got: want });
            }
            checked++;
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(4000);
  });

  it('at random large sizes (S up to 2^24, any window and position)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1 << 24 }),
        fc.boolean(),
        fc.nat(1 << 24),
        fc.integer({ min: -(1 << 24), max: 1 << 25 }),
        (S, causal, window, pos) => {
          expect(allowedKeys(S, band(S, causal, window, pos))).toEqual(allowedKeys(S, keyBand({ S, causal, window }, pos)));
        },
      ),
      { numRuns: 5000 },
    );
  });

  it('is monotone in the position, which the tiles rely on (a tile sees keys from its first row low to its last row high)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4096 }), fc.boolean(), fc.nat(4096), fc.nat(8192), fc.nat(64), (S, causal, window, pos, step) => {
        const [lo0, hi0] = band(S, causal, window, pos);
        const [lo1, hi1] = band(S, causal, window, pos + step);
        expect(lo1).toBeGreaterThanOrEqual(lo0);
        expect(hi1).toBeGreaterThanOrEqual(hi0);
      }),
      { numRuns: 2000 },
    );
  });
});
