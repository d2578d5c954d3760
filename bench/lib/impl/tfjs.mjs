// TensorFlow.js rows on the cpu and wasm backends (tfjs 4.22.0 from the root node_modules):
// - 'keras': the Keras GroupedQueryAttention composition: repeat K/V G times along the head axis
//   (ops.repeat = expandDims + tile + reshape), scale the query, einsum as batched matMul, the mask as
//   (1 - mask) * -1e9 added to the scores, softmax, matMul, transpose back;
// - 'package': this package's op, groupedQueryAttention(query, key, value, {causal, attentionMask}),
//   imported from the root build (dist/index.js).
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { paddingMask } from '../cases.mjs';

/** opts: { backend: 'cpu' | 'wasm', variant: 'keras' | 'package', relaxed (package: the kernel build), distDir } */
export async function setup(c, inp, opts) {
  const tf = await import('@tensorflow/tfjs-core');
  if (opts.backend === 'cpu') await import('@tensorflow/tfjs-backend-cpu');
  else await import('@tensorflow/tfjs-backend-wasm');
  let op = null;
  let engineNote = null;
  if (opts.variant === 'package') {
    // Imported before setBackend so its kernels are registered when the backend initialises.
    const mod = await import(pathToFileURL(join(opts.distDir, 'index.js')).href);
    op = mod.groupedQueryAttention;
    if (typeof op !== 'function') throw new Error('dist/index.js exports no groupedQueryAttention');
    // The op's engine: the relaxed-SIMD kernel build or the plain SIMD128 one (opts.relaxed).
    const eng = await import(pathToFileURL(join(opts.distDir, 'engine', 'index.js')).href);
    const engine = await eng.createAttentionEngine({ relaxedSimd: opts.relaxed });
    await engine.ready;
    if (opts.relaxed && engine.kernel !== 'wasm-relaxed-simd') {
      engine.dispose();
      throw new Error(`relaxed SIMD is not available here (engine kernel ${engine.kernel ?? engine.kind})`);
    }
    eng.setDefaultEngine(engine);
    engineNote = `engine ${engine.kernel ?? engine.kind}, ${engine.threads} thread(s)`;
  }
  if (!(await tf.setBackend(opts.backend))) throw new Error(`tfjs backend ${opts.backend} failed to initialise`);
  await tf.ready();

  const { B, T, S, U, V, H } = c;
  const G = U / V;
  const q = tf.tensor4d(inp.q, [B, T, U, H]);
  const k = tf.tensor4d(inp.k, [B, S, V, H]);
  const v = tf.tensor4d(inp.v, [B, S, V, H]);
  let maskBTS = null; // (B, T, S) bool, Keras's attention_mask
  if (c.kind === 'masked') {
    const pm = paddingMask(c);
    const m = new Uint8Array(B * T * S);
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) m.set(pm.subarray(b * S, (b + 1) * S), (b * T + t) * S);
    maskBTS = tf.tensor3d(m, [B, T, S], 'bool');
  }
  const notes = engineNote ? [engineNote] : [];
  const scale = Math.fround(1 / Math.fround(Math.sqrt(H)));

  const keras = () =>
    tf.tidy(() => {
      const repeat = (x) => (G === 1 ? x : tf.reshape(tf.tile(tf.expandDims(x, 3), [1, 1, 1, G, 1]), [B, S, U, H]));
      const kr = repeat(k);
      const vr = repeat(v);
      const qs = tf.mul(q, tf.scalar(scale));
      // einsum('btuh,bsuh->buts')
      let scores = tf.matMul(tf.transpose(qs, [0, 2, 1, 3]), tf.transpose(kr, [0, 2, 1, 3]), false, true);
      let mask = maskBTS;
      if (c.causal) {
        const causal = tf.reshape(tf.cast(tf.linalg.bandPart(tf.ones([T, S]), -1, 0), 'bool'), [1, T, S]);
        mask = mask ? tf.logicalAnd(mask, causal) : causal;
      }
      if (mask) {
        const adder = tf.mul(tf.sub(tf.scalar(1), tf.cast(tf.expandDims(mask, 1), 'float32')), tf.scalar(-1e9));
        scores = tf.add(scores, adder);
      }
      const probs = tf.softmax(scores);
      // einsum('buts,bsuh->btuh')
      return tf.transpose(tf.matMul(probs, tf.transpose(vr, [0, 2, 1, 3])), [0, 2, 1, 3]);
    });
  const pkg = () => op(q, k, v, { causal: c.causal, attentionMask: maskBTS });
  const run = opts.variant === 'keras' ? keras : pkg;
  if (c.kind === 'decode') notes.push('no causal mask (T=1 sees all S keys)');

  return {
    notes,
    call: async () => {
      const out = run();
      const data = out.dataSync();
      out.dispose();
      return data;
    },
    /** Extra tensor bytes at the peak of one call beyond its output (tf.profile). */
    async tensorPeakBytes() {
      const before = tf.memory().numBytes;
      const info = await tf.profile(() => {
        const out = run();
        out.dataSync();
        return out;
      });
      const outBytes = 4 * B * T * U * H;
      if (info.result?.dispose) info.result.dispose();
      return info.peakBytes - before - outBytes;
    },
    async dispose() {
      tf.disposeVariables();
    },
  };
}
