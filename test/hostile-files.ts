// Helpers of the hostile-input and fuzzing suites (not a test file): a small real checkpoint to corrupt,
// safetensors files taken apart and put back together, and the CLI run as a user would.

import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { referenceBackend } from '../src/backend/reference.js';
import { loadTask } from '../src/data/tasks.js';
import type { FilterKind } from '../src/nn/filter.js';
import { createModel } from '../src/models/factory.js';
import { DEFAULT_OPTIMIZER } from '../src/train/optimizer.js';
import { runTraining } from '../src/train/trainer.js';

export const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

/** Runs `roaf ARGS`; returns exit code, stdout and stderr. */
export function roaf(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const out = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { status: out.status, stdout: out.stdout, stderr: out.stderr };
}

/** A run directory with a checkpoint of a tiny roaf-mlp (depth 3, width 8) trained for one epoch on 32 images. */
export function makeCheckpointRun(filter: FilterKind, root = mkdtempSync(join(tmpdir(), 'roaf-hostile-'))): string {
  const dir = join(root, `run-${filter}`);
  const data = loadTask('mnist', { seed: 0, trainLimit: 32, testLimit: 16 });
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
      filter,
      sharedFilter: false,
      inputScale: 1,
      seed: 0,
      dtype: 'float32',
    },
    referenceBackend,
  );
  runTraining({
    model,
    train: data.train,
    test: data.test,
    outDir: dir,
    task: { name: 'mnist', trainLimit: 32, testLimit: 16 },
    training: {
      epochs: 1,
      batch: 16,
      optimizer: { ...DEFAULT_OPTIMIZER, lr: 1e-2 },
      clip: 0,
      evalEvery: 1,
      checkpointEvery: 0,
      logGradients: false,
      seed: 0,
    },
  });
  return dir;
}

/** A copy of a checkpoint directory to corrupt. */
export function copyCheckpoint(from: string, to: string): string {
  cpSync(from, to, { recursive: true });
  return to;
}

export interface Entry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** A safetensors file taken apart: its JSON header (tensor entries and __metadata__) and data bytes. */
export interface Parts {
  header: Record<string, unknown>;
  data: Buffer;
}

export function parseSafetensors(bytes: Buffer): Parts {
  const length = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + length).toString('utf8')) as Record<string, unknown>;
  return { header, data: Buffer.from(bytes.subarray(8 + length)) };
}

export function buildSafetensors(parts: { header: unknown; data: Uint8Array }): Buffer {
  const json = Buffer.from(JSON.stringify(parts.header), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([prefix, json, parts.data]);
}

export function readParts(path: string): Parts {
  return parseSafetensors(readFileSync(path));
}

export function writeParts(path: string, parts: Parts): void {
  writeFileSync(path, buildSafetensors(parts));
}

/** The float32 values of tensor `name` in `parts`, as a view that writes through to the data bytes. */
export function tensorF32(parts: Parts, name: string): Float32Array {
  const entry = parts.header[name] as Entry;
  const [begin, end] = entry.data_offsets;
  const copy = new Uint8Array(parts.data.subarray(begin, end));
  const view = new Float32Array(copy.buffer);
  return new Proxy(view, {
    set(target, key, value: number) {
      const ok = Reflect.set(target, key, value);
      parts.data.set(copy, begin);
      return ok;
    },
  });
}
