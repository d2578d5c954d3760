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

/** Formats a shape the way the messages print it: `[2,3,null]`. */
export function formatShape(shape: ReadonlyArray<number | null | undefined>): string {
  return `[${shape.map((d) => (d == null ? 'null' : String(d))).join(',')}]`;
}

/** Formats any received value for a message, briefly. */
export function formatValue(value: unknown): string {
  if (typeof value === 'string') return `'${value}'`;
  if (Array.isArray(value)) return formatShape(value as number[]);
  if (value === null || value === undefined) return String(value);
  if (typeof value === 'object') {
    const ctor = (value as { constructor?: { name?: string } }).constructor;
    return ctor?.name ?? 'object';
  }
  return String(value);
}

/** Throws a ValueError `<where>: <message>` when `condition` is false. The message is built lazily. */
export function check(condition: boolean, where: string, message: () => string): asserts condition {
  if (!condition) throw new ValueError(`${where}: ${message()}`);
}
