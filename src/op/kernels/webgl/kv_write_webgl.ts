/**
 * The KV cache's write program on tfjs-backend-webgl: renders a call's new rows (B, T, V, H) into
 * rows position..position+T-1 of the storage's (B, C, V, H) texture, in place.
 *
 * tfjs's `compileAndRun` always renders into a new output texture, so this program is drawn through
 * the backend's GPGPU context directly (the calls tfjs's own runProgram makes): the storage's texture
 * is the render target, and every fragment outside the new rows is discarded, which leaves the rows
 * already held untouched (no copy of them, no feedback read of the target). The layout is tfjs's
 * unpacked one: flat element i of a tensor sits in texel (row i / width, column i % width) of its
 * texture (plus the flat offset of a shallow slice); a packed input is unpacked first.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { GPGPUContext } from '@tensorflow/tfjs-backend-webgl';
import type { DeviceRowWriter } from '../shared/device_kv_storage.js';

interface TexDataLike {
  texture?: { texture: WebGLTexture; texShape: [number, number] } | null;
  texShape?: [number, number] | null;
  isPacked?: boolean;
  slice?: { flatOffset: number } | null;
}

interface WebGLBackendLike {
  gpgpu: GPGPUContext;
  texData: { get(dataId: object): TexDataLike };
  uploadToGPU(dataId: object): void;
  unpackTensor(input: tf.TensorInfo): tf.TensorInfo;
  disposeIntermediateTensorInfo(info: tf.TensorInfo): void;
}

const SOURCE = `#version 300 es
precision highp float;
precision highp int;
precision highp sampler2D;
uniform sampler2D rows;
uniform int srcWidth;
uniform int srcOffset;
uniform int dstWidth;
uniform int dstOffset;
uniform int rowSize;
uniform int T;
uniform int C;
uniform int position;
out vec4 outputColor;
void main() {
  int i = int(gl_FragCoord.y) * dstWidth + int(gl_FragCoord.x) - dstOffset;
  int e = i % rowSize;
  int bc = i / rowSize;
  int c = bc % C;
  int b = bc / C;
  // Only the new rows are written; the others keep what the texture holds.
  if (i < 0 || c < position || c >= position + T) { discard; }
  int s = (b * T + c - position) * rowSize + e + srcOffset;
  outputColor = vec4(texelFetch(rows, ivec2(s % srcWidth, s / srcWidth), 0).r, 0.0, 0.0, 0.0);
}`;

interface Compiled {
  program: WebGLProgram & { vao: unknown };
  locations: Record<string, WebGLUniformLocation>;
}

const UNIFORM_NAMES = ['rows', 'srcWidth', 'srcOffset', 'dstWidth', 'dstOffset', 'rowSize', 'T', 'C', 'position'];

/** One compiled program per GPGPU context. */
const compiled = new WeakMap<GPGPUContext, Compiled>();

function programFor(gpgpu: GPGPUContext): Compiled {
  let c = compiled.get(gpgpu);
  if (c == null) {
    const g = gpgpu.gl as unknown as WebGL2RenderingContext;
    const shader = g.createShader(g.FRAGMENT_SHADER)!;
    g.shaderSource(shader, SOURCE);
    g.compileShader(shader);
    if (g.getShaderParameter(shader, g.COMPILE_STATUS) !== true) {
      throw new Error(`grouped-query-attention: the webgl KV write program did not compile: ${g.getShaderInfoLog(shader)}`);
    }
    const program = gpgpu.createProgram(shader) as unknown as Compiled['program'];
    gpgpu.buildVao(program as never);
    const locations: Record<string, WebGLUniformLocation> = {};
    for (const name of UNIFORM_NAMES) locations[name] = gpgpu.getUniformLocation(program, name);
    c = { program, locations };
    compiled.set(gpgpu, c);
  }
  return c;
}

/** Writes rows in place into a webgl storage tensor (see DeviceRowWriter). */
export const writeRowsWebGL: DeviceRowWriter = (backend, target, rows, position) => {
  const gl = backend as unknown as WebGLBackendLike;
  const [, t, v, h] = rows.shape as [number, number, number, number];
  gl.uploadToGPU(rows.dataId);
  let source = rows;
  let temporary: tf.TensorInfo | null = null;
  if (gl.texData.get(rows.dataId).isPacked) {
    temporary = gl.unpackTensor(rows);
    source = temporary;
  }
  try {
    gl.uploadToGPU(target.dataId);
    const dst = gl.texData.get(target.dataId);
    const src = gl.texData.get(source.dataId);
    if (dst.texture == null || src.texture == null || dst.isPacked || src.isPacked) {
      throw new Error('grouped-query-attention: the webgl KV storage expects unpacked textures');
    }
    const gpgpu = gl.gpgpu;
    const { program, locations: at } = programFor(gpgpu);
    const [dstRows, dstCols] = dst.texture.texShape;
    gpgpu.setOutputMatrixTexture(dst.texture.texture, dstRows, dstCols);
    gpgpu.setProgram(program as never);
    gpgpu.bindVertexArray(program.vao as never);
    const g = gpgpu.gl;
    g.uniform1i(at['srcWidth']!, src.texture.texShape[1]);
    g.uniform1i(at['srcOffset']!, src.slice?.flatOffset ?? 0);
    g.uniform1i(at['dstWidth']!, dstCols);
    g.uniform1i(at['dstOffset']!, dst.slice?.flatOffset ?? 0);
    g.uniform1i(at['rowSize']!, v * h);
    g.uniform1i(at['T']!, t);
    g.uniform1i(at['C']!, target.shape[1]!);
    g.uniform1i(at['position']!, position);
    gpgpu.setInputMatrixTexture(src.texture.texture, at['rows']!, 0);
    gpgpu.executeProgram();
  } finally {
    if (temporary != null) gl.disposeIntermediateTensorInfo(temporary);
  }
};
