// Sequential MNIST (sMNIST) and permuted sequential MNIST (psMNIST): an image read one pixel per step.
//
// sMNIST feeds the pixels in row-major order, T = 784 steps of input dim 1; the label is predicted from
// the last state. psMNIST feeds pixel perm[t] at step t, for one fixed permutation `perm` that is the
// same on every run and machine (see `PSMNIST_SEED`). Both are views over an `ImageDataset`: no copy.

import type { FloatArray } from '../backend/backend.js';
import { Random } from '../util/random.js';
import { checkBatch, type BatchTargets, type Dataset, type TargetSpec } from './dataset.js';
import type { ImageDataset } from './images.js';

/**
 * Seed of the psMNIST pixel permutation. Generator: roaf's `Random` (xoshiro128** seeded by splitmix32,
 * src/util/random.ts), permutation by `Random.permutation` (Fisher-Yates from the end). Changing either
 * changes the task, so test/data-tasks.test.ts pins the first entries of the permutation.
 */
export const PSMNIST_SEED = 20251;

/** The psMNIST pixel permutation of `n` pixels (784 for 28x28): `new Random(PSMNIST_SEED).permutation(n)`. */
export function psmnistPermutation(n = 784): Int32Array {
  return new Random(PSMNIST_SEED).permutation(n);
}

/** An image dataset read one pixel per step: T = pixels per image, D = 1; step t reads pixel order[t]. */
export class SequentialImageDataset implements Dataset {
  readonly inputDim = 1;
  readonly steps: number;
  readonly count: number;
  readonly target: TargetSpec;
  /** (T) pixel read at each step. */
  readonly order: Int32Array;

  /** `permutation`: pixel read at each step (psMNIST); row-major order (sMNIST) if omitted. */
  constructor(
    readonly name: string,
    readonly images: ImageDataset,
    permutation?: Int32Array,
  ) {
    const P = images.inputDim;
    this.steps = P;
    this.count = images.count;
    this.target = images.target;
    if (permutation && permutation.length !== P) {
      throw new Error(`${name}: permutation has ${permutation.length} entries for ${P} pixels`);
    }
    this.order = permutation ?? Int32Array.from({ length: P }, (_, i) => i);
  }

  fillBatch(indices: ArrayLike<number>, inputs: FloatArray, targets: BatchTargets): void {
    checkBatch(this, indices, inputs, targets);
    const B = indices.length;
    const P = this.steps;
    const { pixels, labels } = this.images;
    const out = targets.labels!;
    for (let b = 0; b < B; b++) {
      const index = indices[b]!;
      const src = index * P;
      // inputs (T, B, 1): step t of sample b at t * B + b.
      for (let t = 0; t < P; t++) inputs[t * B + b] = pixels[src + this.order[t]!]! / 255;
      out[b] = labels[index]!;
    }
  }
}

/** sMNIST (`permuted` false) or psMNIST (`permuted` true) over `images`, named `name`. */
export function sequentialImages(
  name: string,
  images: ImageDataset,
  { permuted }: { permuted: boolean },
): SequentialImageDataset {
  return new SequentialImageDataset(name, images, permuted ? psmnistPermutation(images.inputDim) : undefined);
}
