// IDX bytes (the MNIST format, see idx.ts for the layout): parsed from and encoded to memory. The file
// reader (idx.ts) and the browser entry (which fetches the bytes) share this; no Node built-ins here.

import { UsageError } from '../util/errors.js';

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

export interface TypeInfo {
  code: number;
  type: IdxType;
  bytes: number;
}

/** The element types by type code (idx.ts reads a gzip file's header with them before inflating it). */
export const IDX_TYPES: readonly TypeInfo[] = [
  { code: 0x08, type: 'ubyte', bytes: 1 },
  { code: 0x09, type: 'byte', bytes: 1 },
  { code: 0x0b, type: 'short', bytes: 2 },
  { code: 0x0c, type: 'int', bytes: 4 },
  { code: 0x0d, type: 'float', bytes: 4 },
  { code: 0x0e, type: 'double', bytes: 8 },
];

const hex = (byte: number): string => `0x${byte.toString(16).padStart(2, '0')}`;

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
  const info = IDX_TYPES.find((t) => t.code === typeCode);
  if (!info) {
    const known = IDX_TYPES.map((t) => `${hex(t.code)} ${t.type}`).join(', ');
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
  return IDX_TYPES.find((t) => t.type === type)!;
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
