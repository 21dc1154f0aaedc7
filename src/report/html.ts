// The run report: one self-contained HTML page (inline CSS and inline SVG plots; no script, no font,
// no image or style sheet fetched from anywhere) comparing any number of runs side by side: a summary
// table, overlaid plots, and for each run its configuration, final figures and warnings.

import type { Diagnostics } from '../diagnostics/diagnose.js';
import { CURVE_LABELS } from '../models/kind.js';
import { findModelKind } from '../models/kinds.js';
import type { MetricsRecord } from '../train/metrics.js';
import {
  describeModel,
  diagnosticsGradientSeries,
  diagnosticsSpectrumSeries,
  gradientRatioPoints,
  isGradientSummary,
  loggedGradientSeries,
  lossPoints,
  qualityPoints,
} from './figures.js';
import {
  gradientNormSpec,
  learningCurveSpec,
  spectrumSpec,
  writeFigure,
  type Figure,
  type GradientSeries,
  type SpectrumSeries,
} from './plots.js';
import type { RunData } from './runs.js';

export interface ReportOptions {
  title: string;
  /** Directory for the figures as SVG and PNG files. */
  figuresDir: string;
  /** Shown in the header; the caller passes the time (tests pass a fixed one). */
  generated: string;
}

export interface Report {
  html: string;
  figures: Figure[];
  warnings: string[];
}

/** Text for HTML content or a quoted attribute; anything that is not a string is shown as its String(). */
export function escapeHtml(text: unknown): string {
  return String(text)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** Makes the ids inside one inline SVG unique on the page, so that plots cannot capture each other's clip paths. */
function isolateIds(svg: string, prefix: string): string {
  return svg
    .replace(/\bid="([^"]+)"/g, (_, id: string) => `id="${prefix}-${id}"`)
    .replace(/url\(#([^)]+)\)/g, (_, id: string) => `url(#${prefix}-${id})`)
    .replace(
      /(xlink:)?href="#([^"]+)"/g,
      (_, xlink: string | undefined, id: string) => `${xlink ?? ''}href="#${prefix}-${id}"`,
    )
    .replace(/^<\?xml[^>]*>\s*/, '');
}

function formatNumber(x: unknown, digits = 4): string {
  if (typeof x !== 'number')
    return x === null || x === undefined ? '–' : escapeHtml(typeof x === 'string' ? x : JSON.stringify(x));
  if (!Number.isFinite(x)) return String(x);
  if (Number.isInteger(x)) return x.toLocaleString('en-US');
  const abs = Math.abs(x);
  return abs !== 0 && (abs < 1e-3 || abs >= 1e6)
    ? x.toExponential(digits - 1)
    : Number(x.toPrecision(digits)).toString();
}

function percent(x: unknown): string {
  return typeof x === 'number' ? `${(100 * x).toFixed(2)} %` : '–';
}

function power(log10: unknown): string {
  if (typeof log10 !== 'number') return log10 === null || log10 === undefined ? '–' : escapeHtml(log10);
  return Math.abs(log10) < 4 ? formatNumber(10 ** log10, 3) : `10^${log10.toFixed(2)}`;
}

function lastRecord(run: RunData): MetricsRecord | null {
  return run.records[run.records.length - 1] ?? null;
}

function modelConfig(run: RunData): Diagnostics['config'] | null {
  return run.config?.model ?? run.diagnostics?.config ?? null;
}

/** The key figures of a run, as [label, value] rows (values are HTML). */
function finalFigures(run: RunData): Array<[string, string]> {
  const rows: Array<[string, string]> = [];
  const last = lastRecord(run);
  if (last) {
    rows.push(['evaluations', formatNumber(run.records.length)]);
    rows.push(['epoch, step', `${formatNumber(last.epoch)}, ${formatNumber(last.step)}`]);
    if (typeof last.test_accuracy === 'number') {
      const best = run.records.reduce(
        (m, r) => (typeof r.test_accuracy === 'number' ? Math.max(m, r.test_accuracy) : m),
        -Infinity,
      );
      rows.push(['test accuracy (final)', percent(last.test_accuracy)]);
      rows.push(['test accuracy (best)', percent(best)]);
    }
    if (typeof last.test_mse === 'number') rows.push(['test MSE (final)', formatNumber(last.test_mse)]);
    rows.push(['test loss', formatNumber(last.test_loss)]);
    rows.push(['train loss', formatNumber(last.train_loss)]);
    rows.push(['training time', `${formatNumber(last.seconds)} s`]);
    if (isGradientSummary(last.gradients))
      rows.push(['gradient first/last (last eval.)', formatNumber(last.gradients.first_last_ratio)]);
  }
  const d = run.diagnostics;
  if (d) {
    rows.push(['diagnose: gradient first/last', power(d.gradients.log10_first_last_ratio)]);
    if (d.spectrum) {
      rows.push(['diagnose: σ_min, σ_max', `${power(d.spectrum.log10.min)}, ${power(d.spectrum.log10.max)}`]);
      rows.push([
        'diagnose: log10 σ_min, σ_max',
        `${formatNumber(d.spectrum.log10.min)}, ${formatNumber(d.spectrum.log10.max)}`,
      ]);
    }
    if (d.bounds.applicable) {
      rows.push([
        'diagnose: bounds',
        `[${power(d.bounds.log10_lower_product)}, ${power(d.bounds.log10_upper_product)}]`,
      ]);
      rows.push([
        'diagnose: spectrum inside bounds',
        d.bounds.inside === null ? '–' : d.bounds.inside ? 'yes' : '<strong>NO</strong>',
      ]);
    }
  }
  return rows;
}

/** The configuration of a run, as [label, value] rows. */
function configuration(run: RunData): Array<[string, string]> {
  const rows: Array<[string, string]> = [];
  const m = modelConfig(run);
  if (m) {
    rows.push(['model', escapeHtml(m.model)]);
    rows.push(...(findModelKind(m.model)?.labels.configRows(m, (n) => formatNumber(n)) ?? []));
    rows.push(['alpha, beta', `${formatNumber(m.alpha, 6)}, ${formatNumber(m.beta, 6)}`]);
    rows.push(['filter', `${escapeHtml(m.filter)}${m.sharedFilter ? ' (shared)' : ''}`]);
    rows.push(['input dim, outputs', `${formatNumber(m.inputDim)}, ${formatNumber(m.outputs)}`]);
    rows.push(['seed, dtype', `${formatNumber(m.seed)}, ${escapeHtml(m.dtype)}`]);
  }
  const c = run.config;
  if (c) {
    const task = c.task;
    rows.push([
      'task',
      escapeHtml(
        [
          task.name,
          task.seqLen !== undefined ? `T/L=${task.seqLen}` : '',
          task.trainLimit !== undefined ? `train ≤ ${task.trainLimit}` : '',
          task.testLimit !== undefined ? `test ≤ ${task.testLimit}` : '',
        ]
          .filter((s) => s !== '')
          .join(', '),
      ),
    ]);
    const t = c.training;
    rows.push(['epochs, batch', `${formatNumber(t.epochs)}, ${formatNumber(t.batch)}`]);
    rows.push([
      'optimizer',
      escapeHtml(`${t.optimizer.kind}, lr ${t.optimizer.lr}${t.clip > 0 ? `, clip ${t.clip}` : ''}`),
    ]);
    rows.push(['gradients logged', t.logGradients ? 'yes' : 'no']);
  } else if (run.diagnostics) {
    rows.push(['data', escapeHtml(`${run.diagnostics.data.dataset}, batch ${run.diagnostics.data.batch}`)]);
    rows.push(['backend', escapeHtml(run.diagnostics.backend)]);
  }
  return rows;
}

function table(rows: Array<[string, string]>): string {
  if (rows.length === 0) return '<p class="muted">nothing recorded</p>';
  return `<table class="kv">${rows.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${v}</td></tr>`).join('')}</table>`;
}

function summaryTable(runs: RunData[]): string {
  const head = [
    'run',
    'model',
    'size',
    'alpha',
    'beta',
    'final test',
    'test loss',
    'steps',
    'grad first/last',
    'log10 σ_min',
    'log10 σ_max',
  ];
  const body = runs.map((run) => {
    const m = modelConfig(run);
    const last = lastRecord(run);
    const size = (m && findModelKind(m.model)?.labels.size(m, (n) => formatNumber(n))) ?? '–';
    const quality = !last
      ? '–'
      : typeof last.test_accuracy === 'number'
        ? percent(last.test_accuracy)
        : `MSE ${formatNumber(last.test_mse)}`;
    const ratio = run.diagnostics
      ? power(run.diagnostics.gradients.log10_first_last_ratio)
      : last && isGradientSummary(last.gradients)
        ? formatNumber(last.gradients.first_last_ratio)
        : '–';
    const s = run.diagnostics?.spectrum;
    const cells = [
      escapeHtml(run.label),
      escapeHtml(m?.model ?? '–'),
      size,
      formatNumber(m?.alpha, 6),
      formatNumber(m?.beta, 6),
      quality,
      formatNumber(last?.test_loss),
      formatNumber(last?.step),
      ratio,
      formatNumber(s?.log10.min),
      formatNumber(s?.log10.max),
    ];
    return `<tr>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`;
  });
  return `<table class="summary"><thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${body.join('')}</tbody></table>`;
}

/** Renders every figure the runs have data for, writing each as SVG and PNG into `dir`. */
async function buildFigures(runs: RunData[], dir: string): Promise<Figure[]> {
  const figures: Figure[] = [];
  const labels = runs.map((r) => r.label);
  const withRecords = runs.filter((r) => r.records.length > 0);
  for (const metric of ['accuracy', 'mse'] as const) {
    const points = withRecords
      .map((r) => qualityPoints(r.label, r.records))
      .filter((q) => q.metric === metric)
      .flatMap((q) => q.points);
    if (points.length === 0) continue;
    const spec =
      metric === 'accuracy'
        ? learningCurveSpec(points, { title: 'Test accuracy', x: 'epoch', y: 'test accuracy', runs: labels })
        : learningCurveSpec(points, {
            title: 'Test mean squared error',
            x: 'epoch',
            y: 'test MSE',
            logY: true,
            runs: labels,
          });
    figures.push(await writeFigure(dir, `test-${metric}`, spec));
  }
  const losses = withRecords.flatMap((r) => lossPoints(r.label, r.records));
  if (losses.length > 0) {
    figures.push(
      await writeFigure(
        dir,
        'loss',
        learningCurveSpec(losses, { title: 'Training and test loss', x: 'step', y: 'loss', logY: true, runs: labels }),
      ),
    );
  }
  const gradientSeries: GradientSeries[] = runs.flatMap((r) => {
    if (r.diagnostics) return [diagnosticsGradientSeries(r.label, r.diagnostics)];
    const logged = loggedGradientSeries(r.label, r.records);
    return logged ? [logged] : [];
  });
  for (const index of ['layer', 'step'] as const) {
    const series = gradientSeries.filter((s) => s.index === index);
    if (series.length === 0) continue;
    const title = CURVE_LABELS[index].title;
    const figure = await writeFigure(dir, `gradient-norms-${index}`, gradientNormSpec(series, title, labels));
    const logged = series.filter((s) => !runs.find((r) => r.label === s.label)?.diagnostics).map((s) => s.label);
    if (logged.length > 0)
      figure.note = `From the last logged evaluation (--log-gradients): ${logged.join(', ')}; the others from roaf diagnose.`;
    figures.push(figure);
  }
  const ratios = runs.flatMap((r) => gradientRatioPoints(r.label, r.records));
  if (ratios.length > 0) {
    const figure = await writeFigure(
      dir,
      'gradient-ratio',
      learningCurveSpec(ratios, {
        title: 'First/last gradient-norm ratio during training',
        x: 'step',
        y: 'first / last',
        logY: true,
        runs: labels,
      }),
    );
    // A run whose first-layer gradient underflowed to 0 in its own (float32) backward has no point on a log scale.
    const vanished = runs.filter(
      (r) => r.records.some((rec) => isGradientSummary(rec.gradients)) && !ratios.some((p) => p.run === r.label),
    );
    if (vanished.length > 0) {
      figure.note = `Not drawn: ${vanished.map((r) => r.label).join(', ')} (the first layer's gradient was 0 in the run's own backward pass: it underflowed).`;
    }
    figures.push(figure);
  }
  const spectra = runs
    .flatMap((r) => (r.diagnostics ? [diagnosticsSpectrumSeries(r.label, r.diagnostics)] : []))
    .filter((s): s is SpectrumSeries => s !== null);
  if (spectra.length > 0) figures.push(await writeFigure(dir, 'spectrum', spectrumSpec(spectra, undefined, labels)));
  return figures;
}

const STYLE = `
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 24px; color: #1d2330; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 10px; border-bottom: 1px solid #dde; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 0 0 8px; word-break: break-all; }
.muted { color: #667; font-size: 13px; }
.warnings { background: #fff6e0; border: 1px solid #e8c66a; padding: 8px 14px; border-radius: 4px; font-size: 13px; }
.warnings li { margin: 3px 0; }
table { border-collapse: collapse; font-size: 13px; }
table.summary th, table.summary td { border: 1px solid #d6d9e0; padding: 4px 8px; text-align: right; }
table.summary th { background: #f2f4f8; } table.summary td:first-child, table.summary td:nth-child(2) { text-align: left; }
table.kv th { text-align: left; font-weight: normal; color: #556; padding: 2px 10px 2px 0; vertical-align: top; }
table.kv td { padding: 2px 0; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 16px; }
figure.plot { margin: 0; border: 1px solid #e3e6ec; border-radius: 4px; padding: 8px; overflow-x: auto; }
figure.plot svg { max-width: 100%; height: auto; }
figure.plot figcaption { font-size: 12px; color: #556; margin-top: 4px; }
.runs { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 16px; }
.run { border: 1px solid #e3e6ec; border-radius: 4px; padding: 12px; }
.run h4 { font-size: 13px; margin: 10px 0 4px; color: #334; }
`;

/** Builds the report for `runs` (already read) and writes its figures. */
export async function buildReport(runs: RunData[], options: ReportOptions): Promise<Report> {
  const figures = await buildFigures(runs, options.figuresDir);
  const warnings = runs.flatMap((r) => r.warnings);
  const plots = figures.map(
    (f) =>
      `<figure class="plot" data-plot="${escapeHtml(f.name)}">${isolateIds(f.svg, `plot-${f.name}`)}` +
      `${f.note ? `<figcaption>${escapeHtml(f.note)}</figcaption>` : ''}</figure>`,
  );
  const cards = runs.map((run) => {
    const d = run.diagnostics;
    const described = modelConfig(run);
    return `<section class="run" data-run="${escapeHtml(run.label)}">
<h3>${escapeHtml(run.label)}</h3>
<div class="muted">${escapeHtml(run.dir)}${described ? ` · ${escapeHtml(describeModel(described))}` : ''}</div>
<h4>Final figures</h4>${table(finalFigures(run))}
<h4>Configuration</h4>${table(configuration(run))}
${d ? `<div class="muted">diagnostics: ${escapeHtml(d.data.dataset)}, batch ${formatNumber(d.data.batch)}, ${d.spectrum ? `Jacobian ${escapeHtml(d.spectrum.jacobian)} of sample${d.spectrum.samples.length > 1 ? 's' : ''} ${d.spectrum.samples.map((x) => formatNumber(x)).join(', ')}` : 'no spectrum'}</div>` : ''}
${run.warnings.length > 0 ? `<ul class="warnings">${run.warnings.map((w) => `<li>${escapeHtml(w)}</li>`).join('')}</ul>` : ''}
</section>`;
  });
  const html = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(options.title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${escapeHtml(options.title)}</h1>
<div class="muted">${runs.length} run${runs.length === 1 ? '' : 's'} · generated ${escapeHtml(options.generated)} by roaf report</div>
${warnings.length > 0 ? `<h2>Warnings</h2><ul class="warnings" id="warnings">${warnings.map((w) => `<li>${escapeHtml(w)}</li>`).join('')}</ul>` : ''}
<h2>Summary</h2>
${summaryTable(runs)}
<h2>Plots</h2>
${plots.length > 0 ? `<div class="plots">${plots.join('\n')}</div>` : '<p class="muted">no data to plot</p>'}
<h2>Runs</h2>
<div class="runs">${cards.join('\n')}</div>
</body>
</html>
`;
  return { html, figures, warnings };
}
