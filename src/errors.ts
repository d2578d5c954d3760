/**
 * Errors raised by this package. Every message names the function or layer, the argument, the rule
 * and the received value, so a failed call explains itself without a stack trace.
 */

/**
 * An argument, shape or option that breaks a documented rule. Raised before any work is done.
 *
 * @example
 * ```ts
 * import { GroupedQueryAttention, ValueError } from 'grouped-query-attention';
 *
 * try {
 *   new GroupedQueryAttention({ headDim: 8, numQueryHeads: 6, numKeyValueHeads: 4 });
 * } catch (e) {
 *   console.log(e instanceof ValueError, (e as Error).message);
 *   // true "GroupedQueryAttention '...': numQueryHeads must be divisible by numKeyValueHeads; received ..."
 * }
 * ```
 */
export class ValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ValueError';
  }
}

/** The most characters of a string, and elements of an array, that a message echoes. */
const MAX_STRING = 80;
const MAX_ITEMS = 8;

/** Formats a shape the way the messages print it: `[2,3,null]`. */
export function formatShape(shape: ReadonlyArray<number | null | undefined>): string {
  const dims = shape.slice(0, 2 * MAX_ITEMS).map((d) => (d == null ? 'null' : String(d)));
  return shape.length <= 2 * MAX_ITEMS ? `[${dims.join(',')}]` : `[${dims.join(',')},...] (${shape.length} dimensions)`;
}

/**
 * Formats any received value for a message, briefly: strings quoted and cut at 80 characters, arrays
 * cut at 8 elements with their length, plain objects as truncated JSON, other objects by their class.
 * A message built from it stays short whatever a caller passes (a million-element array included).
 */
export function formatValue(value: unknown): string {
  return brief(value, 0, (s) => `'${s}'`);
}

/**
 * {@link formatValue} in JSON's notation (strings in double quotes), for values read from a file's
 * JSON (Keras configs), cut the same way.
 *
 * @example
 * ```ts
 * import { formatJson } from './errors.js';
 * formatJson('causal'); // '"causal"'
 * formatJson(new Array(1e6).fill(1)); // '[1,1,1,1,1,1,1,1,...] (1000000 elements)'
 * ```
 */
export function formatJson(value: unknown): string {
  return brief(value, 0, (s) => JSON.stringify(s));
}

function brief(value: unknown, depth: number, quote: (s: string) => string): string {
  if (typeof value === 'string') {
    return value.length <= MAX_STRING ? quote(value) : `${quote(`${value.slice(0, MAX_STRING)}...`)} (${value.length} characters)`;
  }
  if (Array.isArray(value)) {
    if (depth > 1) return `[...] (${value.length} elements)`;
    const shown = value.slice(0, MAX_ITEMS).map((x) => (x == null ? 'null' : brief(x, depth + 1, quote)));
    return value.length <= MAX_ITEMS ? `[${shown.join(',')}]` : `[${shown.join(',')},...] (${value.length} elements)`;
  }
  if (value === null || value === undefined) return String(value);
  if (typeof value === 'object') {
    const ctor = (value as { constructor?: { name?: string } }).constructor;
    if (ctor === Object || ctor === undefined) {
      let json: string | undefined;
      try {
        json = JSON.stringify(value);
      } catch {
        json = undefined; // cyclic
      }
      if (json == null) return 'object';
      return json.length <= MAX_STRING ? json : `${json.slice(0, MAX_STRING)}... (an object)`;
    }
    return ctor?.name ?? 'object';
  }
  if (typeof value === 'function') return `function ${value.name || '(anonymous)'}`;
  return String(value);
}

/** Throws a ValueError `<where>: <message>` when `condition` is false. The message is built lazily. */
export function check(condition: boolean, where: string, message: () => string): asserts condition {
  if (!condition) throw new ValueError(`${where}: ${message()}`);
}
