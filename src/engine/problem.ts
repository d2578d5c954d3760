/**
 * Validation and normalisation of an {@link AttentionProblem}, shared by every engine path. The mask
 * rule (which keys a row may see, rows with no allowed key) is in mask-rule.ts.
 */
import { formatValue, ValueError } from '../errors.js';
import type { AttentionProblem, AttentionResult, EngineMask } from './types.js';

/** A mask with its broadcast strides, in elements of `data`. */
export interface NormalizedMask {
  readonly kind: 'bool' | 'additive';
  readonly data: Uint8Array | Float32Array;
  readonly shape: readonly [number, number, number, number];
  /** Strides over (B, U, T, S); 0 on broadcast axes. */
  readonly strides: readonly [number, number, number, number];
}

/** A validated problem with every default resolved. */
export interface NormalizedProblem {
  readonly B: number;
  readonly T: number;
  readonly S: number;
  readonly C: number;
  readonly U: number;
  readonly V: number;
  readonly H: number;
  readonly G: number;
  readonly query: Float32Array;
  readonly key: Float32Array;
  readonly value: Float32Array;
  readonly mask: NormalizedMask | null;
  readonly causal: boolean;
  /** Absolute position of query row 0. */
  readonly p0: number;
  /** Sliding window size, 0 for none. */
  readonly window: number;
  /** float32 query scale. */
  readonly scale: number;
  readonly wantProbabilities: boolean;
  /** Dropout rate, 0 for none. */
  readonly dropoutRate: number;
  /** u32 seed of the dropout hash. */
  readonly dropoutSeed: number;
  /** Whether the per-row log-sum-exp is returned. */
  readonly wantLogSumExp: boolean;
}

/**
 * Keras 3.6's float32 default query scale: `fround(1 / fround(sqrt(H)))` (1 ulp off
 * `fround(1/sqrt(H))` for some H, e.g. 6).
 *
 * @example
 * ```ts
 * import { defaultScale } from 'grouped-query-attention/engine';
 * console.log(defaultScale(6)); // 0.40824827551841736
 * ```
 */
export function defaultScale(headDim: number): number {
  return Math.fround(1 / Math.fround(Math.sqrt(headDim)));
}

function fail(fn: string, arg: string, rule: string, received: string): never {
  throw new ValueError(`${fn}: argument \`${arg}\` ${rule}; received ${received}.`);
}

function positiveInt(fn: string, arg: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    fail(fn, arg, 'must be a positive integer', formatValue(v));
  }
  return v;
}

/**
 * Checks every rule of the contract and resolves defaults. Throws a {@link ValueError} naming the
 * function, the argument, the rule and the received value; nothing is computed before this passes.
 */
export function normalizeProblem(
  fn: string,
  problem: AttentionProblem,
  arrays?: { query: Float32Array; key: Float32Array; value: Float32Array },
): NormalizedProblem {
  if (problem === null || typeof problem !== 'object') fail(fn, 'problem', 'must be an AttentionProblem object', formatValue(problem));
  const B = positiveInt(fn, 'problem.batch', problem.batch);
  const T = positiveInt(fn, 'problem.queryLength', problem.queryLength);
  const S = positiveInt(fn, 'problem.keyLength', problem.keyLength);
  const U = positiveInt(fn, 'problem.numQueryHeads', problem.numQueryHeads);
  const V = positiveInt(fn, 'problem.numKeyValueHeads', problem.numKeyValueHeads);
  const H = positiveInt(fn, 'problem.headDim', problem.headDim);
  if (U % V !== 0) {
    fail(fn, 'problem.numQueryHeads', `must be a multiple of numKeyValueHeads (${V})`, String(U));
  }
  const C = problem.keyCapacity === undefined ? S : problem.keyCapacity;
  if (typeof C !== 'number' || !Number.isInteger(C) || C < S) {
    fail(fn, 'problem.keyCapacity', `must be an integer >= keyLength (${S})`, formatValue(C));
  }
  const query = arrays?.query ?? problem.query;
  const key = arrays?.key ?? problem.key;
  const value = arrays?.value ?? problem.value;
  const checkArray = (arg: string, a: unknown, n: number, dims: string): Float32Array => {
    if (!(a instanceof Float32Array)) fail(fn, arg, 'must be a Float32Array', formatValue(a));
    if (a.length !== n) fail(fn, arg, `must have length ${dims} = ${n}`, `length ${a.length}`);
    return a;
  };
  checkArray('problem.query', query, B * T * U * H, `B*T*U*H (${B}*${T}*${U}*${H})`);
  checkArray('problem.key', key, B * C * V * H, `B*C*V*H (${B}*${C}*${V}*${H})`);
  checkArray('problem.value', value, B * C * V * H, `B*C*V*H (${B}*${C}*${V}*${H})`);

  let mask: NormalizedMask | null = null;
  if (problem.mask !== undefined && problem.mask !== null) {
    mask = normalizeMask(fn, problem.mask, [B, U, T, S]);
  }
  const causal = problem.causal === undefined ? false : problem.causal;
  if (typeof causal !== 'boolean') fail(fn, 'problem.causal', 'must be a boolean', formatValue(causal));
  const p0 = problem.queryOffset === undefined ? 0 : problem.queryOffset;
  if (typeof p0 !== 'number' || !Number.isInteger(p0) || p0 < 0) {
    fail(fn, 'problem.queryOffset', 'must be a non-negative integer', formatValue(p0));
  }
  const w = problem.slidingWindow;
  if (w !== undefined && (typeof w !== 'number' || !Number.isInteger(w) || w < 1)) {
    fail(fn, 'problem.slidingWindow', 'must be undefined or a positive integer', formatValue(w));
  }
  const scale = problem.scale === undefined ? defaultScale(H) : problem.scale;
  if (typeof scale !== 'number' || !Number.isFinite(scale)) {
    fail(fn, 'problem.scale', 'must be a finite number', formatValue(scale));
  }
  const rp = problem.returnProbabilities === undefined ? false : problem.returnProbabilities;
  if (typeof rp !== 'boolean') fail(fn, 'problem.returnProbabilities', 'must be a boolean', formatValue(rp));
  const rate = problem.dropoutRate === undefined ? 0 : problem.dropoutRate;
  if (typeof rate !== 'number' || !(rate >= 0 && rate < 1)) {
    fail(fn, 'problem.dropoutRate', 'must be a number in [0, 1)', formatValue(rate));
  }
  const seed = problem.dropoutSeed === undefined ? 0 : problem.dropoutSeed;
  if (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    fail(fn, 'problem.dropoutSeed', 'must be an integer in [0, 2^32)', formatValue(seed));
  }
  const lse = problem.returnLogSumExp === undefined ? false : problem.returnLogSumExp;
  if (typeof lse !== 'boolean') fail(fn, 'problem.returnLogSumExp', 'must be a boolean', formatValue(lse));
  return {
    B, T, S, C, U, V, H, G: U / V,
    query: query as Float32Array,
    key: key as Float32Array,
    value: value as Float32Array,
    mask, causal, p0, window: w ?? 0,
    scale: Math.fround(scale),
    wantProbabilities: rp,
    dropoutRate: rate,
    dropoutSeed: seed,
    wantLogSumExp: lse,
  };
}

function normalizeMask(fn: string, m: EngineMask, full: readonly [number, number, number, number]): NormalizedMask {
  if (typeof m !== 'object') fail(fn, 'problem.mask', 'must be an EngineMask object', formatValue(m));
  if (m.kind !== 'bool' && m.kind !== 'additive') {
    fail(fn, 'problem.mask.kind', "must be 'bool' or 'additive'", formatValue(m.kind));
  }
  if (m.kind === 'bool' && !(m.data instanceof Uint8Array)) {
    fail(fn, 'problem.mask.data', "must be a Uint8Array for kind 'bool'", formatValue(m.data));
  }
  if (m.kind === 'additive' && !(m.data instanceof Float32Array)) {
    fail(fn, 'problem.mask.data', "must be a Float32Array for kind 'additive'", formatValue(m.data));
  }
  const shape = m.shape;
  if (!Array.isArray(shape) || shape.length !== 4) {
    fail(fn, 'problem.mask.shape', 'must have 4 entries (B or 1, U or 1, T or 1, S or 1)', formatValue(shape));
  }
  const names = ['B', 'U', 'T', 'S'];
  for (let i = 0; i < 4; i++) {
    const d = shape[i];
    if (d !== 1 && d !== full[i]) {
      fail(
        fn, 'problem.mask.shape',
        `must broadcast to (B,U,T,S) = [${full.join(',')}]: entry ${i} (${names[i]}) must be 1 or ${full[i]}`,
        `[${shape.join(',')}]`,
      );
    }
  }
  const n = shape[0] * shape[1] * shape[2] * shape[3];
  if (m.data.length !== n) {
    fail(fn, 'problem.mask.data', `must have length ${n} (the product of mask.shape [${shape.join(',')}])`, `length ${m.data.length}`);
  }
  const sS = shape[3] === 1 ? 0 : 1;
  const sT = shape[2] === 1 ? 0 : shape[3];
  const sU = shape[1] === 1 ? 0 : shape[2] * shape[3];
  const sB = shape[0] === 1 ? 0 : shape[1] * shape[2] * shape[3];
  return { kind: m.kind, data: m.data, shape: [shape[0], shape[1], shape[2], shape[3]], strides: [sB, sU, sT, sS] };
}

/** Whether two views share bytes of one buffer. */
function overlaps(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}

/**
 * Checks a forward problem's `resultInto` (see {@link AttentionProblem.resultInto}) against the validated
 * problem: the arrays the results go to, or undefined for fresh arrays. `engineMemory` is the
 * engine's own buffer (its views are refused: the memory may grow during the call).
 */
export function normalizeInto(
  fn: string,
  problem: AttentionProblem,
  p: NormalizedProblem,
  engineMemory?: ArrayBufferLike,
): AttentionResult | undefined {
  const into = problem.resultInto as Partial<Record<keyof AttentionResult, unknown>> | null | undefined;
  if (into === undefined || into === null) return undefined;
  if (typeof into !== 'object') fail(fn, 'problem.resultInto', 'must be an object { output, probabilities?, logSumExp? }', formatValue(into));
  const { B, T, S, U, H } = p;
  const inputs: [string, ArrayBufferView][] = [['query', p.query], ['key', p.key], ['value', p.value]];
  if (p.mask !== null) inputs.push(['mask.data', p.mask.data]);
  const check = (name: keyof AttentionResult, wanted: boolean, n: number, dims: string): Float32Array | undefined => {
    const a = into[name];
    const arg = `problem.resultInto.${name}`;
    if (!wanted) {
      if (a !== undefined) fail(fn, arg, `must be given exactly when ${name === 'probabilities' ? 'returnProbabilities' : 'returnLogSumExp'} is true`, formatValue(a));
      return undefined;
    }
    if (!(a instanceof Float32Array)) fail(fn, arg, 'must be a Float32Array', formatValue(a));
    if (a.length !== n) fail(fn, arg, `must have length ${dims} = ${n}`, `length ${a.length}`);
    if (engineMemory !== undefined && a.buffer === engineMemory) fail(fn, arg, "must not be a view of the engine's own memory", 'such a view');
    for (const [input, view] of inputs) if (overlaps(a, view)) fail(fn, arg, `must not overlap problem.${input}`, 'an overlapping view');
    return a;
  };
  const output = check('output', true, B * T * U * H, `B*T*U*H (${B}*${T}*${U}*${H})`)!;
  const probabilities = check('probabilities', p.wantProbabilities, B * U * T * S, `B*U*T*S (${B}*${U}*${T}*${S})`);
  const logSumExp = check('logSumExp', p.wantLogSumExp, B * U * T, `B*U*T (${B}*${U}*${T})`);
  const all = [output, probabilities, logSumExp].filter((a): a is Float32Array => a !== undefined);
  for (let i = 0; i < all.length; i++) {
    for (let j = i + 1; j < all.length; j++) {
      if (overlaps(all[i]!, all[j]!)) fail(fn, 'problem.resultInto', 'must hold arrays that do not overlap each other', 'overlapping views');
    }
  }
  return { output, ...(probabilities ? { probabilities } : {}), ...(logSumExp ? { logSumExp } : {}) };
}
