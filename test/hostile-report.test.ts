// `roaf report` on hostile run directories: markup (`<script>`, `"><img onerror>`, `</svg>`, `javascript:`
// URLs) in every string field of config.json, diagnose.json and metrics.jsonl and in the run directory's
// own name, and values of the wrong type where numbers belong. The page must contain no element, attribute
// or URL the report did not write itself (checked by tokenising every tag of the output), and each value of
// the wrong type is a warning naming the file and the field. Run files that are not regular files (a FIFO,
// a directory) are refused with a one-line error instead of hanging the report.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { referenceBackend as backend } from '../src/backend/reference.js';
import { loadTask } from '../src/data/tasks.js';
import { diagnose } from '../src/diagnostics/diagnose.js';
import { gradientSummaryCallback } from '../src/diagnostics/gradients.js';
import { createModel } from '../src/models/factory.js';
import { writeDiagnosticsOutputs } from '../src/report/figures.js';
import { buildReport } from '../src/report/html.js';
import { readRuns } from '../src/report/runs.js';
import { DEFAULT_OPTIMIZER } from '../src/train/optimizer.js';
import { runTraining } from '../src/train/trainer.js';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'roaf-hostile-report-'));

/** Markup that would add an element, an attribute, close the SVG or run a URL if written unescaped. */
const MARKUP = [
  '<script>alert(1)</script>',
  '"><img src=x onerror=alert(1)>',
  "'><svg onload=alert(1)>",
  '</svg></figure><iframe src="javascript:alert(1)"></iframe>',
  'javascript:alert(1)',
];
/** The same markup without '/', for a directory name. */
const DIR_NAME = `run <script>alert(1)<!-- "><img src=x onerror=alert(1)> javascript:alert(1)`;

/** A short real run with gradient logging, a checkpoint and diagnostics, in a directory named `name`. */
async function makeRun(name: string): Promise<string> {
  const dir = join(root, name);
  const data = loadTask('mnist', { seed: 0, trainLimit: 64, testLimit: 16 });
  const model = createModel(
    {
      model: 'roaf-mlp',
      inputDim: 784,
      outputs: 10,
      readout: 'last',
      depth: 3,
      width: 8,
      hidden: 8,
      alpha: 1,
      beta: 0.1,
      filter: 'haar',
      sharedFilter: false,
      inputScale: 1,
      seed: 0,
      dtype: 'float32',
    },
    backend,
  );
  runTraining({
    model,
    train: data.train,
    test: data.test,
    outDir: dir,
    task: { name: 'mnist', trainLimit: 64, testLimit: 16 },
    training: {
      epochs: 1,
      batch: 32,
      optimizer: { ...DEFAULT_OPTIMIZER, lr: 1e-2 },
      clip: 0,
      evalEvery: 1,
      checkpointEvery: 0,
      logGradients: true,
      seed: 0,
    },
    callbacks: { gradientSummary: gradientSummaryCallback },
  });
  await writeDiagnosticsOutputs(join(dir, 'diagnostics'), diagnose(model, data.test, { batch: 8, samples: 1 }));
  return dir;
}

type Json = Record<string, unknown>;
const readJson = (path: string): Json => JSON.parse(readFileSync(path, 'utf8')) as Json;
const writeJson = (path: string, value: unknown): void => writeFileSync(path, JSON.stringify(value));
const at = (o: Json, key: string): Json => o[key] as Json;

/** Every tag of a page: name and attributes (hostile text is escaped, so each '<' left is the report's). */
function tags(html: string): Array<{ name: string; attributes: Array<[string, string]> }> {
  const out: Array<{ name: string; attributes: Array<[string, string]> }> = [];
  for (const match of html.matchAll(/<\/?([A-Za-z][^\s/>]*)([^>]*)>/g)) {
    const attributes: Array<[string, string]> = [];
    for (const a of match[2]!.matchAll(/([^\s=/]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]+))?/g))
      attributes.push([a[1]!.toLowerCase(), (a[2] ?? '').replace(/^["']|["']$/g, '')]);
    out.push({ name: match[1]!.toLowerCase(), attributes });
  }
  return out;
}

/** What the page contains that the report never writes: scripts, images, frames, event handlers, URLs. */
function injected(html: string): string[] {
  const found: string[] = [];
  const forbidden = new Set(['script', 'img', 'iframe', 'object', 'embed', 'a', 'link', 'foreignobject', 'image']);
  for (const tag of tags(html)) {
    if (forbidden.has(tag.name)) found.push(`<${tag.name}>`);
    for (const [name, value] of tag.attributes) {
      if (name.startsWith('on')) found.push(`${tag.name} ${name}=`);
      // a URL attribute (or a style's url()) that runs code; in other attributes it is inert text
      const url = /(^|:)(href|src|action|formaction)$/.test(name) || (name === 'style' && /url\(/i.test(value));
      if (url && /javascript:/i.test(value)) found.push(`${tag.name} ${name}="${value}"`);
    }
  }
  if (/<!--/.test(html)) found.push('a comment');
  return found;
}

describe('roaf report on hostile run directories', () => {
  let good = '';
  before(async () => {
    good = await makeRun('good');
  });

  it('escapes markup in every string field and in the directory name: no injected element', async () => {
    const dir = await makeRun(DIR_NAME);
    const configPath = join(dir, 'checkpoint', 'config.json');
    const config = readJson(configPath);
    at(config, 'task').name = MARKUP[0];
    at(at(config, 'training'), 'optimizer').kind = MARKUP[1];
    writeJson(configPath, config);
    const diagnosePath = join(dir, 'diagnostics', 'diagnose.json');
    const d = readJson(diagnosePath);
    d.model = MARKUP[2];
    d.backend = MARKUP[3];
    at(d, 'data').dataset = MARKUP[4];
    at(d, 'spectrum').jacobian = MARKUP[0];
    writeJson(diagnosePath, d);
    const metricsPath = join(dir, 'metrics.jsonl');
    const records = readFileSync(metricsPath, 'utf8').trim().split('\n');
    records.push(JSON.stringify({ epoch: 1, step: 99, test_loss: 1, seconds: 1, [MARKUP[1]!]: MARKUP[3] }));
    writeFileSync(metricsPath, records.join('\n') + '\n');

    const result = await buildReport(readRuns([dir, good]), {
      title: MARKUP[3]!,
      figuresDir: join(root, 'figures-markup'),
      generated: MARKUP[0]!,
    });
    assert.deepEqual(result.warnings, []);
    assert.deepEqual(injected(result.html), []);
    for (const figure of result.figures) assert.deepEqual(injected(figure.svg), [], figure.name);
    // the markup is there, as text
    assert.ok(result.html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
    assert.ok(result.html.includes('&quot;&gt;&lt;img src=x onerror=alert(1)&gt;'));
    // every <svg> the report opened is closed by its own </svg>, one per figure
    assert.equal((result.html.match(/<svg\b/g) ?? []).length, result.figures.length);
    assert.equal((result.html.match(/<\/svg>/g) ?? []).length, result.figures.length);
  });

  it('skips a value of the wrong type with a warning naming the file and the field', async () => {
    const dir = await makeRun('wrong-types');
    const configPath = join(dir, 'checkpoint', 'config.json');
    const config = readJson(configPath);
    at(config, 'model').alpha = MARKUP[0];
    writeJson(configPath, config);
    const diagnosePath = join(dir, 'diagnostics', 'diagnose.json');
    const d = readJson(diagnosePath);
    at(at(d, 'spectrum'), 'log10').min = MARKUP[1];
    writeJson(diagnosePath, d);
    const metricsPath = join(dir, 'metrics.jsonl');
    const lines = readFileSync(metricsPath, 'utf8').trim().split('\n');
    const first = JSON.parse(lines[0]!) as Json;
    lines.push(JSON.stringify({ ...first, test_accuracy: MARKUP[3] }));
    lines.push(JSON.stringify({ ...first, gradients: { index: 'layer', positions: [MARKUP[0]], norms: [1] } }));
    lines.push('null', '[1, 2]', JSON.stringify({ ...first, step: '7' }));
    writeFileSync(metricsPath, lines.join('\n') + '\n');

    const [run] = readRuns([dir]);
    const warnings = run!.warnings.join('\n');
    assert.match(
      warnings,
      /config\.json: configuration skipped: field model\.alpha must be a finite number, got "<script>/,
    );
    assert.match(warnings, /diagnose\.json: skipped .*field spectrum\.log10\.min must be a finite number/);
    assert.match(warnings, /metrics\.jsonl: skipped record \d+: field test_accuracy must be a finite number/);
    assert.match(
      warnings,
      /metrics\.jsonl: skipped record \d+: field gradients\.positions\[0\] must be a finite number/,
    );
    assert.match(warnings, /metrics\.jsonl: skipped record \d+: the value must be an object, got null/);
    assert.match(warnings, /metrics\.jsonl: skipped record \d+: field step must be a finite number, got "7"/);
    assert.equal(run!.config, null);
    assert.equal(run!.diagnostics, null);
    assert.equal(run!.records.length, lines.length - 5);

    const result = await buildReport([run!], { title: 't', figuresDir: join(root, 'figures-types'), generated: 'g' });
    assert.deepEqual(injected(result.html), []);
    assert.ok(result.html.includes('field model.alpha must be a finite number, got &quot;&lt;script&gt;'));
  });

  it('refuses run files that are not regular files (FIFO, directory) with one line and exit code 2', () => {
    const dir = join(root, 'special');
    mkdirSync(dir, { recursive: true });
    mkdirSync(join(dir, 'metrics.jsonl'));
    let out = spawnSync(process.execPath, [cli, 'report', dir, '--out', join(root, 'out-special')], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(out.status, 2, out.stderr);
    assert.match(
      out.stderr.trim(),
      /^roaf: .*metrics\.jsonl: the metrics log must be a regular file, but it is a directory$/,
    );
    assert.equal(out.stderr.trim().split('\n').length, 1);
    rmSync(join(dir, 'metrics.jsonl'), { recursive: true });
    const fifo = spawnSync('mkfifo', [join(dir, 'metrics.jsonl')]);
    if (fifo.status !== 0) return; // no mkfifo on this system: the directory case stands
    out = spawnSync(process.execPath, [cli, 'report', dir, '--out', join(root, 'out-fifo')], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(out.status, 2, out.stderr);
    assert.match(out.stderr.trim(), /metrics\.jsonl: the metrics log must be a regular file, but it is a FIFO/);
  });
});
