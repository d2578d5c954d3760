/**
 * The tfjs-wasm fused kernel allocates its outputs on the wasm heap before it calls the engine; when
 * the engine throws, no heap buffer may survive the failed call (the cpu kernel is checked too).
 * Counted with the backend's data ids (tf.memory().numTensors does not see buffers that never
 * became tensors).
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { groupedQueryAttention } from '../../src/index.js';
import { getDefaultEngine, setDefaultEngine, type AttentionEngine } from '../../src/engine/index.js';
import { BACKENDS, useBackend } from '../helpers/backends.js';

const realDefault = getDefaultEngine();
/** An engine whose every call fails the way an engine failure inside the kernel does. */
const failing: AttentionEngine = {
  kind: 'wasm', kernel: 'wasm-simd', threads: 1, sharedMemory: false, ready: Promise.resolve(),
  attention: () => {
    throw new Error('engine failure inside the kernel');
  },
  attentionBackward: () => {
    throw new Error('engine failure inside the kernel');
  },
  allocate: (floats) => realDefault.allocate(floats),
  memoryBytes: () => 0,
  dispose: () => {},
};

afterAll(() => setDefaultEngine(realDefault));

describe.each(BACKENDS)('fused kernel on %s', (backendName) => {
  beforeAll(() => useBackend(backendName));

  test.each([false, true])('an engine that throws leaves no backend buffer (returnScores: %s)', (returnScores) => {
    const q = tf.randomNormal([2, 3, 4, 8]);
    const k = tf.randomNormal([2, 5, 2, 8]);
    const v = tf.randomNormal([2, 5, 2, 8]);
    // The fused kernel runs: a working call first, so that lazily made kernel constants exist.
    tf.dispose(groupedQueryAttention(q, k, v, { returnScores }));
    const backend = tf.backend();
    const dataIds = backend.numDataIds();
    const tensors = tf.memory().numTensors;
    setDefaultEngine(failing);
    try {
      for (let i = 0; i < 20; i++) {
        expect(() => groupedQueryAttention(q, k, v, { returnScores, causal: true })).toThrow(/engine failure inside the kernel/);
      }
    } finally {
      setDefaultEngine(realDefault);
    }
    expect(backend.numDataIds()).toBe(dataIds);
    expect(tf.memory().numTensors).toBe(tensors);
    tf.dispose([q, k, v]);
  });
});
