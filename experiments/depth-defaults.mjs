// Measures, at initialisation, the ratio ||∂loss/∂x_0|| / ||∂loss/∂x_L|| of a ROAF MLP (width 64,
// alpha = 1, beta = c / sqrt(L)) on a batch of real MNIST test images, for depths 10 .. 50,000 and a
// few constants c, plus the convex form (alpha = 1 - beta) for comparison. The default
// `defaultMlpBeta(L)` is chosen from this table (docs/defaults.md); the ratio must stay in [0.1, 10] at
// every depth.
//
//   npm run build && node experiments/depth-defaults.mjs [--quick]   (writes experiments/depth-defaults.{json,md})
//
// Batch B = 16 (the first 16 MNIST test images) and one filter shared by all layers (a per-layer haar
// filter at depth 50,000 needs 0.8 GB); rows marked `per-layer` use one filter per layer to show that
// sharing does not change the ratio. Gradients through 50,000 layers come from the model's own layer
// kernels with exact power-of-two rescaling (src/models/gradient-curve.ts), so nothing underflows.

import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
// the package's public API, as a user would import it (the modules behind it may move)
import { createModel, defaultMlpBeta, diagnose, loadBackend, loadTask } from '../dist/src/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const quick = process.argv.includes('--quick');
const DEPTHS = quick ? [10, 100, 1000] : [10, 30, 100, 300, 1000, 3000, 10000, 30000, 50000];
const CONSTANTS = [0.1, 0.3, 1, 3];
const B = 16;
const backend = loadBackend('auto', { quiet: true });
const data = loadTask('mnist', { seed: 0, testLimit: B });

function measure(depth, alpha, beta, { sharedFilter = true, seed = 0 } = {}) {
  const model = createModel(
    {
      model: 'roaf-mlp',
      inputDim: 784,
      outputs: 10,
      readout: 'last',
      depth,
      width: 64,
      hidden: 64,
      alpha,
      beta,
      filter: 'haar',
      sharedFilter,
      inputScale: 1,
      seed,
      dtype: 'float32',
    },
    backend,
  );
  const d = diagnose(model, data.test, { batch: B, samples: 0 });
  return {
    ratio: d.gradients.first_last_ratio,
    log10Ratio: d.gradients.log10_first_last_ratio,
    seconds: d.seconds.total,
  };
}

const rows = [];
const started = performance.now();
for (const depth of DEPTHS) {
  const settings = [
    ...CONSTANTS.map((c) => ({ label: `alpha 1, beta ${c}/√L`, alpha: 1, beta: Math.min(0.5, c / Math.sqrt(depth)) })),
    { label: 'default (defaultMlpBeta)', alpha: 1, beta: defaultMlpBeta(depth) },
    { label: 'convex, beta 1/L', alpha: 1 - 1 / depth, beta: 1 / depth },
  ];
  if (depth <= 3000)
    settings.push({ label: 'default, per-layer filters', alpha: 1, beta: defaultMlpBeta(depth), sharedFilter: false });
  if (depth <= 10000) settings.push({ label: 'default, seed 1', alpha: 1, beta: defaultMlpBeta(depth), seed: 1 });
  for (const s of settings) {
    const m = measure(depth, s.alpha, s.beta, s);
    rows.push({ depth, setting: s.label, alpha: s.alpha, beta: s.beta, ...m });
    process.stderr.write(
      `L=${depth} ${s.label}: beta ${s.beta.toPrecision(3)}, ratio ${m.ratio?.toPrecision(4) ?? `10^${m.log10Ratio}`} (${m.seconds.toFixed(1)} s)\n`,
    );
  }
}

const fmt = (r) => (r.ratio !== null && r.ratio !== 0 ? r.ratio.toPrecision(3) : `10^${r.log10Ratio?.toFixed(1)}`);
const settingsOrder = [...new Set(rows.map((r) => r.setting))];
const lines = [
  '# First/last gradient-norm ratio of a ROAF MLP at initialisation',
  '',
  `Produced by \`node experiments/depth-defaults.mjs\` (${new Date().toISOString().slice(0, 10)}, backend: ${backend.describe()}, ` +
    `${((performance.now() - started) / 1000).toFixed(0)} s). Width 64, MNIST test batch B = ${B}, float32, seed 0, ` +
    'one shared haar filter unless marked per-layer. Ratio = ||∂loss/∂x_0|| / ||∂loss/∂x_L||; the target is [0.1, 10].',
  '',
  `| setting | ${DEPTHS.map((d) => `L = ${d.toLocaleString('en-US')}`).join(' | ')} |`,
  `|---|${DEPTHS.map(() => '---:').join('|')}|`,
  ...settingsOrder.map(
    (setting) =>
      `| ${setting} | ${DEPTHS.map((d) => {
        const r = rows.find((x) => x.depth === d && x.setting === setting);
        return r ? fmt(r) : '';
      }).join(' | ')} |`,
  ),
  '',
  `Default beta: ${DEPTHS.map((d) => `L=${d}: ${defaultMlpBeta(d).toPrecision(3)}`).join(', ')}.`,
  '',
];
if (!quick) {
  writeFileSync(
    join(here, 'depth-defaults.json'),
    JSON.stringify({ batch: B, width: 64, backend: backend.describe(), rows }, null, 1) + '\n',
  );
  writeFileSync(join(here, 'depth-defaults.md'), lines.join('\n'));
}
process.stdout.write(lines.join('\n'));
