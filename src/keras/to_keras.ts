/**
 * Writes a tfjs functional model as a Keras 3 `config.json` (the format Keras 3.6 writes; Keras ≥ 3.7
 * reads it too). GroupedQueryAttention's later options (`use_gate`, `sliding_window`, `seed`) are
 * written only when set, so that models without them stay loadable in Keras 3.6.
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import type { SymbolicTensor } from '@tensorflow/tfjs-layers';
import { KerasConfigError } from './errors.js';
import { genericToKeras, hasGenericCodec } from './generic_codec.js';
import { KerasNotEqual } from './keras_layers.js';
import { KERAS_WITHOUT_BUILD } from './layer_defaults.js';
import { gqaCallSlots, kerasLayerOrder, type NodeLike } from './layer_order.js';
import {
  activationToKeras,
  initializerToKeras,
  KERAS_FLOAT32_POLICY,
  own,
  WEIGHT_OBJECT_KEYS,
  weightObjectsToKeras,
  type Dict,
} from './objects.js';

type Layer = tfl.LayersModel['layers'][number];
type Shape = Array<number | null>;

/** The parts of tfjs's Container this writer reads (public at runtime, not in the typings). */
interface ContainerLike {
  containerNodes?: Set<string>;
  inputLayers: Layer[];
  inputLayersNodeIndices: number[];
  inputLayersTensorIndices: number[];
  outputLayers: Layer[];
  outputLayersNodeIndices: number[];
  outputLayersTensorIndices: number[];
}

function shapeOf(shape: ReadonlyArray<number | null | undefined>): Shape {
  return shape.map((d) => (d == null ? null : d));
}

/** Keras's Python layer class names for tfjs classes (and for this package's Keras layers). */
const KERAS_CLASS: Readonly<Record<string, string>> = {
  GroupedQueryAttention: 'GroupQueryAttention',
  KerasRmsLayerNormalization: 'LayerNormalization',
  KerasGlobalAveragePooling1D: 'GlobalAveragePooling1D',
};

function kerasClass(layer: Layer): string {
  const cls = layer.getClassName();
  return own(KERAS_CLASS, cls) ?? cls;
}

type ConfigWriter = (layer: Layer, c: Dict, where: string) => Dict;

const WRITERS: Record<string, ConfigWriter> = {
  Dense: (_l, c, w) => ({
    units: c['units'],
    activation: activationToKeras(w, String(c['activation'] ?? 'linear')),
    use_bias: c['useBias'] ?? true,
    ...weightObjectsToKeras(w, WEIGHT_OBJECT_KEYS.Dense, c),
  }),
  Embedding: (_l, c, w) => ({
    input_dim: c['inputDim'],
    output_dim: c['outputDim'],
    ...weightObjectsToKeras(w, WEIGHT_OBJECT_KEYS.Embedding, c),
    activity_regularizer: null,
    ...weightObjectsToKeras(w, WEIGHT_OBJECT_KEYS.EmbeddingConstraint, c),
    mask_zero: c['maskZero'] ?? false,
  }),
  LayerNormalization: (l, c, w) => ({
    axis: negativeAxes(l, c['axis']),
    epsilon: c['epsilon'] ?? 1e-3,
    center: c['center'] ?? true,
    scale: c['scale'] ?? true,
    rms_scaling: false,
    ...weightObjectsToKeras(w, WEIGHT_OBJECT_KEYS.LayerNormalization, c),
    beta_constraint: null,
    gamma_constraint: null,
  }),
  KerasRmsLayerNormalization: (l, c, w) => ({
    axis: negativeAxes(l, c['axis']),
    epsilon: c['epsilon'] ?? 1e-3,
    center: true,
    scale: true,
    rms_scaling: true,
    beta_initializer: initializerToKeras(w, 'beta_initializer', { className: 'Zeros', config: {} }),
    gamma_initializer: initializerToKeras(w, 'gamma_initializer', { className: 'Ones', config: {} }),
    beta_regularizer: null,
    gamma_regularizer: null,
    beta_constraint: null,
    gamma_constraint: null,
  }),
  KerasGlobalAveragePooling1D: (_l, c) => ({ data_format: 'channels_last', keepdims: c['keepdims'] ?? false }),
  // tfjs's own layer (no mask, no keepdims): the same numbers as Keras's without a mask.
  GlobalAveragePooling1D: () => ({ data_format: 'channels_last', keepdims: false }),
  Dropout: (_l, c) => ({ rate: c['rate'], seed: c['seed'] ?? null, noise_shape: c['noiseShape'] ?? null }),
  Activation: (_l, c, w) => ({ activation: activationToKeras(w, String(c['activation'])) }),
  Add: () => ({}),
  Multiply: () => ({}),
  Average: () => ({}),
  Maximum: () => ({}),
  Minimum: () => ({}),
  Concatenate: (_l, c) => ({ axis: c['axis'] ?? -1 }),
  GroupedQueryAttention: gqaConfig,
  GroupQueryAttention: gqaConfig,
};

/** tfjs stores LayerNormalization axes as positive; Keras writes them as given, usually [-1]. */
function negativeAxes(layer: Layer, axis: unknown): number[] {
  const axes = (Array.isArray(axis) ? axis : [axis ?? -1]) as number[];
  const node = (layer.inboundNodes as unknown as NodeLike[])[0];
  const rank = node?.inputTensors[0]?.shape.length;
  return rank == null ? axes : axes.map((a) => (a >= 0 ? a - rank : a));
}

function gqaConfig(_l: Layer, c: Dict, w: string): Dict {
  const out: Dict = {
    head_dim: c['headDim'],
    num_query_heads: c['numQueryHeads'],
    num_key_value_heads: c['numKeyValueHeads'],
    use_bias: c['useBias'] ?? true,
  };
  // Keras ≥ 3.14/3.15/3.7 options, written only when set (Keras 3.6 rejects the keys).
  if (c['useGate'] === true) out['use_gate'] = true;
  if (c['slidingWindow'] != null) out['sliding_window'] = c['slidingWindow'];
  Object.assign(out, {
    dropout: c['dropout'] ?? 0,
    ...weightObjectsToKeras(w, WEIGHT_OBJECT_KEYS.GroupedQueryAttention, c),
  });
  if (c['seed'] != null) out['seed'] = c['seed'];
  return out;
}

/**
 * The Keras `config.json` object of a tfjs functional model built from InputLayer, Dense, Embedding,
 * LayerNormalization, Dropout, Activation, merge layers and GroupedQueryAttention.
 */
export function kerasConfigFromModel(model: tfl.LayersModel): Dict {
  const container = model as unknown as ContainerLike;
  const inModel = (layer: Layer, index: number) =>
    container.containerNodes == null || container.containerNodes.has(`${layer.name}_ib-${index}`);
  // Keras renumbers each layer's nodes to those inside the model.
  const reindex = new Map<Layer, Map<number, number>>();
  for (const layer of model.layers) {
    const map = new Map<number, number>();
    (layer.inboundNodes as unknown as NodeLike[]).forEach((_n, i) => {
      if (inModel(layer, i)) map.set(i, map.size);
    });
    reindex.set(layer, map);
  }
  const history = (tensor: SymbolicTensor): [string, number, number] => {
    const t = tensor;
    const source = t.sourceLayer as Layer;
    const node = reindex.get(source)?.get(t.nodeIndex) ?? t.nodeIndex;
    return [source.name, node, t.tensorIndex];
  };
  const kerasTensor = (t: SymbolicTensor): Dict => ({
    class_name: '__keras_tensor__',
    // tfjs types symbolic outputs by their inputs; a not_equal mask is bool in Keras.
    config: { shape: shapeOf(t.shape), dtype: t.sourceLayer instanceof KerasNotEqual ? 'bool' : t.dtype, keras_history: history(t) },
  });

  // Keras's `model.layers` order, which is also the order of the HDF5 groups.
  const layers = kerasLayerOrder(model).map((layer) => {
    const cls = layer.getClassName();
    const where = `Layer '${layer.name}' (${cls})`;
    const tfConfig = layer.getConfig() as Dict;
    if (cls === 'InputLayer') {
      return {
        module: 'keras.layers',
        class_name: 'InputLayer',
        config: {
          batch_shape: shapeOf((tfConfig['batchInputShape'] as Shape) ?? []),
          dtype: tfConfig['dtype'] ?? 'float32',
          sparse: false,
          name: layer.name,
        },
        registered_name: null,
        name: layer.name,
        inbound_nodes: [],
      };
    }
    if (layer instanceof KerasNotEqual) {
      // An op layer, as Keras records `keras.ops.not_equal(x, c)`.
      const nodes = (layer.inboundNodes as unknown as NodeLike[]).filter((_n, i) => inModel(layer, i));
      return {
        module: 'keras.src.ops.numpy',
        class_name: 'NotEqual',
        config: { name: layer.name },
        registered_name: 'NotEqual',
        name: layer.name,
        inbound_nodes: nodes.map((node) => ({ args: [kerasTensor(node.inputTensors[0]!), layer.constant], kwargs: {} })),
      };
    }
    const writer = own(WRITERS, cls) ?? (hasGenericCodec(cls) ? (l: Layer) => genericToKeras(l, where) : undefined);
    if (writer == null) {
      throw new KerasConfigError(`${where}: layer class ${cls} cannot be saved in Keras format (supported: ${Object.keys(WRITERS).join(', ')})`);
    }
    const config: Dict = {
      name: layer.name,
      trainable: layer.trainable,
      dtype: KERAS_FLOAT32_POLICY,
      ...writer(layer, tfConfig, where),
    };
    const nodes = (layer.inboundNodes as unknown as NodeLike[]).filter((_n, i) => inModel(layer, i));
    const inboundNodes = nodes.map((node) => {
      const inputs = node.inputTensors;
      if (cls === 'GroupedQueryAttention' || cls === 'GroupQueryAttention') {
        const callArgs = node.callArgs ?? {};
        // Positional and keyword tensors as the file this model came from had them (query and value
        // positional for a model built here): Keras orders layers by this split.
        const { tensors, positional, keyword } = gqaCallSlots(node);
        const args = positional.map((slot) => kerasTensor(tensors.get(slot)!));
        const kwargs: Dict = {};
        for (const slot of keyword) kwargs[slot] = kerasTensor(tensors.get(slot)!);
        if (callArgs['useCausalMask'] === true) kwargs['use_causal_mask'] = true;
        if (callArgs['returnAttentionScores'] === true) kwargs['return_attention_scores'] = true;
        return { args, kwargs };
      }
      const tensors = inputs.map(kerasTensor);
      if (cls === 'KerasGlobalAveragePooling1D' && tensors.length === 2) return { args: [tensors[0]], kwargs: { mask: tensors[1] } };
      const multi = ['Add', 'Multiply', 'Average', 'Maximum', 'Minimum', 'Concatenate', 'Subtract', 'Dot'].includes(cls);
      return { args: multi ? [tensors] : [tensors[0]], kwargs: {} };
    });
    const first = nodes[0];
    let buildConfig: Dict | undefined;
    if (first != null && !KERAS_WITHOUT_BUILD.has(kerasClass(layer))) {
      const shapes = first.inputTensors.map((t) => shapeOf(t.shape));
      if (cls === 'GroupedQueryAttention' || cls === 'GroupQueryAttention') {
        const layout = (first.callArgs?.['inputLayout'] as string[] | undefined) ?? ['query', 'value', 'key'];
        const at = (slot: string) => shapes[layout.findIndex((entry) => entry.split('+').includes(slot))];
        buildConfig = {
          shapes_dict: {
            query_shape: at('query'), value_shape: at('value'),
            ...(at('key') != null ? { key_shape: at('key') } : {}),
          },
        };
      } else {
        buildConfig = { input_shape: shapes.length === 1 ? shapes[0] : shapes };
      }
    }
    return {
      module: 'keras.layers',
      class_name: kerasClass(layer),
      config,
      registered_name: null,
      ...(buildConfig ? { build_config: buildConfig } : {}),
      name: layer.name,
      inbound_nodes: inboundNodes,
    };
  });

  const endpoint = (layer: Layer, node: number, tensor: number): [string, number, number] =>
    [layer.name, reindex.get(layer)?.get(node) ?? node, tensor];
  return {
    module: 'keras.src.models.functional',
    class_name: 'Functional',
    config: {
      name: model.name,
      trainable: model.trainable,
      layers,
      input_layers: container.inputLayers.map((l, i) =>
        endpoint(l, container.inputLayersNodeIndices[i]!, container.inputLayersTensorIndices[i]!)),
      output_layers: container.outputLayers.map((l, i) =>
        endpoint(l, container.outputLayersNodeIndices[i]!, container.outputLayersTensorIndices[i]!)),
    },
    registered_name: 'Functional',
    build_config: { input_shape: null },
  };
}
