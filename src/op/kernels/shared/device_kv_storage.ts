/**
 * KV-cache storage on a GPU backend (webgpu, webgl): keys and values are two (B, C, V, H) float32
 * tensors of that backend, allocated once at capacity and owned by the storage. A call's new rows are
 * written in place on the device by the backend's write program (`DeviceRowWriter`), and the
 * backend's fused kernel reads the tensors in place (row stride C per batch row) when the op passes
 * the kernel attribute `cache`. No GPU→CPU read, no reallocation, no copy of the rows already held.
 *
 * Shape letters: B batch · C capacity · T new positions · V key/value heads · H head size.
 *
 * `read(length)` (the op's fallback: the composite path, dropout on a backend without it) slices the
 * first `length` rows on the device.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ValueError } from '../../../errors.js';
import type { KVStorage, KVStorageSpec } from '../../kv_storage.js';

/**
 * Writes `rows` (B, T, V, H) into rows position..position+T-1 of `target` (B, C, V, H) in place, on
 * `backend`. Both are tensors of that backend; nothing is read back.
 */
export type DeviceRowWriter = (
  backend: tf.KernelBackend, target: tf.TensorInfo, rows: tf.TensorInfo, position: number) => void;

export class DeviceKVStorage implements KVStorage {
  readonly kind: string;
  readonly batchSize: number;
  readonly capacity: number;
  readonly numKeyValueHeads: number;
  readonly headDim: number;
  private tensors: { keys: tf.Tensor4D; values: tf.Tensor4D } | null;
  private readonly backend: tf.KernelBackend;
  private readonly writeRows: DeviceRowWriter;

  /** Allocates (B, C, V, H) zeros twice on the active backend, named `kind` (the backend's name). */
  constructor(kind: string, spec: KVStorageSpec, writeRows: DeviceRowWriter) {
    this.kind = kind;
    this.batchSize = spec.batchSize;
    this.capacity = spec.capacity;
    this.numKeyValueHeads = spec.numKeyValueHeads;
    this.headDim = spec.headDim;
    this.writeRows = writeRows;
    this.backend = tf.backend();
    const shape: [number, number, number, number] = [spec.batchSize, spec.capacity, spec.numKeyValueHeads, spec.headDim];
    // tf.fill runs the backend's Fill program: the tensors are born on the device (tf.zeros would
    // make CPU values that the backend uploads later). Kept: a caller's tidy must not free them.
    const keys = tf.keep(tf.fill(shape, 0, 'float32') as tf.Tensor4D);
    let values: tf.Tensor4D;
    try {
      values = tf.keep(tf.fill(shape, 0, 'float32') as tf.Tensor4D);
    } catch (e) {
      keys.dispose();
      throw e;
    }
    this.tensors = { keys, values };
  }

  get disposed(): boolean {
    return this.tensors == null || this.tensors.keys.isDisposed;
  }

  /** The (B, C, V, H) key and value tensors, for the backend's fused kernel. */
  deviceTensors(): { keys: tf.Tensor4D; values: tf.Tensor4D } {
    if (this.tensors == null) throw new ValueError(`${this.kind} KV storage: the storage was disposed`);
    return this.tensors;
  }

  checkUsable(where: string, backendName: string): void {
    if (this.disposed) {
      throw new ValueError(`${where}: the KV cache's storage was disposed; create a new cache with layer.createCache`);
    }
    if (backendName !== this.kind || tf.backend() !== this.backend) {
      throw new ValueError(
        `${where}: this KV cache keeps its keys and values on the ${this.kind} backend where it was created; ` +
        `create a new cache with layer.createCache under the active backend (received backend ${backendName})`);
    }
  }

  readsInPlace(backendName: string): boolean {
    return backendName === this.kind;
  }

  write(keys: tf.Tensor4D, values: tf.Tensor4D, position: number): void {
    const { keys: kc, values: vc } = this.deviceTensors();
    this.writeRows(this.backend, kc, keys, position);
    this.writeRows(this.backend, vc, values, position);
  }

  read(length: number): [tf.Tensor4D, tf.Tensor4D] {
    const { keys, values } = this.deviceTensors();
    const size: [number, number, number, number] = [this.batchSize, length, this.numKeyValueHeads, this.headDim];
    return [tf.slice(keys, [0, 0, 0, 0], size), tf.slice(values, [0, 0, 0, 0], size)];
  }

  dispose(): void {
    if (this.tensors == null) return;
    const { keys, values } = this.tensors;
    this.tensors = null;
    keys.dispose();
    values.dispose();
  }
}

/**
 * The device storage behind a kernel's `cache` attribute; raises when the op handed `backendName`'s
 * kernel a storage it cannot read in place (a contract violation, never a user error).
 */
export function deviceStorageOf(storage: KVStorage, backendName: string): DeviceKVStorage {
  if (!(storage instanceof DeviceKVStorage) || !storage.readsInPlace(backendName)) {
    throw new ValueError(
      `GroupedQueryAttention (${backendName} kernel): the cache attribute holds a ${storage.kind} storage, ` +
      `which this kernel cannot read in place`);
  }
  return storage;
}
