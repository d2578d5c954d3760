/** Bad input is rejected before any work, with messages naming function, argument, rule and value. */
import { afterAll, describe, expect, test } from 'vitest';
import type { AttentionProblem } from '../../src/engine/index.js';
import { attentionReference, makeEngines, randomArray } from './helpers.js';

const engines = makeEngines();
afterAll(() => engines.forEach(({ engine }) => engine.dispose()));

const good: AttentionProblem = {
  batch: 2, queryLength: 3, keyLength: 4, numQueryHeads: 4, numKeyValueHeads: 2, headDim: 5,
  query: randomArray(2 * 3 * 4 * 5, 1), key: randomArray(2 * 4 * 2 * 5, 2), value: randomArray(2 * 4 * 2 * 5, 3),
};

const bad: Array<[string, Partial<AttentionProblem> | Record<string, unknown>, RegExp]> = [
  ['batch', { batch: 1.5 }, /`problem\.batch` must be a positive integer; received 1\.5/],
  ['headDim', { headDim: 0 }, /`problem\.headDim` must be a positive integer; received 0/],
  ['U % V', { numQueryHeads: 3, numKeyValueHeads: 2 }, /`problem\.numQueryHeads` must be a multiple of numKeyValueHeads \(2\); received 3/],
  ['query length', { query: new Float32Array(7) }, /`problem\.query` must have length B\*T\*U\*H \(2\*3\*4\*5\) = 120; received length 7/],
  ['query type', { query: new Float64Array(120) }, /`problem\.query` must be a Float32Array; received Float64Array/],
  ['key length vs capacity', { keyCapacity: 6 }, /`problem\.key` must have length B\*C\*V\*H \(2\*6\*2\*5\) = 120; received length 80/],
  ['capacity < S', { keyCapacity: 3 }, /`problem\.keyCapacity` must be an integer >= keyLength \(4\); received 3/],
  ['mask shape', { mask: { kind: 'bool', data: new Uint8Array(6), shape: [1, 1, 3, 2] } }, /`problem\.mask\.shape` must broadcast to \(B,U,T,S\) = \[2,4,3,4\]: entry 3 \(S\) must be 1 or 4; received \[1,1,3,2\]/],
  ['mask rank', { mask: { kind: 'bool', data: new Uint8Array(12), shape: [3, 4] } }, /`problem\.mask\.shape` must have 4 entries/],
  ['mask data length', { mask: { kind: 'bool', data: new Uint8Array(5), shape: [1, 1, 3, 4] } }, /`problem\.mask\.data` must have length 12 \(the product of mask\.shape \[1,1,3,4\]\); received length 5/],
  ['mask dtype', { mask: { kind: 'bool', data: new Float32Array(12), shape: [1, 1, 3, 4] } }, /`problem\.mask\.data` must be a Uint8Array for kind 'bool'; received Float32Array/],
  ['mask kind', { mask: { kind: 'soft', data: new Uint8Array(12), shape: [1, 1, 3, 4] } }, /`problem\.mask\.kind` must be 'bool' or 'additive'; received 'soft'/],
  ['window', { slidingWindow: 0 }, /`problem\.slidingWindow` must be undefined or a positive integer; received 0/],
  ['offset', { queryOffset: -1 }, /`problem\.queryOffset` must be a non-negative integer; received -1/],
  ['scale', { scale: NaN }, /`problem\.scale` must be a finite number; received NaN/],
  ['causal', { causal: 'yes' }, /`problem\.causal` must be a boolean; received 'yes'/],
];

describe('validation', () => {
  for (const [name, patch, re] of bad) {
    test(name, () => {
      const problem = { ...good, ...patch } as AttentionProblem;
      expect(() => attentionReference(problem)).toThrow(new RegExp(`^attentionReference: argument ${re.source}`));
      for (const { engine } of engines) {
        const before = engine.memoryBytes();
        expect(() => engine.attention(problem)).toThrow(new RegExp(`^AttentionEngine\\.attention: argument ${re.source}`));
        expect(engine.memoryBytes()).toBe(before);
      }
    });
  }

  test('engines keep working after rejected calls', () => {
    const ref = attentionReference(good);
    for (const { engine } of engines) expect(Array.from(engine.attention(good).output)).toHaveLength(ref.output.length);
  });

  test('EngineBuffers: freed, foreign, and allocate arguments', () => {
    const [a, b] = [engines[0]!.engine, engines[1]!.engine];
    const kb = a.allocate(80);
    const vb = a.allocate(80);
    const foreign = b.allocate(80);
    expect(() => a.attention({ ...good, key: foreign, value: vb })).toThrow(/`problem\.key` must be a Float32Array or an EngineBuffer of this engine that is not freed; received an EngineBuffer of another engine/);
    kb.free();
    expect(kb.freed).toBe(true);
    expect(() => a.attention({ ...good, key: kb, value: vb })).toThrow(/received a freed EngineBuffer/);
    expect(() => kb.view()).toThrow(/freed/);
    expect(() => a.allocate(0)).toThrow(/AttentionEngine\.allocate: argument `floats` must be a positive integer; received 0/);
    vb.free();
    foreign.free();
  });

  test('messages echo a capped value, whatever the argument holds (a million-element array, a long string)', () => {
    const huge = new Array(1e6).fill(1);
    for (const { engine } of engines) {
      for (const [floats, shown] of [[huge, /received \[1,1,1,1,1,1,1,1,\.\.\.\] \(1000000 elements\)\.$/], ['x'.repeat(1e5), /received 'x{80}\.\.\.' \(100000 characters\)\.$/]] as const) {
        let message = '';
        try {
          engine.allocate(floats as never);
        } catch (e) {
          message = (e as Error).message;
        }
        expect(message).toMatch(shown);
        expect(message.length).toBeLessThan(300);
      }
      expect(() => engine.attention({ ...good, batch: huge } as never)).toThrow(/received \[1,1,1,1,1,1,1,1,\.\.\.\] \(1000000 elements\)/);
    }
  });
});
