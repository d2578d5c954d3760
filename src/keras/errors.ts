/**
 * Errors of the Keras file importer and exporter. All extend the package's `ValueError`, and every
 * message names what it is about: the file and what is wrong with it, the layer and the unsupported
 * class or option, or the weight path with the expected and the received shape.
 */
import { ValueError } from '../errors.js';

/**
 * The bytes are not a readable Keras file: not a zip or HDF5 file, truncated, corrupted, or missing an
 * entry (`config.json`, `model.weights.h5`).
 *
 * @example
 * ```ts
 * import { loadKerasModel, KerasFileError } from 'grouped-query-attention/keras';
 * try {
 *   await loadKerasModel(new Uint8Array([1, 2, 3]));
 * } catch (e) {
 *   console.log(e instanceof KerasFileError, (e as Error).message); // true, "... neither a zip ... nor ..."
 * }
 * ```
 */
export class KerasFileError extends ValueError {
  constructor(message: string) {
    super(message);
    this.name = 'KerasFileError';
  }
}

/**
 * A Keras model config uses a layer class, an option or a call argument that this importer cannot
 * reproduce in TensorFlow.js; the message names the layer and what is unsupported.
 *
 * @example
 * ```ts
 * import { KerasConfigError } from 'grouped-query-attention/keras';
 * const e = new KerasConfigError("Layer 'conv' (class Conv1D): unsupported layer class Conv1D");
 * console.log(e.name); // 'KerasConfigError'
 * ```
 */
export class KerasConfigError extends ValueError {
  constructor(message: string) {
    super(message);
    this.name = 'KerasConfigError';
  }
}

/**
 * The weights file does not fit the model: a missing or unexpected dataset, or a shape that differs
 * (the message names the HDF5 path, the expected and the received shape). Nothing was loaded.
 *
 * @example
 * ```ts
 * import { KerasWeightsError } from 'grouped-query-attention/keras';
 * const e = new KerasWeightsError('/layers/dense/vars/0: expected shape [16,50], received [16,51]');
 * console.log(e instanceof Error); // true
 * ```
 */
export class KerasWeightsError extends ValueError {
  constructor(message: string) {
    super(message);
    this.name = 'KerasWeightsError';
  }
}
