/**
 * The KV cache's write program on tfjs-backend-webgpu: copies a call's new rows (B, T, V, H) into
 * rows position..position+T-1 of the storage's (B, C, V, H) buffer, in place (the storage tensor is
 * the program's output binding; tfjs allocates nothing). One invocation per new float.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { DeviceRowWriter } from '../shared/device_kv_storage.js';
import type { GpuProgram, Uniform } from './gqa_shader_util_webgpu.js';

interface WebGPUBackendLike {
  runWebGPUProgram(program: GpuProgram, inputs: tf.TensorInfo[], dtype: 'float32', uniforms: Uniform[], output: tf.TensorInfo): tf.TensorInfo;
}

const WG = 64;

/** The program writing `rows` (B, T, V, H) into `target` (B, C, V, H). Input 'Rows'. */
function writeProgram(target: tf.TensorInfo, rows: tf.TensorInfo): GpuProgram {
  const n = rows.shape.reduce((a, x) => a * x, 1);
  const userCode = `
    fn main(index : i32) {
      if (index >= uniforms.n) { return; }
      let row = uniforms.row;
      let bt = index / row;
      let b = bt / uniforms.T;
      let t = bt % uniforms.T;
      result[(b * uniforms.C + uniforms.position + t) * row + index % row] = Rows[index];
    }`;
  return {
    outputShape: target.shape,
    shaderKey: 'gqaKVWrite',
    dispatchLayout: { x: target.shape.map((_, i) => i) },
    dispatch: [Math.ceil(n / WG), 1, 1],
    variableNames: ['Rows'],
    uniforms: 'n : i32, row : i32, T : i32, C : i32, position : i32,',
    workgroupSize: [WG, 1, 1],
    getUserCode: () => userCode,
  };
}

/** Writes rows in place into a webgpu storage tensor (see DeviceRowWriter). */
export const writeRowsWebGPU: DeviceRowWriter = (backend, target, rows, position) => {
  const [, t, v, h] = rows.shape as [number, number, number, number];
  const n = rows.shape.reduce((a, x) => a * x, 1);
  const i = (x: number): Uniform => ({ type: 'int32', data: [x] });
  const uniforms = [i(n), i(v * h), i(t), i(target.shape[1]!), i(position)];
  (backend as unknown as WebGPUBackendLike).runWebGPUProgram(writeProgram(target, rows), [rows], 'float32', uniforms, target);
};
