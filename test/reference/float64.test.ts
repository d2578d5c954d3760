/**
 * The float64 reference (test/reference/float64.ts) is itself checked against every Keras 3.6 golden
 * case, float32 policy (`expected`, with masked logits rounded as float32 Keras does) — so the property
 * tests compare the package against something known to be Keras. Also its own invariants: the
 * fully-masked-row rule of spec §6 and the mask broadcasting of §4.
 */
import { describe, expect, test } from 'vitest';
import { goldenCases, type GoldenCase, type JsonTensor } from '../helpers/golden.js';
import {
  attention64,
  compare64,
  effectiveMask,
  gqaLayer64,
  tensor64,
  type LayerWeights64,
  type Mask64,
} from './float64.js';

const cases = goldenCases('golden');

function t64(t: JsonTensor) {
  return tensor64(t.shape, (t.data as number[]).map(Number));
}

function mask64(t: JsonTensor | undefined): Mask64 | null {
  if (t == null) return null;
  return { shape: t.shape, data: (t.data as Array<number | boolean>).map(Number), numeric: t.dtype !== 'bool' };
}

function goldenWeights(c: GoldenCase): LayerWeights64 {
  const byName = new Map(c.weights.map((w) => [w.name, Float64Array.from(w.data)]));
  return {
    queryKernel: byName.get('query/kernel')!,
    queryBias: byName.get('query/bias') ?? null,
    keyKernel: byName.get('key/kernel')!,
    keyBias: byName.get('key/bias') ?? null,
    valueKernel: byName.get('value/kernel')!,
    valueBias: byName.get('value/bias') ?? null,
    outputKernel: byName.get('attention_output/kernel')!,
    outputBias: byName.get('attention_output/bias') ?? null,
  };
}

describe('float64 reference against Keras 3.6 golden vectors (float32 policy)', () => {
  test('the golden folder has the documented cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(39);
  });

  test.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const k = c.init_kwargs as { head_dim: number; num_query_heads: number; num_key_value_heads: number };
    const got = gqaLayer64({
      query: t64(c.inputs['query']!),
      value: t64(c.inputs['value']!),
      key: c.inputs['key'] ? t64(c.inputs['key']) : null,
      headDim: k.head_dim,
      numQueryHeads: k.num_query_heads,
      numKeyValueHeads: k.num_key_value_heads,
      weights: goldenWeights(c),
      queryMask: mask64(c.masks['query_mask']),
      valueMask: mask64(c.masks['value_mask']),
      keyMask: mask64(c.masks['key_mask']),
      attentionMask: mask64(c.masks['attention_mask']),
      useCausalMask: c.call_kwargs.use_causal_mask,
    });
    expect(compare64(got.layerOutput, c.expected.output.data as number[]), 'output').toBeNull();
    if (c.expected.attention_scores) {
      expect(compare64(got.scores, c.expected.attention_scores.data as number[], 1e-5, 1e-6), 'scores').toBeNull();
    }
  });

  test('golden cases with fully masked rows are covered (the float32 rounding matters there)', () => {
    const withFullyMasked = cases.filter((c) => (c.fully_masked_rows_count_over_B_U_T ?? 0) > 0).map((c) => c.name);
    expect(withFullyMasked).toEqual(expect.arrayContaining(['fully_masked_row_small_logits', 'query_mask_only']));
  });
});

describe('float64 reference invariants', () => {
  test('fully masked rows: uniform below |s| = 32, the 64-grid above (spec §6)', () => {
    // Head size 1, scale 1: the logits are the key values.
    const q = tensor64([1, 1, 1, 1], [1]);
    const v = tensor64([1, 4, 1, 1], [1, 2, 3, 4]);
    const none: Mask64 = { shape: [1, 1, 1, 4], data: [0, 0, 0, 0] };
    const large = attention64(q, tensor64([1, 4, 1, 1], [-34.6, -5.9, 34.7, 59.3]), v, none, 1);
    // −34.6 rounds to grid point −64 (exp(−128)/2 ≈ 1.3e-56: 0 in float32, tiny in float64).
    expect(large.scores[0]).toBeLessThan(1e-50);
    expect(large.scores[1]! / 8.03e-29).toBeCloseTo(1, 2);
    expect(large.scores[2]).toBeCloseTo(0.5, 12);
    expect(large.scores[3]).toBeCloseTo(0.5, 12);
    expect(large.maxFullyMaskedLogit).toBeCloseTo(59.3, 4);
    const small = attention64(q, tensor64([1, 4, 1, 1], [1, -2, 3, 30]), v, none, 1);
    expect(Array.from(small.scores)).toEqual([0.25, 0.25, 0.25, 0.25]);
    expect(small.output[0]).toBe(2.5);
    // A plain float64 pipeline would give the unmasked softmax instead; ours does not.
    const unmasked = attention64(q, tensor64([1, 4, 1, 1], [1, -2, 3, 30]), v, null, 1);
    expect(unmasked.scores[3]).toBeGreaterThan(0.99);
  });

  test('a partially masked row gives masked keys exactly 0', () => {
    const q = tensor64([1, 1, 1, 1], [1]);
    const k = tensor64([1, 3, 1, 1], [100, 0, -5]);
    const v = tensor64([1, 3, 1, 1], [7, 1, 2]);
    const r = attention64(q, k, v, { shape: [1, 1, 1, 3], data: [0, 1, 1] }, 1);
    expect(r.scores[0]).toBe(0);
    expect(r.scores[1]! + r.scores[2]!).toBeCloseTo(1, 14);
    expect(r.output[0]).toBeCloseTo((1 + 2 * Math.exp(-5)) / (1 + Math.exp(-5)), 12);
  });

  test('effective mask: causal is top-left aligned, masks AND right-aligned, ranks expand at -3', () => {
    const causal = effectiveMask(3, 5, {}, true)!;
    expect(causal.shape).toEqual([1, 1, 3, 5]);
    expect(Array.from(causal.data).map(Number)).toEqual([1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0]);
    const qv = effectiveMask(2, 2, {
      queryMask: { shape: [1, 2], data: [1, 0] },
      valueMask: { shape: [1, 2], data: [1, 1] },
    }, false)!;
    expect(qv.shape).toEqual([1, 1, 2, 2]);
    expect(Array.from(qv.data).map(Number)).toEqual([1, 1, 0, 0]);
    expect(effectiveMask(2, 2, { attentionMask: { shape: [2, 2], data: [1, 0, 1, 1] } }, false)!.shape).toEqual([1, 1, 2, 2]);
    // (B,T,1) against a (B,U,T,S) mask lines the batch up with the heads (spec §4 pitfall).
    expect(() => effectiveMask(2, 2, {
      queryMask: { shape: [2, 2], data: [1, 1, 1, 1] },
      attentionMask: { shape: [2, 3, 2, 2], data: new Array(24).fill(1) },
    }, false)).toThrow(/could not be broadcast/);
  });
});
