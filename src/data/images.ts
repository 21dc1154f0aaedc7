// MNIST-like image datasets in memory: 28x28 grey images as bytes, 10 classes. Loading them from files
// is mnist.ts's job; the browser entry builds them from fetched IDX bytes. No Node built-ins here.

import type { FloatArray } from '../backend/backend.js';
import { checkBatch, type BatchTargets, type Dataset, type TargetSpec } from './dataset.js';

export type ImageKind = 'mnist' | 'fashion-mnist';
export type Split = 'train' | 'test';

/** Number of classes of both MNIST and Fashion-MNIST. */
export const IMAGE_CLASSES = 10;

/** The file names (without `.gz`) of one split. */
export function imageFileNames(split: Split): { images: string; labels: string } {
  const prefix = split === 'train' ? 'train' : 't10k';
  return { images: `${prefix}-images-idx3-ubyte`, labels: `${prefix}-labels-idx1-ubyte` };
}

/** A flat image dataset: T = 1, D = rows * cols, one class label per sample. */
export class ImageDataset implements Dataset {
  readonly steps = 1;
  readonly inputDim: number;
  readonly target: TargetSpec = { kind: 'class', classes: IMAGE_CLASSES };
  readonly count: number;
  /** The IDX file the images came from ('' when built in memory), for messages. */
  source = '';

  /**
   * @param pixels (count, rows * cols) raw bytes 0..255, row-major images.
   * @param labels (count) class labels 0..9.
   */
  constructor(
    readonly name: string,
    readonly pixels: Uint8Array,
    readonly labels: Uint8Array,
    readonly rows: number,
    readonly cols: number,
  ) {
    this.count = labels.length;
    this.inputDim = rows * cols;
    if (pixels.length !== this.count * this.inputDim) {
      throw new Error(`${name}: ${pixels.length} pixels for ${this.count} images of ${rows}x${cols}`);
    }
  }

  fillBatch(indices: ArrayLike<number>, inputs: FloatArray, targets: BatchTargets): void {
    checkBatch(this, indices, inputs, targets);
    const P = this.inputDim;
    const labels = targets.labels!;
    for (let b = 0; b < indices.length; b++) {
      const index = indices[b]!;
      const src = index * P;
      const dst = b * P;
      for (let p = 0; p < P; p++) inputs[dst + p] = this.pixels[src + p]! / 255;
      labels[b] = this.labels[index]!;
    }
  }
}
