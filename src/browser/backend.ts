// The one place the browser entry chooses its backend: switching the page, the worker and every browser
// caller to another backend (the WebAssembly one, once it is built) is a change of this function alone.

import type { Backend } from '../backend/backend.js';
import { referenceBackend } from '../backend/reference.js';

/**
 * The backend the browser entry computes on. Today the reference backend (plain TypeScript, runs in any
 * browser); async so that a backend which must fetch and instantiate a module first fits the same call.
 */
export function browserBackend(): Promise<Backend> {
  return Promise.resolve(referenceBackend);
}
