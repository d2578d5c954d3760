/**
 * The positional input list of the layer. tfjs's graph executor passes only tensors it finds in the
 * positional inputs (per-node keyword arguments are dropped at predict/fit time), so `apply` moves
 * every tensor argument into one list and records which slot holds what: the layout.
 */
import { ValueError } from '../errors.js';

export const SLOTS = ['query', 'value', 'key', 'queryMask', 'valueMask', 'keyMask', 'attentionMask'] as const;
export type Slot = (typeof SLOTS)[number];
export type Layout = readonly Slot[];

/** Layout of a plain positional list: [query, value] or [query, value, key]. */
export function defaultLayout(count: number, where: string): Layout {
  if (count === 2 || count === 3) return SLOTS.slice(0, count);
  throw new ValueError(
    `${where}: a list of inputs must be [query, value] or [query, value, key]; received ${count} tensors`);
}

const SNAKE: Record<string, Slot> = {
  query_mask: 'queryMask',
  value_mask: 'valueMask',
  key_mask: 'keyMask',
  attention_mask: 'attentionMask',
};

/** Reads a layout back from a saved model (tfjs stores kwargs' strings in snake_case). */
export function parseLayout(raw: unknown, count: number, where: string): Layout {
  if (raw == null) return defaultLayout(count, where);
  if (!Array.isArray(raw)) throw new ValueError(`${where}: inputLayout must be a list of slot names; received ${String(raw)}`);
  const layout = raw.map((name: unknown) => {
    const slot = typeof name === 'string' ? (SNAKE[name] ?? name) : name;
    if (!SLOTS.includes(slot as Slot)) {
      throw new ValueError(`${where}: unknown input slot ${JSON.stringify(name)}; expected one of ${SLOTS.join(', ')}`);
    }
    return slot as Slot;
  });
  if (layout.length !== count || layout[0] !== 'query' || layout[1] !== 'value') {
    throw new ValueError(
      `${where}: inputLayout [${layout.join(', ')}] does not describe the ${count} inputs received ` +
      `(it must start with query, value and name each input once)`);
  }
  return layout;
}

/** Packs named tensors into the positional list, in slot order. */
export function pack<T>(named: Partial<Record<Slot, T | null | undefined>>): { list: T[]; layout: Layout } {
  const list: T[] = [];
  const layout: Slot[] = [];
  for (const slot of SLOTS) {
    const t = named[slot];
    if (t != null) {
      list.push(t);
      layout.push(slot);
    }
  }
  return { list, layout };
}

/** Unpacks the positional list by its layout. */
export function unpack<T>(list: readonly T[], layout: Layout): Partial<Record<Slot, T>> {
  const named: Partial<Record<Slot, T>> = {};
  layout.forEach((slot, i) => {
    named[slot] = list[i];
  });
  return named;
}
