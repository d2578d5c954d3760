// A tiny protobuf encoder for the few ONNX messages a one-node model needs, and the models the
// benchmark runs. Field numbers are those of the ONNX protobuf schema (onnx.proto3):
//   ModelProto:  ir_version=1 (int64), opset_import=8, producer_name=2, graph=7
//   OperatorSetIdProto: domain=1, version=2
//   GraphProto:  node=1, name=2, input=11, output=12
//   NodeProto:   input=1, output=2, name=3, op_type=4, attribute=5, domain=7
//   AttributeProto: name=1, f=2 (float), i=3 (int64), type=20 (FLOAT=1, INT=2)
//   ValueInfoProto: name=1, type=2; TypeProto: tensor_type=1; TypeProto.Tensor: elem_type=1, shape=2
//   TensorShapeProto: dim=1; Dimension: dim_value=1, dim_param=2
//   TensorProto.DataType: FLOAT=1, INT32=6, INT64=7, BOOL=9

const te = new TextEncoder();

function varint(n) {
  const out = [];
  let v = BigInt(n);
  if (v < 0n) v += 1n << 64n; // two's complement, 10 bytes
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) b |= 0x80;
    out.push(b);
  } while (v !== 0n);
  return out;
}
const tag = (field, wire) => varint((field << 3) | wire);
const fVarint = (field, n) => [...tag(field, 0), ...varint(n)];
const fBytes = (field, bytes) => [...tag(field, 2), ...varint(bytes.length), ...bytes];
const fString = (field, s) => fBytes(field, [...te.encode(s)]);
const fMsg = (field, parts) => fBytes(field, parts.flat());
function fFloat(field, x) {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setFloat32(0, x, true);
  return [...tag(field, 5), ...b];
}

export const DT = { float: 1, int32: 6, int64: 7, bool: 9 };

/** dims: numbers (fixed) or strings (symbolic); null = unknown rank. */
function valueInfo(name, elemType, dims) {
  const tensorType = [fVarint(1, elemType)];
  if (dims) {
    const shape = dims.map((d) => fMsg(1, [typeof d === 'number' ? fVarint(1, d) : fString(2, d)]));
    tensorType.push(fMsg(2, shape));
  }
  return [fString(1, name), fMsg(2, [fMsg(1, tensorType)])];
}

function attribute(name, value) {
  if (value.float !== undefined) return [fString(1, name), fFloat(2, value.float), fVarint(20, 1)];
  return [fString(1, name), fVarint(3, value.int), fVarint(20, 2)];
}

/**
 * One-node model. inputs/outputs: [{name, type, dims}]; nodeInputs may contain '' to skip an optional input.
 * attrs: {name: {int} | {float}}.
 */
export function oneNodeModel({ opType, domain = '', nodeInputs, nodeOutputs, inputs, outputs, attrs = {} }) {
  const node = [
    ...nodeInputs.map((n) => fString(1, n)),
    ...nodeOutputs.map((n) => fString(2, n)),
    fString(3, 'attn'),
    fString(4, opType),
    ...Object.entries(attrs).map(([k, v]) => fMsg(5, attribute(k, v))),
  ];
  if (domain) node.push(fString(7, domain));
  const graph = [
    fMsg(1, node),
    fString(2, 'g'),
    ...inputs.map((i) => fMsg(11, valueInfo(i.name, DT[i.type], i.dims))),
    ...outputs.map((o) => fMsg(12, valueInfo(o.name, DT[o.type], o.dims))),
  ];
  const model = [
    fVarint(1, 10), // ir_version 10
    fString(2, 'grouped-query-attention-bench'),
    fMsg(7, graph),
    fMsg(8, [fString(1, ''), fVarint(2, 23)]),
    fMsg(8, [fString(1, 'com.microsoft'), fVarint(2, 1)]),
  ];
  return Uint8Array.from(model.flat());
}

/** ONNX Attention (opset 23), 3-D (B, T, U·H) inputs with q_num_heads / kv_num_heads. */
export function attention23Model({ U, V, causal, mask }) {
  const inputs = [
    { name: 'Q', type: 'float', dims: ['B', 'T', 'QD'] },
    { name: 'K', type: 'float', dims: ['B', 'S', 'KD'] },
    { name: 'V', type: 'float', dims: ['B', 'S', 'KD'] },
  ];
  if (mask) inputs.push({ name: 'M', type: mask, dims: ['MB', 1, 'MT', 'S'] });
  return oneNodeModel({
    opType: 'Attention',
    nodeInputs: inputs.map((i) => i.name),
    nodeOutputs: ['Y'],
    inputs,
    outputs: [{ name: 'Y', type: 'float', dims: null }],
    attrs: { q_num_heads: { int: U }, kv_num_heads: { int: V }, is_causal: { int: causal ? 1 : 0 } },
  });
}

/**
 * com.microsoft.GroupQueryAttention: query (B,T,U·H), key/value (B,S,V·H), optional BNSH past,
 * seqlens_k (B) int32 = total - 1, total_sequence_length () int32, optional attention_bias.
 */
export function gqaModel({ U, V, causal, past, bias }) {
  const inputs = [
    { name: 'query', type: 'float', dims: ['B', 'T', 'QD'] },
    { name: 'key', type: 'float', dims: ['B', 'S', 'KD'] },
    { name: 'value', type: 'float', dims: ['B', 'S', 'KD'] },
  ];
  const nodeInputs = ['query', 'key', 'value'];
  if (past) {
    inputs.push({ name: 'past_key', type: 'float', dims: ['B', V, 'P', 'H'] });
    inputs.push({ name: 'past_value', type: 'float', dims: ['B', V, 'P', 'H'] });
    nodeInputs.push('past_key', 'past_value');
  } else nodeInputs.push('', '');
  inputs.push({ name: 'seqlens_k', type: 'int32', dims: ['B'] });
  inputs.push({ name: 'total_sequence_length', type: 'int32', dims: [] });
  nodeInputs.push('seqlens_k', 'total_sequence_length');
  if (bias) {
    inputs.push({ name: 'attention_bias', type: 'float', dims: ['B', 1, 'T', 'S'] });
    nodeInputs.push('', '', '', 'attention_bias'); // cos_cache, sin_cache, position_ids skipped
  }
  return oneNodeModel({
    opType: 'GroupQueryAttention',
    domain: 'com.microsoft',
    nodeInputs,
    nodeOutputs: ['output', 'present_key', 'present_value'],
    inputs,
    outputs: [
      { name: 'output', type: 'float', dims: null },
      { name: 'present_key', type: 'float', dims: null },
      { name: 'present_value', type: 'float', dims: null },
    ],
    attrs: { num_heads: { int: U }, kv_num_heads: { int: V }, causal: { int: causal ? 1 : 0 } },
  });
}

/** MatMul (N,N)·(N,N), for the GEMM ceiling. */
export function matMulModel() {
  return oneNodeModel({
    opType: 'MatMul',
    nodeInputs: ['A', 'B'],
    nodeOutputs: ['C'],
    inputs: [
      { name: 'A', type: 'float', dims: ['M', 'K'] },
      { name: 'B', type: 'float', dims: ['K', 'N'] },
    ],
    outputs: [{ name: 'C', type: 'float', dims: null }],
  });
}
