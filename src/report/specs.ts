// The figures as Vega-Lite specifications, one function per figure, each able to overlay several runs
// or models. plots.ts renders them to SVG and PNG in Node for reports and `diagnose --out`; the browser
// demo hands the very same specs to Vega in the page. No Node built-ins here.
//
// Gradient norms and singular values span hundreds of decades at depth (a plain MLP's gradient at depth
// 50,000 is ~10^-20000, far below the smallest double), so those plots draw log10 values on a linear
// axis whose labels read as powers of ten: a log scale that cannot underflow.

import type { TopLevelSpec } from 'vega-lite';
import { CURVE_LABELS, type CurveIndex } from '../models/kind.js';

/** Fonts: DejaVu Sans where installed (Debian's fonts-dejavu-core), the platform's sans-serif otherwise. */
const FONT = 'DejaVu Sans, Helvetica, Arial, sans-serif';
const WIDTH = 520;
const HEIGHT = 280;
/** Most points drawn per line; longer curves are thinned evenly (first and last kept). */
const MAX_POINTS = 2000;

/**
 * A Vega-Lite axis whose values are log10 of the quantity, labelled with the quantity itself (0.0316,
 * 1e-20), or as 1e-20000 beyond what a double holds.
 */
function powerOfTenAxis(title: string): Record<string, unknown> {
  return {
    title,
    labelExpr:
      "abs(datum.value) < 300 ? format(pow(10, datum.value), '.3~g') : '1e' + (datum.value < 0 ? '-' : '') + format(abs(datum.value), 'd')",
  };
}

const CONFIG = {
  font: FONT,
  background: 'white',
  legend: { labelLimit: 260, orient: 'bottom', columns: 2 },
  axis: { labelFontSize: 11, titleFontSize: 12 },
  title: { fontSize: 14, anchor: 'start' as const },
};

/** Vega's default categorical palette (tableau10), so that colours can be fixed per run. */
const PALETTE = [
  '#4c78a8',
  '#f58518',
  '#e45756',
  '#72b7b2',
  '#54a24b',
  '#eeca3b',
  '#b279a2',
  '#ff9da6',
  '#9d755d',
  '#bab0ac',
];

/**
 * Colour by run. With `runs` (all runs of a report, in order), each run keeps the same colour in every
 * figure, and a figure's legend lists only the runs it draws.
 */
function runColor(values: Array<{ run: string }>, runs?: string[]): Record<string, unknown> {
  const encoding = { field: 'run', type: 'nominal', title: null };
  if (!runs) return encoding;
  const drawn = runs.filter((r) => values.some((v) => v.run === r));
  return { ...encoding, scale: { domain: drawn, range: drawn.map((r) => PALETTE[runs.indexOf(r) % PALETTE.length]) } };
}

function thin<T>(points: T[]): T[] {
  if (points.length <= MAX_POINTS) return points;
  const out: T[] = [];
  for (let i = 0; i < MAX_POINTS; i++) out.push(points[Math.round((i * (points.length - 1)) / (MAX_POINTS - 1))]!);
  return out;
}

/** One gradient-norm curve: log10 norms at layer (or step) positions. */
export interface GradientSeries {
  label: string;
  index: CurveIndex;
  positions: number[];
  /** log10 ||∂loss/∂x||; null (an exact zero) is left out of the line. */
  log10Norms: Array<number | null>;
}

export function gradientNormSpec(
  series: GradientSeries[],
  title = 'Gradient norm through the network',
  runs?: string[],
): TopLevelSpec {
  const values = series.flatMap((s) =>
    thin(s.positions.map((position, i) => ({ run: s.label, position, value: s.log10Norms[i] }))).filter(
      (p) => p.value !== null,
    ),
  );
  // One index names the axes; a mix (which reports do not draw in one figure) reads as layers.
  const labels = CURVE_LABELS[series.length > 0 && series.every((s) => s.index === 'step') ? 'step' : 'layer'];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: WIDTH,
    height: HEIGHT,
    config: CONFIG,
    data: { values },
    mark: { type: 'line', strokeWidth: 1.5 },
    encoding: {
      x: { field: 'position', type: 'quantitative', title: labels.axis },
      y: { field: 'value', type: 'quantitative', scale: { zero: false }, axis: powerOfTenAxis(labels.quantity) },
      color: runColor(values, runs),
    },
  } as TopLevelSpec;
}

/** One spectrum: log10 singular values, largest first. */
export interface SpectrumSeries {
  label: string;
  log10SingularValues: Array<number | null>;
}

export function spectrumSpec(
  series: SpectrumSeries[],
  title = 'Singular values of the input-output Jacobian',
  runs?: string[],
): TopLevelSpec {
  const values = series
    .flatMap((s) => s.log10SingularValues.map((value, i) => ({ run: s.label, i: i + 1, value })))
    .filter((p) => p.value !== null);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: WIDTH,
    height: HEIGHT,
    config: CONFIG,
    data: { values },
    mark: { type: 'line', point: { size: 12 }, strokeWidth: 1.5 },
    encoding: {
      x: { field: 'i', type: 'quantitative', title: 'index i (largest first)', scale: { zero: false } },
      y: { field: 'value', type: 'quantitative', scale: { zero: false }, axis: powerOfTenAxis('singular value σ_i') },
      color: runColor(values, runs),
    },
  } as TopLevelSpec;
}

/** One point of a learning curve. */
export interface CurvePoint {
  run: string;
  x: number;
  value: number;
  /** Which quantity, e.g. 'train loss' or 'test loss'. */
  series: string;
}

/**
 * Learning curves: `value` against `x` (epoch or step), a colour per run and a dash pattern per series.
 * `logY` draws a log scale (losses, MSE), which needs positive values.
 */
export function learningCurveSpec(
  points: CurvePoint[],
  opts: { title: string; x: string; y: string; logY?: boolean; runs?: string[] },
): TopLevelSpec {
  const kinds = new Set(points.map((p) => p.series));
  const values = opts.logY ? points.filter((p) => p.value > 0) : points;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: opts.title,
    width: WIDTH,
    height: HEIGHT,
    config: CONFIG,
    data: { values },
    mark: { type: 'line', point: values.length <= 200, strokeWidth: 1.5 },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: opts.x },
      y: { field: 'value', type: 'quantitative', title: opts.y, scale: opts.logY ? { type: 'log' } : { zero: false } },
      color: runColor(values, opts.runs),
      ...(kinds.size > 1 ? { strokeDash: { field: 'series', type: 'nominal', title: null } } : {}),
      detail: { field: 'series', type: 'nominal' },
    },
  } as TopLevelSpec;
}
