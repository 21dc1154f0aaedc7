#!/usr/bin/env node
// How long building a very deep model takes, and how much memory it holds: the two sizes of the depth claims
// (docs/kernels.md, "The QR of the filters"), for the lead to time on a quiet machine. Each measurement runs in
// a fresh Node process, so its peak resident memory is its own; one JSON line per measurement:
//   {"what":"model","model":"roaf-mlp","depth":50000,"width":64,"filter":"haar","backend":"native (avx2, 2 threads)",
//    "seconds":...,"peak_rss_bytes":...,"heap_used_bytes":...,"parameters":...}
// `what` is `model` (createModel: filters, parameters, their initialisation) or `filters` (makeFilters alone, the
// share of the QR and of drawing its random matrices).
//
//   npm run build && node scripts/construction-time.mjs                 # both sizes below, native backend
//   node scripts/construction-time.mjs --depth 5000 --width 64 --filter haar --backend reference
//   node scripts/construction-time.mjs --only model                       # skip the filters-only runs
//
// Default sizes: depth 50,000, width 64, haar filters (the deep-mlp claim), and depth 1,000,000, width 16,
// permutation filters (the million-layer claim). The million-layer model's V8 heap needs more than Node's
// default limit, so every child runs with --max-old-space-size (the --heap-mb option, default 8192).

import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = (...parts) => pathToFileURL(join(root, 'dist', 'src', ...parts)).href;

const { values } = parseArgs({
  options: {
    depth: { type: 'string' },
    width: { type: 'string' },
    filter: { type: 'string' },
    backend: { type: 'string', default: 'native' },
    only: { type: 'string' },
    'heap-mb': { type: 'string', default: '8192' },
    child: { type: 'string' }, // internal: `model` or `filters`, run in this process
  },
});

/** One measurement in this process: prints its JSON line. */
async function measure(what, { depth, width, filter, backendName }) {
  const { loadBackend } = await import(dist('backend', 'index.js'));
  const { createModel } = await import(dist('models', 'factory.js'));
  const { makeFilters } = await import(dist('nn', 'filter.js'));
  const backend = loadBackend(backendName, { dtype: 'float32' });
  if (backend === null) throw new Error(`the ${backendName} backend is not available`);
  const start = process.hrtime.bigint();
  let parameters = null;
  if (what === 'model') {
    const model = createModel(
      { model: 'roaf-mlp', depth, width, inputDim: 784, outputs: 10, filter, sharedFilter: false, seed: 1 },
      backend,
    );
    parameters = model.params.size;
  } else {
    makeFilters(filter, width, depth, false, 1, 'float32', backend);
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const line = {
    what,
    model: 'roaf-mlp',
    depth,
    width,
    filter,
    backend: backend.describe(),
    seconds: Math.round(seconds * 1000) / 1000,
    peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
    heap_used_bytes: process.memoryUsage().heapUsed,
    parameters,
  };
  console.log(JSON.stringify(line));
}

function config() {
  return {
    depth: Number(values.depth),
    width: Number(values.width),
    filter: values.filter,
    backendName: values.backend,
  };
}

if (values.child !== undefined) {
  await measure(values.child, config());
} else {
  const sizes =
    values.depth !== undefined || values.width !== undefined || values.filter !== undefined
      ? [{ depth: values.depth ?? '50000', width: values.width ?? '64', filter: values.filter ?? 'haar' }]
      : [
          { depth: '50000', width: '64', filter: 'haar' },
          { depth: '1000000', width: '16', filter: 'permutation' },
        ];
  const kinds = values.only !== undefined ? [values.only] : ['filters', 'model'];
  let failed = false;
  for (const size of sizes) {
    for (const what of kinds) {
      const args = [
        `--max-old-space-size=${values['heap-mb']}`,
        fileURLToPath(import.meta.url),
        '--child',
        what,
        '--depth',
        size.depth,
        '--width',
        size.width,
        '--filter',
        size.filter,
        '--backend',
        values.backend,
      ];
      const result = spawnSync(process.execPath, args, { stdio: 'inherit' });
      if (result.status !== 0) {
        console.error(`construction-time: ${what} at depth ${size.depth}, width ${size.width} failed`);
        failed = true;
      }
    }
  }
  process.exitCode = failed ? 1 : 0;
}
