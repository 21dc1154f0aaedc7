// The backends' names and the products' precisions, apart from the loader (index.ts) so that the options table and the browser entry
// can list them without reaching the native addon's loader and its Node built-ins.

export const BACKEND_NAMES = ['auto', 'native', 'wasm', 'reference'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

/** The numeric precisions of a model's products (bf16.ts implements bf16). */
export const PRECISIONS = ['float32', 'bf16'] as const;
export type Precision = (typeof PRECISIONS)[number];
