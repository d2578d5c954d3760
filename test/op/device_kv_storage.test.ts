/**
 * The device KV storage of the GPU backends (src/op/kernels/shared/device_kv_storage.ts), driven on
 * the cpu backend with a row writer over the cpu backend's arrays (the webgpu/webgl writers run in
 * the browser suite): rows land in place, `read` returns the first rows, other backends and disposed
 * storages are refused, dispose is idempotent and frees both tensors.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, test } from 'vitest';
import { DeviceKVStorage, deviceStorageOf, type DeviceRowWriter } from '../../src/op/kernels/shared/device_kv_storage.js';
import { EngineKVStorage } from '../../src/op/kernels/engine_kv_storage.js';
import { useBackend } from '../helpers/backends.js';

/** The cpu backend's values array of a tensor (its storage lives there). */
function cpuValues(backend: tf.KernelBackend, info: tf.TensorInfo): Float32Array {
  return (backend as unknown as { data: { get(id: object): { values: Float32Array } } }).data.get(info.dataId).values;
}

/** Copies rows (B, T, V, H) to positions position..position+T-1 of (B, C, V, H), in place. */
const writeRowsCpu: DeviceRowWriter = (backend, target, rows, position) => {
  const [b, t, v, h] = rows.shape as [number, number, number, number];
  const c = target.shape[1]!;
  const dst = cpuValues(backend, target);
  const src = cpuValues(backend, rows);
  for (let bb = 0; bb < b; bb++) dst.set(src.subarray(bb * t * v * h, (bb + 1) * t * v * h), (bb * c + position) * v * h);
};

describe('DeviceKVStorage', () => {
  beforeAll(() => useBackend('cpu'));
  const spec = { batchSize: 2, capacity: 5, numKeyValueHeads: 1, headDim: 3 };

  test('writes rows in place and reads back the first rows', () => {
    const before = tf.memory().numTensors;
    const storage = new DeviceKVStorage('cpu', spec, writeRowsCpu);
    expect(tf.memory().numTensors).toBe(before + 2);
    const keysBefore = storage.deviceTensors().keys;
    const k = tf.tensor4d(Array.from({ length: 12 }, (_, i) => i + 1), [2, 2, 1, 3]);
    const v = tf.neg(k) as tf.Tensor4D;
    storage.write(k, v, 0);
    const [k1, v1] = [tf.slice(k, [0, 0, 0, 0], [2, 1, 1, 3]), tf.slice(v, [0, 0, 0, 0], [2, 1, 1, 3])];
    storage.write(k1, v1, 2);
    expect(storage.deviceTensors().keys).toBe(keysBefore); // no reallocation
    const [rk, rv] = storage.read(3);
    expect(rk.shape).toEqual([2, 3, 1, 3]);
    expect(Array.from(rk.dataSync())).toEqual([1, 2, 3, 4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 11, 12, 7, 8, 9]);
    expect(Array.from(rv.dataSync())).toEqual(Array.from(rk.dataSync(), (x) => -x));
    tf.dispose([k, v, k1, v1, rk, rv]);
    storage.dispose();
    storage.dispose();
    expect(storage.disposed).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
  });

  test('refuses other backends and disposed storages, naming the cause', () => {
    const storage = new DeviceKVStorage('cpu', spec, writeRowsCpu);
    expect(storage.readsInPlace('cpu')).toBe(true);
    expect(storage.readsInPlace('wasm')).toBe(false);
    expect(() => storage.checkUsable('L.call', 'wasm')).toThrow(/L\.call: .*on the cpu backend.*received backend wasm/);
    expect(() => storage.checkUsable('L.call', 'cpu')).not.toThrow();
    storage.dispose();
    expect(() => storage.checkUsable('L.call', 'cpu')).toThrow(/L\.call: the KV cache's storage was disposed/);
    expect(() => deviceStorageOf(storage, 'cpu')).not.toThrow();
    const engine = EngineKVStorage.allocate(spec);
    expect(() => deviceStorageOf(engine, 'webgpu')).toThrow(/engine storage/);
    engine.dispose();
  });
});
