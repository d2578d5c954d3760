/**
 * The composite path run from inside a GPU kernel, for a call whose shape exceeds a device limit of
 * the fused kernel. It computes exactly what `groupedQueryAttentionReference` computes (the oracle in
 * ../../composite.ts) with public tfjs ops on the same backend, warns once per backend and reason,
 * and hands the results to the engine as the kernel's outputs.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import { compositeAttention } from '../../composite.js';
import type { GroupedQueryAttentionAttrs } from '../../kernel_names.js';
import { combinedAdder, kernelMaskOf } from '../../masks.js';

interface RefCountingBackend {
  incRef(dataId: object): void;
}

const warned = new Set<string>();

/** `console.warn`s once per distinct message. */
export function warnOnce(message: string): void {
  if (warned.has(message)) return;
  warned.add(message);
  console.warn(message);
}

/**
 * Runs the composite path for one kernel call and returns its outputs as TensorInfos owned by the
 * caller (the engine): [output] or [output, probabilities]. A call that reads a KV cache in place
 * (`attrs.cache`) attends over (B,S,V,H) copies of the cached rows, sliced on the device; its
 * key/value inputs are ignored, as by the fused kernels.
 */
export function compositeKernelOutputs(
  inputs: { query: TensorInfo; key: TensorInfo; value: TensorInfo; mask?: TensorInfo | undefined },
  attrs: GroupedQueryAttentionAttrs,
  backend: unknown,
): TensorInfo[] {
  const outs = tf.tidy(() => {
    const wrap = <R extends tf.Rank>(t: TensorInfo) =>
      (t instanceof tf.Tensor ? t : tf.engine().makeTensorFromTensorInfo(t)) as tf.Tensor<R>;
    const q = wrap<tf.Rank.R4>(inputs.query);
    const [k, v] =
      attrs.cache == null
        ? [wrap<tf.Rank.R4>(inputs.key), wrap<tf.Rank.R4>(inputs.value)]
        : (attrs.cache.storage.read(attrs.cache.keyLength) as [tf.Tensor4D, tf.Tensor4D]);
    const mask = kernelMaskOf(attrs, inputs.mask == null ? null : wrap<tf.Rank.R4>(inputs.mask));
    const adder = combinedAdder(mask, q.shape[1], k.shape[1], attrs);
    const [o, p] = compositeAttention(q, k, v, adder, {
      scale: attrs.scale,
      returnScores: attrs.returnScores,
      dropout: attrs.dropoutRate ?? 0,
      training: true,
      dropoutSeed: attrs.dropoutSeed ?? 0,
    });
    return p == null ? [o] : [o, p];
  });
  // The engine will track the returned data ids as new tensors: keep the data alive across the
  // disposal of our own handles (what tfjs's Identity kernels do).
  const refs = backend as RefCountingBackend;
  const infos = outs.map((t) => {
    refs.incRef(t.dataId);
    return { dataId: t.dataId, shape: t.shape.slice(), dtype: t.dtype } as TensorInfo;
  });
  for (const t of outs) t.dispose();
  return infos;
}
