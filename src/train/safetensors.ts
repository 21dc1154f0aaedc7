// The safetensors format (an 8-byte little-endian header length, a JSON header naming each tensor's
// dtype, shape and byte range, then the raw little-endian data), so checkpoints load in any framework
// without roaf. Written and read tensor by tensor, so multi-gigabyte files never sit in one Buffer.

import { closeSync, existsSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { UsageError } from '../util/errors.js';
import { checkRegularFile } from '../util/paths.js';

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

/** The largest JSON header read (the format's own limit is 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

function isSize(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** A tensor name from the file as one printable line (a hostile name may hold newlines or escapes). */
function printable(name: string): string {
  return /^[\w.\-/[\]]*$/.test(name) ? name : JSON.stringify(name);
}

/** Reads exactly `buffer.length` bytes at `position`, else a UsageError (the file shrank or is short). */
function readFully(fd: number, buffer: Uint8Array, position: number, path: string, what: string): void {
  let read = 0;
  while (read < buffer.length) {
    const n = readSync(fd, buffer, read, buffer.length - read, position + read);
    if (n === 0) throw new UsageError(`${path}: the ${what} is truncated`);
    read += n;
  }
}

function asBytes(data: TensorData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Writes `tensors` to `path` (which should be a temporary name the caller renames into place). */
export function writeSafetensors(path: string, tensors: NamedTensor[], metadata: Record<string, string> = {}): void {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (size !== t.data.length)
      throw new Error(`tensor ${t.name}: shape [${t.shape.join(',')}] has ${size} elements, data ${t.data.length}`);
    header[t.name] = {
      dtype: DTYPE_OF[t.data.constructor.name],
      shape: t.shape,
      data_offsets: [offset, offset + t.data.byteLength],
    };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8); // align the data to 8 bytes
  const jsonBytes = Buffer.from(json, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(jsonBytes.length));
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, prefix);
    writeSync(fd, jsonBytes);
    for (const t of tensors) writeAll(fd, asBytes(t.data));
  } finally {
    closeSync(fd);
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  const chunk = 1 << 26;
  for (let start = 0; start < bytes.length; start += chunk) {
    const part = bytes.subarray(start, Math.min(bytes.length, start + chunk));
    let written = 0;
    while (written < part.length) written += writeSync(fd, part, written);
  }
}

/** An open safetensors file: its header is parsed and checked; tensors are read on demand. */
export class SafetensorsFile {
  readonly entries: Map<string, HeaderEntry> = new Map();
  readonly metadata: Record<string, string>;
  private readonly dataStart: number;

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
      if (fileSize < 8) throw new UsageError(`${path}: not a safetensors file (${fileSize} bytes, truncated)`);
      const prefix = Buffer.alloc(8);
      readFully(fd, prefix, 0, path, 'header length');
      const headerLength = Number(prefix.readBigUInt64LE(0));
      if (headerLength > fileSize - 8 || headerLength > MAX_HEADER_BYTES) {
        throw new UsageError(
          `${path}: header length ${headerLength} exceeds the file size ${fileSize} or ${MAX_HEADER_BYTES} bytes (truncated or corrupt)`,
        );
      }
      const headerBytes = Buffer.alloc(headerLength);
      readFully(fd, headerBytes, 8, path, 'header');
      let header: unknown;
      try {
        header = JSON.parse(headerBytes.toString('utf8'));
      } catch {
        throw new UsageError(`${path}: header is not valid JSON (corrupt file)`);
      }
      if (typeof header !== 'object' || header === null || Array.isArray(header))
        throw new UsageError(`${path}: header is not a JSON object (corrupt file)`);
      this.dataStart = 8 + headerLength;
      const dataSize = fileSize - this.dataStart;
      const metadata = (header as Record<string, unknown>).__metadata__ ?? {};
      if (
        typeof metadata !== 'object' ||
        metadata === null ||
        Array.isArray(metadata) ||
        Object.values(metadata).some((v) => typeof v !== 'string')
      )
        throw new UsageError(`${path}: __metadata__ must be an object of strings`);
      this.metadata = metadata as Record<string, string>;
      const ranges: Array<{ name: string; begin: number; end: number }> = [];
      for (const [name, value] of Object.entries(header)) {
        if (name === '__metadata__') continue;
        const tensor = `${path}: tensor ${printable(name)}`;
        const entry = value as Partial<HeaderEntry> | null;
        const bytes = typeof entry?.dtype === 'string' ? BYTES[entry.dtype] : undefined;
        if (entry === null || typeof entry !== 'object' || bytes === undefined)
          throw new UsageError(`${tensor} has a malformed header entry (dtype must be one of F32, F64, I32)`);
        const shape: unknown = entry.shape;
        if (!Array.isArray(shape) || shape.length > 8 || !shape.every(isSize))
          throw new UsageError(`${tensor}: shape must be a list of at most 8 non-negative integers`);
        const offsets: unknown = entry.data_offsets;
        if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isSize))
          throw new UsageError(`${tensor}: data_offsets must be two non-negative integers`);
        const [begin, end] = offsets as [number, number];
        // Evaluated in float64: a product past 2^53 stays past any file size (see kernel-checks.ts).
        const expected = shape.reduce((a, b) => a * b, 1) * bytes;
        if (end < begin || end - begin !== expected)
          throw new UsageError(
            `${tensor} has data_offsets [${begin}, ${end}] (${end - begin} bytes) for ${entry.dtype} shape [${shape.join(',')}] (${expected} bytes expected)`,
          );
        if (end > dataSize) {
          throw new UsageError(
            `${tensor} ends at byte ${this.dataStart + end} but the file has ${fileSize} bytes (truncated)`,
          );
        }
        ranges.push({ name, begin, end });
        this.entries.set(name, { dtype: entry.dtype!, shape, data_offsets: [begin, end] });
      }
      // Offsets count from the end of the header, so no tensor can be read from inside it; no two may overlap.
      ranges.sort((a, b) => a.begin - b.begin || a.end - b.end);
      for (let i = 1; i < ranges.length; i++) {
        const previous = ranges[i - 1]!,
          current = ranges[i]!;
        if (current.begin < previous.end && current.end > current.begin && previous.end > previous.begin)
          throw new UsageError(
            `${path}: tensors ${printable(previous.name)} [${previous.begin}, ${previous.end}) and ${printable(current.name)} [${current.begin}, ${current.end}) overlap`,
          );
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
    if (!entry) throw new UsageError(`${this.path}: tensor ${printable(name)} is missing`);
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
