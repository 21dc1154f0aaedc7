// The safetensors format (an 8-byte little-endian header length, a JSON header naming each tensor's
// dtype, shape and byte range, then the raw little-endian data), so checkpoints load in any framework
// without roaf. This file reads them (tensor by tensor, so multi-gigabyte files never sit in one Buffer);
// safetensors-write.ts writes them.

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { UsageError } from '../util/errors.js';

// The writer lives in safetensors-write.ts; re-exported so importers of this module keep working.
export { writeSafetensors } from './safetensors-write.js';

export type TensorData = Float32Array | Float64Array | Int32Array;

export interface NamedTensor {
  name: string;
  shape: number[];
  data: TensorData;
}

const DTYPE_OF: Record<string, string> = { Float32Array: 'F32', Float64Array: 'F64', Int32Array: 'I32' };
const BYTES: Record<string, number> = { F32: 4, F64: 8, I32: 4 };

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

function asBytes(data: TensorData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** An open safetensors file: its header is parsed and checked; tensors are read on demand. */
export class SafetensorsFile {
  readonly entries: Map<string, HeaderEntry> = new Map();
  readonly metadata: Record<string, string>;
  private readonly dataStart: number;

  constructor(readonly path: string) {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      throw new UsageError(`${path}: checkpoint file is missing`);
    }
    try {
      const fileSize = fstatSync(fd).size;
      if (fileSize < 8) throw new UsageError(`${path}: not a safetensors file (${fileSize} bytes, truncated)`);
      const prefix = Buffer.alloc(8);
      readSync(fd, prefix, 0, 8, 0);
      const headerLength = Number(prefix.readBigUInt64LE(0));
      if (headerLength > fileSize - 8 || headerLength > 1 << 30) {
        throw new UsageError(
          `${path}: header length ${headerLength} exceeds the file size ${fileSize} (truncated or corrupt)`,
        );
      }
      const headerBytes = Buffer.alloc(headerLength);
      readSync(fd, headerBytes, 0, headerLength, 8);
      let header: Record<string, unknown>;
      try {
        header = JSON.parse(headerBytes.toString('utf8')) as Record<string, unknown>;
      } catch {
        throw new UsageError(`${path}: header is not valid JSON (corrupt file)`);
      }
      this.dataStart = 8 + headerLength;
      this.metadata = (header.__metadata__ ?? {}) as Record<string, string>;
      for (const [name, value] of Object.entries(header)) {
        if (name === '__metadata__') continue;
        const entry = value as HeaderEntry;
        const bytes = BYTES[entry?.dtype];
        if (!bytes || !Array.isArray(entry.shape) || !Array.isArray(entry.data_offsets)) {
          throw new UsageError(`${path}: tensor ${name} has a malformed header entry`);
        }
        const [begin, end] = entry.data_offsets;
        const expected = entry.shape.reduce((a, b) => a * b, 1) * bytes;
        if (end - begin !== expected)
          throw new UsageError(
            `${path}: tensor ${name} has ${end - begin} bytes for shape [${entry.shape.join(',')}] (${expected} expected)`,
          );
        if (this.dataStart + end > fileSize) {
          throw new UsageError(
            `${path}: tensor ${name} ends at byte ${this.dataStart + end} but the file has ${fileSize} bytes (truncated)`,
          );
        }
        this.entries.set(name, entry);
      }
    } finally {
      closeSync(fd);
    }
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** Reads tensor `name` into `out`, checking its dtype and shape against what the caller expects. */
  readInto(name: string, out: TensorData, shape: readonly number[]): void {
    const entry = this.entries.get(name);
    if (!entry) throw new UsageError(`${this.path}: tensor ${name} is missing`);
    const dtype = DTYPE_OF[out.constructor.name];
    if (entry.dtype !== dtype)
      throw new UsageError(`${this.path}: tensor ${name} is ${entry.dtype}, expected ${dtype}`);
    if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
      throw new UsageError(
        `${this.path}: tensor ${name} has shape [${entry.shape.join(',')}], expected [${shape.join(',')}]`,
      );
    }
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
