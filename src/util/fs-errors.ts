// Node system errors (ENOENT, EACCES, ENOSPC, ...) as one-line messages for the user: a file the user
// named cannot be read or written, which is not a bug in roaf. Every place that maps such an error goes
// through here, so the wording is the same everywhere; the CLI's top-level handler (src/cli/main.ts) uses
// `systemErrorMessage` for any system error that escapes to it with a path.

import { UsageError } from './errors.js';

/** What each error code means for the user, and what to do about it. */
const MEANINGS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied; allowed: a path this user may read (or write, for outputs)',
  EPERM: 'operation not permitted; allowed: a path this user may change',
  ENOTDIR: 'a path component is a file, not a directory; allowed: a path whose parents are directories',
  EISDIR: 'is a directory; allowed: a regular file',
  EEXIST: 'already exists; allowed: a path that does not exist yet',
  ENOTEMPTY: 'directory is not empty',
  ENOSPC: 'no space left on the device; free some space (the previous checkpoint is kept)',
  EDQUOT: 'disk quota exceeded; free some space (the previous checkpoint is kept)',
  EROFS: 'read-only file system; allowed: a writable location',
  ENAMETOOLONG: 'the path is too long',
  ELOOP: 'too many levels of symbolic links',
  EMFILE: 'too many open files',
  EIO: 'input/output error from the device',
  EBUSY: 'the file is busy',
  ETXTBSY: 'the file is busy',
  EFBIG: 'file too large for this file system',
};

/** A Node system error: an Error with a string `code` (and usually `path` and `syscall`). */
export interface SystemError extends Error {
  code: string;
  path?: string;
  dest?: string;
  syscall?: string;
}

export function isSystemError(error: unknown): error is SystemError {
  return error instanceof Error && typeof (error as Partial<SystemError>).code === 'string';
}

/** Whether `error` is a system error a user causes (a path, a permission, a full disk), not a bug. */
export function isUserSystemError(error: unknown): error is SystemError {
  return isSystemError(error) && error.code in MEANINGS;
}

/** `<path>: <what is wrong; what is allowed>` for a user's system error, else null. */
export function systemErrorMessage(error: unknown, path?: string): string | null {
  if (!isUserSystemError(error)) return null;
  const where = path ?? error.path ?? error.dest;
  const meaning = MEANINGS[error.code]!;
  const action = error.syscall ? ` (${error.syscall})` : '';
  return where === undefined ? `${meaning}${action}` : `${where}: ${meaning}${action}`;
}

/** Runs `action`; a user's system error becomes a UsageError naming `path` (or the error's own path). */
export function withPath<T>(path: string, action: () => T): T {
  try {
    return action();
  } catch (error) {
    const message = systemErrorMessage(error, path);
    if (message === null) throw error;
    throw new UsageError(message);
  }
}
