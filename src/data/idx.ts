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
import { IDX_TYPES, parseIdx, type IdxFile } from './idx-parse.js';

/** The most bytes an IDX file may hold (or inflate to): half the machine's memory, and below 2^32. */
export function maxIdxBytes(): number {
  return Math.min(Math.floor(totalmem() / 2), 2 ** 32 - 1);
}

// The byte parser and encoder live in idx-parse.ts (no Node built-ins, so the browser entry shares them).
export { encodeIdx, parseIdx, type IdxData, type IdxFile, type IdxType } from './idx-parse.js';

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
  const info = IDX_TYPES.find((t) => t.code === prefix[2]);
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
