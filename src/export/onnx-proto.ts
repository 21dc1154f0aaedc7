// The subset of the ONNX protobuf schema (onnx/onnx.proto, IR version 8) that the exporter writes, as plain
// TypeScript objects, and their encoding with ProtoWriter. The field numbers below are the schema's; nothing
// else in roaf knows them.
//
// Tensors are written as `raw_data` (little-endian bytes, as every platform roaf runs on stores typed
// arrays) or, for weights too large for one protobuf message, as references into an external data file.

import { ProtoWriter } from './protobuf.js';

/** The ONNX IR version of opset 17 (ONNX 1.12). */
export const IR_VERSION = 8;
export const OPSET_VERSION = 17;

/** TensorProto.DataType values the exporter uses. */
export const ONNX_FLOAT = 1;
export const ONNX_INT32 = 6;
export const ONNX_INT64 = 7;
export type OnnxElementType = typeof ONNX_FLOAT | typeof ONNX_INT32 | typeof ONNX_INT64;

/** Bytes per element of each element type. */
export const ELEMENT_BYTES: Readonly<Record<OnnxElementType, number>> = {
  [ONNX_FLOAT]: 4,
  [ONNX_INT32]: 4,
  [ONNX_INT64]: 8,
};

/** A tensor's data: its little-endian bytes in chunks (concatenated in order), inline or in an external file. */
export interface TensorData {
  chunks: Uint8Array[];
  /** Total bytes of the chunks. */
  byteLength: number;
}

/** Where an external tensor's bytes are: `location` relative to the model file's directory. */
export interface ExternalLocation {
  location: string;
  offset: number;
  length: number;
}

export interface TensorProto {
  name: string;
  dims: number[];
  dataType: OnnxElementType;
  data: TensorData;
  /** Set when the data lives in an external file instead of raw_data. */
  external?: ExternalLocation;
}

/** A dimension: a fixed size, or a symbolic name shared by inputs and outputs ('B', 'T'). */
export type Dim = number | string;

export interface ValueInfoProto {
  name: string;
  elemType: OnnxElementType;
  /** Omitted: rank unknown. */
  shape?: Dim[];
  docString?: string;
}

export type AttributeValue =
  | { kind: 'int'; value: number }
  | { kind: 'float'; value: number }
  | { kind: 'ints'; value: number[] }
  | { kind: 'string'; value: string }
  | { kind: 'graph'; value: GraphProto };

export interface NodeProto {
  opType: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attributes: Array<[string, AttributeValue]>;
}

export interface GraphProto {
  name: string;
  nodes: NodeProto[];
  initializers: TensorProto[];
  inputs: ValueInfoProto[];
  outputs: ValueInfoProto[];
  docString?: string;
}

export interface ModelProto {
  producerName: string;
  producerVersion: string;
  docString: string;
  graph: GraphProto;
  metadata: Record<string, string>;
}

// Field numbers of onnx.proto.
const MODEL = {
  irVersion: 1,
  producerName: 2,
  producerVersion: 3,
  docString: 6,
  graph: 7,
  opsetImport: 8,
  metadata: 14,
} as const;
const OPSET = { domain: 1, version: 2 } as const;
const ENTRY = { key: 1, value: 2 } as const;
const GRAPH = { node: 1, name: 2, initializer: 5, docString: 10, input: 11, output: 12 } as const;
const NODE = { input: 1, output: 2, name: 3, opType: 4, attribute: 5 } as const;
const ATTRIBUTE = { name: 1, f: 2, i: 3, s: 4, g: 6, ints: 8, type: 20 } as const;
const ATTRIBUTE_TYPE = { float: 1, int: 2, string: 3, graph: 5, ints: 7 } as const;
const TENSOR = { dims: 1, dataType: 2, name: 8, rawData: 9, externalData: 13, dataLocation: 14 } as const;
const DATA_LOCATION_EXTERNAL = 1;
const VALUE_INFO = { name: 1, type: 2, docString: 3 } as const;
const TYPE = { tensorType: 1 } as const;
const TENSOR_TYPE = { elemType: 1, shape: 2 } as const;
const SHAPE = { dim: 1 } as const;
const DIMENSION = { dimValue: 1, dimParam: 2 } as const;

function entry(key: string, value: string): ProtoWriter {
  return new ProtoWriter().string(ENTRY.key, key).string(ENTRY.value, value);
}

export function encodeTensor(tensor: TensorProto): ProtoWriter {
  const w = new ProtoWriter();
  for (const dim of tensor.dims) w.int(TENSOR.dims, dim); // repeated int64, not packed in onnx.proto (proto2)
  w.int(TENSOR.dataType, tensor.dataType).string(TENSOR.name, tensor.name);
  if (tensor.external === undefined) return w.bytes(TENSOR.rawData, tensor.data.chunks);
  const { location, offset, length } = tensor.external;
  w.message(TENSOR.externalData, entry('location', location));
  w.message(TENSOR.externalData, entry('offset', String(offset)));
  w.message(TENSOR.externalData, entry('length', String(length)));
  return w.int(TENSOR.dataLocation, DATA_LOCATION_EXTERNAL);
}

function encodeValueInfo(info: ValueInfoProto): ProtoWriter {
  const tensorType = new ProtoWriter().int(TENSOR_TYPE.elemType, info.elemType);
  if (info.shape !== undefined) {
    const shape = new ProtoWriter();
    for (const dim of info.shape) {
      const d = new ProtoWriter();
      if (typeof dim === 'number') d.int(DIMENSION.dimValue, dim);
      else d.string(DIMENSION.dimParam, dim);
      shape.message(SHAPE.dim, d);
    }
    tensorType.message(TENSOR_TYPE.shape, shape);
  }
  const w = new ProtoWriter()
    .string(VALUE_INFO.name, info.name)
    .message(VALUE_INFO.type, new ProtoWriter().message(TYPE.tensorType, tensorType));
  if (info.docString !== undefined) w.string(VALUE_INFO.docString, info.docString);
  return w;
}

function encodeAttribute(name: string, attribute: AttributeValue): ProtoWriter {
  const w = new ProtoWriter().string(ATTRIBUTE.name, name);
  switch (attribute.kind) {
    case 'int':
      return w.int(ATTRIBUTE.i, attribute.value).int(ATTRIBUTE.type, ATTRIBUTE_TYPE.int);
    case 'float':
      return w.float(ATTRIBUTE.f, attribute.value).int(ATTRIBUTE.type, ATTRIBUTE_TYPE.float);
    // repeated int64 `ints` is not declared packed in onnx.proto (proto2): one varint field per value
    case 'ints': {
      for (const value of attribute.value) w.int(ATTRIBUTE.ints, value);
      return w.int(ATTRIBUTE.type, ATTRIBUTE_TYPE.ints);
    }
    case 'string':
      return w.string(ATTRIBUTE.s, attribute.value).int(ATTRIBUTE.type, ATTRIBUTE_TYPE.string);
    case 'graph':
      return w.message(ATTRIBUTE.g, encodeGraph(attribute.value)).int(ATTRIBUTE.type, ATTRIBUTE_TYPE.graph);
  }
}

function encodeNode(node: NodeProto): ProtoWriter {
  const w = new ProtoWriter();
  for (const input of node.inputs) w.string(NODE.input, input);
  for (const output of node.outputs) w.string(NODE.output, output);
  w.string(NODE.name, node.name).string(NODE.opType, node.opType);
  for (const [name, value] of node.attributes) w.message(NODE.attribute, encodeAttribute(name, value));
  return w;
}

export function encodeGraph(graph: GraphProto): ProtoWriter {
  const w = new ProtoWriter();
  for (const node of graph.nodes) w.message(GRAPH.node, encodeNode(node));
  w.string(GRAPH.name, graph.name);
  for (const tensor of graph.initializers) w.message(GRAPH.initializer, encodeTensor(tensor));
  if (graph.docString !== undefined) w.string(GRAPH.docString, graph.docString);
  for (const input of graph.inputs) w.message(GRAPH.input, encodeValueInfo(input));
  for (const output of graph.outputs) w.message(GRAPH.output, encodeValueInfo(output));
  return w;
}

export function encodeModel(model: ModelProto): ProtoWriter {
  const w = new ProtoWriter()
    .int(MODEL.irVersion, IR_VERSION)
    .string(MODEL.producerName, model.producerName)
    .string(MODEL.producerVersion, model.producerVersion)
    .string(MODEL.docString, model.docString)
    .message(MODEL.graph, encodeGraph(model.graph))
    .message(MODEL.opsetImport, new ProtoWriter().string(OPSET.domain, '').int(OPSET.version, OPSET_VERSION));
  for (const [key, value] of Object.entries(model.metadata)) w.message(MODEL.metadata, entry(key, value));
  return w;
}
