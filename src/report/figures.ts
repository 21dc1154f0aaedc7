// From measurements to figures: turns diagnostics results and metrics logs into plot series, and writes
// the figure files of `roaf diagnose --out` (gradient-norm curve and Jacobian spectrum, SVG and PNG).

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Diagnostics } from '../diagnostics/diagnose.js';
import type { GradientSummary } from '../diagnostics/gradients.js';
import { curvePosition } from '../models/kind.js';
import { findModelKind } from '../models/kinds.js';
import type { MetricsRecord } from '../train/metrics.js';
import { writeFileWhole } from '../util/paths.js';
import {
  gradientNormSpec,
  spectrumSpec,
  writeFigure,
  type CurvePoint,
  type Figure,
  type GradientSeries,
  type SpectrumSeries,
} from './plots.js';

/** A short description of a model configuration, e.g. 'roaf-mlp L=1000 N=64 α=1 β=0.0316' (its kind's). */
export function describeModel(config: Diagnostics['config']): string {
  return findModelKind(config.model)?.labels.describe(config) ?? String(config.model);
}

export function diagnosticsGradientSeries(label: string, d: Diagnostics): GradientSeries {
  return {
    label,
    index: d.gradients.index,
    positions: d.gradients.log10_norms.map((_, i) => curvePosition(d.gradients.index, i)),
    log10Norms: d.gradients.log10_norms,
  };
}

export function diagnosticsSpectrumSeries(label: string, d: Diagnostics): SpectrumSeries | null {
  return d.spectrum === null ? null : { label, log10SingularValues: d.spectrum.log10_singular_values };
}

/** The gradient summary a `--log-gradients` run logged at its last evaluation, as a series. */
export function loggedGradientSeries(label: string, records: MetricsRecord[]): GradientSeries | null {
  const logged = records.filter((r) => isGradientSummary(r.gradients));
  if (logged.length === 0) return null;
  const summary = logged[logged.length - 1]!.gradients as GradientSummary;
  return {
    label,
    index: summary.index,
    positions: summary.positions,
    log10Norms: summary.norms.map((x) => (x > 0 && Number.isFinite(x) ? Math.log10(x) : null)),
  };
}

export function isGradientSummary(value: unknown): value is GradientSummary {
  const v = value as GradientSummary | undefined;
  return (
    typeof v === 'object' &&
    v !== null &&
    Array.isArray(v.positions) &&
    Array.isArray(v.norms) &&
    v.positions.length === v.norms.length
  );
}

/** Points of the first/last gradient-norm ratio at each evaluation of a `--log-gradients` run. */
export function gradientRatioPoints(label: string, records: MetricsRecord[]): CurvePoint[] {
  return records.flatMap((r) => {
    const g = r.gradients;
    if (!isGradientSummary(g) || g.first_last_ratio === null || !(g.first_last_ratio > 0)) return [];
    return [{ run: label, x: r.step, value: g.first_last_ratio, series: 'first/last' }];
  });
}

/** Test accuracy (or MSE) against epoch. */
export function qualityPoints(
  label: string,
  records: MetricsRecord[],
): { points: CurvePoint[]; metric: 'accuracy' | 'mse' } {
  const mse =
    records.some((r) => typeof r.test_mse === 'number') && !records.some((r) => typeof r.test_accuracy === 'number');
  const points = records.flatMap((r) => {
    const value = mse ? r.test_mse : r.test_accuracy;
    return typeof value === 'number' && Number.isFinite(value)
      ? [{ run: label, x: r.epoch, value, series: mse ? 'test MSE' : 'test accuracy' }]
      : [];
  });
  return { points, metric: mse ? 'mse' : 'accuracy' };
}

/** Training and test loss against step. */
export function lossPoints(label: string, records: MetricsRecord[]): CurvePoint[] {
  return records.flatMap((r) => {
    const out: CurvePoint[] = [];
    if (typeof r.train_loss === 'number' && Number.isFinite(r.train_loss))
      out.push({ run: label, x: r.step, value: r.train_loss, series: 'train loss' });
    if (typeof r.test_loss === 'number' && Number.isFinite(r.test_loss))
      out.push({ run: label, x: r.step, value: r.test_loss, series: 'test loss' });
    return out;
  });
}

/** Writes `roaf diagnose --out DIR`: diagnose.json and the gradient-norm and spectrum figures. */
export async function writeDiagnosticsOutputs(dir: string, d: Diagnostics): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const label = describeModel(d.config);
  writeFileWhole(join(dir, 'diagnose.json'), JSON.stringify(d) + '\n');
  const written = [join(dir, 'diagnose.json')];
  const figures: Figure[] = [
    await writeFigure(dir, 'gradient-norms', gradientNormSpec([diagnosticsGradientSeries(label, d)])),
  ];
  const spectrum = diagnosticsSpectrumSeries(label, d);
  if (spectrum) figures.push(await writeFigure(dir, 'spectrum', spectrumSpec([spectrum])));
  for (const f of figures) written.push(join(dir, `${f.name}.svg`), join(dir, `${f.name}.png`));
  return written;
}
