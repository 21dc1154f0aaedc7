// The browser entry (roaf/browser) reaches no Node built-in: walks the import graph of the compiled
// entry and its training worker (dist/src/browser/), following every relative import, and fails on any
// import that is not a relative file (a `node:` module, a bare built-in like 'fs', or a package that
// would need a bundler) and on any use of Node's globals (`process`, `Buffer`, `require`, `__dirname`)
// in a reached file. Also checks the entry is in package.json's exports.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const dist = fileURLToPath(new URL('../src/', import.meta.url));
const root = fileURLToPath(new URL('../../', import.meta.url));
const ENTRIES = ['browser/index.js', 'browser/training-worker.js'];

/** Every import specifier of a compiled ES module (static, re-export, side-effect and dynamic). */
function importsOf(source: string): string[] {
  const found: string[] = [];
  const patterns = [
    /^\s*(?:import|export)\s[^'"]*?\sfrom\s*['"]([^'"]+)['"]/gm,
    /^\s*import\s*['"]([^'"]+)['"]/gm,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const pattern of patterns) for (const match of source.matchAll(pattern)) found.push(match[1]!);
  return found;
}

/** Node's globals, outside comments and strings (a rough strip is enough for compiled code). */
function nodeGlobalsIn(source: string): string[] {
  const code = source
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/\/\/.*$/gm, '')
    .replace(/`(?:\\.|[^`\\])*`|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"/g, '""');
  return ['process', 'Buffer', 'require', '__dirname', '__filename', 'global'].filter((name) =>
    new RegExp(`(?<![\\w$.])${name}(?![\\w$])`).test(code),
  );
}

function walk(): { files: string[]; problems: string[] } {
  const seen = new Set<string>();
  const problems: string[] = [];
  const visit = (file: string, from: string[]): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const chain = [...from, relative(dist, file)];
    if (!existsSync(file)) {
      problems.push(`missing file: ${chain.join(' -> ')}`);
      return;
    }
    const source = readFileSync(file, 'utf8');
    for (const name of nodeGlobalsIn(source)) problems.push(`uses Node's global '${name}': ${chain.join(' -> ')}`);
    for (const spec of importsOf(source)) {
      if (spec.startsWith('./') || spec.startsWith('../')) visit(resolve(dirname(file), spec), chain);
      else problems.push(`imports '${spec}': ${chain.join(' -> ')}`);
    }
  };
  for (const entry of ENTRIES) visit(resolve(dist, entry), []);
  return { files: [...seen], problems };
}

describe('browser entry', () => {
  it('reaches no Node built-in, no package and no Node global through its imports', () => {
    const { files, problems } = walk();
    assert.ok(files.length > 20, `the walk reached only ${files.length} files: is the import scan broken?`);
    assert.ok(
      files.some((f) => f.endsWith('models/roaf-mlp.js')) && files.some((f) => f.endsWith('backend/reference.js')),
    );
    assert.deepEqual(problems, []);
  });

  it('the scan itself finds node: imports and Node globals (so a clean walk means something)', () => {
    assert.deepEqual(importsOf(`import { x } from 'node:fs';\nexport * from "./a.js";\nconst m = import('os');`), [
      'node:fs',
      './a.js',
      'os',
    ]);
    assert.deepEqual(nodeGlobalsIn(`const a = process.env.X; // Buffer\nconst s = 'require';`), ['process']);
    // the Node side of the same layers does reach built-ins: the walk would see them
    const nodeSide = readFileSync(resolve(dist, 'train/checkpoint.js'), 'utf8');
    assert.ok(importsOf(nodeSide).includes('node:fs'));
  });

  it('is exported as roaf/browser', () => {
    const pkg = JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8')) as {
      exports: Record<string, { import: string; types: string }>;
    };
    const entry = pkg.exports['./browser'];
    assert.ok(entry, "package.json exports has no './browser'");
    assert.equal(entry.import, './dist/src/browser/index.js');
    assert.ok(existsSync(resolve(root, entry.import)));
  });
});
