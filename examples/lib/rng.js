/**
 * A small seeded random generator (mulberry32), so that Node and the browser page draw the same
 * data and the same initial weights for the same seed.
 */
export function createRng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    /** Uniform in [0, 1). */
    next,
    /** Integer in [lo, hi). */
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo)),
    /** Uniform in [lo, hi). */
    uniform: (lo, hi) => lo + next() * (hi - lo),
    /** A random permutation of 0..n-1, first k entries. */
    sample(n, k) {
      const a = Array.from({ length: n }, (_, i) => i);
      for (let i = 0; i < k; i++) {
        const j = i + Math.floor(next() * (n - i));
        [a[i], a[j]] = [a[j], a[i]];
      }
      return a.slice(0, k);
    },
  };
}
