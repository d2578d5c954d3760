/**
 * Bad input to the layer. Each error must name the argument, the rule and the received value; be
 * thrown before any work (no tfjs kernel runs: checked with tf.profile); leave no tensor behind; and
 * leave the layer working (the next good call gives the same result as before the failure).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { GroupedQueryAttention, type GroupedQueryAttentionArgs } from '../../src/index.js';
import { BACKENDS, useBackend } from '../helpers/backends.js';
import { failure } from './failure.js';

const GOOD: GroupedQueryAttentionArgs = { headDim: 2, numQueryHeads: 4, numKeyValueHeads: 2 };

describe('constructor arguments', () => {
  beforeAll(() => useBackend('cpu'));
  test.each([
    ['non-divisible head counts', { numQueryHeads: 3, numKeyValueHeads: 2 }, /numQueryHeads must be divisible by numKeyValueHeads.*numQueryHeads=3.*numKeyValueHeads=2/],
    ['more kv heads than query heads', { numQueryHeads: 2, numKeyValueHeads: 4 }, /numQueryHeads must be divisible by numKeyValueHeads.*numQueryHeads=2.*numKeyValueHeads=4/],
    ['zero kv heads', { numKeyValueHeads: 0 }, /numKeyValueHeads must be a positive integer.*received 0/],
    ['negative query heads', { numQueryHeads: -2 }, /numQueryHeads must be a positive integer.*received -2/],
    ['fractional query heads', { numQueryHeads: 2.5 }, /numQueryHeads must be a positive integer.*received 2.5/],
    ['zero headDim', { headDim: 0 }, /headDim must be a positive integer.*received 0/],
    ['non-integer headDim', { headDim: 2.5 }, /headDim must be a positive integer.*received 2.5/],
    ['headDim as a string', { headDim: '8' }, /headDim must be a positive integer.*received '8'/],
    ['dropout 1', { dropout: 1 }, /dropout must be a number in \[0, 1\).*received 1/],
    ['dropout 1.5', { dropout: 1.5 }, /dropout must be a number in \[0, 1\).*received 1.5/],
    ['negative dropout', { dropout: -0.1 }, /dropout must be a number in \[0, 1\).*received -0.1/],
    ['NaN dropout', { dropout: NaN }, /dropout must be a number in \[0, 1\).*received NaN/],
  ] as const)('%s', async (_name, override, pattern) => {
    const { error, kernels, leaked } = await failure(() => new GroupedQueryAttention({ ...GOOD, ...override } as GroupedQueryAttentionArgs));
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(pattern);
    expect((error as Error).name).toBe('ValueError');
    expect(kernels).toEqual([]);
    expect(leaked).toBe(0);
    // A good layer can still be made and used.
    const layer = new GroupedQueryAttention(GOOD);
    expect(tf.tidy(() => (layer.apply(tf.ones([1, 2, 3]), { value: tf.ones([1, 3, 3]) }) as tf.Tensor).shape)).toEqual([1, 2, 3]);
    layer.dispose();
  });
});

describe.each(BACKENDS)('call arguments on %s', (backend) => {
  // Built for query (B=2, T=3, Dq=4), value (S=5, Dv=4), key Dk=6; U=4, V=2.
  let layer: GroupedQueryAttention;
  let q: tf.Tensor;
  let v: tf.Tensor;
  let k: tf.Tensor;
  let reference: Float32Array;
  const good = () => layer.apply(q, { value: v, key: k, returnAttentionScores: false }) as tf.Tensor;

  beforeAll(async () => {
    await useBackend(backend);
    layer = new GroupedQueryAttention({ ...GOOD, name: 'gqa' });
    q = tf.randomNormal([2, 3, 4], 0, 1, 'float32', 1);
    v = tf.randomNormal([2, 5, 4], 0, 1, 'float32', 2);
    k = tf.randomNormal([2, 5, 6], 0, 1, 'float32', 3);
    reference = tf.tidy(() => good().dataSync() as Float32Array);
  });
  afterAll(() => {
    tf.dispose([q, v, k]);
    layer.dispose();
  });

  const t = (shape: number[], dtype: 'float32' | 'bool' = 'float32') =>
    dtype === 'bool' ? tf.ones(shape, 'bool') : tf.ones(shape);

  // [name, make the bad call's kwargs/inputs, message pattern]
  const cases: Array<[string, () => [tf.Tensor, Record<string, unknown>], RegExp]> = [
    ['query of rank 2', () => [t([2, 4]), { value: v, key: k }], /query must have rank 3.*received shape \[2,4\]/],
    ['query of rank 4', () => [t([2, 3, 4, 1]), { value: v, key: k }], /query must have rank 3.*received shape \[2,3,4,1\]/],
    ['value of rank 2', () => [q, { value: t([2, 4]), key: k }], /value must have rank 3.*received shape \[2,4\]/],
    ['key of rank 4', () => [q, { value: v, key: t([2, 5, 6, 1]) }], /key must have rank 3.*received shape \[2,5,6,1\]/],
    ['value batch differs', () => [q, { value: t([3, 5, 4]), key: t([3, 5, 6]) }], /same batch size.*query \[2,3,4\].*value \[3,5,4\]/],
    ['key batch differs', () => [q, { value: v, key: t([1, 5, 6]) }], /same batch size.*key \[1,5,6\]/],
    ['key and value lengths differ', () => [q, { value: v, key: t([2, 6, 6]) }], /key and value must have the same length.*value \[2,5,4\].*key \[2,6,6\]/],
    ['query features changed after build', () => [t([2, 3, 5]), { value: v, key: k }], /query has 5 features but the layer was built for 4.*\[2,3,5\]/],
    ['value features changed after build', () => [q, { value: t([2, 5, 3]), key: k }], /value has 3 features but the layer was built for 4.*\[2,5,3\]/],
    ['key features changed after build', () => [q, { value: v, key: t([2, 5, 7]) }], /key has 7 features but the layer was built for 6.*\[2,5,7\]/],
    ['key omitted although built with its own size', () => [q, { value: v }], /key/],
    ['queryMask of the wrong length', () => [q, { value: v, key: k, queryMask: t([2, 4], 'bool') }], /queryMask.*\[2,3\].*received \[2,4\]/],
    ['valueMask of the wrong batch', () => [q, { value: v, key: k, valueMask: t([3, 5], 'bool') }], /valueMask.*\[2,5\].*received \[3,5\]/],
    ['keyMask of rank 3', () => [q, { value: v, key: k, keyMask: t([2, 5, 1], 'bool') }], /keyMask.*\[2,5\].*received \[2,5,1\]/],
    ['attentionMask (B,T,S+1)', () => [q, { value: v, key: k, attentionMask: t([2, 3, 6], 'bool') }], /attentionMask.*\[2,3,6\].*\[2,4,3,5\]/],
    ['attentionMask (T+1,S)', () => [q, { value: v, key: k, attentionMask: t([4, 5], 'bool') }], /attentionMask.*\[4,5\].*\[2,4,3,5\]/],
    ['attentionMask of rank 1', () => [q, { value: v, key: k, attentionMask: t([5], 'bool') }], /attentionMask.*rank.*\[5\]/],
    ['attentionMask of rank 5', () => [q, { value: v, key: k, attentionMask: t([1, 2, 4, 3, 5], 'bool') }], /attentionMask.*\[1,2,4,3,5\]/],
    ['attentionMask (B,U,T,S) with a queryMask and B ∉ {1, U}', () => [q, {
      value: v, key: k, queryMask: t([2, 3], 'bool'), attentionMask: t([2, 4, 3, 5], 'bool'),
    }], /attentionMask.*\[2,4,3,5\].*\[2,3,1\]/],
    ['missing value', () => [q, {}], /`value` argument is required/],
    ['null value', () => [q, { value: null }], /`value` argument is required/],
  ];

  test.each(cases)('%s', async (_name, make, pattern) => {
    const [query, kwargs] = make();
    const { error, kernels, leaked } = await failure(() => layer.apply(query, kwargs));
    expect(error, 'throws').toBeInstanceOf(Error);
    const message = (error as Error).message;
    expect(message).toMatch(pattern);
    expect(kernels, `no work before the error (${message})`).toEqual([]);
    expect(message, 'names the layer').toContain("'gqa'");
    expect(leaked, 'no tensor left behind').toBe(0);
    // The layer still works, with the same numbers.
    const before = tf.memory().numTensors;
    expect(Array.from(tf.tidy(() => good().dataSync()))).toEqual(Array.from(reference));
    expect(tf.memory().numTensors).toBe(before);
    for (const x of [query, ...Object.values(kwargs)]) {
      if (x instanceof tf.Tensor && x !== q && x !== v && x !== k) x.dispose();
    }
  });

  test('an unbuilt layer rejects bad ranks at build time, creates no weights, and builds fine afterwards', async () => {
    const fresh = new GroupedQueryAttention(GOOD);
    const bad = t([2, 4]);
    const { error, kernels, leaked } = await failure(() => fresh.apply(bad, { value: v }));
    expect((error as Error).message).toMatch(/query.*\(batch, length, features\).*received \[2,4\]/);
    expect(kernels).toEqual([]);
    expect(leaked).toBe(0);
    expect(fresh.weights.length).toBe(0);
    expect(tf.tidy(() => (fresh.apply(q, { value: v }) as tf.Tensor).shape)).toEqual([2, 3, 4]);
    expect(fresh.weights.length).toBe(8);
    fresh.dispose();
    bad.dispose();
  });

  test('a symbolic call with Dq ≠ Dv raises Keras\'s compute_output_shape error', () => {
    const fresh = new GroupedQueryAttention(GOOD);
    expect(() => fresh.apply(tfl.input({ shape: [3, 8] }), { value: tfl.input({ shape: [2, 7] }) })).toThrow(
      /The last dimension of `query_shape` and `value_shape` must be equal, but are 8, 7/);
  });
});
