/**
 * Attention of a call that uses a KV cache: the call's projected keys and values are written in
 * place at the cache's length, then the queries attend over every cached position through the
 * engine, reading the cache where it lives. The causal mask is aligned bottom-right: the query at
 * absolute position p = cache.length + i sees keys 0..p (with a sliding window, p − w + 1..p).
 *
 * Masks here are boolean: the cached positions' key-mask bits (from the value mask of the call that
 * wrote them), the query mask, and an attention mask broadcastable to (B, T, cache.length + T)
 * (nonzero attends). Inference only: no gradient flows through the cache.
 */
import * as tf from '@tensorflow/tfjs-core';
import { getDefaultEngine } from '../engine/index.js';
import type { EngineMask } from '../engine/types.js';
import { check, formatShape } from '../errors.js';
import { broadcastShapes } from './attention_mask.js';
import type { KVCache } from './kv_cache.js';

export interface CachedCallMasks {
  queryMask: tf.Tensor | null;
  valueMask: tf.Tensor | null;
  attentionMask: tf.Tensor | null;
}

/** Every check of a cached call, before any work. */
export function checkCachedCall(
  where: string,
  cache: KVCache,
  dims: { numKeyValueHeads: number; headDim: number },
  batch: number,
  t: number,
  masks: CachedCallMasks,
): void {
  check(cache.numKeyValueHeads === dims.numKeyValueHeads && cache.headDim === dims.headDim, where, () =>
    `the cache holds ${cache.numKeyValueHeads} key/value heads of size ${cache.headDim}, this layer has ` +
    `${dims.numKeyValueHeads} of size ${dims.headDim}; create the cache with this layer's createCache`);
  cache.checkAppend(t, batch, where);
  const s = cache.length + t;
  for (const [name, m] of [['queryMask', masks.queryMask], ['valueMask', masks.valueMask]] as const) {
    if (m == null) continue;
    check(m.rank === 2 && m.shape[0] === batch && m.shape[1] === t, where, () =>
      `${name} must have shape (B, T) = ${formatShape([batch, t])} with a cache (it covers this call's ` +
      `positions); received ${formatShape(m.shape)}`);
  }
  const a = masks.attentionMask;
  if (a != null) {
    const fits = a.rank >= 2 && a.rank <= 3 && broadcastShapes(a.shape, [batch, t, s])?.join() === [batch, t, s].join();
    check(fits, where, () =>
      `attentionMask must broadcast to (B, T, cache.length + T) = ${formatShape([batch, t, s])} with a cache; ` +
      `received ${formatShape(a.shape)}`);
  }
}

function bits(m: tf.Tensor): Uint8Array {
  const data = m.dataSync();
  const out = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i] !== 0 ? 1 : 0;
  return out;
}

/** The (B, 1, T, S) bool mask of a cached call, or undefined when every position attends. */
function cachedMask(cache: KVCache, batch: number, t: number, masks: CachedCallMasks): EngineMask | undefined {
  const s = cache.length + t;
  const c = cache.maxLength;
  const q = masks.queryMask ? bits(masks.queryMask) : null;
  let attn: { data: Uint8Array; shape: number[] } | null = null;
  if (masks.attentionMask) {
    const shape = masks.attentionMask.shape;
    attn = { data: bits(masks.attentionMask), shape: shape.length === 2 ? [1, ...shape] : shape };
  }
  let anyMasked = q != null && q.includes(0);
  for (let b = 0; b < batch && !anyMasked; b++) anyMasked = cache.keyMask.subarray(b * c, b * c + s).includes(0);
  if (!anyMasked && (attn == null || !attn.data.includes(0))) return undefined;
  const data = new Uint8Array(batch * t * s);
  for (let b = 0; b < batch; b++)
    for (let i = 0; i < t; i++) {
      const rowOk = q == null || q[b * t + i] === 1;
      for (let j = 0; j < s; j++) {
        let ok = rowOk && cache.keyMask[b * c + j] === 1;
        if (ok && attn != null) {
          const [ab, at, as] = attn.shape as [number, number, number];
          ok = attn.data[((ab === 1 ? 0 : b) * at + (at === 1 ? 0 : i)) * as + (as === 1 ? 0 : j)] === 1;
        }
        data[(b * t + i) * s + j] = ok ? 1 : 0;
      }
    }
  return { kind: 'bool', data, shape: [batch, 1, t, s] };
}

/**
 * Appends this call's keys/values (B, T, V, H) to the cache and attends: query (B, T, U, H) ->
 * output (B, T, U, H) and, when asked, probabilities (B, U, T, cache.length + T).
 */
export function attendWithCache(
  cache: KVCache,
  query: tf.Tensor4D,
  key: tf.Tensor4D,
  value: tf.Tensor4D,
  masks: CachedCallMasks,
  options: { causal: boolean; slidingWindow: number | null; returnScores: boolean },
): { output: tf.Tensor4D; scores: tf.Tensor4D | null } {
  const [b, t, u, h] = query.shape;
  const v = key.shape[2];
  const past = cache.length;
  cache.write(key.dataSync() as Float32Array, value.dataSync() as Float32Array,
    masks.valueMask ? bits(masks.valueMask) : null, t);
  const mask = cachedMask(cache, b, t, masks);
  const { keys, values } = cache.buffers();
  const result = getDefaultEngine().attention({
    batch: b,
    queryLength: t,
    keyLength: past + t,
    numQueryHeads: u,
    numKeyValueHeads: v,
    headDim: h,
    query: query.dataSync() as Float32Array,
    key: keys,
    value: values,
    keyCapacity: cache.maxLength,
    ...(mask ? { mask } : {}),
    causal: options.causal,
    queryOffset: past,
    ...(options.slidingWindow != null ? { slidingWindow: options.slidingWindow } : {}),
    returnProbabilities: options.returnScores,
  });
  cache.advance(t);
  return {
    output: tf.tensor4d(result.output, [b, t, u, h]),
    scores: options.returnScores ? tf.tensor4d(result.probabilities!, [b, u, t, past + t]) : null,
  };
}
