// IDX files (the MNIST format), plain or gzip-compressed, every element type.
//
// Layout: magic 0x00 0x00 <type code> <number of dims>, then each dim as a big-endian uint32, then the
// elements in row-major order, big-endian. A file that does not fit this gives a `UsageError` naming
// the file and what is wrong: these files come from the user, so a bad one is not a bug.
//
// Bounded reads: only a regular file is read (a FIFO or /dev/zero would hang), and no more than its header
// announces: a gzip file is first inflated only far enough to read the IDX header, then in full with the
// output capped at the announced size (a small file that expands to gigabytes is an error, not an
// allocation), and the announced size must fit in half the machine's memory.

import { existsSync, readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { constants as zlibConstants, gunzipSync } from 'node:zlib';
import { UsageError } from '../util/errors.js';
import { checkRegularFile } from '../util/paths.js';

/** The most bytes an IDX file may hold (or inflate to): half the machine's memory, and below 2^32. */
export function maxIdxBytes(): number {
  return Math.min(Math.floor(totalmem() / 2), 2 ** 32 - 1);
}

/** The IDX element types, by type code. */
export type IdxType = 'ubyte' | 'byte' | 'short' | 'int' | 'float' | 'double';

export type IdxData = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

export interface IdxFile {
  /** Sizes, outermost first: (count, rows, cols) for images, (count) for labels. */
  dims: number[];
  /** The elements, row-major, in the typed array of the element type. */
  data: IdxData;
  type: IdxType;
}

interface TypeInfo {
  code: number;
  type: IdxType;
  bytes: number;
}

const TYPES: readonly TypeInfo[] = [
  { code: 0x08, type: 'ubyte', bytes: 1 },
  { code: 0x09, type: 'byte', bytes: 1 },
  { code: 0x0b, type: 'short', bytes: 2 },
  { code: 0x0c, type: 'int', bytes: 4 },
  { code: 0x0d, type: 'float', bytes: 4 },
  { code: 0x0e, type: 'double', bytes: 8 },
];

const hex = (byte: number): string => `0x${byte.toString(16).padStart(2, '0')}`;

/** Reads an IDX file, gunzipping it first if it starts with the gzip magic bytes 1f 8b. */
export function readIdx(path: string, maxBytes = maxIdxBytes()): IdxFile {
  let bytes: Uint8Array;
  if (!existsSync(path)) throw new UsageError(`IDX file '${path}' not found`);
  try {
    checkRegularFile(path, 'IDX file', maxBytes);
    bytes = readFileSync(path);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UsageError(`IDX file '${path}' not found`);
    throw new UsageError(`cannot read IDX file '${path}': ${code ?? (err as Error).message}`);
  }
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = gunzipIdx(bytes, path, maxBytes);
  return parseIdx(bytes, path);
}

/** The bytes an IDX file announces in its header (header included), or null if `prefix` is too short to tell. */
function announcedBytes(prefix: Uint8Array): number | null {
  if (prefix.length < 4) return null;
  if (prefix[0] !== 0 || prefix[1] !== 0) return 0; // not IDX: parseIdx will say so
  const info = TYPES.find((t) => t.code === prefix[2]);
  if (!info) return 0;
  const headerBytes = 4 + 4 * prefix[3]!;
  if (prefix.length < headerBytes) return null;
  const view = new DataView(prefix.buffer, prefix.byteOffset, prefix.byteLength);
  let count = 1;
  for (let i = 0; i < prefix[3]!; i++) count *= view.getUint32(4 + 4 * i, false);
  return headerBytes + count * info.bytes; // in float64: past 2^53 it stays past any cap
}

/** Inflates gzip `bytes` up to the size the IDX header inside announces (and at most `maxBytes`). */
function gunzipIdx(bytes: Uint8Array, path: string, maxBytes: number): Uint8Array {
  const fail = (err: unknown): never => {
    throw new UsageError(
      `IDX file '${path}' starts like gzip (1f 8b) but is not gzip-decodable: ${(err as Error).message.split('\n')[0]}`,
    );
  };
  // The header: inflate growing prefixes of the compressed bytes (a sync flush returns what they hold).
  let announced: number | null = null;
  for (let prefix = 256; announced === null; prefix *= 4) {
    const part = bytes.subarray(0, Math.min(prefix, bytes.length));
    let head: Uint8Array;
    try {
      head = gunzipSync(part, { finishFlush: zlibConstants.Z_SYNC_FLUSH, maxOutputLength: 2048 });
    } catch (err) {
      // more than 2048 bytes out of this prefix: inflate a shorter one, which is enough for any header
      if ((err as NodeJS.ErrnoException).code !== 'ERR_BUFFER_TOO_LARGE') fail(err);
      head = gunzipSync(bytes.subarray(0, 64), { finishFlush: zlibConstants.Z_SYNC_FLUSH });
    }
    announced = announcedBytes(head);
    if (announced === null && part.length === bytes.length) announced = head.length; // parseIdx reports the truncation
  }
  if (announced > maxBytes)
    throw new UsageError(
      `IDX file '${path}' announces ${announced} bytes, more than the ${maxBytes} this machine allows (half its memory)`,
    );
  try {
    return gunzipSync(bytes, { maxOutputLength: Math.max(announced, 1) });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE')
      throw new UsageError(
        `IDX file '${path}' decompresses to more than the ${announced} bytes its header announces (trailing data or a gzip bomb)`,
      );
    return fail(err);
  }
}

/** Parses IDX bytes (already decompressed); `path` is used only in error messages. */
export function parseIdx(bytes: Uint8Array, path: string): IdxFile {
  if (bytes.length < 4) {
    throw new UsageError(
      `IDX file '${path}' is truncated: ${bytes.length} bytes, shorter than the 4-byte magic number`,
    );
  }
  const found = Array.from(bytes.subarray(0, 4), hex).join(' ');
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new UsageError(
      `IDX file '${path}' has wrong magic number ${found}: expected 0x00 0x00 <type code> <number of dims> (not an IDX file?)`,
    );
  }
  const typeCode = bytes[2]!; // the length was checked above
  const ndims = bytes[3]!;
  const info = TYPES.find((t) => t.code === typeCode);
  if (!info) {
    const known = TYPES.map((t) => `${hex(t.code)} ${t.type}`).join(', ');
    throw new UsageError(
      `IDX file '${path}' has unknown type code ${hex(typeCode)} (magic ${found}): expected one of ${known}`,
    );
  }
  const headerBytes = 4 + 4 * ndims;
  if (bytes.length < headerBytes) {
    throw new UsageError(
      `IDX file '${path}' is truncated: header needs ${headerBytes} bytes for ${ndims} dims, found ${bytes.length}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < ndims; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const count = dims.reduce((a, b) => a * b, 1);
  const expected = count * info.bytes;
  const have = bytes.length - headerBytes;
  if (have < expected) {
    throw new UsageError(
      `IDX file '${path}' is truncated: expected ${expected} bytes of data for ${info.type} dims [${dims.join(', ')}], found ${have}`,
    );
  }
  if (have > expected) {
    throw new UsageError(
      `IDX file '${path}' has ${have - expected} bytes after the data: expected ${expected} bytes of data for ${info.type} dims [${dims.join(', ')}], found ${have}`,
    );
  }
  return { dims, data: decode(view, headerBytes, count, info.type), type: info.type };
}

/**
 * Reads `count` big-endian elements of `type` starting at byte `offset`. Bytes are returned as a view
 * of the file's buffer (no copy of the 47 MB MNIST images); wider types are decoded into a new array.
 */
function decode(view: DataView, offset: number, count: number, type: IdxType): IdxData {
  switch (type) {
    case 'ubyte':
      return new Uint8Array(view.buffer, view.byteOffset + offset, count);
    case 'byte':
      return new Int8Array(view.buffer, view.byteOffset + offset, count);
    case 'short': {
      const out = new Int16Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt16(offset + 2 * i, false);
      return out;
    }
    case 'int': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt32(offset + 4 * i, false);
      return out;
    }
    case 'float': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(offset + 4 * i, false);
      return out;
    }
    case 'double': {
      const out = new Float64Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(offset + 8 * i, false);
      return out;
    }
  }
}

/** The IDX element type of a typed array. */
function typeOf(data: IdxData): TypeInfo {
  const type: IdxType =
    data instanceof Uint8Array
      ? 'ubyte'
      : data instanceof Int8Array
        ? 'byte'
        : data instanceof Int16Array
          ? 'short'
          : data instanceof Int32Array
            ? 'int'
            : data instanceof Float32Array
              ? 'float'
              : 'double';
  return TYPES.find((t) => t.type === type)!;
}

/** Encodes `data` with shape `dims` as IDX bytes (uncompressed); the element type follows the array type. */
export function encodeIdx(dims: readonly number[], data: IdxData): Uint8Array {
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== data.length)
    throw new Error(`encodeIdx: dims [${dims.join(', ')}] hold ${count} elements, data has ${data.length}`);
  if (dims.length > 255) throw new Error(`encodeIdx: at most 255 dims, got ${dims.length}`);
  const info = typeOf(data);
  const headerBytes = 4 + 4 * dims.length;
  const out = new Uint8Array(headerBytes + count * info.bytes);
  const view = new DataView(out.buffer);
  out[2] = info.code;
  out[3] = dims.length;
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  for (let i = 0; i < count; i++) {
    const at = headerBytes + i * info.bytes;
    const x = data[i]!;
    switch (info.type) {
      case 'ubyte':
        view.setUint8(at, x);
        break;
      case 'byte':
        view.setInt8(at, x);
        break;
      case 'short':
        view.setInt16(at, x, false);
        break;
      case 'int':
        view.setInt32(at, x, false);
        break;
      case 'float':
        view.setFloat32(at, x, false);
        break;
      case 'double':
        view.setFloat64(at, x, false);
        break;
    }
  }
  return out;
}
