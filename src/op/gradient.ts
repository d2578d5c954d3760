/**
 * Gradient of the fused `GroupedQueryAttention` kernel.
 *
 * On `cpu` and `wasm` (the backends whose tensors the attention engine reads as typed arrays) it is
 * the engine's fused backward: from the saved output and the log-sum-exp its kernel returned as a
 * hidden last output (the op sets `returnLogSumExp` while a gradient is recorded; both are saved
 * through `outputsToSave`), dQ, dK, dV with no (B,U,T,S) buffer
 * (src/engine/backward-*.ts; the WebAssembly engine splits the work over its threads). The
 * dropout pattern is regenerated from the kernel's `dropoutSeed`. A problem with a NaN or ±Inf in
 * Q, K, V, the output, its gradient or an additive mask takes the composite gradient below, so that
 * the gradient is NaN/Inf exactly where the composite autodiff's is
 * (test/property/op.gradient.non_finite.property.test.ts).
 *
 * Elsewhere (webgl, webgpu), and whenever the kernel returned its probabilities (`returnScores`:
 * the scores may feed the loss, and the fused backward only knows the output's gradient), it is
 * written analytically from public ops: the probabilities are recomputed, then
 *   dV = (P∘Z)ᵀ·dO,  dP = (dO·Vᵀ)∘Z (+ dScores),  dS = P ∘ (dP − rowsum(dP ∘ P)),
 *   dQ = scale·dS·K,  dK = dSᵀ·(scale·Q)
 * with Z the dropout keep-mask (0 or 1/(1−rate)). The G query heads of a group are folded into
 * rows, (B,U,T,H) -> (B,V,G·T,H), so dK and dV sum over the group with no K/V copies. No
 * `tf.grads` here: a nested gradient run would reset the outer tape.
 *
 * Shape letters: B batch · T query length · S key length · U query heads · V kv heads · H head size.
 */
import * as tf from '@tensorflow/tfjs-core';
import { getDefaultEngine } from '../engine/index.js';
import type { BackwardResult } from '../engine/types.js';
import { ValueError } from '../errors.js';
import { compositeProbabilities } from './composite.js';
import { dropoutKeepMask } from './dropout_mask.js';
import { GroupedQueryAttention, type GroupedQueryAttentionAttrs } from './kernel_names.js';
import { engineProblem } from './kernels/engine_problem.js';
import { heapView, type WasmBackendLike } from './kernels/wasm/heap.js';
import { combinedAdder, kernelMaskOf } from './masks.js';

type Grads = { query: () => tf.Tensor; key: () => tf.Tensor; value: () => tf.Tensor; mask: () => tf.Tensor };

/** Backends whose gradient runs on the attention engine. */
const ENGINE_GRADIENT_BACKENDS: ReadonlySet<string> = new Set(['cpu', 'wasm']);

/**
 * The tensor's values without a copy where the backend allows it: a view of tfjs-wasm's heap (valid
 * until the next tfjs allocation: the engine reads it before any result tensor is made), the cpu
 * backend's own array otherwise.
 */
function valuesOf(t: tf.Tensor): Float32Array | Uint8Array {
  if (tf.getBackend() === 'wasm') return heapView(tf.backend() as unknown as WasmBackendLike, t) as Float32Array | Uint8Array;
  return t.dataSync() as Float32Array | Uint8Array;
}

/** Whether every value is finite (x − x is 0 exactly for finite x, NaN for NaN and ±Inf). */
function allFinite(a: Float32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i]! - a[i]! !== 0) return false;
  return true;
}

/**
 * On wasm, the three gradient tensors allocated up front on tfjs's heap (allocation may grow the
 * heap and detach views, so before any view is taken), with views the engine writes into.
 */
function wasmGradientTensors(shapes: { query: number[]; key: number[] }): { tensors: tf.Tensor4D[]; into: BackwardResult } | null {
  if (tf.getBackend() !== 'wasm') return null;
  const backend = tf.backend() as unknown as WasmBackendLike;
  const infos = [shapes.query, shapes.key, shapes.key].map((shape) => backend.makeOutput(shape, 'float32'));
  const tensors = infos.map((info) => tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor4D);
  const [dQuery, dKey, dValue] = infos.map((info) => heapView(backend, info) as Float32Array) as [Float32Array, Float32Array, Float32Array];
  return { tensors, into: { dQuery, dKey, dValue } };
}

function engineGradients(dOut: tf.Tensor4D, saved: tf.Tensor[], attrs: GroupedQueryAttentionAttrs): Grads {
  const [query, key, value, maskInput, output, second] = saved as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D, tf.Tensor4D, tf.Tensor4D, tf.Tensor?];
  if (!gradientInputsFinite(dOut, saved, attrs)) return compositeGradients(dOut, undefined, saved, attrs);
  const outputs = wasmGradientTensors({ query: query.shape, key: key.shape });
  const arrays = {
    query: valuesOf(query) as Float32Array,
    key: valuesOf(key) as Float32Array,
    value: valuesOf(value) as Float32Array,
    mask: attrs.maskKind === 'none' ? new Uint8Array(1) : valuesOf(maskInput),
  };
  const output32 = valuesOf(output) as Float32Array;
  const gradOutput = valuesOf(dOut) as Float32Array;
  const problem = engineProblem({ query, key, mask: maskInput }, arrays, { ...attrs, returnScores: false });
  // The second saved output is the (B,U,T) log-sum-exp when the kernel returned it; without it
  // (a kernel that ignores returnLogSumExp made the output) the backward computes it (one Q·Kᵀ sweep).
  const logSumExp = second?.rank === 3 ? (valuesOf(second) as Float32Array) : undefined;
  const { dQuery, dKey, dValue } = getDefaultEngine().attentionBackward({
    ...problem,
    ...(logSumExp ? { logSumExp } : {}),
    query: arrays.query,
    key: arrays.key,
    value: arrays.value,
    output: output32,
    gradOutput,
    ...(outputs ? { into: outputs.into } : {}),
  });
  const [dq, dk, dv] = outputs?.tensors ?? [
    tf.tensor4d(dQuery, query.shape), tf.tensor4d(dKey, key.shape), tf.tensor4d(dValue, value.shape),
  ];
  return {
    query: () => dq!,
    key: () => dk!,
    value: () => dv!,
    mask: () => tf.zerosLike(maskInput),
  };
}

/**
 * Whether the problem's values are all finite. A problem with a NaN or ±Inf among its inputs, an
 * additive mask, the output gradient, or an output the forward could not keep finite takes the
 * composite gradient, whose NaN/Inf pattern is the composite autodiff's by construction (the fused
 * backward assumes finite values). O(size) scans, next to the O(T·S) backward.
 */
function gradientInputsFinite(dOut: tf.Tensor4D, saved: tf.Tensor[], attrs: GroupedQueryAttentionAttrs): boolean {
  const [query, key, value, maskInput, output] = saved as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
  const tensors = [query, key, value, output, dOut, ...(attrs.maskKind === 'additive' ? [maskInput] : [])];
  return tensors.every((t) => allFinite(valuesOf(t) as Float32Array));
}

function compositeGradients(
  dOut: tf.Tensor4D,
  dScores: tf.Tensor4D | undefined,
  saved: tf.Tensor[],
  attrs: GroupedQueryAttentionAttrs,
): Grads {
  const [query, key, value, maskInput] = saved as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
  const [b, t, u, h] = query.shape;
  const [, s, v] = key.shape;
  const g = u / v;
  const mask = kernelMaskOf(attrs, maskInput);

  const grads = tf.tidy(() => {
    const adder = combinedAdder(mask, t, s, attrs);
    const p = compositeProbabilities(query, key, adder, attrs.scale); // (B,U,T,S)
    const pf = tf.reshape(p, [b, v, g * t, s]); // (B,V,G·T,S): the group folded into rows
    const rate = attrs.dropoutRate ?? 0;
    // (B,U,T,S) -> (B,V,G·T,S), the keep-mask folded like P
    const keep = rate > 0 ? tf.reshape(dropoutKeepMask([b, u, t, s], rate, attrs.dropoutSeed), [b, v, g * t, s]) : null;
    const fold = (x: tf.Tensor4D) => tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [b, v, g * t, h]); // (B,T,U,H) -> (B,V,G·T,H)
    const unfold = (x: tf.Tensor) => tf.transpose(tf.reshape(x, [b, u, t, h]), [0, 2, 1, 3]); // (B,V,G·T,H) -> (B,T,U,H)
    const heads = (x: tf.Tensor4D) => tf.transpose(x, [0, 2, 1, 3]); // (B,S,V,H) -> (B,V,S,H)
    const kh = heads(key);
    const vh = heads(value);
    const qs = fold(tf.mul(query, tf.scalar(attrs.scale)) as tf.Tensor4D); // scaled query, as in forward
    const dO = fold(dOut);

    const pd = keep == null ? pf : tf.mul(pf, keep); // the probabilities after dropout
    const dV = tf.transpose(tf.matMul(pd, dO, true, false), [0, 2, 1, 3]); // (B,V,S,H) -> (B,S,V,H)
    let dP: tf.Tensor = tf.matMul(dO, vh, false, true); // (B,V,G·T,S)
    if (keep != null) dP = tf.mul(dP, keep);
    if (dScores != null) dP = tf.add(dP, tf.reshape(dScores, [b, v, g * t, s]));
    const dS = tf.mul(pf, tf.sub(dP, tf.sum(tf.mul(dP, pf), -1, true))); // softmax backward
    const dQ = tf.mul(unfold(tf.matMul(dS, kh)), tf.scalar(attrs.scale));
    const dK = tf.transpose(tf.matMul(dS, qs, true, false), [0, 2, 1, 3]); // (B,V,S,H) -> (B,S,V,H)
    return { dQ, dK, dV };
  });
  return {
    query: () => grads.dQ,
    key: () => grads.dK,
    value: () => grads.dV,
    mask: () => tf.zerosLike(maskInput),
  };
}

function gradients(dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: GroupedQueryAttentionAttrs): Grads {
  const dOut = (Array.isArray(dy) ? dy[0] : dy) as tf.Tensor4D;
  // dy follows the kernel's outputs: [dOutput, dScores (with returnScores), dLogSumExp (hidden, unused)].
  const dScores = Array.isArray(dy) && attrs.returnScores ? (dy[1] as tf.Tensor4D | undefined) : undefined;
  // A call that read a KV cache in place attended over positions that are not among its inputs.
  if (attrs.cache != null) {
    throw new ValueError('groupedQueryAttention: gradients through a call that reads a KV cache are not supported; ' +
      'train without the cache (the cached and uncached calls give the same outputs)');
  }
  if (!attrs.returnScores && ENGINE_GRADIENT_BACKENDS.has(tf.getBackend())) return engineGradients(dOut, saved, attrs);
  return compositeGradients(dOut, dScores, saved, attrs);
}

/** Registers the gradient once; called when the package is imported. */
export function registerGroupedQueryAttentionGradient(): void {
  if (tf.getGradient(GroupedQueryAttention) != null) return;
  tf.registerGradient({
    kernelName: GroupedQueryAttention,
    inputsToSave: ['query', 'key', 'value', 'mask'],
    // The output, and the hidden log-sum-exp when the kernel returned one (with returnScores the
    // second output is the scores, saved too but unused: their gradient recomputes P).
    outputsToSave: [true, true],
    gradFunc: (dy, saved, attrs) => gradients(dy, saved, attrs as unknown as GroupedQueryAttentionAttrs),
  });
}
