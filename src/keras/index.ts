/**
 * Keras 3 model files in TensorFlow.js: load a `.keras` archive (functional model with
 * `GroupQueryAttention`, Embedding, Dense, LayerNormalization, Add, Dropout, …) as a tfjs
 * `LayersModel`, load or save Keras `.weights.h5` files, and save a model as a `.keras` archive.
 *
 * HDF5 is read and written by h5wasm (HDF5 compiled to WebAssembly) in memory, so every function
 * works in Node and in browsers; h5wasm is loaded on first use.
 *
 * This is the package's `grouped-query-attention/keras` entry point: the root entry does not load
 * h5wasm or fflate.
 */
// The package's registrations (layer class, kernels, gradient): this entry point works on its own.
import '../index.js';
import type * as tfl from '@tensorflow/tfjs-layers';
import { looksLikeZip, readKerasArchive, writeKerasArchive, type KerasReadOptions } from './archive.js';
import { KerasFileError } from './errors.js';
import { modelFromKerasConfig } from './from_keras.js';
import { looksLikeHdf5, readH5, writeH5, type H5Contents } from './h5.js';
import { readSource, type KerasSource } from './source.js';
import { kerasConfigFromModel } from './to_keras.js';
import { assignWeights, collectWeights, datasetSelector, kerasWeightLayout } from './weights.js';

export { KerasConfigError, KerasFileError, KerasWeightsError } from './errors.js';
export { SUPPORTED_KERAS_LAYERS } from './from_keras.js';
export type { KerasSource } from './source.js';
export type { KerasReadOptions } from './archive.js';
export type { KerasWeightEntry, KerasWeightLayout } from './weights.js';

/**
 * Says what training state a file holds and the loader does not restore: the compile config (optimizer,
 * loss, metrics) and the optimizer's variables (Adam's moments, the iteration count). The weights load
 * exactly; to resume training, compile the tfjs model (its optimizer starts from zero state).
 */
function reportSkippedTraining(what: string, config: Record<string, unknown> | null, contents: H5Contents, options: KerasReadOptions): void {
  const compile = config?.['compile_config'];
  const optimizerVars = [...contents.datasets.keys()].filter((p) => p.startsWith('/optimizer/')).length;
  const hasCompile = compile != null && typeof compile === 'object' && Object.keys(compile).length > 0;
  if (!hasCompile && optimizerVars === 0) return;
  const optimizer = hasCompile ? (compile as Record<string, unknown>)['optimizer'] : null;
  const name = optimizer != null && typeof optimizer === 'object'
    ? String((optimizer as Record<string, unknown>)['class_name'] ?? 'an optimizer')
    : typeof optimizer === 'string' ? optimizer : 'an optimizer';
  const parts = [
    ...(hasCompile ? [`its compile_config (optimizer ${name}, loss and metrics)`] : []),
    ...(optimizerVars > 0 ? [`${optimizerVars} optimizer variables`] : []),
  ];
  (options.warn ?? console.warn)(
    `${what}: the weights loaded exactly, but ${parts.join(' and ')} were not loaded: ` +
    'TensorFlow.js optimizers are not restored from Keras files. To train further, call model.compile(...) ' +
    '(the optimizer starts from a fresh state).');
}

/** The Keras version whose format {@link saveKerasModel} writes. */
const WRITTEN_KERAS_VERSION = '3.6.0';

/**
 * Loads a Keras 3 `.keras` archive as a tfjs `LayersModel` with the saved weights.
 *
 * The functional graph is rebuilt from `config.json` (`tf.input`, `tf.layers.*` and
 * `GroupedQueryAttention`, called as Keras recorded in `inbound_nodes`, including the GQA
 * layer's `key=`, masks, `use_causal_mask` and `return_attention_scores`), then `model.weights.h5`
 * is loaded by its Keras HDF5 paths. Files written by Keras 3.6 and by later Keras 3 versions load.
 *
 * @param source a path (Node), a URL, the bytes (`ArrayBuffer`/`Uint8Array`) or a browser `File`/`Blob`.
 * @throws KerasFileError for a file that is not a zip, truncated or corrupted;
 *   KerasConfigError for an unsupported layer class or option (naming the layer);
 *   KerasWeightsError for weights that do not fit (naming the path, the expected and the received shape).
 *
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import '@tensorflow/tfjs-backend-cpu';
 * import { loadKerasModel } from 'grouped-query-attention/keras';
 *
 * // Python: model.save("decoder.keras")
 * // A decoder saved by Keras 3.6 (shipped with this repository's tests):
 * const model = await loadKerasModel('test/data/fixtures/tiny_decoder_v36.keras');
 * const tokens = tf.tensor2d([[22, 8, 38, 30, 3, 2, 1, 17, 9, 0, 16, 28]], [1, 12], 'int32');
 * const logits = model.predict(tokens) as tf.Tensor;   // (1, 12, 50), as Keras's model(tokens)
 * model.dispose();
 * ```
 */
export async function loadKerasModel(source: KerasSource, options: KerasReadOptions = {}): Promise<tfl.LayersModel> {
  const { bytes, what } = await readSource(source, '.keras file');
  if (!looksLikeZip(bytes)) {
    throw new KerasFileError(
      `${what}: not a .keras archive (not a zip file${looksLikeHdf5(bytes) ? '; this is an HDF5 file, use loadKerasWeights' : ''})`);
  }
  const archive = readKerasArchive(bytes, what, options);
  const model = modelFromKerasConfig(archive.config);
  try {
    // Only the datasets the model has, with the shapes it expects, are read.
    const contents = await readH5(archive.weights, `${what} model.weights.h5`, datasetSelector(model));
    assignWeights(model, contents, `${what} model.weights.h5`);
    reportSkippedTraining(what, archive.config, contents, options);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/**
 * Loads Keras weights into a model built with this package (or loaded by {@link loadKerasModel}):
 * a `.weights.h5` file (`model.save_weights(...)`) or the weights inside a `.keras` archive.
 *
 * All or nothing: every dataset is read and checked (presence and shape, no extra weights) before
 * the first variable changes; on any error the model keeps its weights.
 *
 * @example
 * ```ts
 * import * as tf from '@tensorflow/tfjs-core';
 * import * as tfl from '@tensorflow/tfjs-layers';
 * import '@tensorflow/tfjs-backend-cpu';
 * import { GroupedQueryAttention } from 'grouped-query-attention';
 * import { loadKerasWeights } from 'grouped-query-attention/keras';
 *
 * const query = tfl.input({ shape: [5, 8], name: 'query' });
 * const value = tfl.input({ shape: [7, 8], name: 'value' });
 * const gqa = new GroupedQueryAttention({ headDim: 4, numQueryHeads: 4, numKeyValueHeads: 2 });
 * const model = tfl.model({ inputs: [query, value], outputs: gqa.apply(query, { value }) as tfl.SymbolicTensor });
 * await loadKerasWeights(model, 'test/data/fixtures/gqa_layer_v36.weights.h5');   // Python: model.save_weights(...)
 * ```
 */
export async function loadKerasWeights(
  model: tfl.LayersModel, source: KerasSource, options: KerasReadOptions = {},
): Promise<void> {
  const { bytes, what } = await readSource(source, 'weights file');
  let h5Bytes = bytes;
  let label = what;
  if (looksLikeZip(bytes)) {
    h5Bytes = readKerasArchive(bytes, what, options).weights;
    label = `${what} model.weights.h5`;
  } else if (!looksLikeHdf5(bytes)) {
    throw new KerasFileError(`${what}: neither an HDF5 .weights.h5 file nor a .keras zip archive`);
  }
  const contents = await readH5(h5Bytes, label, datasetSelector(model));
  assignWeights(model, contents, label);
  reportSkippedTraining(what, null, contents, options);
}

/**
 * Writes a model's weights as a Keras 3 `.weights.h5` file (the layout `model.save_weights` writes
 * and `model.load_weights` reads), returned as bytes. Loading them back, in Keras or with
 * {@link loadKerasWeights}, gives the same float32 values.
 *
 * Asynchronous because h5wasm's WebAssembly module starts asynchronously.
 *
 * @example
 * ```ts
 * import '@tensorflow/tfjs-backend-cpu';
 * import { writeFileSync } from 'node:fs';
 * import { loadKerasModel, saveKerasWeights } from 'grouped-query-attention/keras';
 *
 * // A decoder saved by Keras 3.6 (shipped with this repository's tests):
 * const model = await loadKerasModel('test/data/fixtures/tiny_decoder_v36.keras');
 * writeFileSync('decoder.weights.h5', await saveKerasWeights(model));
 * // Python: model.load_weights("decoder.weights.h5")
 * ```
 */
export async function saveKerasWeights(model: tfl.LayersModel): Promise<Uint8Array> {
  const { groups, datasets } = collectWeights(model);
  return writeH5(groups, datasets);
}

/**
 * Writes a functional model as a Keras 3 `.keras` archive: `metadata.json`, `config.json` in the
 * Keras 3.6 format (later options such as `use_gate` only when set) and `model.weights.h5`.
 * `keras.saving.load_model` reads it; so does {@link loadKerasModel}.
 *
 * @throws KerasConfigError for a layer class or option that has no Keras equivalent.
 *
 * @example
 * ```ts
 * import { writeFileSync } from 'node:fs';
 * import * as tfl from '@tensorflow/tfjs-layers';
 * import '@tensorflow/tfjs-backend-cpu';
 * import { GroupedQueryAttention } from 'grouped-query-attention';
 * import { saveKerasModel } from 'grouped-query-attention/keras';
 *
 * const tokens = tfl.input({ shape: [12], dtype: 'int32', name: 'tokens' });
 * const x = tfl.layers.embedding({ inputDim: 50, outputDim: 16 }).apply(tokens) as tfl.SymbolicTensor;
 * const gqa = new GroupedQueryAttention({ headDim: 4, numQueryHeads: 4, numKeyValueHeads: 1 });
 * const y = gqa.apply(x, { value: x, useCausalMask: true }) as tfl.SymbolicTensor;
 * const model = tfl.model({ inputs: tokens, outputs: y });
 * writeFileSync('model.keras', await saveKerasModel(model));   // Python: keras.saving.load_model("model.keras")
 * ```
 */
export async function saveKerasModel(model: tfl.LayersModel): Promise<Uint8Array> {
  const config = kerasConfigFromModel(model);
  const weights = await saveKerasWeights(model);
  const now = new Date();
  const pad = (n: number) => String(n).padStart(2, '0');
  const metadata = {
    keras_version: WRITTEN_KERAS_VERSION,
    date_saved: `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}@${pad(now.getHours())}:` +
      `${pad(now.getMinutes())}:${pad(now.getSeconds())}`,
  };
  return writeKerasArchive(config, metadata, weights);
}

/**
 * The Keras HDF5 layout of a model's weights: for each weight, its dataset path (e.g.
 * `/layers/grouped_query_attention/_query_dense/vars/0`), its Keras name (`gqa/query/kernel`) and
 * shape, in Keras's `get_weights` order. Useful to compare with `h5ls -r model.weights.h5`.
 *
 * @example
 * ```ts
 * import '@tensorflow/tfjs-backend-cpu';
 * import { kerasWeightPaths, loadKerasModel } from 'grouped-query-attention/keras';
 * // A decoder saved by Keras 3.6 (shipped with this repository's tests):
 * const model = await loadKerasModel('test/data/fixtures/tiny_decoder_v36.keras');
 * for (const w of kerasWeightPaths(model)) console.log(w.path, w.name, w.shape);
 * ```
 */
export function kerasWeightPaths(model: tfl.LayersModel): Array<{ path: string; name: string; shape: number[] }> {
  return kerasWeightLayout(model).weights.map(({ path, name, shape }) => ({ path, name, shape }));
}

/**
 * The Keras 3 `config.json` object of a functional model, as {@link saveKerasModel} writes it.
 *
 * @example
 * ```ts
 * import '@tensorflow/tfjs-backend-cpu';
 * import { kerasModelConfig, loadKerasModel } from 'grouped-query-attention/keras';
 * // A decoder saved by Keras 3.6 (shipped with this repository's tests):
 * const model = await loadKerasModel('test/data/fixtures/tiny_decoder_v36.keras');
 * console.log(JSON.stringify(kerasModelConfig(model)).slice(0, 80));
 * ```
 */
export function kerasModelConfig(model: tfl.LayersModel): Record<string, unknown> {
  return kerasConfigFromModel(model);
}
