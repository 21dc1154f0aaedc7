#!/usr/bin/env node
// Regenerates the results tables of README.md (between `<!-- results:<claim> -->` and
// `<!-- /results:<claim> -->`) from experiments/results/<claim>/*/result.json, written by `roaf repro`.
// `--check` changes nothing and exits 1 when the README is out of date (the test suite checks the same).
// Needs the built package: `npm run build` first.

import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { staleClaims, updateReadme } = await import(pathToFileURL(join(root, 'dist', 'src', 'repro', 'tables.js')).href);
const readmePath = join(root, 'README.md');
const results = join(root, 'experiments', 'results');
const readme = readFileSync(readmePath, 'utf8');
const stale = staleClaims(readme, results);

if (process.argv.includes('--check')) {
  if (stale.length > 0) {
    console.error(
      `README.md: the results of ${stale.join(', ')} disagree with experiments/results; run node scripts/results-tables.mjs`,
    );
    process.exit(1);
  }
  console.log('README.md: results tables are up to date');
} else {
  writeFileSync(readmePath, updateReadme(readme, results));
  console.log(
    stale.length > 0
      ? `README.md: regenerated the results of ${stale.join(', ')}`
      : 'README.md: results tables were already up to date',
  );
}
