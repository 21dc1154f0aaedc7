// The exclusive lock on a run directory (docs/guarantees.md): two processes training into the same
// directory would interleave their metrics and overwrite each other's checkpoints, so a run holds
// `DIR/roaf.lock` for as long as it trains. The lock file is created with O_EXCL ('wx') and holds the pid,
// host and start time of its owner. A lock whose owner is a dead process on this host is stale: it is
// taken over with a message. A live owner, or an owner on another host (whose pid cannot be checked),
// makes the new run refuse with exit code 2, naming the pid.
//
// Why not the `proper-lockfile` package: it decides staleness by the lock's age and keeps the lock fresh
// from a timer, but roaf's training loop is synchronous for minutes at a time (one step of a deep model),
// so the timer would not fire and a live run's lock would look stale; and it records no pid to name.

import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../util/errors.js';
import { systemErrorMessage } from '../util/fs-errors.js';

export const LOCK_FILE = 'roaf.lock';

interface LockOwner {
  pid: number;
  host: string;
  started: string;
}

/** Directories this process holds, with how many holders (the CLI and runTraining both take it). */
const held = new Map<string, number>();

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to another user
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readOwner(path: string): LockOwner | null {
  try {
    const owner = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockOwner> | null;
    if (owner === null || typeof owner !== 'object' || !Number.isInteger(owner.pid) || typeof owner.host !== 'string')
      return null;
    return { pid: owner.pid!, host: owner.host, started: String(owner.started) };
  } catch {
    return null; // vanished, or a partial write by an owner killed while creating it
  }
}

function recentlyChanged(path: string): boolean {
  try {
    return Date.now() - statSync(path).mtimeMs < 2000;
  } catch {
    return false;
  }
}

function createLock(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    const owner: LockOwner = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
    writeSync(fd, JSON.stringify(owner) + '\n');
  } finally {
    closeSync(fd);
  }
  return true;
}

/**
 * Takes the lock of run directory `dir` (creating the directory) and returns its release; throws a
 * UsageError when another live process holds it. `say` reports the takeover of a stale lock.
 */
export function lockRunDir(dir: string, say: (line: string) => void = () => {}): () => void {
  const key = dir;
  const count = held.get(key);
  if (count !== undefined) {
    held.set(key, count + 1);
    return () => release(dir);
  }
  const path = join(dir, LOCK_FILE);
  try {
    mkdirSync(dir, { recursive: true });
    for (let attempt = 0; ; attempt++) {
      if (createLock(path)) break;
      const owner = readOwner(path);
      const sameHost = owner !== null && owner.host === hostname();
      if (owner !== null && (!sameHost || processAlive(owner.pid)) && owner.pid !== process.pid) {
        throw new UsageError(
          `--out ${dir}: the run is locked by process ${owner.pid} on ${owner.host} (since ${owner.started}); ` +
            (sameHost ? 'wait for it to end or stop it' : `if that process is gone, delete ${path}`),
        );
      }
      if (owner === null && recentlyChanged(path) && attempt < 3) {
        // possibly a lock being written this instant by its owner: look again shortly
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
        continue;
      }
      if (attempt >= 6) throw new UsageError(`${path}: cannot take the lock (it keeps changing); try again`);
      // stale (its process is dead) or unreadable: move it aside atomically, then check what was moved
      const aside = `${path}.stale-${process.pid}`;
      try {
        renameSync(path, aside);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue; // another process moved it first
        throw error;
      }
      const moved = readOwner(aside);
      if (moved !== null && owner !== null && moved.pid !== owner.pid) {
        // another process took the stale lock over between our read and our rename: give its lock back
        renameSync(aside, path);
        continue;
      }
      unlinkSync(aside);
      say(
        owner === null
          ? `roaf: ${path}: replacing an unreadable lock file`
          : `roaf: ${path}: taking over the stale lock of process ${owner.pid} (started ${owner.started}), which is no longer running`,
      );
    }
  } catch (error) {
    const message = systemErrorMessage(error);
    if (message !== null) throw new UsageError(message);
    throw error;
  }
  held.set(key, 1);
  return () => release(dir);
}

function release(dir: string): void {
  const count = held.get(dir);
  if (count === undefined) return;
  if (count > 1) {
    held.set(dir, count - 1);
    return;
  }
  held.delete(dir);
  const path = join(dir, LOCK_FILE);
  const owner = readOwner(path);
  if (owner !== null && owner.pid === process.pid && owner.host === hostname()) {
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
  }
}

// A process that exits without releasing (an uncaught error) still removes its locks; after a SIGKILL
// the lock stays and is taken over as stale by the next run.
process.on('exit', () => {
  for (const dir of [...held.keys()]) {
    held.set(dir, 1);
    release(dir);
  }
});

/** Whether `dir` holds a run (a metrics log, a checkpoint or a lock): `roaf train` refuses to overwrite one. */
export function holdsRun(dir: string): boolean {
  return ['metrics.jsonl', 'checkpoint', 'checkpoint.old', 'checkpoint.tmp', LOCK_FILE].some((name) =>
    existsSync(join(dir, name)),
  );
}
