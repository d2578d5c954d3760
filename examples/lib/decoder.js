/**
 * A small decoder-only transformer built from tfjs-layers layers called eagerly:
 * token + position embeddings, `layers` pre-norm blocks of causal GroupedQueryAttention and an MLP
 * (residuals, layer norm), a final layer norm and a vocabulary projection.
 *
 * Shared by the Node demo (examples/demo.js), the browser page (web/) and the browser test.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { denseProduct, GroupedQueryAttention } from 'grouped-query-attention';
import { createRng } from './rng.js';

/**
 * `x̂·gamma + beta` with x̂ = (x − mean) / sqrt(variance + epsilon) over the last axis, taped as one
 * op with its closed-form gradient (g = dy·gamma):
 *   dx = (g − mean(g) − x̂·mean(g·x̂)) / sqrt(variance + epsilon),  dgamma = Σ dy·x̂,  dbeta = Σ dy
 * (sums over every row). Composed from tfjs ops, autodiff tapes a dozen ops and saves a copy of each
 * one's inputs; this saves x̂, 1/sqrt(variance + epsilon) and gamma. Same forward ops, so the same
 * values as the composition.
 */
function layerNorm(x, gamma, beta, epsilon) {
  const d = x.shape[x.rank - 1];
  const rows = x.size / d;
  return tf.customGrad((x, gamma, beta, save) => {
    const { mean, variance } = tf.moments(x, -1, true);
    const inverseStd = tf.rsqrt(tf.add(variance, epsilon)); // (..., 1)
    const normed = tf.mul(tf.sub(x, mean), inverseStd);
    save([normed, inverseStd, gamma]);
    return {
      value: tf.add(tf.mul(normed, gamma), beta),
      gradFunc: (dy, [normed, inverseStd, gamma]) => {
        const g = tf.mul(dy, gamma);
        const centred = tf.sub(g, tf.mean(g, -1, true));
        const dx = tf.mul(tf.sub(centred, tf.mul(normed, tf.mean(tf.mul(g, normed), -1, true))), inverseStd);
        const dyRows = tf.reshape(dy, [rows, d]); // (..., D) -> (rows, D)
        const normedRows = tf.reshape(normed, [rows, d]); // (..., D) -> (rows, D)
        return [dx, tf.sum(tf.mul(dyRows, normedRows), 0), tf.sum(dyRows, 0)];
      },
    };
  })(x, gamma, beta);
}

/**
 * Layer normalization over the last axis with broadcasting. (tfjs-layers' LayerNormalization tiles
 * gamma and beta to the input's shape, and the gradient of `tile` is one slice per repeat: over
 * ten times slower to train here.) Weights `gamma`, `beta`, as in Keras.
 */
export class LayerNorm extends tfl.layers.Layer {
  static className = 'DemoLayerNorm';

  constructor(args = {}) {
    super(args);
    this.epsilon = args.epsilon ?? 1e-5;
  }

  build(inputShape) {
    const d = inputShape[inputShape.length - 1];
    this.gamma = this.addWeight('gamma', [d], 'float32', tfl.initializers.ones());
    this.beta = this.addWeight('beta', [d], 'float32', tfl.initializers.zeros());
    this.built = true;
  }

  call(inputs) {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      return layerNorm(x, this.gamma.read(), this.beta.read(), this.epsilon);
    });
  }
}
tf.serialization.registerClass(LayerNorm);

/**
 * A dense layer, `relu(x·kernel + bias)` or `x·kernel + bias` over the last axis, with tfjs-layers'
 * weights (kernel (in, units), bias (units)). tfjs-layers' `dense` multiplies a 3-D input as a
 * batched product, and tfjs's matMul gradient uses transposed products: tfjs-wasm runs both as a
 * scalar loop, which made the MLP and the vocabulary projection most of a training step.
 * `denseProduct` (the library's projection) flattens the input to rows and keeps the forward and the
 * gradient on XNNPACK's 2-D products.
 */
export class Dense extends tfl.layers.Layer {
  static className = 'DemoDense';

  constructor(args) {
    super(args);
    this.units = args.units;
    this.activation = args.activation ?? 'linear';
  }

  build(inputShape) {
    const d = inputShape[inputShape.length - 1];
    this.kernel = this.addWeight('kernel', [d, this.units], 'float32', tfl.initializers.glorotUniform({}));
    this.bias = this.addWeight('bias', [this.units], 'float32', tfl.initializers.zeros());
    this.built = true;
  }

  computeOutputShape(inputShape) {
    return [...inputShape.slice(0, -1), this.units];
  }

  call(inputs) {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      const y = denseProduct(x, this.kernel.read(), this.bias.read()); // (B,T,D)·(D,N) + (N) -> (B,T,N)
      return this.activation === 'relu' ? tf.relu(y) : y;
    });
  }
}
tf.serialization.registerClass(Dense);

/**
 * Token or position embedding: row `id` of a (count, width) table, computed as oneHot(ids)·table.
 * tfjs-wasm's gather took about 20 ms for the 2,040 rows of 64 of a training batch here, the
 * one-hot product (a plain 2-D matMul, `denseProduct`) about 2 ms, and its gradient is a 2-D product
 * too. The rows are the same numbers (1·entry plus zeros). Weight `embeddings` (count, width), as
 * tfjs-layers' and Keras's Embedding.
 */
export class Embedding extends tfl.layers.Layer {
  static className = 'DemoEmbedding';

  constructor(args) {
    super(args);
    this.inputDim = args.inputDim;
    this.outputDim = args.outputDim;
  }

  build() {
    this.embeddings = this.addWeight('embeddings', [this.inputDim, this.outputDim], 'float32',
      tfl.initializers.randomUniform({ minval: -0.05, maxval: 0.05 }));
    this.built = true;
  }

  computeOutputShape(inputShape) {
    return [...inputShape, this.outputDim];
  }

  call(inputs) {
    return tf.tidy(() => {
      const ids = Array.isArray(inputs) ? inputs[0] : inputs;
      // int32 then a cast: tfjs-wasm's OneHot ignores a float32 dtype and writes int32 bits.
      const oneHot = tf.cast(tf.oneHot(tf.cast(ids, 'int32'), this.inputDim), 'float32'); // (B,T) -> (B,T,count)
      return denseProduct(oneHot, this.embeddings.read(), null); // (B,T,count)·(count,width) -> (B,T,width)
    });
  }
}
tf.serialization.registerClass(Embedding);

export const DEFAULT_CONFIG = {
  vocabSize: 29,
  maxLength: 64,
  width: 64,
  numQueryHeads: 4,
  numKeyValueHeads: 2,
  headDim: 16,
  mlpWidth: 128,
  layers: 2,
  flashAttention: null,
};

export class Decoder {
  constructor(config = {}) {
    this.config = { ...DEFAULT_CONFIG, ...config };
    const c = this.config;
    this.tokenEmbedding = new Embedding({ inputDim: c.vocabSize, outputDim: c.width });
    this.positionEmbedding = new Embedding({ inputDim: c.maxLength, outputDim: c.width });
    this.blocks = Array.from({ length: c.layers }, () => ({
      norm1: new LayerNorm({ epsilon: 1e-5 }),
      attention: new GroupedQueryAttention({
        headDim: c.headDim,
        numQueryHeads: c.numQueryHeads,
        numKeyValueHeads: c.numKeyValueHeads,
        flashAttention: c.flashAttention,
      }),
      norm2: new LayerNorm({ epsilon: 1e-5 }),
      up: new Dense({ units: c.mlpWidth, activation: 'relu' }),
      down: new Dense({ units: c.width }),
    }));
    this.finalNorm = new LayerNorm({ epsilon: 1e-5 });
    this.head = new Dense({ units: c.vocabSize });
    // Build every layer with one call, then draw the weights from the seed.
    tf.tidy(() => this.forward(tf.zeros([1, 2], 'int32')));
  }

  /** Every layer, in a fixed order (weights are drawn, saved and compared in this order). */
  get layers() {
    return [
      this.tokenEmbedding,
      this.positionEmbedding,
      ...this.blocks.flatMap((b) => [b.norm1, b.attention, b.norm2, b.up, b.down]),
      this.finalNorm,
      this.head,
    ];
  }

  get attentionLayers() {
    return this.blocks.map((b) => b.attention);
  }

  /** Number of trainable parameters. */
  get parameterCount() {
    return this.layers.reduce((n, l) => n + l.weights.reduce((m, w) => m + w.shape.reduce((a, b) => a * b, 1), 0), 0);
  }

  /**
   * Seeded weights, identical in Node and browsers: Glorot-uniform kernels, small uniform
   * embeddings, zero biases, unit layer-norm scales.
   */
  initialize(seed) {
    const rng = createRng(seed);
    for (const layer of this.layers) {
      const values = layer.weights.map((w) => {
        const shape = w.shape;
        const size = shape.reduce((a, b) => a * b, 1);
        const data = new Float32Array(size);
        const name = w.originalName ?? w.name;
        if (/gamma$/.test(name)) data.fill(1);
        else if (/(bias|beta)$/.test(name)) data.fill(0);
        else {
          let limit = 0.1;
          if (!/embeddings$/.test(name)) {
            const [fanIn, fanOut] = shape.length === 2 ? shape
              : /attention_output/.test(name) ? [shape[0] * shape[1], shape[2]] : [shape[0], shape[1] * shape[2]];
            limit = Math.sqrt(6 / (fanIn + fanOut));
          }
          for (let i = 0; i < size; i++) data[i] = rng.uniform(-limit, limit);
        }
        return tf.tensor(data, shape);
      });
      layer.setWeights(values);
      tf.dispose(values);
    }
    return this;
  }

  /** All weights as plain arrays, in `layers` order. */
  getWeights() {
    return this.layers.map((l) => l.getWeights().map((w) => ({ shape: w.shape, data: Array.from(w.dataSync()) })));
  }

  /** Copies the weights of another decoder of the same configuration. */
  copyWeightsFrom(other) {
    for (const [i, layer] of this.layers.entries()) layer.setWeights(other.layers[i].getWeights());
    return this;
  }

  /** The trainable tf.Variables (for an optimizer's varList). */
  get variables() {
    return this.layers.flatMap((l) => l.trainableWeights.map((w) => w.read()));
  }

  /**
   * tokens: int32 (B, T). With `caches` (one per block, from `createCaches`), the tokens are the
   * next T positions after `caches[0].length` and the keys/values are appended to the caches.
   * Returns logits (B, T, vocab), and with `returnScores` the attention probabilities of every
   * block, (B, U, T, S) each (not with caches).
   */
  forward(tokens, { caches = null, returnScores = false } = {}) {
    const [, t] = tokens.shape;
    const offset = caches ? caches[0].length : 0;
    const positions = tf.expandDims(tf.range(offset, offset + t, 1, 'int32'), 0);
    let h = tf.add(this.tokenEmbedding.apply(tokens), this.positionEmbedding.apply(positions));
    const scores = [];
    this.blocks.forEach((b, i) => {
      const a = b.norm1.apply(h);
      let attended = b.attention.apply(a, {
        value: a,
        useCausalMask: true,
        ...(caches ? { cache: caches[i] } : {}),
        ...(returnScores ? { returnAttentionScores: true } : {}),
      });
      if (returnScores) {
        scores.push(attended[1]);
        attended = attended[0];
      }
      h = tf.add(h, attended);
      h = tf.add(h, b.down.apply(b.up.apply(b.norm2.apply(h))));
    });
    const logits = this.head.apply(this.finalNorm.apply(h));
    return returnScores ? { logits, scores } : logits;
  }

  /** One KV cache per block. */
  createCaches(batchSize, maxLength = this.config.maxLength) {
    return this.attentionLayers.map((l) => l.createCache({ batchSize, maxLength }));
  }

  /**
   * Mean cross-entropy over the positions whose weight is 1.
   * inputs, labels int32 (B, T); weights float32 (B, T).
   */
  loss(inputs, labels, weights) {
    const logits = this.forward(inputs);
    const logp = tf.logSoftmax(logits);
    const picked = tf.sum(tf.mul(logp, tf.oneHot(labels, this.config.vocabSize)), -1);
    return tf.div(tf.neg(tf.sum(tf.mul(picked, weights))), tf.maximum(tf.sum(weights), 1));
  }

  dispose() {
    for (const l of this.layers) l.dispose();
  }
}

/**
 * Greedy generation of a batch of examples of one task (same length and target positions).
 * Positions before `promptLength` are the prompt; after it, a target position gets the model's
 * prediction and any other position its given token.
 *
 * mode 'cache': prefill the prompt into KV caches, then one token per step;
 * mode 'recompute': run the whole prefix again at every step (no cache).
 *
 * Returns the generated sequences, per-target accuracy, exact-match rate and timing.
 */
export async function generate(model, examples, mode = 'cache') {
  const B = examples.length;
  const L = examples[0].tokens.length;
  const P = examples[0].promptLength;
  const target = examples[0].target;
  const seqs = examples.map((e) => e.tokens.slice(0, P));
  // Reads are asynchronous: webgpu and webgl cannot read synchronously without stalling (or at all).
  const step = async (tokens, shape, options) => {
    const ids = tf.tidy(() => {
      const logits = model.forward(tf.tensor2d(tokens, shape, 'int32'), options);
      return tf.argMax(tf.slice(logits, [0, logits.shape[1] - 1, 0], [-1, 1, -1]), -1);
    });
    const data = await ids.data();
    ids.dispose();
    return data;
  };
  const start = performance.now();
  let steps = 0;
  let caches = null;
  let next;
  try {
    if (mode === 'cache') {
      caches = model.createCaches(B, L);
      next = await step(seqs.flat(), [B, P], { caches });
    }
    for (let i = P; i < L; i++) {
      if (mode !== 'cache') next = await step(seqs.flat(), [B, i]);
      for (let b = 0; b < B; b++) seqs[b].push(target[i] ? next[b] : examples[b].tokens[i]);
      steps++;
      if (mode === 'cache' && i < L - 1) next = await step(seqs.map((s) => s[i]), [B, 1], { caches });
    }
  } finally {
    // Also when a step throws (e.g. a backend that refuses the cache), so that nothing leaks.
    if (caches) for (const c of caches) c.dispose();
  }
  const ms = performance.now() - start;
  let right = 0;
  let total = 0;
  let exact = 0;
  examples.forEach((e, b) => {
    let all = true;
    for (let i = P; i < L; i++) {
      if (!target[i]) continue;
      total++;
      if (seqs[b][i] === e.tokens[i]) right++;
      else all = false;
    }
    if (all) exact++;
  });
  return { sequences: seqs, accuracy: right / total, exact: exact / B, ms, tokensPerSecond: (B * steps) / (ms / 1000) };
}
