// Loading hostile checkpoints: non-finite weights, dense filters that are not orthogonal, permutation
// filters that are not permutations or have signs other than ±1, tensors of the wrong shape or dtype, and
// safetensors headers that lie (offsets overlapping, past the file, lengths that disagree with shape ×
// dtype, a header that is not an object), a model config that implies terabytes, and a checkpoint file that
// is a directory or a FIFO. Each is a UsageError naming the file and the tensor (and the layer), and
// `roaf eval --checkpoint` ends with exit code 2 and one line.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';

import { ORTHOGONALITY_TOLERANCE } from '../src/models/tensors.js';
import { checkModelFits, loadCheckpoint } from '../src/serve/checkpoint.js';
import { SafetensorsFile } from '../src/train/safetensors.js';
import { MAX_HEADER_BYTES, safetensorsHeaderLength } from '../src/train/safetensors-bytes.js';
import { UsageError } from '../src/util/errors.js';
import {
  buildSafetensors,
  copyCheckpoint,
  makeCheckpointRun,
  readParts,
  roaf,
  tensorF32,
  writeParts,
  type Entry,
} from './hostile-files.js';

const root = mkdtempSync(join(tmpdir(), 'roaf-hostile-checkpoint-'));
let count = 0;

/** A fresh copy of `run`'s checkpoint, with `corrupt` applied to its model.safetensors parts. */
function corrupted(run: string, corrupt: (parts: ReturnType<typeof readParts>) => void): string {
  const dir = copyCheckpoint(join(run, 'checkpoint'), join(root, `case-${count++}`));
  const path = join(dir, 'model.safetensors');
  const parts = readParts(path);
  corrupt(parts);
  writeParts(path, parts);
  return dir;
}

function assertRefused(dir: string, message: RegExp, what = ''): void {
  assert.throws(
    () => loadCheckpoint(dir, { backend: 'reference' }),
    (error: Error) => {
      assert.ok(error instanceof UsageError, `${what}: ${error.name}: ${error.message}`);
      assert.match(error.message, message, what);
      assert.ok(!error.message.includes('\n'), 'one line');
      return true;
    },
  );
}

describe('loading hostile checkpoints', () => {
  let haar = '',
    permutation = '';
  before(() => {
    haar = makeCheckpointRun('haar', root);
    permutation = makeCheckpointRun('permutation', root);
  });

  it('loads the untouched checkpoints', () => {
    assert.equal(loadCheckpoint(join(haar, 'checkpoint'), { backend: 'reference' }).model.filters.length, 3);
    assert.equal(loadCheckpoint(join(permutation, 'checkpoint'), { backend: 'reference' }).model.filters.length, 3);
  });

  it('refuses non-finite weights, naming the file and the tensor', () => {
    for (const bad of [Number.NaN, Infinity, -Infinity]) {
      const dir = corrupted(haar, (parts) => {
        const name = Object.keys(parts.header).find((n) => n !== '__metadata__' && !n.startsWith('filter'))!;
        tensorF32(parts, name)[1] = bad;
      });
      assertRefused(dir, /model\.safetensors: tensor \S+ has a non-finite value \((NaN|-?Infinity)\) at index 1/);
    }
  });

  it(`refuses a dense filter that is not orthogonal (max |OᵀO - I| > ${ORTHOGONALITY_TOLERANCE.float32}), naming the layer`, () => {
    let dir = corrupted(haar, (parts) => {
      const m = tensorF32(parts, 'filters.1');
      m[0] = m[0]! * 1.01;
    });
    assertRefused(
      dir,
      /model\.safetensors: filter tensor filters\.1 \(layer 1\) is not orthogonal: max \|OᵀO - I\| = /,
    );
    dir = corrupted(haar, (parts) => {
      tensorF32(parts, 'filters.2')[5] = Number.NaN;
    });
    assertRefused(dir, /filter tensor filters\.2 \(layer 2\) has a non-finite value \(NaN\) at index 5/);
    // within the tolerance: a float32 rounding of each entry still loads
    dir = corrupted(haar, (parts) => {
      const m = tensorF32(parts, 'filters.0');
      m[3] = m[3]! * (1 + 2 ** -22);
    });
    loadCheckpoint(dir, { backend: 'reference' });
  });

  it('refuses a permutation filter with a repeated entry, or a sign other than ±1', () => {
    let dir = corrupted(permutation, (parts) => {
      const entry = parts.header['filters.0.perm'] as Entry;
      const perm = new Int32Array(new Uint8Array(parts.data.subarray(...entry.data_offsets)).buffer);
      perm[1] = perm[0]!;
      parts.data.set(new Uint8Array(perm.buffer), entry.data_offsets[0]);
    });
    assertRefused(
      dir,
      /filter tensor filters\.0\.perm \(layer 0\) is not a permutation of 0\.\.7: entry 1 is \d+, a repeat/,
    );
    dir = corrupted(permutation, (parts) => {
      tensorF32(parts, 'filters.2.signs')[4] = 0.5;
    });
    assertRefused(dir, /filter tensor filters\.2\.signs \(layer 2\) has 0\.5 at index 4, allowed 1 or -1/);
  });

  it('refuses tensors of the wrong shape or dtype', () => {
    let dir = corrupted(haar, (parts) => {
      const entry = parts.header['filters.0'] as Entry;
      entry.shape = [4, 16];
    });
    assertRefused(dir, /tensor filters\.0 has shape \[4,16\], expected \[8,8\]/);
    dir = corrupted(haar, (parts) => {
      const entry = parts.header['filters.0'] as Entry;
      entry.dtype = 'I32';
    });
    assertRefused(dir, /tensor filters\.0 is I32, expected F32/);
  });

  it('refuses safetensors headers that lie about where the data is', () => {
    const first = (parts: ReturnType<typeof readParts>): Entry => parts.header['filters.0'] as Entry;
    const cases: Array<[string, (parts: ReturnType<typeof readParts>) => void, RegExp]> = [
      [
        'overlapping tensors',
        (p) => {
          const a = first(p),
            b = p.header['filters.1'] as Entry;
          b.data_offsets = [a.data_offsets[0] + 4, a.data_offsets[1] + 4];
        },
        /tensors \S+ \[\d+, \d+\) and \S+ \[\d+, \d+\) overlap/,
      ],
      [
        'an offset past the end of the file',
        (p) => {
          const a = first(p);
          a.data_offsets = [a.data_offsets[0] + 2 ** 40, a.data_offsets[1] + 2 ** 40];
        },
        /tensor filters\.0 ends at byte \d+ but the file has \d+ bytes/,
      ],
      [
        'a negative offset (inside the header)',
        (p) => {
          const a = first(p);
          a.data_offsets = [-256, a.data_offsets[1] - a.data_offsets[0] - 256];
        },
        /tensor filters\.0: data_offsets must be two non-negative integers/,
      ],
      [
        'a length that disagrees with shape × dtype',
        (p) => {
          const a = first(p);
          a.data_offsets = [a.data_offsets[0], a.data_offsets[1] - 4];
        },
        /tensor filters\.0 has data_offsets \[\d+, \d+\] \(252 bytes\) for F32 shape \[8,8\] \(256 bytes expected\)/,
      ],
      [
        'a shape with a huge product',
        (p) => {
          first(p).shape = [2 ** 31, 2 ** 31, 2 ** 31];
        },
        /tensor filters\.0 has data_offsets .* \(\d\.\d+e\+28 bytes expected\)/,
      ],
      [
        'a fractional size',
        (p) => {
          first(p).shape = [8, 7.5];
        },
        /tensor filters\.0: shape must be a list of at most 8 non-negative integers/,
      ],
      [
        'an unknown dtype',
        (p) => {
          first(p).dtype = 'F16';
        },
        /tensor filters\.0 has a malformed header entry/,
      ],
      [
        'a name with a newline',
        (p) => {
          p.header['evil\nname'] = { dtype: 'F32', shape: [2 ** 20], data_offsets: [0, 4] };
        },
        /tensor "evil\\nname" has data_offsets/,
      ],
      [
        'non-string metadata',
        (p) => {
          p.header.__metadata__ = { steps: 3 };
        },
        /__metadata__ must be an object of strings/,
      ],
    ];
    for (const [what, corrupt, message] of cases) {
      assertRefused(corrupted(haar, corrupt), message, what);
    }
  });

  it('refuses a header that is not an object, and a header length past the file', () => {
    const dir = copyCheckpoint(join(haar, 'checkpoint'), join(root, `case-${count++}`));
    const path = join(dir, 'model.safetensors');
    for (const header of [null, [1, 2], 'text', 7]) {
      writeFileSync(path, buildSafetensors({ header, data: new Uint8Array(8) }));
      assertRefused(dir, /model\.safetensors: header is not a JSON object/);
    }
    const bytes = Buffer.alloc(64);
    bytes.writeBigUInt64LE(2n ** 63n, 0);
    writeFileSync(path, bytes);
    assertRefused(dir, /model\.safetensors: header length \d+ exceeds the file size 64/);
  });

  it("reads a header past the format's 100 MB (a million-layer checkpoint) and refuses one past 500 MB", () => {
    const prefix = (length: number): Uint8Array => {
      const bytes = Buffer.alloc(8);
      bytes.writeBigUInt64LE(BigInt(length), 0);
      return bytes;
    };
    assert.equal(safetensorsHeaderLength(prefix(353_386_288), 1_569_437_216, 'm'), 353_386_288);
    assert.throws(
      () => safetensorsHeaderLength(prefix(MAX_HEADER_BYTES + 8), 2 * MAX_HEADER_BYTES, 'm'),
      /m: header length 500000008 exceeds the file size 1000000000 or 500000000 bytes/,
    );
  });

  it('refuses a checkpoint file that is a directory or a FIFO, without hanging', () => {
    const dir = copyCheckpoint(join(haar, 'checkpoint'), join(root, `case-${count++}`));
    const path = join(dir, 'model.safetensors');
    rmSync(path);
    mkdirSync(path);
    assert.throws(() => new SafetensorsFile(path), /must be a regular file, but it is a directory/);
    rmSync(path, { recursive: true });
    if (spawnSync('mkfifo', [path]).status === 0)
      assert.throws(() => new SafetensorsFile(path), /must be a regular file, but it is a FIFO/);
  });

  it('refuses a model config that implies more memory than the machine has, naming config.json', () => {
    const config = JSON.parse(readFileSync(join(haar, 'checkpoint', 'config.json'), 'utf8')) as {
      model: Parameters<typeof checkModelFits>[0];
    };
    assert.throws(
      () => checkModelFits({ ...config.model, depth: 1_000_000, width: 65_536 }, 'run/config.json', 16 * 2 ** 30),
      /^UsageError: run\/config\.json: the model \(roaf-mlp, depth 1000000, width 65536, .*\) needs about \d+\.\d GiB for its weights alone, more than this machine's 16\.0 GiB$/,
    );
    assert.throws(
      () => checkModelFits({ ...config.model, depth: -3 }, 'run/config.json', 16 * 2 ** 30),
      /^UsageError: run\/config\.json: model: depth must be an integer >= 1/,
    );
    checkModelFits(config.model, 'run/config.json', 16 * 2 ** 30);
  });

  it('roaf train refuses options whose training state implies more memory than the machine has, writing nothing', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'roaf-huge-')), 'run');
    const run = roaf([
      'train',
      '--model',
      'roaf-mlp',
      '--depth',
      '1000000',
      '--width',
      '4096',
      '--task',
      'mnist',
      '--out',
      out,
    ]);
    assert.equal(run.status, 2, run.stderr);
    assert.match(
      run.stderr.trim(),
      /^roaf: --model roaf-mlp --depth 1000000 --width 4096: training needs about \d+\.\d GiB for the weights, their gradients and the optimiser state alone, more than this machine's \d+\.\d GiB$/,
    );
    assert.equal(existsSync(out), false);
  });

  it('roaf eval --checkpoint on a corrupt checkpoint: exit code 2 and one line naming the file', () => {
    const dir = corrupted(haar, (parts) => {
      tensorF32(parts, 'filters.1')[0] = Number.NaN;
    });
    const out = roaf(['eval', '--checkpoint', dir, '--backend', 'reference']);
    assert.equal(out.status, 2, out.stderr);
    const lines = out.stderr.trim().split('\n');
    assert.equal(lines.length, 1, out.stderr);
    assert.match(lines[0]!, /^roaf: .*model\.safetensors: filter tensor filters\.1 \(layer 1\) has a non-finite value/);
  });
});
