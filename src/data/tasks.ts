// The task registry: a task name and options -> its train and test datasets.
//
// Options are validated here, at the boundary, against the ranges of the options table, and errors name
// the CLI flag that sets them (`--task`, `--seq-len`, `--data-dir`, `--train-limit`, ...), since that is
// what a user typed.

import { OPTIONS, checkOption, checkOptionChoice } from '../options/table.js';
import { UsageError } from '../util/errors.js';
import { Random } from '../util/random.js';
import { AddingDataset } from './adding.js';
import { CopyDataset } from './copy.js';
import { limitDataset, type TaskData } from './dataset.js';
import { loadImageDataset, type ImageDataset, type ImageKind, type Split } from './mnist.js';
import { sequentialImages } from './sequential.js';
import { DEFAULT_SEQ_LEN, DEFAULT_TEST_SIZE, DEFAULT_TRAIN_SIZE } from './task-names.js';

// The names and constants of the tasks live in task-names.ts (no files, so the browser entry shares them).
export {
  DEFAULT_SEQ_LEN,
  DEFAULT_TEST_SIZE,
  DEFAULT_TRAIN_SIZE,
  MAX_SEQ_LEN,
  TASKS,
  isSequential,
  taskKind,
  type TaskKind,
  type TaskName,
} from './task-names.js';

/** Smallest `seqLen`: the adding problem needs a step in each half; copy needs one blank. */
const MIN_SEQ_LEN = { adding: 2, copy: 1 } as const;

export interface TaskOptions {
  /** Directory of the IDX files (mnist, fashion-mnist, smnist, psmnist); default: see `defaultImageDir`. */
  dataDir?: string;
  /**
   * Sequence length of the generated tasks. adding: T, an integer >= 2 (default 200). copy: L, the
   * number of blanks between the symbols and the marker, an integer >= 1 (default 100, so T = L + 20 = 120).
   * Not accepted for the image tasks, whose length is fixed (784 for smnist, psmnist).
   */
  seqLen?: number;
  /** Any integer; the generated tasks draw train and test samples from two seeds derived from it. */
  seed: number;
  /** Use only the first `trainLimit` training samples (an integer >= 1; all if larger than the split). */
  trainLimit?: number;
  /** Use only the first `testLimit` test samples (an integer >= 1; all if larger than the split). */
  testLimit?: number;
  /** Number of generated training samples (adding, copy only; default 10,000). */
  trainSize?: number;
  /** Number of generated test samples (adding, copy only; default 1,000). */
  testSize?: number;
}

/** The seed of one split of a generated task: train and test never share a sample stream. */
export function splitSeed(seed: number, split: Split): number {
  return Random.derive(seed, split === 'train' ? 0 : 1).nextUint32();
}

/** Loads or generates task `name`; every bad option is a `UsageError` naming its flag. */
export function loadTask(name: string, opts: TaskOptions): TaskData {
  const task = checkOptionChoice(OPTIONS.task, name);
  if (!Number.isInteger(opts.seed)) throw new UsageError(`--seed must be an integer, got ${String(opts.seed)}`);
  const generated = task === 'adding' || task === 'copy';
  if (!generated) {
    for (const [flag, value] of [
      ['--seq-len', opts.seqLen],
      ['--train-size', opts.trainSize],
      ['--test-size', opts.testSize],
    ] as const) {
      if (value !== undefined) {
        throw new UsageError(
          `${flag} applies only to the generated tasks adding and copy, not to --task ${task} (got ${value})`,
        );
      }
    }
  } else if (opts.dataDir !== undefined) {
    throw new UsageError(
      `--data-dir applies only to the image tasks mnist, fashion-mnist, smnist and psmnist, not to --task ${task}`,
    );
  }
  const data = generated ? generateTask(task, opts) : loadImageTask(task, opts.dataDir);
  const train =
    opts.trainLimit === undefined
      ? data.train
      : limitDataset(data.train, checkOption(OPTIONS.trainLimit, opts.trainLimit));
  const test =
    opts.testLimit === undefined ? data.test : limitDataset(data.test, checkOption(OPTIONS.testLimit, opts.testLimit));
  return { train, test };
}

function loadImageTask(task: 'mnist' | 'fashion-mnist' | 'smnist' | 'psmnist', dataDir: string | undefined): TaskData {
  const kind: ImageKind = task === 'fashion-mnist' ? 'fashion-mnist' : 'mnist';
  const train = loadImageDataset(dataDir, { kind }, 'train');
  const test = loadImageDataset(dataDir, { kind }, 'test');
  // Images of another size would train and evaluate at chance (or read past each image): refuse them.
  if (test.rows !== train.rows || test.cols !== train.cols) {
    throw new UsageError(
      `IDX file '${test.source}' holds ${test.rows}x${test.cols} images, but the training images ('${train.source}') are ${train.rows}x${train.cols}`,
    );
  }
  const wrap = (split: Split, images: ImageDataset) =>
    task === 'mnist' || task === 'fashion-mnist'
      ? images
      : sequentialImages(`${task}/${split}`, images, { permuted: task === 'psmnist' });
  return { train: wrap('train', train), test: wrap('test', test) };
}

function generateTask(task: 'adding' | 'copy', opts: TaskOptions): TaskData {
  const seqLen = checkOption(OPTIONS.seqLen, opts.seqLen ?? DEFAULT_SEQ_LEN[task], { min: MIN_SEQ_LEN[task] });
  const size = (split: Split): number =>
    split === 'train'
      ? checkOption(OPTIONS.trainSize, opts.trainSize ?? DEFAULT_TRAIN_SIZE)
      : checkOption(OPTIONS.testSize, opts.testSize ?? DEFAULT_TEST_SIZE);
  const make = (split: Split) => {
    const common = { name: `${task}/${split}`, count: size(split), seed: splitSeed(opts.seed, split) };
    return task === 'adding'
      ? new AddingDataset({ ...common, steps: seqLen })
      : new CopyDataset({ ...common, blanks: seqLen });
  };
  return { train: make('train'), test: make('test') };
}
