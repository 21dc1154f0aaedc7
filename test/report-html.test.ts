// `roaf report`: a self-contained HTML page for several runs (no script, no external resource), every
// plot rendered as inline SVG and written as SVG and PNG files, and bad input handled: a directory
// without metrics or a missing one is a one-line error; a truncated last metrics line is skipped with a
// warning that names the file and the line, and the rest is reported.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  appendFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { referenceBackend as backend } from '../src/backend/reference.js';
import { loadTask } from '../src/data/tasks.js';
import { diagnose } from '../src/diagnostics/diagnose.js';
import { gradientSummaryCallback } from '../src/diagnostics/gradients.js';
import type { ModelKind } from '../src/models/config.js';
import { createModel } from '../src/models/factory.js';
import { writeDiagnosticsOutputs } from '../src/report/figures.js';
import { buildReport } from '../src/report/html.js';
import { readRun, readRuns } from '../src/report/runs.js';
import { DEFAULT_OPTIMIZER } from '../src/train/optimizer.js';
import { runTraining } from '../src/train/trainer.js';
import { UsageError } from '../src/util/errors.js';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'roaf-report-'));
const MODELS: ModelKind[] = ['roaf-mlp', 'mlp', 'resmlp'];

/** A short real training run with gradient logging, a checkpoint and diagnostics in RUN/diagnostics. */
async function makeRun(kind: ModelKind): Promise<string> {
  const dir = join(root, kind);
  const data = loadTask('mnist', { seed: 0, trainLimit: 96, testLimit: 32 });
  const model = createModel(
    {
      model: kind,
      inputDim: 784,
      outputs: 10,
      readout: 'last',
      depth: 10,
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
    task: { name: 'mnist', trainLimit: 96, testLimit: 32 },
    training: {
      epochs: 2,
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

function report(...args: string[]) {
  return spawnSync(process.execPath, [cli, 'report', ...args], { encoding: 'utf8' });
}

/** Every way a page could reach the network: scripts, links, frames, external src/href/url(), imports. */
function externalReferences(html: string): string[] {
  const withoutNamespaces = html.replace(/xmlns(:\w+)?="[^"]*"/g, '');
  const patterns = [
    /<script/gi,
    /<link/gi,
    /<iframe/gi,
    /<object/gi,
    /<embed/gi,
    /@import/gi,
    /\bsrc\s*=/gi,
    /\bhref\s*=\s*"(?!#)/gi,
    /url\((?!#)/gi,
    /https?:\/\//gi,
    /\/\/[a-z0-9.-]+\.[a-z]{2,}\//gi,
  ];
  return patterns.flatMap((p) => withoutNamespaces.match(p) ?? []);
}

describe('roaf report', () => {
  const runs: string[] = [];
  before(async () => {
    for (const kind of MODELS) runs.push(await makeRun(kind));
  });

  it('builds one self-contained page with every run, plot and configuration', async () => {
    const figuresDir = join(root, 'figures');
    const result = await buildReport(readRuns(runs), { title: 'three models', figuresDir, generated: 'test' });
    const html = result.html;
    assert.deepEqual(externalReferences(html), []);
    assert.deepEqual(result.warnings, []);
    const names = result.figures.map((f) => f.name).sort();
    assert.deepEqual(names, ['gradient-norms-layer', 'gradient-ratio', 'loss', 'spectrum', 'test-accuracy']);
    for (const name of names) {
      const figure = html.match(
        new RegExp(
          `<figure class="plot" data-plot="${name}"><svg[^>]*>(.*?)</svg>(<figcaption>[^<]*</figcaption>)?</figure>`,
          's',
        ),
      );
      assert.ok(figure, `figure ${name} is not inline SVG`);
      assert.match(figure[1]!, /<path/);
      assert.match(readFileSync(join(figuresDir, `${name}.svg`), 'utf8'), /^<svg/);
      assert.deepEqual(
        [...readFileSync(join(figuresDir, `${name}.png`)).subarray(0, 8)],
        [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
      );
    }
    for (const kind of MODELS) {
      assert.match(html, new RegExp(`<section class="run" data-run="${kind}">`));
      assert.match(html, new RegExp(`<td>${kind}</td>`)); // in the summary table
    }
    assert.match(html, /test accuracy \(final\)/);
    assert.match(html, /diagnose: spectrum inside bounds<\/th><td>yes/);
    assert.match(html, /identity \(shared\)/); // resmlp's filter, from its checkpoint configuration
  });

  it('on the command line writes the page and the figure files, exit code 0', () => {
    const out = join(root, 'cli', 'compare.html');
    const result = report(...runs, '--out', out, '--title', 'compare');
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /report: .*compare\.html \(3 runs, 5 plots/);
    assert.ok(existsSync(out));
    assert.equal(readdirSync(join(root, 'cli', 'compare-plots')).length, 10);
  });

  it('reports a run killed mid-write: the truncated last line is skipped with a warning naming it', async () => {
    const killed = join(root, 'killed');
    cpSync(runs[0]!, killed, { recursive: true });
    const metrics = join(killed, 'metrics.jsonl');
    const complete = readFileSync(metrics, 'utf8').trim().split('\n').length;
    appendFileSync(metrics, '{"epoch":2,"step":7,"train_loss":0.9,"test_lo');
    const run = readRun(killed);
    assert.equal(run.records.length, complete);
    assert.equal(run.warnings.length, 1);
    assert.match(
      run.warnings[0]!,
      new RegExp(
        `metrics\\.jsonl: skipped line ${complete + 1}: truncated or not JSON .*reporting the ${complete} readable records`,
      ),
    );
    const built = await buildReport([run], { title: 't', figuresDir: join(root, 'killed-figures'), generated: 'test' });
    assert.match(built.html, /<ul class="warnings" id="warnings"><li>.*skipped line/);
    assert.ok(built.figures.some((f) => f.name === 'test-accuracy'));
    const result = report(killed, '--out', join(root, 'killed.html'));
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stderr, /^roaf: warning: .*killed\/metrics\.jsonl: skipped line \d+: truncated/m);
  });

  it('reports a run whose only metrics line is truncated, with what it has', () => {
    const early = join(root, 'early');
    mkdirSync(early, { recursive: true });
    writeFileSync(join(early, 'metrics.jsonl'), '{"epoch":0.5,"st');
    const run = readRun(early);
    assert.equal(run.records.length, 0);
    assert.ok(run.warnings.some((w) => /skipped line 1/.test(w)));
    assert.ok(run.warnings.some((w) => /no evaluation recorded yet/.test(w)));
    assert.equal(report(early, '--out', join(root, 'early.html')).status, 0);
  });

  it('a finished repro run whose checkpoint is gone: configuration from result.json; a bad one is named', async () => {
    const finished = join(root, 'finished');
    cpSync(runs[2]!, finished, { recursive: true });
    const { model, task, training } = JSON.parse(readFileSync(join(finished, 'checkpoint', 'config.json'), 'utf8')) as {
      model: unknown;
      task: unknown;
      training: unknown;
    };
    rmSync(join(finished, 'checkpoint'), { recursive: true });
    assert.match(readRun(finished).warnings.join('\n'), /no checkpoint \(nor result\.json\), so no configuration/);
    const resultPath = join(finished, 'result.json');
    writeFileSync(resultPath, JSON.stringify({ format: 'roaf-repro-result', config: { model, task, training } }));
    const run = readRun(finished);
    assert.deepEqual(run.warnings, []);
    assert.equal(run.config?.model.model, 'resmlp');
    const built = await buildReport([run], {
      title: 't',
      figuresDir: join(root, 'finished-figures'),
      generated: 'test',
    });
    assert.match(built.html, /identity \(shared\)/); // resmlp's filter, now from result.json
    writeFileSync(resultPath, JSON.stringify({ config: { model, task, training: { epochs: 'ten' } } }));
    const bad = readRun(finished);
    assert.equal(bad.config, null);
    assert.match(bad.warnings.join('\n'), /finished\/result\.json: configuration skipped: .*config\.training\.epochs/);
  });

  it('a directory without metrics, a missing directory, or no directory: one-line errors, exit code 2', () => {
    const empty = join(root, 'empty');
    mkdirSync(empty, { recursive: true });
    assert.throws(
      () => readRun(empty),
      (e: unknown) => e instanceof UsageError && /empty: no metrics\.jsonl/.test(e.message),
    );
    for (const [args, pattern] of [
      [[empty], /^roaf: .*empty: no metrics\.jsonl \(nor diagnose\.json\)/],
      [[runs[0]!, join(root, 'missing')], /^roaf: .*missing: no such run directory$/],
      [[], /missing required argument/],
    ] as const) {
      const result = report(...args, '--out', join(root, 'never.html'));
      assert.equal(result.status, 2, result.stderr);
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
      assert.match(result.stderr.trim(), pattern);
    }
    assert.ok(!existsSync(join(root, 'never.html')));
  });
});
