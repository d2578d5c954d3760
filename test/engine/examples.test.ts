/** The documented examples of the engine API run as written. */
import { describe, expect, test } from 'vitest';
import {
  attentionReference,
  createAttentionEngine,
  createAttentionEngineSync,
  createJsEngine,
  defaultEngineReady,
  defaultScale,
  getDefaultEngine,
} from '../../src/engine/index.js';

describe('documented examples', () => {
  test('createAttentionEngine: constant values give constant outputs', async () => {
    const engine = await createAttentionEngine({ threads: 2 });
    const { output } = engine.attention({
      batch: 1, queryLength: 1, keyLength: 2, numQueryHeads: 2, numKeyValueHeads: 1, headDim: 4,
      query: new Float32Array(8).fill(1), key: new Float32Array(8).fill(1), value: new Float32Array(8).fill(2),
    });
    expect(Array.from(output)).toEqual([2, 2, 2, 2, 2, 2, 2, 2]);
    engine.dispose();
    expect(() => engine.attention({} as never)).toThrow(/disposed/);
  });

  test('getDefaultEngine is ready synchronously in Node and is the same engine', async () => {
    const e = getDefaultEngine();
    expect(e.kind).toBe('wasm');
    expect(e.threads).toBeGreaterThanOrEqual(1);
    expect(await defaultEngineReady()).toBe(e);
    expect(createJsEngine().kind).toBe('js');
    expect(defaultScale(6)).toBe(0.40824827551841736);
  });

  test('KV cache example (EngineBuffer)', () => {
    const engine = createAttentionEngineSync({ threads: 2 });
    const [B, C, U, V, H] = [1, 1024, 8, 2, 64] as const;
    const keys = engine.allocate(B * C * V * H);
    const values = engine.allocate(B * C * V * H);
    let length = 0;
    const step = (q: Float32Array, k: Float32Array, v: Float32Array): Float32Array => {
      keys.view().set(k, length * V * H);
      values.view().set(v, length * V * H);
      length += 1;
      return engine.attention({
        batch: B, queryLength: 1, keyLength: length, keyCapacity: C,
        numQueryHeads: U, numKeyValueHeads: V, headDim: H,
        query: q, key: keys, value: values, causal: true, queryOffset: length - 1,
      }).output;
    };
    const out = step(new Float32Array(U * H).fill(0.1), new Float32Array(V * H).fill(1), new Float32Array(V * H).fill(2));
    expect(out.every((x) => x === 2)).toBe(true);
    keys.free();
    values.free();
    engine.dispose();
  });

  test('engine interface example: causal with probabilities', () => {
    const engine = createAttentionEngineSync({ threads: 2 });
    const problem = {
      batch: 1, queryLength: 3, keyLength: 3, numQueryHeads: 4, numKeyValueHeads: 2, headDim: 8,
      query: new Float32Array(3 * 4 * 8).fill(0.5), key: new Float32Array(3 * 2 * 8).fill(0.25),
      value: new Float32Array(3 * 2 * 8).fill(1), causal: true, returnProbabilities: true,
    };
    const { output, probabilities } = engine.attention(problem);
    expect([output.length, probabilities!.length]).toEqual([96, 36]);
    expect(Array.from(probabilities!.subarray(0, 3))).toEqual(Array.from(attentionReference(problem).probabilities!.subarray(0, 3)));
    engine.dispose();
  });
});
