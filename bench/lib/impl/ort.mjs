// onnxruntime-node (CPU EP) and onnxruntime-web (wasm EP in Node) rows: com.microsoft.GroupQueryAttention
// and ONNX Attention (opset 23), one-node models built by ../onnx.mjs.
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { attention23Model, gqaModel } from '../onnx.mjs';
import { paddingMask, sliceRows, toBNSH } from '../cases.mjs';

/** opts: { lib: 'node' | 'web', op: 'gqa' | 'attn23', threads, tmpDir } */
/** (B, 1, T, S) copy of the key-padding mask (ONNX Attention wants the T axis in full). */
function fullMask(c) {
  const { B, T, S } = c;
  const pm = paddingMask(c);
  const m = new Uint8Array(B * T * S);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) m.set(pm.subarray(b * S, (b + 1) * S), (b * T + t) * S);
  return m;
}

export async function setup(c, inp, opts) {
  const { B, T, S, U, V, H } = c;
  const isNode = opts.lib === 'node';
  const ort = isNode ? await import('onnxruntime-node') : await import('onnxruntime-web');
  const sessionOptions = { graphOptimizationLevel: 'all', executionMode: 'sequential', interOpNumThreads: 1, logSeverityLevel: 3 };
  let profilePrefix = null;
  if (isNode) {
    sessionOptions.executionProviders = ['cpu'];
    sessionOptions.intraOpNumThreads = opts.threads;
    profilePrefix = join(opts.tmpDir, `ort-profile-${process.pid}-${opts.op}-t${opts.threads}`);
    sessionOptions.enableProfiling = true;
    sessionOptions.profileFilePrefix = profilePrefix;
  } else {
    ort.env.wasm.numThreads = opts.threads;
    ort.env.wasm.proxy = false;
    ort.env.logLevel = 'error';
    sessionOptions.executionProviders = ['wasm'];
  }
  const f32 = (data, dims) => new ort.Tensor('float32', data, dims);
  const i32 = (data, dims) => new ort.Tensor('int32', data, dims);
  const notes = [];
  let model;
  let feeds;
  let fetches;
  let outName;

  if (opts.op === 'attn23') {
    outName = 'Y';
    let mask = null;
    if (c.kind === 'masked') mask = 'bool';
    const makeFeeds = (maskType) => {
      const f = { Q: f32(inp.q, [B, T, U * H]), K: f32(inp.k, [B, S, V * H]), V: f32(inp.v, [B, S, V * H]) };
      if (maskType === 'bool') f.M = new ort.Tensor('bool', fullMask(c), [B, 1, T, S]);
      return f;
    };
    model = attention23Model({ U, V, causal: c.causal, mask });
    feeds = makeFeeds(mask);
    if (c.kind === 'decode') notes.push('K/V passed whole (is_causal=0), no past');
    if (mask) notes.push('bool attn_mask (B,1,T,S)');
  } else {
    outName = 'output';
    if (c.kind === 'decode') {
      // KV cache of S rows (S-1 cached + the new one), bottom-right causal: the query sees all S keys.
      const newK = f32(sliceRows(c, inp.k, S - 1, S), [B, 1, V * H]);
      const newV = f32(sliceRows(c, inp.v, S - 1, S), [B, 1, V * H]);
      const common = { query: f32(inp.q, [B, 1, U * H]), key: newK, value: newV,
        seqlens_k: i32(new Int32Array(B).fill(S - 1), [B]), total_sequence_length: i32(Int32Array.of(S), []) };
      model = gqaModel({ U, V, causal: true, past: true });
      if (isNode) {
        // Shared buffer: past and present are the same capacity-S tensors; the new row is written in place
        // (it equals row S-1 already there, so every run sees the same cache).
        const pk = f32(toBNSH(c, inp.k), [B, V, S, H]);
        const pv = f32(toBNSH(c, inp.v), [B, V, S, H]);
        feeds = { ...common, past_key: pk, past_value: pv };
        fetches = { output: null, present_key: pk, present_value: pv };
        notes.push('shared-buffer KV cache (capacity S); the binding still copies present_* out');
      } else {
        // ort-web copies inputs into its heap, so past and present cannot alias: separate past (S-1 rows).
        feeds = { ...common,
          past_key: f32(toBNSH(c, sliceRows(c, inp.k, 0, S - 1), S - 1), [B, V, S - 1, H]),
          past_value: f32(toBNSH(c, sliceRows(c, inp.v, 0, S - 1), S - 1), [B, V, S - 1, H]) };
        notes.push('past (S-1 rows) + new row -> present (no shared buffer in ort-web)');
      }
    } else {
      const bias = c.kind === 'masked';
      model = gqaModel({ U, V, causal: c.causal, bias });
      feeds = { query: f32(inp.q, [B, T, U * H]), key: f32(inp.k, [B, S, V * H]), value: f32(inp.v, [B, S, V * H]),
        seqlens_k: i32(new Int32Array(B).fill(S - 1), [B]), total_sequence_length: i32(Int32Array.of(S), []) };
      if (bias) {
        const pm = paddingMask(c);
        const ab = new Float32Array(B * T * S);
        for (let b = 0; b < B; b++)
          for (let t = 0; t < T; t++)
            for (let s = 0; s < S; s++) if (!pm[b * S + s]) ab[(b * T + t) * S + s] = -1e9;
        feeds.attention_bias = f32(ab, [B, 1, T, S]);
        notes.push('causal=0, additive attention_bias (B,1,T,S) for the padding');
      }
    }
  }

  const session = await ort.InferenceSession.create(model, sessionOptions);
  const call = async () => {
    const r = fetches ? await session.run(feeds, fetches) : await session.run(feeds);
    return r[outName].data;
  };
  return {
    notes,
    call,
    /** Kernel time of every call so far (ms), from ORT profiling (onnxruntime-node only). */
    async kernelTimes() {
      if (!isNode) return null;
      session.endProfiling();
      const dir = opts.tmpDir;
      const base = profilePrefix.slice(dir.length + 1);
      const files = readdirSync(dir).filter((f) => f.startsWith(base) && f.endsWith('.json'));
      if (!files.length) return null;
      const events = JSON.parse(readFileSync(join(dir, files[0]), 'utf8'));
      for (const f of files) rmSync(join(dir, f), { force: true });
      const k = events.filter((e) => e.cat === 'Node' && /_kernel_time$/.test(e.name)).map((e) => e.dur / 1000);
      return k; // one per call, in order (check, warm-up, then the timed runs)
    },
    async dispose() {
      await session.release();
    },
  };
}
