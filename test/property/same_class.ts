/**
 * Helpers of the non-finite property tests: injecting values, and comparing results that may hold NaN
 * or ±Inf (the class of every element, NaN, +Inf, -Inf or finite, must match, and finite values agree
 * within `tolerance` relative to the largest finite value of their row of `row` elements, at least 1).
 */

/** 'nan' | '+inf' | '-inf' | 'finite'. */
export function numberClass(x: number): string {
  return Number.isNaN(x) ? 'nan' : x === Infinity ? '+inf' : x === -Infinity ? '-inf' : 'finite';
}

/** Null when `got` matches `want` (same classes, finite values within tolerance), else the first mismatch. */
export function compareSameClass(got: Float32Array, want: Float32Array, row: number, tolerance: number): string | null {
  for (let r = 0; r < want.length; r += row) {
    let scale = 1;
    for (let i = r; i < r + row; i++) if (Number.isFinite(want[i]!)) scale = Math.max(scale, Math.abs(want[i]!));
    for (let i = r; i < r + row; i++) {
      if (numberClass(got[i]!) !== numberClass(want[i]!)) return `element ${i}: got ${got[i]}, expected ${want[i]}`;
      if (Number.isFinite(want[i]!) && !(Math.abs(got[i]! - want[i]!) <= tolerance * scale)) return `element ${i}: got ${got[i]}, expected ${want[i]}`;
    }
  }
  return null;
}

/** Writes each injection `[position in [0, 1), value]` into the named array (null: none). */
export function injectValues<K extends string>(
  targets: Record<K, Float32Array>,
  injections: Partial<Record<K, readonly [number, number] | null>>,
): void {
  for (const [name, injection] of Object.entries(injections) as [K, readonly [number, number] | null][]) {
    if (injection == null) continue;
    const a = targets[name];
    a[Math.floor(injection[0] * a.length)] = injection[1];
  }
}

/** Counts results holding a non-finite value, and those mixing finite and non-finite values. */
export function countClasses(seen: { nonFinite: number; mixed: number }, values: Float32Array): void {
  if (values.some((x) => !Number.isFinite(x))) {
    seen.nonFinite++;
    if (values.some(Number.isFinite)) seen.mixed++;
  }
}
