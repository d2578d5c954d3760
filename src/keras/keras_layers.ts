/**
 * Small tfjs layers for what Keras files contain and tfjs-layers lacks, with Keras's numbers:
 *
 * - `KerasNotEqual`: the op layer Keras records for `keras.ops.not_equal(x, c)` (class `NotEqual`,
 *   module `keras.src.ops.numpy`), which is how Keras 3.6 saves the mask that `Embedding(mask_zero=True)`
 *   propagates (`tokens != 0`);
 * - `KerasRmsLayerNormalization`: `LayerNormalization(rms_scaling=True)`, which in Keras 3.6 to 3.16
 *   scales by the *variance* (`x * rsqrt(var(x) + epsilon) * gamma`, no centring, no beta);
 * - `KerasGlobalAveragePooling1D`: `GlobalAveragePooling1D` with Keras's mask rule (the mean over the
 *   unmasked steps, `sum(x * mask) / sum(mask)`, so a fully masked row is 0/0 = NaN as in Keras);
 *   tfjs's own layer ignores masks.
 *
 * They are registered with tfjs serialization under these `Keras*` names.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { LayerVariable } from '@tensorflow/tfjs-layers';

type Kwargs = Record<string, unknown>;
type Shape = Array<number | null>;
type LayerArgs = { name?: string; trainable?: boolean };

function one(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
  return Array.isArray(inputs) ? inputs[0]! : inputs;
}

function shapeOne(shape: Shape | Shape[]): Shape {
  return (Array.isArray(shape[0]) ? shape[0] : shape) as Shape;
}

/** `x != constant` as a bool tensor: Keras's `NotEqual` op layer. */
export class KerasNotEqual extends tfl.layers.Layer {
  static readonly className = 'KerasNotEqual';
  readonly constant: number;

  constructor(args: LayerArgs & { constant: number }) {
    super(args);
    this.constant = args.constant;
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return shapeOne(inputShape);
  }

  override computeMask(): tf.Tensor {
    // tfjs types computeMask as returning a tensor; null (no mask) is what its own layers return.
    return null as unknown as tf.Tensor;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = one(inputs);
      return tf.notEqual(x, tf.scalar(this.constant, x.dtype));
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), constant: this.constant };
  }
}

/** Keras's `LayerNormalization(rms_scaling=True)`: `x * rsqrt(var(x, axes) + epsilon) * gamma`. */
export class KerasRmsLayerNormalization extends tfl.layers.Layer {
  static readonly className = 'KerasRmsLayerNormalization';
  readonly axis: number[];
  readonly epsilon: number;
  private gamma: LayerVariable | null = null;
  private readonly gammaInitializer: unknown;

  constructor(args: LayerArgs & { axis: number[]; epsilon: number; gammaInitializer?: unknown }) {
    super(args);
    this.axis = args.axis;
    this.epsilon = args.epsilon;
    this.gammaInitializer = args.gammaInitializer ?? tfl.initializers.ones();
    this.supportsMasking = true;
  }

  private positiveAxes(rank: number): number[] {
    return this.axis.map((a) => (a < 0 ? a + rank : a));
  }

  override build(inputShape: Shape | Shape[]): void {
    const shape = shapeOne(inputShape);
    const axes = this.positiveAxes(shape.length);
    const paramShape = axes.map((a) => shape[a] as number);
    this.gamma = this.addWeight('gamma', paramShape, 'float32', this.gammaInitializer as never);
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = one(inputs);
      const axes = this.positiveAxes(x.rank);
      const { variance } = tf.moments(x, axes, true);
      // gamma broadcast over the normalized axes, as Keras reshapes it.
      const broadcast = x.shape.map((d, i) => (axes.includes(i) ? d : 1));
      const gamma = tf.reshape(this.gamma!.read(), broadcast);
      return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, this.epsilon))), gamma);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), axis: this.axis, epsilon: this.epsilon };
  }
}

/**
 * Keras's `GlobalAveragePooling1D` (channels last): the mean over the steps, or with a mask (the
 * propagated one, or a second input) `sum(x * mask) / sum(mask)`.
 */
export class KerasGlobalAveragePooling1D extends tfl.layers.Layer {
  static readonly className = 'KerasGlobalAveragePooling1D';
  readonly keepdims: boolean;

  constructor(args: LayerArgs & { keepdims?: boolean }) {
    super(args);
    this.keepdims = args.keepdims ?? false;
    this.supportsMasking = true;
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const s = shapeOne(inputShape);
    return this.keepdims ? [s[0]!, 1, s[2]!] : [s[0]!, s[2]!];
  }

  override computeMask(): tf.Tensor {
    // tfjs types computeMask as returning a tensor; null (no mask) is what its own layers return.
    return null as unknown as tf.Tensor;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = one(inputs);
      const maskIn = Array.isArray(inputs) && inputs.length > 1 ? inputs[1] : (kwargs['mask'] as tf.Tensor | null | undefined);
      const mask = Array.isArray(maskIn) ? maskIn[0] : maskIn;
      if (mask == null) return tf.mean(x, 1, this.keepdims);
      const m = tf.expandDims(tf.cast(mask, x.dtype), 2);
      return tf.div(tf.sum(tf.mul(x, m), 1, this.keepdims), tf.sum(m, 1, this.keepdims));
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), keepdims: this.keepdims };
  }
}

tf.serialization.registerClass(KerasNotEqual);
tf.serialization.registerClass(KerasRmsLayerNormalization);
tf.serialization.registerClass(KerasGlobalAveragePooling1D);
