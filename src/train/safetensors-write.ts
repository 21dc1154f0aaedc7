// Writes safetensors files (the format is described in safetensors.ts and docs/checkpoint-format.md),
// streaming each tensor straight from the caller's array: saving never copies the model (a 50,000-layer
// model's file is gigabytes; a copy would double the process's memory). Files are fsynced before they
// are closed, so a checkpoint renamed into place after them survives a power cut too.

import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { faultPoint } from '../util/fault-injection.js';
import { asBytes, safetensorsHeaderBytes, type NamedTensor } from './safetensors-bytes.js';

/** Writes `tensors` to `path` (which should be a temporary name the caller renames into place). */
export function writeSafetensors(path: string, tensors: NamedTensor[], metadata: Record<string, string> = {}): void {
  writeFileDurably(path, [safetensorsHeaderBytes(tensors, metadata), ...tensors.map((t) => asBytes(t.data))]);
}

/** Bytes written per system call: bounded, so no call is asked for gigabytes at once. */
const CHUNK = 1 << 26;

/**
 * Creates `path` (replacing it), writes `parts` one after the other without joining them, fsyncs and
 * closes it. Fault points (src/util/fault-injection.ts): before creating it, half-way through its bytes,
 * before the fsync.
 */
export function writeFileDurably(path: string, parts: readonly Uint8Array[]): void {
  const total = parts.reduce((sum, part) => sum + part.length, 0);
  const half = Math.floor(total / 2);
  faultPoint('create', path);
  const fd = openSync(path, 'w');
  try {
    let done = 0;
    let halfway = false;
    for (const part of parts) {
      let start = 0;
      while (start < part.length) {
        // stop at the half-way mark once, so a fault there leaves a file truncated mid-data
        const limit = !halfway && done < half ? Math.min(part.length, start + (half - done)) : part.length;
        const end = Math.min(limit, start + CHUNK);
        const n = writeSync(fd, part, start, end - start);
        start += n;
        done += n;
        if (!halfway && done >= half) {
          halfway = true;
          faultPoint('write (half-way)', path);
        }
      }
    }
    if (!halfway) faultPoint('write (half-way)', path);
    faultPoint('fsync', path);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
