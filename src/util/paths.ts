// Paths from the user, checked before they are read or written: a file roaf reads must be a regular file of
// a sane size (a FIFO would block for ever, /dev/zero never ends, a directory is not a file), and an output
// directory must be creatable and writable before hours of training are spent on what it cannot save.
// Errors are UsageErrors naming the path (and the option, where there is one), so the CLI prints one line
// and exits with code 2. And every file roaf writes whole (not the checkpoints: train/checkpoint.ts) goes
// through writeFileWhole, so that a kill never leaves half of one.

import {
  accessSync,
  constants,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  type Stats,
} from 'node:fs';
import { dirname, resolve } from 'node:path';

import { UsageError } from './errors.js';

/** The largest JSON or text file roaf reads whole (config.json, diagnose.json, metrics.jsonl): 256 MiB. */
export const MAX_TEXT_FILE_BYTES = 256 * 2 ** 20;

function kindOf(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO (named pipe)';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * Throws unless `path` is a regular file (symbolic links followed) of at most `maxBytes` bytes; returns its
 * size. `what` says what the file is for ('checkpoint config', 'IDX data file'), for the message.
 */
export function checkRegularFile(path: string, what: string, maxBytes = Infinity): number {
  let stats: Stats;
  try {
    stats = statSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UsageError(
      `${path}: cannot read the ${what}: ${code === 'ENOENT' ? 'no such file' : ((error as Error).message.split('\n')[0] ?? String(code))}`,
    );
  }
  if (!stats.isFile()) throw new UsageError(`${path}: the ${what} must be a regular file, but it is ${kindOf(stats)}`);
  if (stats.size > maxBytes)
    throw new UsageError(`${path}: the ${what} has ${stats.size} bytes, more than the ${maxBytes} allowed`);
  return stats.size;
}

/** Reads a text file after checkRegularFile (a regular file of at most `maxBytes`, 256 MiB by default). */
export function readTextFile(path: string, what: string, maxBytes = MAX_TEXT_FILE_BYTES): string {
  checkRegularFile(path, what, maxBytes);
  return readFileSync(path, 'utf8');
}

/**
 * Writes `data` to `path` whole: into `<path>.tmp` beside it, then renamed over `path`. A kill or a full disk
 * at any moment leaves the old file or the new one, never half of either, and a reader never sees a partial
 * file (a report, a result.json, a metrics log rewritten on resume). A failed write removes the temporary file
 * and rethrows.
 */
export function writeFileWhole(path: string, data: string | Uint8Array): void {
  const temporary = `${path}.tmp`;
  try {
    writeFileSync(temporary, data);
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}

/**
 * Creates `path` (and its parents) as a directory if needed and checks that it is a writable directory;
 * throws a UsageError naming `optionName` ('--out') and the path otherwise. Call it before any long work.
 */
export function ensureWritableDir(path: string, optionName: string): string {
  const full = resolve(path);
  try {
    mkdirSync(full, { recursive: true });
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    const reason =
      e.code === 'EEXIST' || e.code === 'ENOTDIR'
        ? `${dirname(full) === full ? full : 'it or a parent'} exists and is not a directory`
        : e.code === 'EACCES' || e.code === 'EPERM'
          ? 'permission denied'
          : e.code === 'EROFS'
            ? 'the file system is read-only'
            : (e.message.split('\n')[0] ?? String(e.code));
    throw new UsageError(`${optionName} ${path}: cannot create the directory: ${reason}`);
  }
  if (!statSync(full).isDirectory()) throw new UsageError(`${optionName} ${path}: exists and is not a directory`);
  try {
    accessSync(full, constants.W_OK | constants.X_OK);
  } catch {
    throw new UsageError(`${optionName} ${path}: the directory is not writable`);
  }
  return full;
}
