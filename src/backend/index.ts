// Chooses the backend: `native` where its addon was built (the default), else `wasm` (the same C kernels as
// WebAssembly, shipped built), else `reference`; or whichever is asked for.

import type { Backend, DType } from './backend.js';
import { loadNativeBackend, nativeLoadError, setNativeThreads } from './native.js';
import { referenceBackend } from './reference.js';
import { loadWasmBackendSync, wasmLoadError } from './wasm-node.js';
import { UsageError } from '../util/errors.js';

import { BACKEND_NAMES, type BackendName } from './names.js';

export { BACKEND_NAMES, type BackendName };

let warned = false;

/**
 * `auto`: native if it loads and supports the dtype, else wasm if it does, else reference; one warning on
 * stderr says why native was not used. `native`, `wasm`: that backend, or null when it does not load.
 * `reference`: always available.
 */
export function loadBackend(
  name: BackendName,
  { quiet = false, dtype = 'float32' }: { quiet?: boolean; dtype?: DType } = {},
): Backend | null {
  if (name === 'reference') return referenceBackend;
  if (name === 'wasm') return loadWasmBackendSync();
  const native = loadNativeBackend();
  if (name === 'native') return native;
  if (native !== null && native.supports(dtype)) return native;
  if (native !== null) return referenceBackend; // float64: only the reference backend has it
  const wasm = loadWasmBackendSync();
  const fallback = wasm !== null && wasm.supports(dtype) ? wasm : referenceBackend;
  if (!quiet && !warned) {
    warned = true;
    const why = nativeLoadError() ?? 'native backend unavailable';
    const wasmWhy = wasm === null ? `; wasm backend unavailable: ${wasmLoadError() ?? 'unknown reason'}` : '';
    process.stderr.write(`roaf: using the ${fallback.name} backend (${why}${wasmWhy})\n`);
  }
  return fallback;
}

/** Like loadBackend, but a requested native or wasm backend that is missing is a usage error. */
export function requireBackend(name: BackendName, dtype: DType, threads?: number): Backend {
  const backend = loadBackend(name, { dtype });
  if (backend === null) {
    const why = name === 'wasm' ? wasmLoadError() : nativeLoadError();
    throw new UsageError(`--backend ${name} is not available: ${why ?? 'unknown reason'}`);
  }
  if (!backend.supports(dtype)) {
    throw new UsageError(`--backend ${backend.name} does not support --dtype ${dtype}; use --backend reference`);
  }
  if (threads !== undefined && backend.name === 'native') setNativeThreads(threads);
  return backend;
}

export { referenceBackend };
