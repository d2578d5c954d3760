/**
 * The positional input list of the layer. tfjs's graph executor passes only tensors it finds in the
 * positional inputs (per-node keyword arguments are dropped at predict/fit time), so `apply` moves
 * every tensor argument into one list and records which slot(s) each entry fills: the layout.
 *
 * A tensor passed in several slots (self-attention: query = value) appears once, with its slots
 * joined by '+': tfjs's executor releases a tensor after as many uses as a node lists it, so listing
 * it twice would free it while later layers still need it.
 */
import { ValueError } from '../errors.js';

export const SLOTS = ['query', 'value', 'key', 'queryMask', 'valueMask', 'keyMask', 'attentionMask'] as const;
export type Slot = (typeof SLOTS)[number];
/** One entry per input: a slot name, or several joined by '+'. */
export type Layout = readonly string[];

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

function slotsOf(entry: string): Slot[] {
  return entry.split('+').map((name) => (SNAKE[name] ?? name) as Slot);
}

/** Reads a layout back from a saved model (tfjs stores kwargs' strings in snake_case). */
export function parseLayout(raw: unknown, count: number, where: string): Layout {
  if (raw == null) return defaultLayout(count, where);
  if (!Array.isArray(raw) || !raw.every((x) => typeof x === 'string')) {
    throw new ValueError(`${where}: inputLayout must be a list of slot names; received ${JSON.stringify(raw)}`);
  }
  const layout = (raw as string[]).map((entry) => slotsOf(entry).join('+'));
  const all = layout.flatMap(slotsOf);
  for (const slot of all) {
    if (!SLOTS.includes(slot)) {
      throw new ValueError(`${where}: unknown input slot ${JSON.stringify(slot)}; expected one of ${SLOTS.join(', ')}`);
    }
  }
  if (layout.length !== count || !all.includes('query') || !all.includes('value') || new Set(all).size !== all.length) {
    throw new ValueError(
      `${where}: inputLayout [${layout.join(', ')}] does not describe the ${count} inputs received ` +
      '(it must name query and value, and each slot once)');
  }
  return layout;
}

/** Packs named tensors into the positional list, in slot order, each distinct tensor once. */
export function pack<T>(named: Partial<Record<Slot, T | null | undefined>>): { list: T[]; layout: Layout } {
  const list: T[] = [];
  const entries: Slot[][] = [];
  for (const slot of SLOTS) {
    const t = named[slot];
    if (t == null) continue;
    const at = list.indexOf(t);
    if (at >= 0) {
      entries[at]!.push(slot);
    } else {
      list.push(t);
      entries.push([slot]);
    }
  }
  return { list, layout: entries.map((e) => e.join('+')) };
}

/** Unpacks the positional list by its layout. */
export function unpack<T>(list: readonly T[], layout: Layout): Partial<Record<Slot, T>> {
  const named: Partial<Record<Slot, T>> = {};
  layout.forEach((entry, i) => {
    for (const slot of slotsOf(entry)) named[slot] = list[i];
  });
  return named;
}
