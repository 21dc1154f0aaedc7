// The copy memory task (Hochreiter & Schmidhuber 1997, Arjovsky et al. 2016; docs/tasks.md).
//
// Input, T = L + 20 steps, one-hot over 10 symbols:
//   steps 0..9          ten symbols drawn uniformly from {1..8}
//   steps 10..L+9       L blanks (0)
//   step  L+10          the marker (9)
//   steps L+11..L+19    nine blanks (0)
// Target, one class in 0..8 per step: blank (0) at steps 0..L+9, the ten symbols at steps L+10..L+19.
// A memoryless model outputs blank, then guesses uniformly over 8 symbols for the last 10 steps: mean
// cross-entropy per step 10 ln 8 / (L + 20), the baseline a model must beat.
//
// Samples are generated on demand from (seed, index) with `Random.derive(seed, index)`, like adding.

import type { FloatArray } from '../backend/backend.js';
import { Random } from '../util/random.js';
import { checkBatch, type BatchTargets, type Dataset, type TargetSpec } from './dataset.js';

/** Number of symbols to copy. */
export const COPY_SYMBOLS = 10;
/** Input alphabet: 0 blank, 1..8 symbols, 9 marker. */
export const COPY_INPUT_CLASSES = 10;
/** Output alphabet: 0 blank, 1..8 symbols. */
export const COPY_OUTPUT_CLASSES = 9;
export const COPY_BLANK = 0;
export const COPY_MARKER = 9;

/** Mean per-step cross-entropy of the best memoryless model for L blanks: 10 ln 8 / (L + 20). */
export function copyMemorylessBaseline(L: number): number {
  return (COPY_SYMBOLS * Math.log(8)) / (L + 20);
}

export interface CopyOptions {
  name: string;
  /** L, the number of blanks between the symbols and the marker, an integer >= 1; T = L + 20. */
  blanks: number;
  /** Number of samples. */
  count: number;
  /** Seed of this split; sample i is drawn from `Random.derive(seed, i)`. */
  seed: number;
}

export class CopyDataset implements Dataset {
  readonly name: string;
  readonly blanks: number;
  readonly steps: number;
  readonly count: number;
  readonly seed: number;
  readonly inputDim = COPY_INPUT_CLASSES;
  readonly target: TargetSpec = { kind: 'class-per-step', classes: COPY_OUTPUT_CLASSES };
  /** (10) scratch for one sample's symbols. */
  private readonly scratch = new Int32Array(COPY_SYMBOLS);

  constructor({ name, blanks, count, seed }: CopyOptions) {
    if (!Number.isInteger(blanks) || blanks < 1)
      throw new Error(`${name}: blanks must be an integer >= 1, got ${blanks}`);
    if (!Number.isInteger(count) || count < 1) throw new Error(`${name}: count must be an integer >= 1, got ${count}`);
    this.name = name;
    this.blanks = blanks;
    this.steps = blanks + 2 * COPY_SYMBOLS;
    this.count = count;
    this.seed = seed;
  }

  /** The ten symbols (each in 1..8) of sample `index`. */
  symbols(index: number): Int32Array {
    const out = new Int32Array(COPY_SYMBOLS);
    this.draw(index, out);
    return out;
  }

  /** The input symbol (0..9) of a sample at step t, given its ten symbols. */
  private inputAt(t: number, symbols: Int32Array): number {
    if (t < COPY_SYMBOLS) return symbols[t]!;
    return t === this.blanks + COPY_SYMBOLS ? COPY_MARKER : COPY_BLANK;
  }

  fillBatch(indices: ArrayLike<number>, inputs: FloatArray, targets: BatchTargets): void {
    checkBatch(this, indices, inputs, targets);
    const B = indices.length;
    const T = this.steps;
    const D = COPY_INPUT_CLASSES;
    const firstOutput = T - COPY_SYMBOLS;
    const labels = targets.labels!;
    const symbols = this.scratch;
    inputs.fill(0);
    for (let b = 0; b < B; b++) {
      this.draw(indices[b]!, symbols);
      for (let t = 0; t < T; t++) {
        // inputs (T, B, 10) one-hot; labels (T, B).
        inputs[(t * B + b) * D + this.inputAt(t, symbols)] = 1;
        labels[t * B + b] = t < firstOutput ? COPY_BLANK : symbols[t - firstOutput]!;
      }
    }
  }

  private draw(index: number, symbols: Int32Array): void {
    const rng = Random.derive(this.seed, index);
    for (let i = 0; i < COPY_SYMBOLS; i++) symbols[i] = 1 + rng.int(8);
  }
}
