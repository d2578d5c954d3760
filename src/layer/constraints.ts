/**
 * Keras applies a variable's constraint after every optimizer update; tfjs applies it only in
 * `setWeights`. Wrapping the variable's `assign` (what every tfjs optimizer calls) gives Keras's
 * behaviour in `fit` and in custom training loops.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayerVariable } from '@tensorflow/tfjs-layers';
import type { Constraint } from './identifiers.js';

const wrapped = new WeakSet<tf.Variable>();

/** Makes every later `assign` to the variable store `constraint(newValue)`. */
export function constrainOnAssign(variable: LayerVariable, constraint: Constraint | null): void {
  if (constraint == null) return;
  const v = variable.read() as tf.Variable;
  if (wrapped.has(v)) return;
  wrapped.add(v);
  const assign = v.assign.bind(v);
  v.assign = (newValue: tf.Tensor) => {
    const constrained = tf.tidy(() => constraint.apply(newValue));
    assign(constrained);
    constrained.dispose(); // the variable now shares its data; this drops our extra reference
  };
}
