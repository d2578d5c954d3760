/**
 * Careless and hostile use of the layer (each case a reproduction and the class it belongs to):
 * a build that fails half-way, identifiers of the wrong kind, huge values echoed in messages,
 * flags that are not booleans, string-dtype masks, weight shapes no tensor can hold; plus Keras's
 * automatic layer names. On cpu and wasm.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, test } from 'vitest';
import { GroupedQueryAttention, groupedQueryAttention, type GroupedQueryAttentionArgs } from '../../src/index.js';
import { formatValue } from '../../src/errors.js';
import { BACKENDS, useBackend } from '../helpers/backends.js';
import { thrown } from './failure.js';

const GOOD: GroupedQueryAttentionArgs = { headDim: 2, numQueryHeads: 4, numKeyValueHeads: 2 };

/** tfjs's Initializer base class (not exported by name). */
const InitializerBase = Object.getPrototypeOf(tfl.initializers.zeros().constructor) as new () => {
  apply(shape: number[]): tf.Tensor;
  getConfig(): object;
};

/**
 * An initializer that fails on the n-th use of any of its clones (a build that fails half-way, whatever
 * the cause); the layer clones initializers through their config, so the count is shared.
 */
class FailingInitializer extends InitializerBase {
  static className = 'FailingInitializerForTest';
  static calls = 0;
  readonly failOn: number;
  constructor(config: { failOn: number }) {
    super();
    this.failOn = config.failOn;
  }
  override apply(shape: number[]): tf.Tensor {
    if (FailingInitializer.calls++ === this.failOn) throw new Error('initializer failed (test)');
    return tf.ones(shape);
  }
  override getConfig() {
    return { failOn: this.failOn };
  }
}
tf.serialization.registerClass(FailingInitializer as never);

function failingOn(n: number): never {
  FailingInitializer.calls = 0;
  return new FailingInitializer({ failOn: n }) as never;
}

describe.each(BACKENDS)('hostile use of the layer on %s', (backend) => {
  beforeAll(() => useBackend(backend));

  test.each([
    ['biasInitializer identity on a non-square (U, H) bias: fails on query/bias', { biasInitializer: 'identity' }, /Identity/i],
    ['a kernel regularizer on the weights and an initializer failing at the 4th weight', {
      kernelRegularizer: 'l2', biasInitializer: 'zeros',
    }, /initializer failed/],
  ] as const)('a failed build leaves the layer unbuilt and clean: %s', async (_name, override, pattern) => {
    const failing = pattern.source === 'initializer failed';
    const layer = new GroupedQueryAttention({
      ...GOOD, headDim: 3, ...override,
      ...(failing ? { kernelInitializer: failingOn(2) } : {}),
    } as GroupedQueryAttentionArgs);
    const q = tf.ones([1, 2, 4]);
    const variables = Object.keys(tf.engine().registeredVariables).length;
    const { error, leaked } = await thrown(() => layer.apply(q, { value: q }));
    expect(error.message).toMatch(pattern);
    expect(layer.built).toBe(false);
    expect(layer.weights).toHaveLength(0);
    expect(layer.losses).toHaveLength(0);
    expect(leaked).toBe(0);
    expect(Object.keys(tf.engine().registeredVariables).length).toBe(variables);
    // The same failure, then a good build: exactly Keras's 10 weights, under Keras's names.
    const retry = new GroupedQueryAttention({ ...GOOD, kernelInitializer: failingOn(1), kernelRegularizer: 'l2' });
    expect(() => retry.build([[null, 2, 4], [null, 2, 4]])).toThrow(/initializer failed/);
    expect(retry.weights).toHaveLength(0);
    retry.build([[null, 2, 4], [null, 2, 4]]);
    expect(retry.built).toBe(true);
    expect(retry.weights.map((w) => w.originalName)).toEqual([
      'query/kernel', 'query/bias', 'key/kernel', 'key/bias', 'value/kernel', 'value/bias',
      'attention_output/kernel', 'attention_output/bias',
    ].map((n) => `${retry.name}/${n}`));
    expect(retry.losses).toHaveLength(4);
    retry.dispose();
    q.dispose();
  });

  test.each([
    ['kernelRegularizer given an initializer name', { kernelRegularizer: 'glorotUniform' },
      /kernelRegularizer must be a regularizer .*received 'glorotUniform' \('GlorotUniform' is not a regularizer\)/],
    ['kernelInitializer given a layer name', { kernelInitializer: 'dense' },
      /kernelInitializer must be an initializer .*received 'dense' \('Dense' is not an initializer\)/],
    ['biasConstraint given a regularizer name', { biasConstraint: 'l1' },
      /biasConstraint must be a constraint .*received 'l1'/],
    ['an unknown initializer name', { biasInitializer: 'noSuchThing' },
      /biasInitializer must be an initializer .*received 'noSuchThing' \(no initializer class 'NoSuchThing'\)/],
    ['an unknown regularizer class in a config', { activityRegularizer: { className: 'Nope', config: {} } },
      /activityRegularizer must be a regularizer .*received \{"className":"Nope","config":\{\}\}/],
    ['a number as a constraint', { kernelConstraint: 3 }, /kernelConstraint must be a constraint .*received 3/],
    ['a regularizer instance as an initializer', { kernelInitializer: tfl.regularizers.l2() },
      /kernelInitializer must be an initializer .*received L1L2/],
  ] as const)('wrong-kind identifiers are named at construction: %s', async (_name, override, pattern) => {
    const { error, kernels, leaked } = await thrown(() => new GroupedQueryAttention({ ...GOOD, ...override } as never));
    expect(error.name).toBe('ValueError');
    expect(error.message).toMatch(pattern);
    expect(error.message).toMatch(/^GroupedQueryAttention 'grouped_query_attention(_\d+)?'/);
    expect(kernels).toEqual([]);
    expect(leaked).toBe(0);
  });

  test('errors echo a capped value: a 1e6-element array, a long string, a big object', async () => {
    const huge = Array.from({ length: 1_000_000 }, (_, i) => i);
    const cases: Array<() => unknown> = [
      () => new GroupedQueryAttention({ ...GOOD, headDim: huge as never }),
      () => new GroupedQueryAttention({ ...GOOD, slidingWindow: 'x'.repeat(1_000_000) as never }),
      () => new GroupedQueryAttention({ ...GOOD, kernelInitializer: { className: 'Zeros', config: { big: huge } } as never, kernelConstraint: { big: huge } as never }),
      () => new GroupedQueryAttention(GOOD).build(huge as never),
      () => groupedQueryAttention(tf.ones([1, 1, 1, 1]), tf.ones([1, 1, 1, 1]), tf.ones([1, 1, 1, 1]), { scale: huge as never }),
    ];
    for (const bad of cases) {
      const { error } = await thrown(bad);
      expect(error.message.length, error.message.slice(0, 200)).toBeLessThan(600);
    }
    expect(formatValue(huge)).toBe('[0,1,2,3,4,5,6,7,...] (1000000 elements)');
    expect(formatValue('y'.repeat(100))).toBe(`'${'y'.repeat(80)}...' (100 characters)`);
    expect(formatValue([[1, 2], [3]])).toBe('[[1,2],[3]]');
  });

  test('flags are booleans, as Keras validates them: training, flashAttention, useCausalMask, returnAttentionScores, useBias, useGate', async () => {
    const layer = new GroupedQueryAttention({ ...GOOD, name: 'flags' });
    const q = tf.ones([1, 2, 4]);
    const good = (layer.apply(q, { value: q }) as tf.Tensor).dataSync();
    for (const [name, kwargs] of [
      ['training', { training: 'yes' }],
      ['useCausalMask', { useCausalMask: 1 }],
      ['returnAttentionScores', { returnAttentionScores: 'yes' }],
    ] as const) {
      const { error, kernels, leaked } = await thrown(() => layer.apply(q, { value: q, ...kwargs }));
      expect(error.message).toMatch(new RegExp(`GroupedQueryAttention 'flags': ${name} must be a boolean; received ('yes'|1)`));
      expect(kernels).toEqual([]);
      expect(leaked).toBe(0);
    }
    for (const name of ['flashAttention', 'useBias', 'useGate'] as const) {
      const { error } = await thrown(() => new GroupedQueryAttention({ ...GOOD, [name]: 'yes' } as never));
      expect(error.message).toMatch(new RegExp(`${name} must be a boolean; received 'yes'`));
    }
    expect(Array.from((layer.apply(q, { value: q, training: false }) as tf.Tensor).dataSync())).toEqual(Array.from(good));
    layer.dispose();
    q.dispose();
  });

  test('a string-dtype mask is named (layer and op)', async () => {
    const layer = new GroupedQueryAttention({ ...GOOD, name: 'strmask' });
    const q = tf.ones([1, 2, 4]);
    tf.dispose(layer.apply(q, { value: q }) as tf.Tensor);
    const text = tf.tensor([['a', 'b'], ['c', 'd']], [2, 2], 'string');
    const row = tf.tensor([['a', 'b']], [1, 2], 'string');
    for (const [name, kwargs] of [
      ['attentionMask', { attentionMask: text }],
      ['queryMask', { queryMask: row }],
      ['valueMask', { valueMask: row }],
    ] as const) {
      const { error, kernels, leaked } = await thrown(() => layer.apply(q, { value: q, ...kwargs }));
      expect(error.message).toMatch(new RegExp(`'strmask': ${name} must be a bool or numeric tensor; received dtype string`));
      expect(kernels).toEqual([]);
      expect(leaked).toBe(0);
    }
    // With a KV cache too.
    const cache = layer.createCache({ batchSize: 1, maxLength: 4 });
    const cached = await thrown(() => layer.apply(q, { value: q, valueMask: row, cache }));
    expect(cached.error.message).toMatch(/'strmask': valueMask must be a bool or numeric tensor; received dtype string/);
    expect(cached.kernels).toEqual([]);
    expect(cache.length).toBe(0);
    cache.dispose();
    const x = tf.ones([1, 2, 4, 2]);
    const kv = tf.ones([1, 2, 2, 2]);
    const { error } = await thrown(() => groupedQueryAttention(x, kv, kv, { attentionMask: text }));
    expect(error.message).toMatch(/^groupedQueryAttention: attentionMask must be a bool or numeric tensor; received dtype string/);
    tf.dispose([q, text, row, x, kv]);
    layer.dispose();
  });

  test('weight shapes past 2^31 elements: a clear error naming the layer and the arguments, before any work', async () => {
    const heads = await thrown(() => new GroupedQueryAttention({ headDim: 2 ** 16, numQueryHeads: 2 ** 16, numKeyValueHeads: 1 }));
    expect(heads.error.message).toMatch(
      /^GroupedQueryAttention 'grouped_query_attention(_\d+)?': numQueryHeads × headDim must be at most 2147483647 .*received numQueryHeads=65536, headDim=65536/);
    const layer = new GroupedQueryAttention({ headDim: 4096, numQueryHeads: 1024, numKeyValueHeads: 1, name: 'big' });
    const variables = Object.keys(tf.engine().registeredVariables).length;
    const { error, kernels, leaked } = await thrown(() => layer.build([[null, 1, 1024], [null, 1, 8]]));
    expect(error.message).toMatch(
      /^GroupedQueryAttention 'big': query\/kernel \[1024,1024,4096\] would hold 4294967296 elements, more than a tensor can \(2147483647\): reduce numQueryHeads, numKeyValueHeads, headDim or the query features/);
    expect(kernels).toEqual([]);
    expect(leaked).toBe(0);
    expect(layer.built).toBe(false);
    expect(Object.keys(tf.engine().registeredVariables).length).toBe(variables);
  });
});

describe('automatic layer names', () => {
  test('Keras-style: grouped_query_attention, grouped_query_attention_1, ... (both class names share them)', () => {
    const names = [1, 2, 3].map(() => new GroupedQueryAttention(GOOD).name);
    const index = (n: string) => (n === 'grouped_query_attention' ? 0 : Number(/^grouped_query_attention_(\d+)$/.exec(n)?.[1]));
    const numbers = names.map(index);
    expect(numbers.every((n) => Number.isInteger(n))).toBe(true);
    expect(numbers[1]).toBe(numbers[0]! + 1);
    expect(numbers[2]).toBe(numbers[1]! + 1);
    expect(new GroupedQueryAttention({ ...GOOD, name: 'mine' }).name).toBe('mine');
  });
});
