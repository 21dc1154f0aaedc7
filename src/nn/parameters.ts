// Trainable parameters: every tensor of a model lives in one flat value buffer and one flat gradient
// buffer, so the optimiser updates the whole model in one kernel call and a checkpoint is one copy.
//
// Two phases: layers `declare` their tensors (name, shape, initialiser) while the model is built, then
// the store `allocate`s the flat buffers, hands each Parameter its views and runs the initialisers in
// declaration order with the model's seeded generator — so the same seed gives the same weights. The
// buffers come from the backend (`memory`), which owns the memory its kernels read.

import type { BufferAllocator, DType, FloatArray } from '../backend/backend.js';
import type { Random } from '../util/random.js';

/** Fills a parameter's values at initialisation. */
export type Initializer = (values: FloatArray, rng: Random) => void;

export class Parameter {
  /** Number of scalars. */
  readonly size: number;
  /** The flat buffers, once ParameterStore.allocate has run. */
  private buffers: { values: FloatArray; grads: FloatArray } | null = null;
  private valueView: FloatArray | null = null;
  private gradView: FloatArray | null = null;

  constructor(
    /** Dotted name, also the tensor's name in model.safetensors, e.g. `layers.3.W`. */
    readonly name: string,
    readonly shape: readonly number[],
    readonly init: Initializer,
    /** Offset of this tensor in the flat buffers. */
    readonly offset: number,
  ) {
    this.size = shape.reduce((a, b) => a * b, 1);
  }

  /**
   * Its view of the flat value buffer. Made when first asked for: a million-layer model has two million
   * tensors whose views the stacked kernels never use, and every view is an object the garbage collector
   * must trace.
   */
  get value(): FloatArray {
    return (this.valueView ??= this.view('values'));
  }

  /** Its view of the flat gradient buffer (made when first asked for, as `value`). */
  get grad(): FloatArray {
    return (this.gradView ??= this.view('grads'));
  }

  /** Called by ParameterStore.allocate. */
  bind(buffers: { values: FloatArray; grads: FloatArray }): void {
    this.buffers = buffers;
    this.valueView = null;
    this.gradView = null;
  }

  private view(which: 'values' | 'grads'): FloatArray {
    if (this.buffers === null) throw new Error(`parameter ${this.name} used before its store was allocated`);
    return this.buffers[which].subarray(this.offset, this.offset + this.size);
  }
}

export class ParameterStore {
  readonly parameters: Parameter[] = [];
  /** By name: a model of a million layers declares two million tensors, so no linear search per declaration. */
  private readonly byName = new Map<string, Parameter>();
  values!: FloatArray;
  grads!: FloatArray;
  private total = 0;

  constructor(
    readonly dtype: DType,
    /** Where the flat buffers, and the model's other buffers, are allocated: the model's backend. */
    readonly memory: BufferAllocator,
  ) {}

  declare(name: string, shape: readonly number[], init: Initializer): Parameter {
    if (this.byName.has(name)) throw new Error(`parameter ${name} declared twice`);
    const parameter = new Parameter(name, shape, init, this.total);
    this.total += parameter.size;
    this.parameters.push(parameter);
    this.byName.set(name, parameter);
    return parameter;
  }

  /** Number of trainable scalars. */
  get size(): number {
    return this.total;
  }

  allocate(rng: Random): void {
    this.values = this.memory.allocate(this.dtype, this.total);
    this.grads = this.memory.allocate(this.dtype, this.total);
    const buffers = { values: this.values, grads: this.grads };
    for (const p of this.parameters) {
      p.bind(buffers);
      p.init(this.values.subarray(p.offset, p.offset + p.size), rng); // a passing view: see Parameter.value
    }
  }

  zeroGrad(): void {
    this.grads.fill(0);
  }

  get(name: string): Parameter {
    const found = this.byName.get(name);
    if (!found) throw new Error(`no parameter named ${name}`);
    return found;
  }
}

// ---- initialisers (documented in the README's "Initialisation" section) ----

/** N(0, std²) entries. */
export function normalInit(std: number): Initializer {
  return (values, rng) => {
    for (let i = 0; i < values.length; i++) values[i] = rng.normal() * std;
  };
}

/** Uniform(-bound, bound) entries (PyTorch's default for linear, LSTM and GRU weights: bound = 1/sqrt(fan_in)). */
export function uniformInit(bound: number): Initializer {
  return (values, rng) => {
    for (let i = 0; i < values.length; i++) values[i] = (2 * rng.uniform() - 1) * bound;
  };
}

export const zeroInit: Initializer = (values) => values.fill(0);

/** Fills with (-1)^i value: value, -value, value, ... */
export function alternatingInit(value: number): Initializer {
  return (values) => {
    for (let i = 0; i < values.length; i++) values[i] = i % 2 === 0 ? value : -value;
  };
}

/** Fills with a constant. */
export function constantInit(value: number): Initializer {
  return (values) => values.fill(value);
}
