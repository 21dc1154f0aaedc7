// Building ONNX graphs: a GraphBuilder adds nodes with fresh value names and turns roaf's typed arrays into
// initializers (float64 data converted to float32, a stack of per-layer arrays written as one tensor without
// copying them). The graphs of the model kinds are in onnx.ts.

import type { FloatArray } from '../backend/backend.js';
import {
  ONNX_FLOAT,
  ONNX_INT32,
  ONNX_INT64,
  type AttributeValue,
  type Dim,
  type GraphProto,
  type NodeProto,
  type OnnxElementType,
  type TensorData,
  type TensorProto,
  type ValueInfoProto,
} from './onnx-proto.js';

/** Data the builder accepts: float arrays (written as float32), int32 arrays (int32), or int64 values. */
export type ArrayData = FloatArray | Int32Array;

/** Attributes as written in a node call: numbers are ints unless wrapped as { float }. */
export type Attributes = Record<string, number | number[] | string | { float: number } | GraphProto>;

function attributeValue(value: Attributes[string]): AttributeValue {
  if (typeof value === 'number') return { kind: 'int', value };
  if (typeof value === 'string') return { kind: 'string', value };
  if (Array.isArray(value)) return { kind: 'ints', value };
  if ('float' in value) return { kind: 'float', value: value.float };
  return { kind: 'graph', value };
}

function bytesOf(array: Float32Array | Int32Array | BigInt64Array): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

/**
 * Value names are unique across a model's main graph and all its subgraphs (a subgraph reads outer values
 * by name, so it must not shadow them): every builder of one model draws from one scope.
 */
export class NameScope {
  private readonly used = new Set<string>();

  /** `base` if unused, else `base_2`, `base_3`, ... */
  fresh(base: string): string {
    let name = base;
    for (let i = 2; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }

  /** Claims a name that must be exactly `name` (graph inputs, outputs, initializers). */
  claim(name: string): string {
    if (this.used.has(name)) throw new Error(`ONNX export: value name ${name} used twice`);
    this.used.add(name);
    return name;
  }
}

export class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  /** Whether any float64 data was converted to float32. */
  converted = false;

  constructor(readonly scope: NameScope) {}

  /** Adds a node; `outputs` are base names made unique ('' keeps an optional output unused). Returns the output names. */
  node(opType: string, inputs: string[], outputs: string[], attributes: Attributes = {}): string[] {
    const names = outputs.map((base) => (base === '' ? '' : this.scope.fresh(base)));
    this.nodes.push({
      opType,
      name: this.scope.fresh(`${opType}_${this.nodes.length}`),
      inputs,
      outputs: names,
      attributes: Object.entries(attributes).map(([key, value]) => [key, attributeValue(value)]),
    });
    return names;
  }

  /** A node with one output named after `base`. */
  op(opType: string, inputs: string[], base: string, attributes: Attributes = {}): string {
    return this.node(opType, inputs, [base], attributes)[0]!;
  }

  /**
   * An initializer of shape `dims` whose data is the concatenation of `parts` (a stack of per-layer arrays is
   * one tensor, written from the layers' own buffers). Float parts become float32, int32 parts stay int32.
   */
  initializer(name: string, dims: number[], parts: readonly ArrayData[]): string {
    const size = dims.reduce((a, b) => a * b, 1);
    const length = parts.reduce((sum, part) => sum + part.length, 0);
    if (length !== size)
      throw new Error(`ONNX export: initializer ${name} [${dims.join(', ')}] needs ${size} values, got ${length}`);
    const ints = parts.every((part) => part instanceof Int32Array);
    if (!ints && parts.some((part) => part instanceof Int32Array))
      throw new Error(`ONNX export: initializer ${name} mixes types`);
    const chunks = parts.map((part) => {
      if (part instanceof Float64Array) {
        this.converted = true;
        return bytesOf(Float32Array.from(part));
      }
      return bytesOf(part);
    });
    return this.addTensor(name, dims, ints ? ONNX_INT32 : ONNX_FLOAT, chunks);
  }

  /** A float32 scalar (rank 0) initializer. */
  scalar(name: string, value: number): string {
    return this.addTensor(name, [], ONNX_FLOAT, [bytesOf(Float32Array.of(value))]);
  }

  /** An int64 vector initializer (shapes, axes). */
  int64s(name: string, values: number[]): string {
    return this.addTensor(name, [values.length], ONNX_INT64, [bytesOf(BigInt64Array.from(values, (v) => BigInt(v)))]);
  }

  private addTensor(name: string, dims: number[], dataType: OnnxElementType, chunks: Uint8Array[]): string {
    const data: TensorData = { chunks, byteLength: chunks.reduce((sum, chunk) => sum + chunk.length, 0) };
    this.initializers.push({ name: this.scope.claim(name), dims, dataType, data });
    return name;
  }

  graph(name: string, inputs: ValueInfoProto[], outputs: ValueInfoProto[], docString?: string): GraphProto {
    return {
      name,
      nodes: this.nodes,
      initializers: this.initializers,
      inputs,
      outputs,
      ...(docString ? { docString } : {}),
    };
  }
}

/** A float32 value's type and shape, for graph inputs and outputs. */
export function floatValue(name: string, shape: Dim[], docString?: string): ValueInfoProto {
  return { name, elemType: ONNX_FLOAT, shape, ...(docString ? { docString } : {}) };
}

/** An int32 value's type and shape. */
export function int32Value(name: string, shape: Dim[]): ValueInfoProto {
  return { name, elemType: ONNX_INT32, shape };
}
