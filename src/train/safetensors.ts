// The safetensors format (an 8-byte little-endian header length, a JSON header naming each tensor's
// dtype, shape and byte range, then the raw little-endian data), so checkpoints load in any framework
// without roaf. This file reads them (tensor by tensor, so multi-gigabyte files never sit in one Buffer);
// safetensors-write.ts writes them.

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { UsageError } from '../util/errors.js';
import {
  asBytes,
  checkedEntry,
  parseSafetensorsHeader,
  safetensorsHeaderLength,
  type HeaderEntry,
  type SafetensorsHeader,
  type TensorData,
} from './safetensors-bytes.js';

export type { NamedTensor, TensorData } from './safetensors-bytes.js';
// The writer lives in safetensors-write.ts; re-exported so importers of this module keep working.
export { writeSafetensors } from './safetensors-write.js';

/** An open safetensors file: its header is parsed and checked; tensors are read on demand. */
export class SafetensorsFile {
  readonly entries: Map<string, HeaderEntry>;
  readonly metadata: Record<string, string>;
  private readonly dataStart: number;
  private readonly header: SafetensorsHeader;

  constructor(readonly path: string) {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      throw new UsageError(`${path}: checkpoint file is missing`);
    }
    try {
      const fileSize = fstatSync(fd).size;
      const prefix = new Uint8Array(8);
      if (fileSize >= 8) readSync(fd, prefix, 0, 8, 0);
      const headerLength = safetensorsHeaderLength(prefix, fileSize, path);
      const headerBytes = new Uint8Array(headerLength);
      readSync(fd, headerBytes, 0, headerLength, 8);
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
    const entry = checkedEntry(this.header, this.path, name, out, shape);
    const fd = openSync(this.path, 'r');
    try {
      const bytes = asBytes(out);
      let read = 0;
      while (read < bytes.length) {
        const n = readSync(
          fd,
          bytes,
          read,
          Math.min(bytes.length - read, 1 << 26),
          this.dataStart + entry.data_offsets[0] + read,
        );
        if (n === 0) throw new UsageError(`${this.path}: tensor ${name} is truncated`);
        read += n;
      }
    } finally {
      closeSync(fd);
    }
  }
}
