// The adding problem (Hochreiter & Schmidhuber 1997; docs/tasks.md): a long-memory regression task.
//
// Each step has two channels: a value uniform in [0, 1) and a marker. The marker is 1 at exactly one
// step of the first half [0, floor(T/2)) and one step of the second half [floor(T/2), T), 0 elsewhere;
// the target is the sum of the two marked values. Always predicting 1 gives MSE = Var(U1 + U2) = 1/6.
//
// Samples are generated on demand from (seed, index) with `Random.derive(seed, index)`, so no array of
// size count x T exists even at T = 10,000, and a sample's content never depends on batch or order.

import type { FloatArray } from '../backend/backend.js';
import { Random } from '../util/random.js';
import { checkBatch, type BatchTargets, type Dataset, type TargetSpec } from './dataset.js';

/** MSE of always predicting 1: the variance of the sum of two U(0, 1) values, 2/12. */
export const ADDING_BASELINE_MSE = 1 / 6;

export interface AddingOptions {
  name: string;
  /** T, sequence length, an integer >= 2. */
  steps: number;
  /** Number of samples. */
  count: number;
  /** Seed of this split; sample i is drawn from `Random.derive(seed, i)`. */
  seed: number;
}

/** One adding-problem sample, as `AddingDataset.sample` returns it. */
export interface AddingSample {
  /** (T) the value channel. */
  values: Float64Array;
  /** The two marked steps, first-half one first. */
  markers: [number, number];
  /** values[markers[0]] + values[markers[1]]. */
  target: number;
}

export class AddingDataset implements Dataset {
  readonly name: string;
  readonly steps: number;
  readonly count: number;
  readonly seed: number;
  readonly inputDim = 2;
  readonly target: TargetSpec = { kind: 'regression', outputs: 1 };
  /** (T) scratch for one sample's values. */
  private readonly scratch: Float64Array;

  constructor({ name, steps, count, seed }: AddingOptions) {
    if (!Number.isInteger(steps) || steps < 2) throw new Error(`${name}: steps must be an integer >= 2, got ${steps}`);
    if (!Number.isInteger(count) || count < 1) throw new Error(`${name}: count must be an integer >= 1, got ${count}`);
    this.name = name;
    this.steps = steps;
    this.count = count;
    this.seed = seed;
    this.scratch = new Float64Array(steps);
  }

  /** Sample `index` as plain arrays (for tests and inspection; training uses `fillBatch`). */
  sample(index: number): AddingSample {
    const values = new Float64Array(this.steps);
    const markers = this.draw(index, values);
    return { values, markers, target: values[markers[0]]! + values[markers[1]]! };
  }

  fillBatch(indices: ArrayLike<number>, inputs: FloatArray, targets: BatchTargets): void {
    checkBatch(this, indices, inputs, targets);
    const B = indices.length;
    const T = this.steps;
    const values = this.scratch;
    const out = targets.values!;
    for (let b = 0; b < B; b++) {
      const [first, second] = this.draw(indices[b]!, values);
      // inputs (T, B, 2): value at ((t * B + b) * 2), marker at +1.
      for (let t = 0; t < T; t++) {
        const at = (t * B + b) * 2;
        inputs[at] = values[t]!;
        inputs[at + 1] = t === first || t === second ? 1 : 0;
      }
      out[b] = values[first]! + values[second]!;
    }
  }

  /** Draws sample `index` into `values` (T); returns its two marker steps. Draw order: markers, then values. */
  private draw(index: number, values: Float64Array): [number, number] {
    const T = this.steps;
    const half = Math.floor(T / 2);
    const rng = Random.derive(this.seed, index);
    const first = rng.int(half);
    const second = half + rng.int(T - half);
    for (let t = 0; t < T; t++) values[t] = rng.uniform();
    return [first, second];
  }
}
