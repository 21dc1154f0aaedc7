// Chooses the backend: `native` where its addon was built (the default), `reference` otherwise or on request.

import type { Backend, DType } from './backend.js';
import { loadNativeBackend, nativeLoadError, setNativeThreads } from './native.js';
import { referenceBackend } from './reference.js';
import { UsageError } from '../util/errors.js';

import { BACKEND_NAMES, type BackendName } from './names.js';

export { BACKEND_NAMES, type BackendName };

let warned = false;

/**
 * `auto`: native if it loads and supports the dtype, else reference (with one warning on stderr).
 * `native`: the native backend, or null when it is not built. `reference`: always available.
 */
export function loadBackend(
  name: BackendName,
  { quiet = false, dtype = 'float32' }: { quiet?: boolean; dtype?: DType } = {},
): Backend | null {
  if (name === 'reference') return referenceBackend;
  const native = loadNativeBackend();
  if (name === 'native') return native;
  if (native !== null && native.supports(dtype)) return native;
  if (native === null && !quiet && !warned) {
    warned = true;
    process.stderr.write(`roaf: using the reference backend (${nativeLoadError() ?? 'native backend unavailable'})\n`);
  }
  return referenceBackend;
}

/** Like loadBackend, but a requested native backend that is missing is a usage error. */
export function requireBackend(name: BackendName, dtype: DType, threads?: number): Backend {
  const backend = loadBackend(name, { dtype });
  if (backend === null) {
    throw new UsageError(`--backend native is not available: ${nativeLoadError() ?? 'unknown reason'}`);
  }
  if (!backend.supports(dtype)) {
    throw new UsageError(`--backend ${backend.name} does not support --dtype ${dtype}; use --backend reference`);
  }
  if (threads !== undefined && backend.name === 'native') setNativeThreads(threads);
  return backend;
}

export { referenceBackend };
