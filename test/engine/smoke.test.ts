import { test, expect } from 'vitest';
import { createAttentionEngineSync, attentionReference, createJsEngine } from '../../src/engine/index.js';
function rnd(n: number, s = 1) { const a = new Float32Array(n); for (let i = 0; i < n; i++) a[i] = (Math.random() * 2 - 1) * s; return a; }
test('smoke', () => {
  const engines = [createAttentionEngineSync({ threads: 2 }), createAttentionEngineSync({ threads: 1 }), createJsEngine()];
  for (const [B, T, S, U, V, H, causal] of [[1, 5, 7, 4, 2, 8, false], [2, 70, 130, 6, 2, 5, true], [1, 1, 600, 8, 1, 16, false], [1,3,3,1,1,1,true]] as const) {
    const pr = { batch: B, queryLength: T, keyLength: S, numQueryHeads: U, numKeyValueHeads: V, headDim: H,
      query: rnd(B * T * U * H), key: rnd(B * S * V * H), value: rnd(B * S * V * H), causal, returnProbabilities: true };
    const ref = attentionReference(pr);
    for (const e of engines) {
      const r = e.attention(pr);
      let err = 0; for (let i = 0; i < ref.output.length; i++) err = Math.max(err, Math.abs(r.output[i] - ref.output[i]));
      let perr = 0; for (let i = 0; i < ref.probabilities!.length; i++) perr = Math.max(perr, Math.abs(r.probabilities![i] - ref.probabilities![i]));
      console.log(e.kind, e.threads, B, T, S, U, V, H, err, perr);
      expect(err).toBeLessThan(1e-5);
    }
  }
});
