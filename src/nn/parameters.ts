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
  /** Set by ParameterStore.allocate: views into the flat buffers. */
  value!: FloatArray;
  grad!: FloatArray;
  constructor(
    /** Dotted name, also the tensor's name in model.safetensors, e.g. `layers.3.W`. */
    readonly name: string,
    readonly shape: readonly number[],
    readonly init: Initializer,
    /** Offset of this tensor in the flat buffers. */
    readonly offset: number,
  ) {}

  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
}

export class ParameterStore {
  readonly parameters: Parameter[] = [];
  values!: FloatArray;
  grads!: FloatArray;
  private total = 0;

  constructor(
    readonly dtype: DType,
    /** Where the flat buffers, and the model's other buffers, are allocated: the model's backend. */
    readonly memory: BufferAllocator,
  ) {}

  declare(name: string, shape: readonly number[], init: Initializer): Parameter {
    if (this.parameters.some((p) => p.name === name)) throw new Error(`parameter ${name} declared twice`);
    const parameter = new Parameter(name, shape, init, this.total);
    this.total += parameter.size;
    this.parameters.push(parameter);
    return parameter;
  }

  /** Number of trainable scalars. */
  get size(): number {
    return this.total;
  }

  allocate(rng: Random): void {
    this.values = this.memory.allocate(this.dtype, this.total);
    this.grads = this.memory.allocate(this.dtype, this.total);
    for (const p of this.parameters) {
      p.value = this.values.subarray(p.offset, p.offset + p.size);
      p.grad = this.grads.subarray(p.offset, p.offset + p.size);
      p.init(p.value, rng);
    }
  }

  zeroGrad(): void {
    this.grads.fill(0);
  }

  get(name: string): Parameter {
    const found = this.parameters.find((p) => p.name === name);
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
