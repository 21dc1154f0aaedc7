// The closing table of issue 4: for roaf-mlp (default alpha/beta), mlp and resmlp at depths 100, 1,000,
// 10,000 and 50,000, width 64, on MNIST, at initialisation: the first/last gradient-norm ratio and the
// Jacobian spectrum's log10 min and max, each from one `roaf diagnose --json` run (as a user would),
// with the time each diagnose took.
//
//   npm run build && node experiments/depth-table.mjs [--depths 100,1000] [--out DIR]
//
// Writes experiments/depth-table.{md,json} (unless --depths is given) and keeps each run's diagnose.json
// and plots in --out (default: a temporary directory). Batch: the first 16 MNIST test images; the
// spectrum is that of sample 0's Jacobian ∂x_L/∂x_0; every model uses its defaults (roaf-mlp: alpha 1,
// beta = defaultMlpBeta(L), one haar filter per layer).

import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, '..', 'dist', 'src', 'cli', 'main.js');
const arg = (name) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const custom = arg('--depths');
const DEPTHS = (custom ?? '100,1000,10000,50000').split(',').map(Number);
const MODELS = ['roaf-mlp', 'mlp', 'resmlp'];
const outRoot = arg('--out') ?? mkdtempSync(join(tmpdir(), 'roaf-depth-table-'));

const rows = [];
for (const depth of DEPTHS) {
  for (const model of MODELS) {
    const out = join(outRoot, `${model}-L${depth}`);
    const started = performance.now();
    const result = spawnSync(
      process.execPath,
      [
        cli,
        'diagnose',
        '--model',
        model,
        '--task',
        'mnist',
        '--depth',
        String(depth),
        '--width',
        '64',
        '--batch',
        '16',
        '--json',
        '--quiet',
        '--out',
        out,
      ],
      { encoding: 'utf8', maxBuffer: 1 << 30 },
    );
    const wall = (performance.now() - started) / 1000;
    if (result.status !== 0) throw new Error(`diagnose ${model} L=${depth} failed: ${result.stderr}`);
    const d = JSON.parse(result.stdout.trim().split('\n').pop());
    const row = {
      model,
      depth,
      alpha: d.config.alpha,
      beta: d.config.beta,
      backend: d.backend,
      ratio: d.gradients.first_last_ratio,
      log10_ratio: d.gradients.log10_first_last_ratio,
      log10_sigma_min: d.spectrum.log10.min,
      log10_sigma_max: d.spectrum.log10.max,
      inside_bounds: d.bounds.inside,
      seconds: d.seconds,
      wall_seconds: Number(wall.toFixed(1)),
      out,
    };
    rows.push(row);
    process.stderr.write(
      `${model} L=${depth}: ratio 10^${row.log10_ratio}, log10 σ in [${row.log10_sigma_min}, ${row.log10_sigma_max}], ` +
        `inside bounds ${row.inside_bounds}, ${row.wall_seconds} s\n`,
    );
  }
}

const ratio = (r) =>
  Math.abs(r.log10_ratio) < 4 ? Number(r.ratio.toPrecision(3)).toString() : `10^${r.log10_ratio.toFixed(1)}`;
const f = (x) => (x === null ? '−∞' : x.toFixed(3));
const lines = [
  '# Gradient flow at initialisation: roaf-mlp vs mlp vs resmlp',
  '',
  `Produced by \`node experiments/depth-table.mjs\` (${new Date().toISOString().slice(0, 10)}; backend: ${rows[0].backend}). ` +
    "Width 64, MNIST, batch = the first 16 test images, float32 model, spectrum in float64 of sample 0's ∂x_L/∂x_0. " +
    'Ratio = ||∂loss/∂x_0|| / ||∂loss/∂x_L||. Time = the whole `roaf diagnose` command (model construction, data, ' +
    'gradients, spectrum, bounds, plots).',
  '',
  '| model | L | alpha, beta | first/last ratio | log10 σ_min | log10 σ_max | inside bounds | diagnose time |',
  '|---|---:|---|---:|---:|---:|---|---:|',
  ...rows.map(
    (r) =>
      `| ${r.model} | ${r.depth.toLocaleString('en-US')} | ${r.alpha}, ${Number(r.beta.toPrecision(3))} | ${ratio(r)} | ` +
      `${f(r.log10_sigma_min)} | ${f(r.log10_sigma_max)} | ${r.inside_bounds ? 'yes' : 'NO'} | ${r.wall_seconds} s |`,
  ),
  '',
  'Seconds inside diagnose (gradients / spectrum / bounds): ' +
    rows
      .map((r) => `${r.model} L=${r.depth}: ${r.seconds.gradients} / ${r.seconds.spectrum} / ${r.seconds.bounds}`)
      .join('; ') +
    '.',
  '',
];
if (custom === undefined) {
  writeFileSync(join(here, 'depth-table.md'), lines.join('\n'));
  writeFileSync(
    join(here, 'depth-table.json'),
    JSON.stringify(
      rows.map(({ out, ...r }) => r),
      null,
      1,
    ) + '\n',
  );
}
process.stdout.write(lines.join('\n'));
