// IDX files (the MNIST format), plain or gzip-compressed, every element type.
//
// Layout: magic 0x00 0x00 <type code> <number of dims>, then each dim as a big-endian uint32, then the
// elements in row-major order, big-endian. A file that does not fit this gives a `UsageError` naming
// the file and what is wrong: these files come from the user, so a bad one is not a bug.

import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { UsageError } from '../util/errors.js';
import { parseIdx, type IdxFile } from './idx-parse.js';

// The byte parser and encoder live in idx-parse.ts (no Node built-ins, so the browser entry shares them).
export { encodeIdx, parseIdx, type IdxData, type IdxFile, type IdxType } from './idx-parse.js';

/** Reads an IDX file, gunzipping it first if it starts with the gzip magic bytes 1f 8b. */
export function readIdx(path: string): IdxFile {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UsageError(`IDX file '${path}' not found`);
    throw new UsageError(`cannot read IDX file '${path}': ${code ?? (err as Error).message}`);
  }
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (err) {
      throw new UsageError(
        `IDX file '${path}' starts like gzip (1f 8b) but is not gzip-decodable: ${(err as Error).message}`,
      );
    }
  }
  return parseIdx(bytes, path);
}
