// The shapes of the files `roaf report` reads from a run directory (metrics.jsonl records, the checkpoint's
// config.json, diagnose.json), checked by type before any value reaches the HTML page or an SVG plot.
//
// A run directory may come from anyone, so every field the report shows is checked: numbers are finite
// numbers, names are one of the allowed names (a model kind, a filter kind, a dtype), free text is a string
// (and is escaped where it is shown). A value of the wrong type is reported as `FILE: field PATH must be
// ..., got ...` and the record or file is skipped (the report shows the rest); fields the report does not
// show are dropped, so nothing unchecked reaches the page. A few combinators instead of a dependency: the
// shapes are small and the report needs the cleaned value, not only a yes or no.

import { MODEL_KINDS } from '../models/kinds.js';
import { FILTER_KINDS } from '../nn/filter.js';
import type { MetricsRecord } from '../train/metrics.js';

/** Checks one value; returns it (cleaned: objects keep only declared fields) or throws a SchemaError. */
export type Schema<T> = (value: unknown, path: string) => T;

/** A value of the wrong shape: `path` is the field ('gradients.norms[3]'), the message what was expected. */
export class SchemaError extends Error {
  constructor(
    readonly path: string,
    readonly expected: string,
    readonly got: unknown,
  ) {
    super(`${path === '' ? 'the value' : `field ${path}`} must be ${expected}, got ${describe(got)}`);
    this.name = 'SchemaError';
  }
}

/** A short, safe description of a value for a message (strings truncated, markup left to the escaper). */
function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'an object';
  return typeof value === 'number' || typeof value === 'boolean' ? String(value) : typeof value;
}

export const number: Schema<number> = (v, path) => {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new SchemaError(path, 'a finite number', v);
  return v;
};

export const string: Schema<string> = (v, path) => {
  if (typeof v !== 'string') throw new SchemaError(path, 'a string', v);
  return v;
};

export const boolean: Schema<boolean> = (v, path) => {
  if (typeof v !== 'boolean') throw new SchemaError(path, 'true or false', v);
  return v;
};

export function oneOf<const T extends string>(allowed: readonly T[]): Schema<T> {
  return (v, path) => {
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v))
      throw new SchemaError(path, `one of ${allowed.join(', ')}`, v);
    return v as T;
  };
}

export function nullable<T>(schema: Schema<T>): Schema<T | null> {
  return (v, path) => (v === null ? null : schema(v, path));
}

export function array<T>(schema: Schema<T>): Schema<T[]> {
  return (v, path) => {
    if (!Array.isArray(v)) throw new SchemaError(path, 'an array', v);
    return v.map((entry, i) => schema(entry, `${path}[${i}]`));
  };
}

type Fields = Record<string, Schema<unknown>>;
type Shape<F extends Fields, O extends keyof F> = { [K in Exclude<keyof F, O>]: ReturnType<F[K]> } & {
  [K in O]?: ReturnType<F[K]>;
};

/** An object with these fields (`optional` may be absent or null-free missing); other fields are dropped. */
export function object<F extends Fields, O extends keyof F = never>(
  fields: F,
  optional: readonly O[] = [],
): Schema<Shape<F, O>> {
  return (v, path) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new SchemaError(path, 'an object', v);
    const source = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const [name, schema] of Object.entries(fields)) {
      const child = path === '' ? name : `${path}.${name}`;
      if (!Object.hasOwn(source, name) || source[name] === undefined) {
        if ((optional as readonly string[]).includes(name)) continue;
        throw new SchemaError(child, 'present', undefined);
      }
      out[name] = schema(source[name], child);
    }
    return out as Shape<F, O>;
  };
}

// ---- the run files ----

const log10 = nullable(number);

export const gradientSummary = object(
  {
    index: oneOf(['layer', 'step']),
    count: number,
    positions: array(number),
    norms: array(number),
    first_last_ratio: nullable(number),
  },
  ['count'],
);

/** One line of metrics.jsonl, as the report reads it (fields it does not show are dropped). */
export const metricsRecord: Schema<MetricsRecord> = object(
  {
    epoch: number,
    step: number,
    train_loss: nullable(number),
    test_loss: nullable(number),
    test_accuracy: number,
    test_mse: number,
    seconds: number,
    peak_rss_bytes: number,
    gradients: gradientSummary,
  },
  ['train_loss', 'test_loss', 'test_accuracy', 'test_mse', 'seconds', 'peak_rss_bytes', 'gradients'],
) as Schema<unknown> as Schema<MetricsRecord>;

/** A model configuration (config.json's `model`, diagnose.json's `config`): every field a kind may show. */
export const modelConfig = object(
  {
    model: oneOf(MODEL_KINDS),
    inputDim: number,
    outputs: number,
    readout: oneOf(['last', 'every']),
    depth: number,
    width: number,
    hidden: number,
    layers: number,
    alpha: number,
    beta: number,
    filter: oneOf(FILTER_KINDS),
    sharedFilter: boolean,
    inputScale: number,
    seed: number,
    dtype: oneOf(['float32', 'float64']),
  },
  ['readout', 'depth', 'width', 'hidden', 'layers', 'inputScale', 'sharedFilter'],
);

/** The checkpoint's config.json, as the report reads it. */
export const checkpointConfig = object({
  model: modelConfig,
  task: object({ name: string, seqLen: number, trainLimit: number, testLimit: number }, [
    'seqLen',
    'trainLimit',
    'testLimit',
  ]),
  training: object(
    {
      epochs: number,
      batch: number,
      optimizer: object({ kind: string, lr: number }),
      clip: number,
      logGradients: boolean,
    },
    ['clip', 'logGradients'],
  ),
});

/** diagnose.json, as the report reads it. */
export const diagnostics = object(
  {
    model: string,
    config: modelConfig,
    data: object({ dataset: string, batch: number }),
    backend: string,
    gradients: object({
      index: oneOf(['layer', 'step']),
      log10_norms: array(log10),
      log10_first_last_ratio: log10,
    }),
    spectrum: nullable(
      object({
        jacobian: string,
        samples: array(number),
        log10: object({ min: log10, max: log10 }),
        log10_singular_values: array(log10),
      }),
    ),
    bounds: object(
      { applicable: boolean, log10_lower_product: log10, log10_upper_product: log10, inside: nullable(boolean) },
      ['log10_lower_product', 'log10_upper_product', 'inside'],
    ),
  },
  ['model'],
);
