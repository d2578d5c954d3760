// This package's attention engine (dist/engine/index.js of the root build):
// createAttentionEngine({threads}) then engine.attention(problem), inputs as Float32Arrays. For decode
// the K/V cache lives in engine memory (EngineBuffers, read in place), as a KV cache would.
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { paddingMask } from '../cases.mjs';

/** opts: { threads, relaxed, distDir } (relaxed: the relaxed-SIMD kernel build, else plain SIMD128) */
export async function setup(c, inp, opts) {
  const mod = await import(pathToFileURL(join(opts.distDir, 'engine', 'index.js')).href);
  const engine = await mod.createAttentionEngine({ threads: opts.threads, relaxedSimd: opts.relaxed });
  await engine.ready;
  if (opts.relaxed && engine.kernel !== 'wasm-relaxed-simd') {
    engine.dispose();
    throw new Error(`relaxed SIMD is not available here (engine kernel ${engine.kernel ?? engine.kind})`);
  }
  const { B, T, S, U, V, H } = c;
  const notes = [`engine path ${engine.kernel ?? engine.kind}`];
  if (engine.threads !== opts.threads) notes.push(`asked for ${opts.threads} threads, got ${engine.threads}`);
  let key = inp.k;
  let value = inp.v;
  if (c.kind === 'decode') {
    key = engine.allocate(inp.k.length);
    key.view().set(inp.k);
    value = engine.allocate(inp.v.length);
    value.view().set(inp.v);
    notes.push('K/V cache in engine memory (EngineBuffer)');
  }
  const problem = {
    batch: B, queryLength: T, keyLength: S, numQueryHeads: U, numKeyValueHeads: V, headDim: H,
    query: inp.q, key, value, causal: c.causal,
  };
  if (c.kind === 'masked') problem.mask = { kind: 'bool', data: paddingMask(c), shape: [B, 1, 1, S] };
  return {
    notes,
    call: async () => engine.attention(problem).output,
    async dispose() {
      engine.dispose();
    },
  };
}
