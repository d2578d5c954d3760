/**
 * The positional input list of the layer, and the per-call plan that says how to read it.
 *
 * tfjs's graph executor passes only tensors it finds in the positional inputs (per-node keyword
 * arguments are dropped at predict/fit time), so `apply` moves every tensor argument into one list
 * and records which slot(s) each entry fills: the layout. The layout and the call's non-tensor
 * options form the call plan; a layer in a functional model records the plan of its symbolic call
 * and reuses it when the executor calls it (one set of options per layer instance).
 *
 * A tensor passed in several slots (self-attention: query = value) appears once, with its slots
 * joined by '+': tfjs's executor releases a tensor after as many uses as a node lists it, so listing
 * it twice would free it while later layers still need it.
 */
import * as tfl from '@tensorflow/tfjs-layers';
import { check, formatValue, ValueError } from '../errors.js';

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
    throw new ValueError(`${where}: inputLayout must be a list of slot names; received ${formatValue(raw)}`);
  }
  const layout = (raw as string[]).map((entry) => slotsOf(entry).join('+'));
  const all = layout.flatMap(slotsOf);
  for (const slot of all) {
    if (!SLOTS.includes(slot)) {
      throw new ValueError(`${where}: unknown input slot ${formatValue(slot)}; expected one of ${SLOTS.join(', ')}`);
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

/** What one call needs besides its tensors: the input layout and the non-tensor options. */
export interface CallPlan {
  layout: Layout;
  useCausalMask: boolean;
  returnAttentionScores: boolean;
}

/** The options of `apply` that the plan machinery reads. */
export interface ApplyOptions {
  inputLayout?: unknown;
  value?: unknown;
  key?: unknown;
  queryMask?: unknown;
  valueMask?: unknown;
  keyMask?: unknown;
  attentionMask?: unknown;
  useCausalMask?: unknown;
  returnAttentionScores?: unknown;
}

/** Raises unless `value` is a boolean, null or undefined (Keras's flags are Python bools). */
export function checkFlag(where: string, name: string, value: unknown): boolean | undefined {
  check(value == null || typeof value === 'boolean', where, () =>
    `${name} must be a boolean; received ${formatValue(value)}`);
  return value ?? undefined;
}

/**
 * The call plans of one layer instance: the plan of the `apply` in progress, and the plan recorded
 * at its first symbolic call (used when tfjs's executor calls the layer with the node's inputs).
 */
export class CallPlans {
  private active: CallPlan | null = null;
  private graph: CallPlan | null = null;

  constructor(private readonly where: () => string) {}

  /**
   * Packs `apply`'s arguments into the positional list and makes the call's plan. `inputs` is a
   * query (with `value` etc. in `opts`), a user's [query, value, key?] list, or the executor's or a
   * reloaded model's packed list (with `opts.inputLayout`).
   */
  plan<T>(inputs: T | T[], opts: ApplyOptions): { list: T[]; plan: CallPlan; symbolic: boolean } {
    const where = this.where();
    let list: T[];
    let layout: Layout;
    // A reloaded model calls apply with the node's inputs (a single one unwrapped) and its layout.
    const packed = Array.isArray(inputs) || opts.inputLayout != null;
    if (packed) {
      list = Array.isArray(inputs) ? inputs : [inputs];
      layout = opts.inputLayout != null || this.graph == null || list.length !== this.graph.layout.length
        ? parseLayout(opts.inputLayout, list.length, where)
        : this.graph.layout;
    } else {
      check(opts.value != null, where, () => 'the `value` argument is required: apply(query, {value, ...})');
      ({ list, layout } = pack<T>({
        query: inputs as T,
        value: opts.value as T,
        key: opts.key as T | undefined,
        queryMask: opts.queryMask as T | undefined,
        valueMask: opts.valueMask as T | undefined,
        keyMask: opts.keyMask as T | undefined,
        attentionMask: opts.attentionMask as T | undefined,
      }));
    }
    const symbolic = list[0] instanceof tfl.SymbolicTensor;
    const useCausalMask = checkFlag(where, 'useCausalMask', opts.useCausalMask);
    const returnAttentionScores = checkFlag(where, 'returnAttentionScores', opts.returnAttentionScores);
    // The executor's call: options come from the recorded plan.
    const fromGraph = this.graph != null && opts.inputLayout == null && packed && !symbolic ? this.graph : null;
    const plan: CallPlan = {
      layout,
      useCausalMask: useCausalMask ?? fromGraph?.useCausalMask ?? false,
      returnAttentionScores: returnAttentionScores ?? fromGraph?.returnAttentionScores ?? false,
    };
    return { list, plan, symbolic };
  }

  /** Records the plan of a symbolic call; every node of one instance must use the same plan. */
  record(plan: CallPlan): void {
    const same = (a: CallPlan, b: CallPlan) =>
      a.layout.join() === b.layout.join() &&
      a.useCausalMask === b.useCausalMask &&
      a.returnAttentionScores === b.returnAttentionScores;
    if (this.graph != null && !same(this.graph, plan)) {
      throw new ValueError(
        `${this.where()}: a layer instance used in a functional model must be called with the same inputs and ` +
        `options at every node (tfjs passes no per-node options at predict/fit time); first call used ` +
        `[${this.graph.layout.join(', ')}] useCausalMask=${this.graph.useCausalMask} ` +
        `returnAttentionScores=${this.graph.returnAttentionScores}, this one [${plan.layout.join(', ')}] ` +
        `useCausalMask=${plan.useCausalMask} returnAttentionScores=${plan.returnAttentionScores}. Use a second layer.`);
    }
    this.graph = plan;
  }

  /** Runs `fn` (tfjs's `apply`, which calls build/computeOutputShape/call) with `plan` active. */
  during<R>(plan: CallPlan, fn: () => R): R {
    this.active = plan;
    try {
      return fn();
    } finally {
      this.active = null;
    }
  }

  /** The plan of the call in progress, else the recorded one, else the plain [query, value, key?] one. */
  current(count: number): CallPlan {
    return this.active ?? this.graph ?? {
      layout: defaultLayout(count, this.where()),
      useCausalMask: false,
      returnAttentionScores: false,
    };
  }
}
