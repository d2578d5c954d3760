/**
 * Bool-mask key tiles in the WebAssembly kernel (wasm/masks.ts boolTileState): a key tile with no
 * allowed key for any row of a query tile is skipped, a tile where every key is allowed is not
 * masked. Key padding (trailing tiles skipped), masked middle tiles, per-row masks and masks with
 * strided keys, with and without causal bounds, on every path against the reference.
 */
import { afterAll, describe, test } from 'vitest';
import type { AttentionProblem, EngineMask } from '../../src/engine/index.js';
import { attentionReference, buildProblem, expectMatchesReference, makeEngines } from './helpers.js';

const engines = makeEngines();
afterAll(() => engines.forEach(({ engine }) => engine.dispose()));

/** (B, U or 1, T or 1, S) bool mask: allowed(b, u, t, j). */
function boolMask(shape: [number, number, number, number], allowed: (b: number, u: number, t: number, j: number) => boolean): EngineMask {
  const [B, U, T, S] = shape;
  const data = new Uint8Array(B * U * T * S);
  for (let b = 0; b < B; b++)
    for (let u = 0; u < U; u++)
      for (let t = 0; t < T; t++) for (let j = 0; j < S; j++) data[((b * U + u) * T + t) * S + j] = allowed(b, u, t, j) ? 1 : 0;
  return { kind: 'bool', data, shape };
}

function problem(G: number, H: number, T: number, S: number, causal: boolean, seed: number): AttentionProblem {
  return buildProblem({
    B: 2, T, S, V: 2, G, H, extraCapacity: 0, causal, offset: 0, window: 0,
    maskKind: 'none', maskDims: [false, false, false, false], density: 1, magnitude: 1, probs: false, seed,
  });
}

describe('bool-mask key tiles', () => {
  test('key padding: trailing key tiles with no allowed key are skipped, results unchanged', () => {
    for (const [G, H, T, S, causal] of [[7, 64, 40, 300, false], [4, 80, 70, 260, true], [1, 96, 33, 129, false]] as const) {
      const base = problem(G, H, T, S, causal, G * 13 + H);
      const U = 2 * G;
      const lengths = [S - 150, S - 64];
      for (const mask of [
        boolMask([2, 1, 1, S], (b, _u, _t, j) => j < lengths[b]!),
        boolMask([2, 1, T, S], (b, _u, t, j) => j < lengths[b]! - (t % 3)),
        boolMask([2, U, 1, S], (b, u, _t, j) => j < lengths[b]! - 5 * u),
      ]) {
        const p = { ...base, mask };
        const ref = attentionReference(p);
        for (const { name, engine } of engines) expectMatchesReference(engine.attention(p), ref, `${name} padding G=${G} H=${H} ${mask.shape}`);
      }
    }
  });

  test('masked middle tiles, fully allowed tiles, rows whose whole tile range is masked, probabilities', () => {
    const S = 260;
    const base = problem(2, 64, 50, S, false, 5);
    for (const [what, allowed] of [
      ['middle tiles masked', (_b: number, _u: number, _t: number, j: number) => j < 64 || j >= 192],
      ['every key allowed', () => true],
      ['some rows see nothing', (_b: number, _u: number, t: number, j: number) => t % 4 !== 0 && (j + t) % 5 !== 0],
      ['one allowed key per tile', (_b: number, _u: number, t: number, j: number) => j % 64 === t % 64],
    ] as const) {
      for (const probs of [false, true]) {
        const p = { ...base, mask: boolMask([2, 1, 50, S], allowed), returnProbabilities: probs };
        const ref = attentionReference(p);
        for (const { name, engine } of engines) expectMatchesReference(engine.attention(p), ref, `${name} ${what} probs=${probs}`);
      }
    }
  });
});
