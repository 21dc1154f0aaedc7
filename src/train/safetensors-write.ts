// Writes safetensors files (the format is described in safetensors.ts and docs/checkpoint-format.md),
// streaming each tensor straight from the caller's array, so saving never copies the model.

import { closeSync, openSync, writeSync } from 'node:fs';
import type { NamedTensor, TensorData } from './safetensors.js';

const DTYPE_OF: Record<string, string> = { Float32Array: 'F32', Float64Array: 'F64', Int32Array: 'I32' };

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
