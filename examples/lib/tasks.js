/**
 * Synthetic tasks that need attention, generated in code from a seed (nothing downloaded).
 *
 * Every example is one token sequence `^ <prompt> | <answer>`; `target[i]` is true where the model
 * must predict token i from tokens 0..i-1 (the loss and the accuracy count only those positions).
 * At generation time a target position is filled with the model's own prediction; any other
 * position after the prompt (e.g. the queries of `recall`) is given.
 *
 * - copy:   ^ x1 .. xn | x1 .. xn                 (attend n + 1 positions back)
 * - recall: ^ k1 v1 .. kn vn | q1 a1 .. qn an     (associative recall: every key asked once, shuffled)
 * - sort:   ^ x1 .. xn | sorted(x)                (digits, repeats allowed)
 */
import { createRng } from './rng.js';

export const SPECIALS = ['·', '^', '|'];
export const DIGITS = '0123456789'.split('');
export const LETTERS = 'abcdefghijklmnop'.split('');
/** Token id → printable symbol. 0 pad, 1 start, 2 separator, then digits and letters. */
export const VOCAB = [...SPECIALS, ...DIGITS, ...LETTERS];
export const BOS = 1;
export const SEP = 2;
const DIGIT0 = SPECIALS.length;
const LETTER0 = DIGIT0 + DIGITS.length;
const SYMBOLS = DIGITS.length + LETTERS.length;

export const TASKS = {
  copy: {
    describe: (n) => `copy ${n} symbols`,
    length: (n) => 2 * n + 2,
    make(rng, n) {
      const xs = Array.from({ length: n }, () => DIGIT0 + rng.int(0, SYMBOLS));
      return sequence(xs, xs.map((x) => [x, true]));
    },
  },
  recall: {
    describe: (n) => `associative recall of ${Math.min(n, LETTERS.length)} key-value pairs`,
    length: (n) => 2 + 4 * Math.min(n, LETTERS.length),
    make(rng, n) {
      const pairs = Math.min(n, LETTERS.length);
      const keys = rng.sample(LETTERS.length, pairs).map((k) => LETTER0 + k);
      const values = keys.map(() => DIGIT0 + rng.int(0, DIGITS.length));
      const prompt = keys.flatMap((k, i) => [k, values[i]]);
      const asked = rng.sample(pairs, pairs); // every key once, in a random order
      return sequence(prompt, asked.flatMap((i) => [[keys[i], false], [values[i], true]]));
    },
  },
  sort: {
    describe: (n) => `sort ${n} digits`,
    length: (n) => 2 * n + 2,
    make(rng, n) {
      const xs = Array.from({ length: n }, () => DIGIT0 + rng.int(0, DIGITS.length));
      return sequence(xs, [...xs].sort((a, b) => a - b).map((x) => [x, true]));
    },
  },
};

function sequence(prompt, answer) {
  const tokens = [BOS, ...prompt, SEP, ...answer.map(([t]) => t)];
  const target = [...prompt.map(() => false), false, false, ...answer.map(([, isTarget]) => isTarget)];
  return { tokens, target, promptLength: prompt.length + 2 };
}

/**
 * A batch of `count` examples: `inputs` = tokens[0..L-2] and `labels` = tokens[1..L-1] as flat
 * Int32Arrays (count, L - 1), `weights` (count, L - 1) 1 where the label is a target.
 */
export function makeBatch(task, n, count, rng) {
  const spec = TASKS[task];
  const L = spec.length(n);
  const inputs = new Int32Array(count * (L - 1));
  const labels = new Int32Array(count * (L - 1));
  const weights = new Float32Array(count * (L - 1));
  const examples = [];
  for (let b = 0; b < count; b++) {
    const ex = spec.make(rng, n);
    examples.push(ex);
    for (let i = 0; i < L - 1; i++) {
      inputs[b * (L - 1) + i] = ex.tokens[i];
      labels[b * (L - 1) + i] = ex.tokens[i + 1];
      weights[b * (L - 1) + i] = ex.target[i + 1] ? 1 : 0;
    }
  }
  return { inputs, labels, weights, length: L - 1, examples };
}

export function render(tokens) {
  return tokens.map((t) => VOCAB[t] ?? '?').join(' ');
}

export { createRng };
