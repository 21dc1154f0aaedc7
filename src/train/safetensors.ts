// The safetensors format (an 8-byte little-endian header length, a JSON header naming each tensor's
// dtype, shape and byte range, then the raw little-endian data), so checkpoints load in any framework
// without roaf. This file reads them (tensor by tensor, so multi-gigabyte files never sit in one Buffer);
// safetensors-write.ts writes them.

import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import { UsageError } from '../util/errors.js';
import { checkRegularFile } from '../util/paths.js';
import {
  asBytes,
  checkedEntry,
  parseSafetensorsHeader,
  printable,
  safetensorsHeaderLength,
  type HeaderEntry,
  type SafetensorsHeader,
  type TensorData,
} from './safetensors-bytes.js';

export type { NamedTensor, TensorData } from './safetensors-bytes.js';
// The writer lives in safetensors-write.ts; re-exported so importers of this module keep working.
export { writeSafetensors } from './safetensors-write.js';

/**
 * Reads exactly `buffer.length` bytes at `position`, else a UsageError (the file shrank or is short); at most
 * 64 MB a call, as one readSync cannot read 2 GB.
 */
function readFully(fd: number, buffer: Uint8Array, position: number, path: string, what: string): void {
  let read = 0;
  while (read < buffer.length) {
    const n = readSync(fd, buffer, read, Math.min(buffer.length - read, 1 << 26), position + read);
    if (n === 0) throw new UsageError(`${path}: the ${what} is truncated`);
    read += n;
  }
}

/** An open safetensors file: its header is parsed and checked; tensors are read on demand. */
export class SafetensorsFile {
  readonly entries: Map<string, HeaderEntry>;
  readonly metadata: Record<string, string>;
  private readonly dataStart: number;
  private readonly header: SafetensorsHeader;

  constructor(readonly path: string) {
    // A regular file only: a FIFO would block, /dev/zero never ends, a directory is not a checkpoint.
    if (!existsSync(path)) throw new UsageError(`${path}: checkpoint file is missing`);
    checkRegularFile(path, 'safetensors file');
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      throw new UsageError(`${path}: checkpoint file is missing`);
    }
    try {
      const fileSize = fstatSync(fd).size;
      const prefix = new Uint8Array(8);
      if (fileSize >= 8) readFully(fd, prefix, 0, path, 'header length');
      const headerLength = safetensorsHeaderLength(prefix, fileSize, path);
      const headerBytes = new Uint8Array(headerLength);
      readFully(fd, headerBytes, 8, path, 'header');
      const header = parseSafetensorsHeader(headerBytes, fileSize, path);
      this.header = header;
      this.entries = header.entries;
      this.metadata = header.metadata;
      this.dataStart = header.dataStart;
    } finally {
      closeSync(fd);
    }
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** Reads tensor `name` into `out`, checking its dtype and shape against what the caller expects. */
  readInto(name: string, out: TensorData, shape: readonly number[]): void {
    this.readAllInto([{ name, data: out, shape }]);
  }

  /**
   * Reads each tensor into its `data`, checking dtype and shape, with the file opened once: a
   * 1,000,000-layer model has two million tensors, and opening the file for each took a quarter of the
   * load.
   */
  readAllInto(tensors: Iterable<{ name: string; data: TensorData; shape: readonly number[] }>): void {
    const fd = openSync(this.path, 'r');
    try {
      for (const { name, data, shape } of tensors) {
        const entry = checkedEntry(this.header, this.path, name, data, shape);
        const at = this.dataStart + entry.data_offsets[0];
        readFully(fd, asBytes(data), at, this.path, `tensor ${printable(name)}`);
      }
    } finally {
      closeSync(fd);
    }
  }
}
