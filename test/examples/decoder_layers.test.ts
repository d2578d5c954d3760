/**
 * The demo decoder's own layers (examples/lib/decoder.js), each one taped op with its own gradient:
 * LayerNorm gives the composition's values and its gradients; Embedding gives tf.gather's rows and
 * gradients; Dense gives x·kernel + bias (relu) and tfjs autodiff's gradients. On cpu and wasm.
 * (The demo imports the built package, as a user would: `npm test` builds it first.)
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, test } from 'vitest';
// @ts-expect-error: plain JavaScript example code, no declarations
import { Dense, Embedding, LayerNorm } from '../../examples/lib/decoder.js';
import { expectClose } from '../helpers/close.js';

type Layer = {
  apply(x: tf.Tensor): tf.Tensor;
  getWeights(): tf.Tensor[];
  setWeights(w: tf.Tensor[]): void;
  trainableWeights: Array<{ read(): tf.Variable }>;
  dispose(): void;
};

/** Values and gradients (w.r.t. the input, when float, and every weight) of sum(f(x, weights) ∘ dY). */
function run(f: (x: tf.Tensor, w: tf.Tensor[]) => tf.Tensor, x: tf.Tensor, weights: tf.Tensor[], dy: tf.Tensor, withX: boolean) {
  const y = f(x, weights);
  const inputs = withX ? [x, ...weights] : weights;
  const grads = tf.grads((...t: tf.Tensor[]) => tf.sum(tf.mul(f(withX ? t[0]! : x, withX ? t.slice(1) : t), dy)))(inputs);
  return [y, ...grads].map((t) => t.dataSync());
}

describe.each(['cpu', 'wasm'])('demo decoder layers on %s', (backend) => {
  beforeAll(async () => {
    expect(await tf.setBackend(backend)).toBe(true);
  });

  function compare(layer: Layer, composed: (x: tf.Tensor, w: tf.Tensor[]) => tf.Tensor, x: tf.Tensor, outShape: number[], withX: boolean) {
    layer.apply(x); // builds
    const seeds = layer.getWeights().map((w, i) => tf.randomNormal(w.shape, 0.5, 1, 'float32', 10 + i));
    layer.setWeights(seeds);
    const dy = tf.randomNormal(outShape, 0, 1, 'float32', 3);
    const before = tf.memory().numTensors;
    const [ours, theirs] = tf.tidy(() => {
      // The layer's weights are variables: their gradients come from variableGrads, x's from grad.
      const loss = (xs: tf.Tensor) => tf.sum(tf.mul(layer.apply(xs), dy)) as tf.Scalar;
      const vars = layer.trainableWeights.map((w) => w.read());
      const { grads } = tf.variableGrads(() => loss(x), vars);
      const mine = [layer.apply(x), ...(withX ? [tf.grad(loss)(x)] : []), ...vars.map((v) => grads[v.name]!)];
      return [mine.map((t) => t.dataSync()), run(composed, x, seeds, dy, withX)];
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(Array.from(ours[0]!), 'forward: the same values').toEqual(Array.from(theirs[0]!));
    ours.slice(1).forEach((g, i) => expectClose(g, theirs[i + 1]!, `gradient ${i}`, 1e-5, 1e-5));
    tf.dispose([dy, ...seeds]);
    layer.dispose();
  }

  test('LayerNorm', () => {
    const x = tf.randomNormal([3, 7, 16], 0, 2, 'float32', 1);
    compare(new LayerNorm({ epsilon: 1e-5 }), (xs, [gamma, beta]) => {
      const { mean, variance } = tf.moments(xs, -1, true);
      return tf.add(tf.mul(tf.mul(tf.sub(xs, mean), tf.rsqrt(tf.add(variance, 1e-5))), gamma!), beta!);
    }, x, [3, 7, 16], true);
    x.dispose();
  });

  test('Embedding', () => {
    const ids = tf.tensor2d([[0, 3, 28, 3, 1], [27, 0, 0, 5, 9]], [2, 5], 'int32');
    compare(new Embedding({ inputDim: 29, outputDim: 8 }), (xs, [table]) => tf.gather(table!, xs), ids, [2, 5, 8], false);
    ids.dispose();
  });

  test.each(['relu', 'linear'])('Dense, %s', (activation) => {
    const x = tf.randomNormal([3, 7, 16], 0, 1, 'float32', 2);
    compare(new Dense({ units: 12, activation }), (xs, [kernel, bias]) => {
      const y = tf.add(tf.reshape(tf.matMul(tf.reshape(xs, [21, 16]), kernel!), [3, 7, 12]), bias!);
      return activation === 'relu' ? tf.relu(y) : y;
    }, x, [3, 7, 12], true);
    x.dispose();
  });
});
