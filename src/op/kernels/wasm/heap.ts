/** The part of tfjs-backend-wasm's `BackendWasm` our JS kernels use (public members of the class). */
import type { DataId, TensorInfo } from '@tensorflow/tfjs-core';

type TypedArray = Float32Array | Int32Array | Uint8Array;

export interface WasmBackendLike {
  makeOutput(shape: number[], dtype: TensorInfo['dtype'], memoryOffset?: number): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): TypedArray;
  disposeData(dataId: DataId, force?: boolean): boolean;
}

/** A view of a tensor's data on the wasm heap. Take views after the last `makeOutput` of a kernel. */
export function heapView(backend: WasmBackendLike, info: TensorInfo): TypedArray {
  return backend.typedArrayFromHeap(info);
}
