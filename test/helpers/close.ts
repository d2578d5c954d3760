/** Tolerance checks: |got − expected| ≤ atol + rtol·|expected| elementwise. */
import { expect } from 'vitest';

export interface Mismatch {
  index: number;
  got: number;
  expected: number;
}

export function worstMismatch(
  got: ArrayLike<number>,
  expected: ArrayLike<number>,
  atol = 1e-5,
  rtol = 1e-5,
): Mismatch | null {
  let worst: Mismatch | null = null;
  let worstExcess = 0;
  for (let i = 0; i < expected.length; i++) {
    const g = got[i]!;
    const e = expected[i]!;
    const excess = Math.abs(g - e) - (atol + rtol * Math.abs(e));
    if (!(excess <= 0) && (worst == null || !(excess <= worstExcess))) {
      worst = { index: i, got: g, expected: e };
      worstExcess = excess;
    }
  }
  return worst;
}

/** Asserts closeness with a message naming the first worst element. */
export function expectClose(
  got: ArrayLike<number>,
  expected: ArrayLike<number>,
  what: string,
  atol = 1e-5,
  rtol = 1e-5,
): void {
  expect(got.length, `${what}: length`).toBe(expected.length);
  const worst = worstMismatch(got, expected, atol, rtol);
  expect(worst, `${what}: worst element ${JSON.stringify(worst)}`).toBeNull();
}
