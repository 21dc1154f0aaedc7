// The safetensors format in memory (docs/checkpoint-format.md): the header (an 8-byte little-endian
// length, then JSON naming each tensor's dtype, shape and byte range) built and checked, and whole files
// encoded to and decoded from bytes. The file reader and writer (safetensors.ts) use the header functions;
// the browser entry (src/browser/), which has no file system, uses the byte functions. No Node built-ins.

import { UsageError } from '../util/errors.js';

export type TensorData = Float32Array | Float64Array | Int32Array;

export interface NamedTensor {
  name: string;
  shape: number[];
  data: TensorData;
}

export const DTYPE_OF: Record<string, string> = { Float32Array: 'F32', Float64Array: 'F64', Int32Array: 'I32' };
const BYTES: Record<string, number> = { F32: 4, F64: 8, I32: 4 };

export interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** A parsed, checked header: tensors by name, the metadata, and where the data starts in the file. */
export interface SafetensorsHeader {
  entries: Map<string, HeaderEntry>;
  metadata: Record<string, string>;
  dataStart: number;
}

export function asBytes(data: TensorData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** The 8-byte length prefix and the JSON header (padded to 8 bytes) of a file holding `tensors`, in order. */
export function safetensorsHeaderBytes(tensors: NamedTensor[], metadata: Record<string, string> = {}): Uint8Array {
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
  const jsonBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + jsonBytes.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(jsonBytes.length), true);
  out.set(jsonBytes, 8);
  return out;
}

/**
 * The largest JSON header read. The format's own readers stop at 100 MB, but a checkpoint of the
 * 1,000,000-layer MLP has an entry per tensor, 353 MB of header, and must be read to resume: roaf reads up
 * to 500 MB, below V8's longest string (2^29 - 24 characters), the bound a header has anyway.
 */
export const MAX_HEADER_BYTES = 500_000_000;

function isSize(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** A tensor name from the file as one printable line (a hostile name may hold newlines or escapes). */
export function printable(name: string): string {
  return /^[\w.\-/[\]]*$/.test(name) ? name : JSON.stringify(name);
}

/** The header length announced by the first 8 bytes of a file of `fileSize` bytes, checked; `source` names it in errors. */
export function safetensorsHeaderLength(prefix: Uint8Array, fileSize: number, source: string): number {
  if (fileSize < 8) throw new UsageError(`${source}: not a safetensors file (${fileSize} bytes, truncated)`);
  const headerLength = Number(new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true));
  if (headerLength > fileSize - 8 || headerLength > MAX_HEADER_BYTES) {
    throw new UsageError(
      `${source}: header length ${headerLength} exceeds the file size ${fileSize} or ${MAX_HEADER_BYTES} bytes (truncated or corrupt)`,
    );
  }
  return headerLength;
}

/**
 * Parses and checks the JSON header (`headerBytes`, after the prefix) of a file of `fileSize` bytes: every
 * field of every entry by type, data ranges inside the data section (offsets count from the end of the
 * header, so no tensor is read from inside it) and not overlapping.
 */
export function parseSafetensorsHeader(headerBytes: Uint8Array, fileSize: number, source: string): SafetensorsHeader {
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(headerBytes));
  } catch {
    throw new UsageError(`${source}: header is not valid JSON (corrupt file)`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    throw new UsageError(`${source}: header is not a JSON object (corrupt file)`);
  const dataStart = 8 + headerBytes.length;
  const dataSize = fileSize - dataStart;
  const metadata = (header as Record<string, unknown>).__metadata__ ?? {};
  if (
    typeof metadata !== 'object' ||
    metadata === null ||
    Array.isArray(metadata) ||
    Object.values(metadata).some((v) => typeof v !== 'string')
  )
    throw new UsageError(`${source}: __metadata__ must be an object of strings`);
  const entries = new Map<string, HeaderEntry>();
  const ranges: Array<{ name: string; begin: number; end: number }> = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const tensor = `${source}: tensor ${printable(name)}`;
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
    const expected = shape.reduce((a: number, b: number) => a * b, 1) * bytes;
    if (end < begin || end - begin !== expected)
      throw new UsageError(
        `${tensor} has data_offsets [${begin}, ${end}] (${end - begin} bytes) for ${entry.dtype} shape [${shape.join(',')}] (${expected} bytes expected)`,
      );
    if (end > dataSize) {
      throw new UsageError(`${tensor} ends at byte ${dataStart + end} but the file has ${fileSize} bytes (truncated)`);
    }
    ranges.push({ name, begin, end });
    entries.set(name, { dtype: entry.dtype!, shape, data_offsets: [begin, end] });
  }
  ranges.sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < ranges.length; i++) {
    const previous = ranges[i - 1]!;
    const current = ranges[i]!;
    if (current.begin < previous.end && current.end > current.begin && previous.end > previous.begin)
      throw new UsageError(
        `${source}: tensors ${printable(previous.name)} [${previous.begin}, ${previous.end}) and ${printable(current.name)} [${current.begin}, ${current.end}) overlap`,
      );
  }
  return { entries, metadata: metadata as Record<string, string>, dataStart };
}

/** The header entry of tensor `name`, checked against the dtype of `out` and the expected `shape`. */
export function checkedEntry(
  header: SafetensorsHeader,
  source: string,
  name: string,
  out: TensorData,
  shape: readonly number[],
): HeaderEntry {
  const entry = header.entries.get(name);
  if (!entry) throw new UsageError(`${source}: tensor ${printable(name)} is missing`);
  const dtype = DTYPE_OF[out.constructor.name];
  if (entry.dtype !== dtype) throw new UsageError(`${source}: tensor ${name} is ${entry.dtype}, expected ${dtype}`);
  if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
    throw new UsageError(
      `${source}: tensor ${name} has shape [${entry.shape.join(',')}], expected [${shape.join(',')}]`,
    );
  }
  return entry;
}

/** A whole safetensors file as bytes (for a download, IndexedDB or a test): header, then each tensor's data. */
export function encodeSafetensors(tensors: NamedTensor[], metadata: Record<string, string> = {}): Uint8Array {
  const header = safetensorsHeaderBytes(tensors, metadata);
  const out = new Uint8Array(header.length + tensors.reduce((n, t) => n + t.data.byteLength, 0));
  out.set(header, 0);
  let offset = header.length;
  for (const t of tensors) {
    out.set(asBytes(t.data), offset);
    offset += t.data.byteLength;
  }
  return out;
}

/** A safetensors file held in memory: its header is parsed and checked; tensors are copied out on demand. */
export class SafetensorsBytes {
  private readonly header: SafetensorsHeader;

  /** `source` names the bytes in errors (a file name, 'model.safetensors from IndexedDB', ...). */
  constructor(
    readonly bytes: Uint8Array,
    readonly source = 'safetensors bytes',
  ) {
    const headerLength = safetensorsHeaderLength(bytes.subarray(0, 8), bytes.length, source);
    this.header = parseSafetensorsHeader(bytes.subarray(8, 8 + headerLength), bytes.length, source);
  }

  get metadata(): Record<string, string> {
    return this.header.metadata;
  }

  has(name: string): boolean {
    return this.header.entries.has(name);
  }

  /** Copies tensor `name` into `out`, checking its dtype and shape against what the caller expects. */
  readInto(name: string, out: TensorData, shape: readonly number[]): void {
    const entry = checkedEntry(this.header, this.source, name, out, shape);
    const start = this.header.dataStart + entry.data_offsets[0];
    asBytes(out).set(this.bytes.subarray(start, start + out.byteLength));
  }
}
