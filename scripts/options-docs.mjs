#!/usr/bin/env node
// Writes docs/options.md and the options table of README.md from the options table
// (src/options/table.ts, rendered by src/options/markdown.ts). Run after editing the table:
//
//   npm run docs:options            (builds first; `-- --check` only reports whether the files are current)
//
// test/options.test.ts fails when the files and the table disagree.

import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderOptionsDoc, replaceReadmeTable } from '../dist/src/options/markdown.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const check = process.argv.includes('--check');
const files = [
  [join(root, 'docs', 'options.md'), () => renderOptionsDoc()],
  [join(root, 'README.md'), (current) => replaceReadmeTable(current)],
];
let stale = 0;
for (const [path, render] of files) {
  let current = '';
  try {
    current = readFileSync(path, 'utf8');
  } catch {
    // a missing file is written (or reported stale)
  }
  const wanted = render(current);
  if (wanted === current) continue;
  stale += 1;
  if (check) {
    console.error(`${path} is out of date: run npm run docs:options`);
  } else {
    writeFileSync(path, wanted);
    console.log(`wrote ${path}`);
  }
}
process.exitCode = check && stale > 0 ? 1 : 0;
