// The backends' names, apart from the loader (index.ts) so that the options table and the browser entry
// can list them without reaching the native addon's loader and its Node built-ins.

export const BACKEND_NAMES = ['auto', 'native', 'wasm', 'reference'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];
