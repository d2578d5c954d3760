// KV-cache decode benchmark: per-step time of GroupedQueryAttention with a cache at S = 2048 and
// S = 8192 cached positions, (U, V, H) = (32, 8, 128), batch 1, wasm backend, and the memory over
// the steps. Run: npm run build && node bench/kv_decode.mjs [--steps 40]
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import { GroupedQueryAttention } from '../dist/index.js';
import { getDefaultEngine } from '../dist/engine/index.js';

const steps = Number(process.argv[process.argv.indexOf('--steps') + 1]) || 40;
await tf.setBackend('wasm');
const [u, v, h, d] = [32, 8, 128, 512];
const layer = new GroupedQueryAttention({ headDim: h, numQueryHeads: u, numKeyValueHeads: v });
layer.build([[null, null, d], [null, null, d]]);
const engine = getDefaultEngine();

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const rows = [];
for (const past of [2048, 8192]) {
  const cache = layer.createCache({ batchSize: 1, maxLength: past + steps + 1 });
  // Fill the cache in chunks (prefill), then time single-token steps.
  for (let at = 0; at < past; at += 512) {
    const x = tf.randomNormal([1, Math.min(512, past - at), d]);
    tf.dispose(layer.apply(x, { value: x, cache, useCausalMask: true }));
    if (process.env.VERBOSE) console.error(`prefill ${past}: ${at}`);
    x.dispose();
  }
  const x = tf.randomNormal([1, 1, d]);
  const tensorsBefore = tf.memory().numTensors;
  const engineBefore = engine.memoryBytes();
  const times = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    const y = layer.apply(x, { value: x, cache, useCausalMask: true });
    y.dataSync();
    times.push(performance.now() - t0);
    y.dispose();
  }
  rows.push({
    cached: past,
    medianMs: median(times),
    p10: [...times].sort((a, b) => a - b)[Math.floor(steps / 10)],
    p90: [...times].sort((a, b) => a - b)[Math.floor((steps * 9) / 10)],
    tensorsGrowth: tf.memory().numTensors - tensorsBefore,
    engineMemoryGrowthBytes: engine.memoryBytes() - engineBefore,
  });
  x.dispose();
  cache.dispose();
}
console.log(`engine: ${engine.kind}, threads ${engine.threads}; ${steps} decode steps per length`);
console.table(rows);
console.log(`step time ratio S=8192 / S=2048: ${(rows[1].medianMs / rows[0].medianMs).toFixed(2)}x (target <= 4.5x)`);
