// src/util/paths.ts: the checks made before a user's path is read or written. ensureWritableDir creates an
// output directory (and its parents) or fails at once, naming the option and the path; checkRegularFile
// refuses what is not a regular file, or is larger than allowed; writeFileWhole replaces a file whole.

import assert from 'node:assert/strict';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { UsageError } from '../src/util/errors.js';
import { checkRegularFile, ensureWritableDir, readTextFile, writeFileWhole } from '../src/util/paths.js';

const root = mkdtempSync(join(tmpdir(), 'roaf-paths-'));

function throwsUsage(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (error: Error) => {
    assert.ok(error instanceof UsageError, `${error.name}: ${error.message}`);
    assert.match(error.message, message);
    return true;
  });
}

describe('paths from the user', () => {
  it('ensureWritableDir creates a directory and its parents', () => {
    const dir = join(root, 'a', 'b', 'c');
    assert.equal(ensureWritableDir(dir, '--out'), dir);
    assert.ok(statSync(dir).isDirectory());
    assert.equal(ensureWritableDir(dir, '--out'), dir); // an existing directory is fine
  });

  it('ensureWritableDir fails fast on a file, a file as a parent, or a read-only directory', () => {
    const file = join(root, 'a-file');
    writeFileSync(file, 'x');
    throwsUsage(
      () => ensureWritableDir(file, '--out'),
      /^--out .*a-file: cannot create the directory: .*not a directory/,
    );
    throwsUsage(
      () => ensureWritableDir(join(file, 'sub'), '--out'),
      /^--out .*a-file\/sub: cannot create the directory/,
    );
    const readOnly = join(root, 'read-only');
    mkdirSync(readOnly);
    chmodSync(readOnly, 0o500);
    if (process.getuid?.() !== 0) {
      // root may write anywhere; others must be refused
      throwsUsage(() => ensureWritableDir(join(readOnly, 'run'), '--out'), /permission denied/);
      throwsUsage(() => ensureWritableDir(readOnly, '--out'), /not writable/);
    }
    chmodSync(readOnly, 0o700);
  });

  it('checkRegularFile and readTextFile refuse directories, devices, missing and oversized files', () => {
    throwsUsage(() => checkRegularFile(root, 'config'), /the config must be a regular file, but it is a directory/);
    throwsUsage(() => checkRegularFile('/dev/null', 'config'), /but it is a character device/);
    throwsUsage(() => checkRegularFile(join(root, 'nope'), 'config'), /cannot read the config: no such file/);
    const file = join(root, 'ten-bytes');
    writeFileSync(file, '0123456789');
    assert.equal(checkRegularFile(file, 'log', 10), 10);
    throwsUsage(() => readTextFile(file, 'log', 9), /the log has 10 bytes, more than the 9 allowed/);
    assert.equal(readTextFile(file, 'log'), '0123456789');
  });

  it('writeFileWhole replaces the file, never writes into it, and leaves no temporary file', () => {
    const path = join(root, 'whole.json');
    writeFileSync(path, 'the old contents, all of them');
    // A reader that opened the old file keeps reading all of it: the new contents went into another file,
    // renamed over the name. Written in place, the old file would be cut short under the reader.
    const reader = openSync(path, 'r');
    try {
      writeFileWhole(path, 'new');
      const old = Buffer.alloc(64);
      const n = readSync(reader, old, 0, old.length, 0);
      assert.equal(old.subarray(0, n).toString(), 'the old contents, all of them');
    } finally {
      closeSync(reader);
    }
    assert.equal(readFileSync(path, 'utf8'), 'new');
    assert.ok(!existsSync(`${path}.tmp`));
    // A write that fails (here: the name is a directory) leaves what was there and no temporary file.
    const dir = join(root, 'a-directory');
    mkdirSync(join(dir, 'inside'), { recursive: true });
    assert.throws(() => writeFileWhole(dir, 'x'), /EISDIR|ENOTEMPTY|EEXIST|EPERM/);
    assert.ok(statSync(join(dir, 'inside')).isDirectory());
    assert.ok(!existsSync(`${dir}.tmp`));
  });
});
