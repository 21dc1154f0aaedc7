// `roaf export` end to end: a trained checkpoint exported on the command line runs in onnxruntime-web as
// the checkpoint runs in roaf; and every kind of bad input (a kind the exporter cannot handle, a missing
// or corrupt checkpoint file, an existing --out without --force, an unknown --format) is one line naming
// the file or option and the problem, exit code 2, and nothing written.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { referenceBackend } from '../src/backend/reference.js';
import { psmnistPermutation } from '../src/data/sequential.js';
import { loadTask } from '../src/data/tasks.js';
import { createModel } from '../src/models/factory.js';
import { loadModelTensors, readCheckpointConfig } from '../src/train/checkpoint.js';
import { compareLogits, onnxLogits, onnxSession } from './onnx-helpers.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');
const work = mkdtempSync(join(tmpdir(), 'roaf-onnx-cli-'));
after(() => rmSync(work, { recursive: true, force: true }));

function roaf(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The lines of stderr that are not the reference backend's notice. */
function errorLines(stderr: string): string[] {
  return stderr
    .trim()
    .split('\n')
    .filter((line) => line !== '' && !line.includes('using the reference backend'));
}

const checkpoint = join(work, 'mlp', 'checkpoint');

before(() => {
  const trained = roaf([
    'train',
    '--task',
    'mnist',
    '--model',
    'roaf-mlp',
    '--depth',
    '6',
    '--width',
    '16',
    '--epochs',
    '1',
    '--train-limit',
    '256',
    '--test-limit',
    '64',
    '--batch',
    '64',
    '--backend',
    'reference',
    '--quiet',
    '--out',
    join(work, 'mlp'),
  ]);
  assert.equal(trained.status, 0, trained.stderr);
});

describe('roaf export', () => {
  it('writes a model that onnxruntime runs as roaf runs the checkpoint, on MNIST test images', async () => {
    const out = join(work, 'mlp.onnx');
    const result = roaf(['export', '--checkpoint', checkpoint, '--format', 'onnx', '--out', out, '--json']);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /^wrote .*mlp\.onnx: roaf-mlp, ONNX opset 17, input 'input' \(B, 784\)/);
    const json = JSON.parse(result.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    assert.equal(json.file_bytes, readFileSync(out).length);
    assert.equal(json.data_path, null);

    const saved = readCheckpointConfig(checkpoint);
    const model = createModel(saved.model, referenceBackend);
    loadModelTensors(checkpoint, model);
    const { test } = loadTask('mnist', { seed: 0, testLimit: 64 });
    const inputs = new Float32Array(64 * 784);
    test.fillBatch(
      Int32Array.from({ length: 64 }, (_, i) => i),
      inputs,
      { labels: new Int32Array(64) },
    );
    const roafLogits = Float64Array.from(model.forward(64, 1, inputs));
    const onnx = await onnxLogits(await onnxSession(new Uint8Array(readFileSync(out))), inputs, [64, 784]);
    const comparison = compareLogits(roafLogits, onnx.data, 10);
    assert.ok(comparison.maxRelative <= 1e-4, `max relative difference ${comparison.maxRelative.toExponential(2)}`);
    assert.equal(comparison.sameClass, 1);

    // --force replaces it
    const again = roaf(['export', '--checkpoint', checkpoint, '--out', out, '--force']);
    assert.equal(again.status, 0, again.stderr);
  });

  it('a psMNIST model carries its input permutation in the metadata, and the export says the inputs are permuted', () => {
    const run = join(work, 'psmnist');
    const trained = roaf([
      'train',
      '--task',
      'psmnist',
      '--model',
      'roaf-rnn',
      '--hidden',
      '4',
      '--epochs',
      '1',
      '--train-limit',
      '16',
      '--test-limit',
      '4',
      '--batch',
      '16',
      '--backend',
      'reference',
      '--quiet',
      '--out',
      run,
    ]);
    assert.equal(trained.status, 0, trained.stderr);
    const out = join(work, 'psmnist.onnx');
    const result = roaf(['export', '--checkpoint', join(run, 'checkpoint'), '--out', out]);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /input 'input' \(T, B, 1\) time-major/);
    assert.match(result.stderr, /already permuted.*new Random\(20251\)\.permutation\(784\)/);
    // metadata_props are protobuf strings: the key and the JSON list appear verbatim in the file
    const bytes = readFileSync(out);
    assert.ok(bytes.includes('roaf.input_permutation'));
    assert.ok(bytes.includes(JSON.stringify([...psmnistPermutation()])));
  });
});

describe('roaf export: bad input is one line naming the file or option, exit code 2, nothing written', () => {
  /** Runs export into a fresh directory and checks the failure; returns the one error line. */
  function fails(args: string[], outDir = mkdtempSync(join(work, 'out-'))): string {
    const before = readdirSync(outDir);
    const result = roaf(['export', ...args, '--out', join(outDir, 'model.onnx')]);
    assert.equal(result.status, 2, `exit code 2, got ${result.status}: ${result.stderr}`);
    const lines = errorLines(result.stderr);
    assert.equal(lines.length, 1, `one line, got:\n${result.stderr}`);
    assert.equal(result.stdout, '');
    assert.deepEqual(readdirSync(outDir), before, 'nothing written, no temporary file left');
    return lines[0]!;
  }

  /** A copy of the trained checkpoint to damage. */
  function copyCheckpoint(name: string): string {
    const dir = join(work, name, 'checkpoint');
    mkdirSync(dirname(dir), { recursive: true });
    cpSync(checkpoint, dir, { recursive: true });
    return dir;
  }

  it('a checkpoint of a model kind the exporter cannot handle names config.json and the kind', () => {
    const dir = copyCheckpoint('unknown-kind');
    const configPath = join(dir, 'config.json');
    const config = JSON.parse(readFileSync(configPath, 'utf8')) as { model: { model: string } };
    config.model.model = 'transformer';
    writeFileSync(configPath, JSON.stringify(config));
    const line = fails(['--checkpoint', dir]);
    // refused when config.json is read (the field and the kinds there are), before the exporter sees it
    assert.ok(line.includes(configPath) && line.includes("'transformer'") && line.includes("'model.model'"), line);
  });

  it('a missing checkpoint directory names --checkpoint', () => {
    const line = fails(['--checkpoint', join(work, 'no-such-run', 'checkpoint')]);
    assert.match(line, /--checkpoint .*no-such-run.*: no such checkpoint directory/);
  });

  it('a missing model.safetensors names the file', () => {
    const dir = copyCheckpoint('missing-tensors');
    rmSync(join(dir, 'model.safetensors'));
    assert.match(fails(['--checkpoint', dir]), /model\.safetensors: checkpoint file is missing/);
  });

  it('a truncated model.safetensors names the file and says it is truncated', () => {
    const dir = copyCheckpoint('truncated');
    const path = join(dir, 'model.safetensors');
    truncateSync(path, readFileSync(path).length - 100);
    const line = fails(['--checkpoint', dir]);
    assert.ok(line.includes(path) && /truncated/.test(line), line);
  });

  it('a corrupt config.json names the file', () => {
    const dir = copyCheckpoint('corrupt-config');
    writeFileSync(join(dir, 'config.json'), '{"format": "roaf-checkpoint", ');
    assert.match(fails(['--checkpoint', dir]), /config\.json: not valid JSON/);
  });

  it('a config.json with an impossible model setting names the file and the setting', () => {
    const dir = copyCheckpoint('bad-depth');
    const configPath = join(dir, 'config.json');
    const config = JSON.parse(readFileSync(configPath, 'utf8')) as { model: { depth: number } };
    config.model.depth = -3;
    writeFileSync(configPath, JSON.stringify(config));
    const line = fails(['--checkpoint', dir]);
    // a config.json error names the field, not the command-line option of the same meaning
    assert.ok(line.includes(configPath) && line.includes("'model.depth'") && line.includes('-3'), line);
  });

  it('an existing --out without --force names it and leaves it as it was', () => {
    const outDir = mkdtempSync(join(work, 'exists-'));
    writeFileSync(join(outDir, 'model.onnx'), 'not mine to overwrite');
    const line = fails(['--checkpoint', checkpoint], outDir);
    assert.match(line, /--out .*model\.onnx: file exists \(use --force to overwrite it\)/);
    assert.equal(readFileSync(join(outDir, 'model.onnx'), 'utf8'), 'not mine to overwrite');
  });

  it('an unknown --format names the option, the value and the formats there are', () => {
    assert.match(
      fails(['--checkpoint', checkpoint, '--format', 'tflite']),
      /--format must be one of onnx, got 'tflite'/,
    );
  });

  it('an --out in a directory that does not exist names it', () => {
    const result = roaf(['export', '--checkpoint', checkpoint, '--out', join(work, 'nowhere', 'model.onnx')]);
    assert.equal(result.status, 2);
    assert.match(errorLines(result.stderr)[0]!, /--out .*nowhere.*: directory .* does not exist/);
  });
});
