/**
 * The layer's regularization losses, kept apart from tfjs's own list (behind `losses`): one closure
 * per regularized weight (registered by tfjs's `addWeight`), plus the activity losses of the last
 * call (Keras keeps only those; `fit` adds them through `losses`).
 */
import * as tf from '@tensorflow/tfjs-core';

export class LayerLosses {
  private weightLosses: Array<() => tf.Scalar> = [];
  private activityLosses: tf.Scalar[] = [];

  /** Every loss: weight losses, then the last call's activity losses. */
  all(): Array<() => tf.Scalar> {
    return [...this.weightLosses, ...this.activityLosses.map((l) => () => l)];
  }

  addWeightLosses(losses: (() => tf.Scalar) | Array<() => tf.Scalar>): void {
    this.weightLosses.push(...(Array.isArray(losses) ? losses : [losses]));
  }

  /** How many weight losses there are (a mark for {@link LayerLosses.dropWeightLossesAfter}). */
  get weightLossCount(): number {
    return this.weightLosses.length;
  }

  /** Forgets the weight losses added after `mark` (a build that failed half-way). */
  dropWeightLossesAfter(mark: number): void {
    this.weightLosses.length = Math.min(mark, this.weightLosses.length);
  }

  /** Replaces the activity losses with those of the last call (kept alive until replaced). */
  setActivityLosses(losses: tf.Scalar[]): void {
    tf.dispose(this.activityLosses);
    this.activityLosses = losses.map((l) => tf.keep(l));
  }

  dispose(): void {
    tf.dispose(this.activityLosses);
    this.activityLosses = [];
  }
}
