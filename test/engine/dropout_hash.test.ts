import { describe, expect, it } from 'vitest';
import {
  dropoutHash,
  dropoutKeepScale,
  dropoutKey,
  dropoutRowFactors,
  dropoutThreshold,
  isDropped,
  mix32,
} from '../../src/engine/dropout_hash.js';

describe('dropout hash (shared contract)', () => {
  it('mix32 gives the contract values (computed independently with arbitrary-precision integers)', () => {
    expect([0, 1, 2, 0xdeadbeef, 0xffffffff].map(mix32)).toEqual([0, 2261973619, 229111015, 707447538, 2578835075]);
  });

  it('the full hash gives the contract values', () => {
    const cases: Array<[number, number, number, number, number, number]> = [
      [0, 0, 0, 0, 0, 0],
      [1, 0, 0, 0, 0, 3992525086],
      [42, 1, 2, 3, 4, 1300330290],
      [0xffffffff, 7, 13, 1023, 2047, 182624308],
    ];
    for (const [seed, b, u, i, j, want] of cases) expect(dropoutHash(dropoutKey(seed), b, u, i, j)).toBe(want);
  });

  it('threshold and keep scale follow the contract', () => {
    expect(dropoutThreshold(0)).toBe(0);
    expect(dropoutThreshold(0.1)).toBe(1677721);
    expect(dropoutThreshold(0.5)).toBe(8388608);
    expect(dropoutKeepScale(0.1)).toBe(Math.fround(1 / Math.fround(0.9)));
    expect(dropoutKeepScale(0)).toBe(1);
  });

  it('rate 0 never drops', () => {
    const key = dropoutKey(5);
    for (let j = 0; j < 1000; j++) expect(isDropped(key, 0, 1, 2, j, 0)).toBe(false);
  });

  it('keeps each probability with rate 1 - p within statistical bounds (5 sigma), for several rates and seeds', () => {
    for (const rate of [0.1, 0.3, 0.5, 0.9]) {
      for (const seed of [0, 1, 12345, 0xfffffffe]) {
        const key = dropoutKey(seed);
        const t = dropoutThreshold(rate);
        const n = 2 * 8 * 16 * 64;
        let dropped = 0;
        for (let b = 0; b < 2; b++)
          for (let u = 0; u < 8; u++)
            for (let i = 0; i < 16; i++) for (let j = 0; j < 64; j++) if (isDropped(key, b, u, i, j, t)) dropped++;
        const sigma = Math.sqrt(n * rate * (1 - rate));
        expect(Math.abs(dropped - n * rate)).toBeLessThan(5 * sigma);
      }
    }
  });

  it('neighbouring keys are not correlated (pairs of consecutive decisions)', () => {
    const key = dropoutKey(99);
    const t = dropoutThreshold(0.5);
    let both = 0;
    const n = 20000;
    for (let j = 0; j < n; j++) if (isDropped(key, 0, 0, 0, j, t) && isDropped(key, 0, 0, 0, j + 1, t)) both++;
    expect(Math.abs(both - n / 4)).toBeLessThan(5 * Math.sqrt(n * 0.25 * 0.75));
  });

  it('different seeds give different patterns; the row helper agrees with isDropped', () => {
    const row = new Float32Array(256);
    dropoutRowFactors(row, dropoutKey(3), 0.4, 1, 2, 3);
    const t = dropoutThreshold(0.4);
    let differ = 0;
    for (let j = 0; j < 256; j++) {
      expect(row[j]).toBe(isDropped(dropoutKey(3), 1, 2, 3, j, t) ? 0 : dropoutKeepScale(0.4));
      if (isDropped(dropoutKey(3), 1, 2, 3, j, t) !== isDropped(dropoutKey(4), 1, 2, 3, j, t)) differ++;
    }
    expect(differ).toBeGreaterThan(60);
  });
});
