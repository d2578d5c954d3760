/**
 * Keras's order of a functional model's layers (`model.layers`), computed from a tfjs model's graph.
 *
 * Keras numbers the HDF5 groups `layers/dense`, `layers/dense_1`, … and writes `config.json`'s
 * `layers` in this order, so a loader that followed tfjs's own `model.layers` would put one layer's
 * weights into another of the same class whenever the two orders differ. They differ when a layer is
 * called with keyword tensors: Keras flattens a node's arguments as `tree.flatten((args, kwargs))`,
 * positional arguments first, then keyword arguments **sorted by name** (`gqa(query=q, value=v,
 * key=k)` visits k, q, v), and then orders layers by depth from the outputs, ties broken by the order
 * in which a depth-first walk from the outputs first met them (Keras's `ops/function.py`,
 * `map_graph`). tfjs walks positional inputs only.
 *
 * How a node was called (which GroupedQueryAttention slots were positional) is not in the tfjs graph;
 * the loader records it with {@link recordKerasCall}. Nodes built in TypeScript follow the convention
 * the writer uses: `query` and `value` positional, every other tensor a keyword argument.
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import type { SymbolicTensor } from '@tensorflow/tfjs-layers';

type Layer = tfl.LayersModel['layers'][number];

/** The parts of tfjs's Node this module reads (public at runtime, not in the typings). */
export interface NodeLike {
  inputTensors: SymbolicTensor[];
  outputTensors: SymbolicTensor[];
  callArgs?: Record<string, unknown>;
}

/** GroupedQueryAttention's call signature in Keras, by tfjs slot name. */
export const GQA_SLOTS: ReadonlyArray<readonly [slot: string, keras: string]> = [
  ['query', 'query'], ['value', 'value'], ['key', 'key'], ['queryMask', 'query_mask'],
  ['valueMask', 'value_mask'], ['keyMask', 'key_mask'], ['attentionMask', 'attention_mask'],
];
const KERAS_SLOT = new Map<string, string>(
  GQA_SLOTS.flatMap(([slot, keras]) => [[slot, keras], [keras, keras]] as Array<[string, string]>));

/** The writer's convention for nodes built in TypeScript. */
const DEFAULT_POSITIONAL: readonly string[] = ['query', 'value'];

const positionalByNode = new WeakMap<object, readonly string[]>();

/** Remembers which GroupedQueryAttention slots (Keras names) a file passed positionally at a node. */
export function recordKerasCall(node: object, positional: readonly string[]): void {
  positionalByNode.set(node, positional);
}

function isGqa(layer: Layer): boolean {
  const cls = layer.getClassName();
  return cls === 'GroupedQueryAttention' || cls === 'GroupQueryAttention';
}

/**
 * A GroupedQueryAttention node's tensors by Keras slot name, and which slots are positional (in
 * call-signature order) and which are keyword arguments (sorted by name, as `tree.flatten` sorts).
 */
export function gqaCallSlots(node: NodeLike): {
  tensors: Map<string, SymbolicTensor>; positional: string[]; keyword: string[];
} {
  const raw = node.callArgs?.['inputLayout'];
  const layout = (Array.isArray(raw) ? raw : ['query', 'value', 'key'].slice(0, node.inputTensors.length)) as string[];
  const tensors = new Map<string, SymbolicTensor>();
  layout.forEach((entry, i) => {
    const t = node.inputTensors[i];
    if (t == null) return;
    for (const slot of entry.split('+')) tensors.set(KERAS_SLOT.get(slot) ?? slot, t);
  });
  const recorded = positionalByNode.get(node) ?? DEFAULT_POSITIONAL;
  const positional = GQA_SLOTS.map(([, k]) => k).filter((k) => recorded.includes(k) && tensors.has(k));
  const keyword = [...tensors.keys()].filter((k) => !positional.includes(k)).sort();
  return { tensors, positional, keyword };
}

/** A node's input tensors in Keras's flattening order (duplicates kept, as Keras keeps them). */
function kerasInputs(layer: Layer, node: NodeLike): SymbolicTensor[] {
  if (layer.getClassName() === 'InputLayer') return [];
  if (!isGqa(layer)) return node.inputTensors;
  const { tensors, positional, keyword } = gqaCallSlots(node);
  return [...positional, ...keyword].map((k) => tensors.get(k)!);
}

function nodeOf(t: SymbolicTensor): { layer: Layer; node: NodeLike } {
  const layer = t.sourceLayer as Layer;
  return { layer, node: (layer.inboundNodes as unknown as NodeLike[])[t.nodeIndex]! };
}

/**
 * The model's layers in Keras's `model.layers` order (InputLayers included), as Keras's `map_graph`
 * computes it for the same graph.
 */
export function kerasLayerOrder(model: tfl.LayersModel): Layer[] {
  const inputs = new Set<SymbolicTensor>(model.inputs);
  const layerIndex = new Map<Layer, number>();
  const finished = new Set<NodeLike>();
  const nodeLayer = new Map<NodeLike, Layer>();
  const decreasing: NodeLike[] = [];
  // Iterative form of Keras's recursive `_build_map_helper` (a deep model must not overflow the stack).
  const visit = (root: SymbolicTensor) => {
    const stack: Array<{ node: NodeLike; layer: Layer; children: SymbolicTensor[]; next: number }> = [];
    const enter = (t: SymbolicTensor) => {
      const { layer, node } = nodeOf(t);
      if (node == null || finished.has(node) || stack.some((f) => f.node === node)) return;
      if (!layerIndex.has(layer)) layerIndex.set(layer, layerIndex.size);
      nodeLayer.set(node, layer);
      const children = inputs.has(t) ? [] : kerasInputs(layer, node);
      stack.push({ node, layer, children, next: 0 });
    };
    enter(root);
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      if (top.next < top.children.length) {
        enter(top.children[top.next++]!);
        continue;
      }
      stack.pop();
      finished.add(top.node);
      decreasing.push(top.node);
    }
  };
  for (const t of model.outputs) visit(t);

  const nodeDepth = new Map<NodeLike, number>();
  const layerDepth = new Map<Layer, number>();
  for (let i = decreasing.length - 1; i >= 0; i--) {
    const node = decreasing[i]!;
    const layer = nodeLayer.get(node)!;
    const depth = Math.max(nodeDepth.get(node) ?? 0, layerDepth.get(layer) ?? 0);
    layerDepth.set(layer, depth);
    nodeDepth.set(node, depth);
    for (const t of kerasInputs(layer, node)) {
      const parent = nodeOf(t).node;
      nodeDepth.set(parent, Math.max(depth + 1, nodeDepth.get(parent) ?? 0));
    }
  }
  for (const t of model.inputs) {
    const layer = t.sourceLayer as Layer;
    if (!layerDepth.has(layer)) {
      layerDepth.set(layer, 0);
      layerIndex.set(layer, -1);
    }
  }
  return [...layerDepth.entries()]
    .sort(([a, da], [b, db]) => db - da || layerIndex.get(a)! - layerIndex.get(b)!)
    .map(([layer]) => layer);
}
