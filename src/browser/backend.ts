// The one place the browser entry chooses its backend: the page, the worker and every browser caller get
// their backend from `browserBackend`, so switching backends is a change of this function alone.

import type { Backend } from '../backend/backend.js';
import { referenceBackend } from '../backend/reference.js';
import { loadWasmBackend } from '../backend/wasm.js';

export interface BrowserBackendOptions {
  /** 'wasm' (default): the C kernels as WebAssembly SIMD; 'reference': the plain-TypeScript specification. */
  name?: 'wasm' | 'reference';
  /** The wasm module's linear memory in bytes (default 256 MiB: a 1,000-layer width-64 MLP needs ~100 MB). */
  memoryBytes?: number;
  /** Where to fetch roaf.wasm from (default: its place in the package, next to dist/). */
  url?: URL | string;
}

/** The wasm backend (fetched and compiled once per call), or the reference backend on request. */
export async function browserBackend(options: BrowserBackendOptions = {}): Promise<Backend> {
  if (options.name === 'reference') return referenceBackend;
  return loadWasmBackend({ memoryBytes: options.memoryBytes ?? 256 * 2 ** 20, url: options.url });
}
