// The wasm backend in Node: the module read from the package (native/wasm/roaf.wasm) with fs and compiled
// synchronously, once per process. Kept apart from wasm.ts so that a browser bundle of wasm.ts reaches no Node
// built-in. Environment variables, read when the backend is first loaded:
//   ROAF_WASM_MEMORY=MiB   the size of its linear memory (16..4096, default 1024; docs/wasm.md)
//   ROAF_WASM_PATH=file    load the module from another path

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { UsageError, checkRange } from '../util/errors.js';
import { WASM_MODULE_URL, createWasmBackend, type WasmBackendHandle } from './wasm.js';

let backend: WasmBackendHandle | null | undefined;
let loadError: string | null = null;

/** The module's path: ROAF_WASM_PATH, else its place in the package. */
export function wasmModulePath(): string {
  const fromEnv = process.env.ROAF_WASM_PATH;
  return fromEnv !== undefined && fromEnv !== '' ? resolve(fromEnv) : fileURLToPath(WASM_MODULE_URL);
}

/** The wasm backend, or null (see wasmLoadError) when its module is missing or does not load. */
export function loadWasmBackendSync(): WasmBackendHandle | null {
  if (backend !== undefined) return backend;
  const memory = process.env.ROAF_WASM_MEMORY;
  const memoryBytes =
    memory !== undefined && memory !== ''
      ? checkRange('ROAF_WASM_MEMORY (MiB)', Number(memory), 16, 4096, { integer: true }) * 2 ** 20
      : undefined;
  const path = wasmModulePath();
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = new Uint8Array(readFileSync(path));
  } catch (error) {
    loadError = `the module ${path} is missing (${(error as Error).message})`;
    backend = null;
    return null;
  }
  try {
    backend = createWasmBackend(new WebAssembly.Module(bytes), memoryBytes === undefined ? {} : { memoryBytes });
  } catch (error) {
    if (error instanceof UsageError) throw error;
    loadError = `the module ${path} failed to load: ${(error as Error).message}`;
    backend = null;
  }
  return backend;
}

/** Why the wasm backend is unavailable, or null when it loaded (or was not asked for yet). */
export function wasmLoadError(): string | null {
  return loadError;
}
