// The engine developers' benchmark cases, shared by bench/engine-microbench.mjs and
// bench/engine-profile.mjs: one problem per case name, built for a given engine.
import { rand } from './cases.mjs';

/** `--name value` options of a command line, with defaults. */
export function options(args) {
  return (name, dflt) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : dflt;
  };
}

/**
 * The problem of case `name` at batch 1 with heads (U, V, H), and its useful FLOPs:
 * - prefillN: causal, T = S = N (FLOPs halved);
 * - maskedN: non-causal, T = S = N, a bool key-padding mask keeping S − S/8 keys (as the bench's masked case);
 * - decodeN: T = 1 over S = N keys read in place from engine buffers (a KV cache); decodeNstaged passes
 *   copies of them as plain arrays.
 */
export function engineCase(engine, name, U, V, H) {
  const B = 1;
  const heads = { batch: B, numQueryHeads: U, numKeyValueHeads: V, headDim: H };
  if (name.startsWith('prefill') || name.startsWith('masked')) {
    const T = Number(name.replace(/^[a-z]+/, ''));
    const S = T;
    const problem = { ...heads, queryLength: T, keyLength: S, query: rand(B * T * U * H, 1), key: rand(B * S * V * H, 2), value: rand(B * S * V * H, 3) };
    if (name.startsWith('prefill')) return { problem: { ...problem, causal: true }, T, S, flops: (4 * B * U * T * S * H) / 2 };
    const keep = S - S / 8;
    const data = new Uint8Array(B * S).map((_, j) => (j % S < keep ? 1 : 0));
    return { problem: { ...problem, mask: { kind: 'bool', data, shape: [B, 1, 1, S] } }, T, S, flops: 4 * B * U * T * S * H };
  }
  if (name.startsWith('decode')) {
    const S = Number(name.slice('decode'.length).replace('staged', ''));
    const kb = engine.allocate(B * S * V * H);
    const vb = engine.allocate(B * S * V * H);
    kb.view().set(rand(B * S * V * H, 2));
    vb.view().set(rand(B * S * V * H, 3));
    const staged = name.endsWith('staged');
    const problem = {
      ...heads, queryLength: 1, keyLength: S, query: rand(B * U * H, 1),
      key: staged ? kb.view().slice() : kb, value: staged ? vb.view().slice() : vb, queryOffset: S - 1,
    };
    return { problem, T: 1, S, flops: 4 * B * U * S * H };
  }
  throw new Error(`unknown case ${name} (prefillN, maskedN, decodeN[staged])`);
}
