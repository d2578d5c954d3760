// A functional model with GroupedQueryAttention, trained for a few steps with model.fit.
// Run with `npm start` (after `npm install`, which builds the package).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { GroupedQueryAttention } from 'grouped-query-attention';

const backend = (await tf.setBackend('wasm')) ? 'wasm' : (await tf.setBackend('cpu'), 'cpu');
await tf.ready();

// Task: reproduce the token at position 0 at every position (needs attention to look back).
const [batch, length, vocab, width] = [64, 8, 10, 16];
const tokens = tf.randomUniform([batch, length], 1, vocab, 'int32');
const targets = tf.oneHot(tf.tile(tf.slice(tokens, [0, 0], [batch, 1]), [1, length]), vocab);

const input = tfl.input({ shape: [length], dtype: 'int32' });
const x = tfl.layers.embedding({ inputDim: vocab, outputDim: width }).apply(input);
const attention = new GroupedQueryAttention({ headDim: 8, numQueryHeads: 4, numKeyValueHeads: 2 });
const attended = attention.apply(x, { value: x, useCausalMask: true });
const mixed = tfl.layers.add().apply([x, attended]);
const logits = tfl.layers.dense({ units: vocab, activation: 'softmax' }).apply(mixed);
const model = tfl.model({ inputs: input, outputs: logits });
model.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });

console.log(`backend: ${backend}`);
const history = await model.fit(tokens, targets, {
  epochs: 30,
  batchSize: 32,
  verbose: 0,
  callbacks: {
    onEpochEnd: (epoch, logs) => {
      if (epoch % 5 === 4) console.log(`epoch ${epoch + 1}: loss ${logs.loss.toFixed(4)} accuracy ${logs.acc.toFixed(3)}`);
    },
  },
});
const losses = history.history.loss;
console.log(`loss ${losses[0].toFixed(4)} -> ${losses[losses.length - 1].toFixed(4)}`);
