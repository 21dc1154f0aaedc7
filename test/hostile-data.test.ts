// Wrong and hostile data files: test images of another size than the training images, an empty test set,
// IDX files with trailing garbage or short data, an IDX path that is a FIFO, a directory or /dev/zero, and
// a gzip file that inflates past what its header announces. Each is a UsageError naming the file, and
// `roaf train` ends with exit code 2 and one line (instead of training at chance or printing `NaN %`).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';

import { encodeIdx, readIdx } from '../src/data/idx.js';
import { loadTask } from '../src/data/tasks.js';
import { UsageError } from '../src/util/errors.js';
import { roaf } from './hostile-files.js';

const root = mkdtempSync(join(tmpdir(), 'roaf-hostile-data-'));

/** An MNIST-style directory: `count` train images of rows×cols, `testCount` test images of testRows×testCols. */
function dataDir(name: string, train: [number, number, number], test: [number, number, number]): string {
  const dir = join(root, name);
  mkdirSync(dir);
  const write = (prefix: string, [count, rows, cols]: [number, number, number]): void => {
    writeFileSync(
      join(dir, `${prefix}-images-idx3-ubyte`),
      encodeIdx([count, rows, cols], new Uint8Array(count * rows * cols)),
    );
    writeFileSync(join(dir, `${prefix}-labels-idx1-ubyte`), encodeIdx([count], new Uint8Array(count)));
  };
  write('train', train);
  write('t10k', test);
  return dir;
}

function throwsUsage(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (error: Error) => {
    assert.ok(error instanceof UsageError, `${error.name}: ${error.message}`);
    assert.match(error.message, message);
    return true;
  });
}

describe('wrong data files', () => {
  it('refuses test images of another size than the training images, naming the test file', () => {
    const dir = dataDir('sizes', [4, 28, 28], [4, 14, 14]);
    throwsUsage(
      () => loadTask('mnist', { seed: 0, dataDir: dir }),
      /IDX file '.*t10k-images-idx3-ubyte' holds 14x14 images, but the training images \('.*train-images-idx3-ubyte'\) are 28x28/,
    );
    const out = roaf([
      'train',
      '--task',
      'mnist',
      '--data-dir',
      dir,
      '--depth',
      '2',
      '--width',
      '4',
      '--epochs',
      '1',
      '--out',
      join(root, 'out-sizes'),
    ]);
    assert.equal(out.status, 2, out.stderr);
    assert.equal(out.stderr.trim().split('\n').length, 1, out.stderr);
    assert.match(out.stderr, /t10k-images-idx3-ubyte' holds 14x14 images/);
  });

  it('refuses an empty test set instead of reporting NaN %', () => {
    const dir = dataDir('empty', [4, 28, 28], [0, 28, 28]);
    throwsUsage(
      () => loadTask('mnist', { seed: 0, dataDir: dir }),
      /IDX file '.*t10k-images-idx3-ubyte' holds no images \(dims \[0, 28, 28\]\): the test split needs at least one/,
    );
  });

  it('refuses IDX files with trailing garbage or short data, naming the file', () => {
    const good = encodeIdx([2, 2, 2], new Uint8Array(8));
    const path = join(root, 'odd-idx');
    writeFileSync(path, Buffer.concat([good, Buffer.from('garbage')]));
    throwsUsage(() => readIdx(path), /odd-idx' has 7 bytes after the data/);
    writeFileSync(path, good.subarray(0, good.length - 3));
    throwsUsage(() => readIdx(path), /odd-idx' is truncated: expected 8 bytes of data .* found 5/);
    writeFileSync(path, gzipSync(Buffer.concat([good, Buffer.alloc(1000)])));
    throwsUsage(() => readIdx(path), /odd-idx' decompresses to more than the 24 bytes its header announces/);
  });

  it('refuses an IDX path that is a directory, a FIFO or a device, without hanging', () => {
    const dir = join(root, 'a-directory');
    mkdirSync(dir);
    throwsUsage(() => readIdx(dir), /a-directory: the IDX file must be a regular file, but it is a directory/);
    throwsUsage(
      () => readIdx('/dev/zero'),
      /\/dev\/zero: the IDX file must be a regular file, but it is a character device/,
    );
    const fifo = join(root, 'a-fifo');
    if (spawnSync('mkfifo', [fifo]).status === 0)
      throwsUsage(() => readIdx(fifo), /a-fifo: the IDX file must be a regular file, but it is a FIFO/);
  });

  it('refuses an IDX header that announces more than the machine can hold', () => {
    const path = join(root, 'huge-idx.gz');
    const header = Buffer.alloc(16);
    header.set([0, 0, 0x08, 3]);
    header.writeUInt32BE(2 ** 32 - 1, 4);
    header.writeUInt32BE(2 ** 32 - 1, 8);
    header.writeUInt32BE(2 ** 32 - 1, 12);
    writeFileSync(path, gzipSync(header));
    throwsUsage(
      () => readIdx(path),
      /huge-idx\.gz' announces \d+(\.\d+e\+\d+)? bytes, more than the \d+ this machine allows/,
    );
  });
});
