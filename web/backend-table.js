/**
 * "Run on every backend": the trained model and the attention op alone, timed fused against
 * composite on each tfjs backend, and each backend's logits against the first backend's. Every row
 * shows what it is doing while it runs. Each backend gets its own copy of the model, built from
 * weights read asynchronously: tfjs would otherwise move the tensors between backends with
 * synchronous reads, which lose the WebGPU device.
 */
import * as tf from '@tensorflow/tfjs-core';
import { groupedQueryAttention, groupedQueryAttentionReference } from 'grouped-query-attention';
import { Decoder } from '../examples/lib/decoder.js';
import { createRng, makeBatch } from '../examples/lib/tasks.js';
import { readWeights, writeWeights } from './weights.js';

/** The attention op's own test shape: B=1, T=S=256, U=4 query heads, V=2 kv heads, H=16. */
export const OP_SHAPE = { B: 1, T: 256, U: 4, V: 2, H: 16 };
/** Sequences per model forward pass in the table. */
export const TABLE_BATCH = 16;
/** Largest |Δ logits| shown green. */
export const AGREE = 1e-3;

const fmt = (x, digits = 1) => (x == null || !Number.isFinite(x) ? '–' : x.toFixed(digits));
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

/** Mean ms of `fn` after one warm-up run: at least 2 runs and 200 ms. */
async function timeIt(fn, minMs = 200) {
  await fn();
  let runs = 0;
  const start = performance.now();
  while (performance.now() - start < minMs || runs < 2) {
    await fn();
    runs++;
  }
  return (performance.now() - start) / runs;
}

/** Column titles (also the labels of the stacked rows on narrow screens). */
export const COLUMNS = ['backend', 'model, fused (ms)', 'model, composite (ms)', '× (model)',
  'attention op, fused (ms)', 'attention op, composite (ms)', '× (op)', 'max |Δ logits| vs first row'];
export const TABLE_HEADER = `<tr>${COLUMNS.map((c) => `<th>${esc(c)}</th>`).join('')}</tr>`;

const td = (k, text, cls = '') => `<td data-label="${esc(COLUMNS[k])}"${cls ? ` class="${cls}"` : ''}>${text}</td>`;
const wide = (text, cls) => `<td colspan="7" class="${cls} wide">${esc(text)}</td>`;

function rowHtml(r) {
  if (r.status) return `<tr class="pending">${td(0, r.backend)}${wide(r.status, 'muted')}</tr>`;
  if (r.error) return `<tr>${td(0, r.backend)}${wide(r.error, 'bad')}</tr>`;
  return `<tr>${td(0, r.backend)}${td(1, fmt(r.fusedMs, 2))}${td(2, fmt(r.compositeMs, 2))}${td(3, fmt(r.compositeMs / r.fusedMs))}` +
    (r.opError ? `<td colspan="3" class="bad wide">${esc(r.opError)}</td>`
      : `${td(4, fmt(r.opFusedMs, 2))}${td(5, fmt(r.opCompositeMs, 2))}${td(6, fmt(r.opCompositeMs / r.opFusedMs))}`) +
    td(7, r.maxDiff.toExponential(1), r.maxDiff < AGREE ? 'ok' : 'bad') + '</tr>';
}

/**
 * Runs the table on `names` (in order; the first is the reference for |Δ logits|), drawing into
 * `table` and reporting `onProgress(fraction, text)`; `pause()` lets the page repaint. Returns the
 * rows; the backend in use before is restored.
 */
export async function runBackendTable({ model, spec, names, table, onProgress = () => {}, pause = async () => {} }) {
  const home = tf.getBackend();
  const weights = await readWeights(model);
  const batch = makeBatch(spec.task, spec.n, TABLE_BATCH, createRng(spec.seed + 99));
  const rows = names.map((backend) => ({ backend, status: 'waiting' }));
  const draw = () => {
    table.innerHTML = TABLE_HEADER + rows.map(rowHtml).join('');
  };
  let reference = null;
  try {
    for (const [index, row] of rows.entries()) {
      const phases = ['starting the backend', 'model, fused', 'model, composite', 'attention op, fused', 'attention op, composite'];
      const phase = async (k) => {
        row.status = `running (${k + 1}/${phases.length}): ${phases[k]}…`;
        draw();
        onProgress((index + k / phases.length) / rows.length, `${row.backend}: ${phases[k]} (backend ${index + 1} of ${rows.length})`);
        await pause();
      };
      try {
        await phase(0);
        if (!(await tf.setBackend(row.backend)) || tf.getBackend() !== row.backend) throw new Error('not available in this browser');
        await tf.ready();
        const fused = new Decoder(model.config);
        const composite = new Decoder({ ...model.config, flashAttention: false });
        writeWeights(fused, weights);
        writeWeights(composite, weights);
        const x = tf.tensor2d(batch.inputs, [TABLE_BATCH, batch.length], 'int32');
        const run = async (m) => {
          const y = m.forward(x);
          const data = await y.data();
          y.dispose();
          return data;
        };
        try {
          await phase(1);
          const logits = await run(fused);
          row.fusedMs = await timeIt(() => run(fused));
          await phase(2);
          row.compositeMs = await timeIt(() => run(composite));
          reference ??= logits;
          row.maxDiff = logits.reduce((m, value, i) => Math.max(m, Math.abs(value - reference[i])), 0);
          row.logits = Array.from(logits);
        } finally {
          tf.dispose(x);
          fused.dispose();
          composite.dispose();
        }
        const { B, T, U, V, H } = OP_SHAPE;
        const [q, k, v] = tf.tidy(() => [
          tf.randomNormal([B, T, U, H], 0, 1, 'float32', 1),
          tf.randomNormal([B, T, V, H], 0, 1, 'float32', 2),
          tf.randomNormal([B, T, V, H], 0, 1, 'float32', 3),
        ]);
        const op = (fn) => async () => {
          const y = fn(q, k, v, { causal: true });
          await y.data();
          y.dispose();
        };
        try {
          await phase(3);
          row.opFusedMs = await timeIt(op(groupedQueryAttention));
          await phase(4);
          row.opCompositeMs = await timeIt(op(groupedQueryAttentionReference));
        } catch (e) {
          row.opError = `attention op (${B}, ${T}, ${U}/${V}, ${H}): ${e?.message ?? e}`;
        } finally {
          tf.dispose([q, k, v]);
        }
      } catch (e) {
        row.error = `${row.backend}: ${e?.message ?? e}`;
      }
      delete row.status;
      draw();
      onProgress((index + 1) / rows.length, `${index + 1} of ${rows.length} backends done`);
      await pause();
    }
  } finally {
    await tf.setBackend(home);
  }
  return rows;
}
