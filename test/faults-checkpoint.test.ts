// Checkpoint saves under faults, in process (the child-process kills are in faults-cli.test.ts): the save
// sequence is cut at every one of its file-system steps (the fault hook throws there, which leaves the disk
// exactly as a kill would, the writes being synchronous), then cut again at every step of the next save;
// after each cut the directory must hold one complete checkpoint of a generation that was saved, config and
// tensors of the same generation. A full disk (ENOSPC) at any step keeps the previous checkpoint and
// reports the path. Saving does not copy the model (its memory is sampled at every step of the save).

import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { referenceBackend as backend } from '../src/backend/reference.js';
import { createModel } from '../src/models/factory.js';
import type { Model } from '../src/models/model.js';
import {
  loadModelTensors,
  loadOptimizerState,
  readCheckpointConfig,
  resolveCheckpointDir,
  saveCheckpoint,
  type CheckpointContents,
} from '../src/train/checkpoint.js';
import { Optimizer } from '../src/train/optimizer.js';
import { UsageError } from '../src/util/errors.js';
import { resetFaultCounters, setFaultHook, type FaultPoint } from '../src/util/fault-injection.js';

// on tmpfs where there is one: hundreds of saves, each with its fsyncs, would wait on a busy disk
const work = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'roaf-faults-'));
after(() => rmSync(work, { recursive: true, force: true }));
afterEach(() => setFaultHook(null));

/** Thrown by the hook: the process "dies" here. */
class Killed extends Error {}

function tinyModel(depth = 3, width = 8, filter: 'haar' | 'permutation' = 'haar'): Model {
  return createModel(
    { model: 'roaf-mlp', depth, width, filter, inputDim: 5, outputs: 3, readout: 'last', seed: 7, dtype: 'float32' },
    backend,
  );
}

/** A model and optimiser whose values at generation g are known: parameters filled with g + i/1000. */
function generations(model: Model) {
  const optimizer = new Optimizer(
    { kind: 'adam', lr: 1e-3, momentum: 0.9, weightDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8 },
    model.params,
    backend,
  );
  const set = (g: number) => {
    const values = model.params.values;
    for (let i = 0; i < values.length; i++) values[i] = g + i / 1000;
    optimizer.state.m!.fill(g);
    optimizer.steps = g;
  };
  const contents = (g: number): CheckpointContents => {
    set(g);
    return {
      model,
      optimizer,
      task: { name: 'adding' },
      training: {
        epochs: 1,
        batch: 4,
        optimizer: optimizer.options,
        clip: 0,
        evalEvery: 0,
        checkpointEvery: 0,
        logGradients: false,
        seed: 7,
      },
      progress: { epoch: 0, batchInEpoch: g, step: g, seconds: g },
    };
  };
  return { optimizer, contents };
}

/** The generation the checkpoint in `dir` holds, after checking config and both tensor files agree on it. */
function loadedGeneration(dir: string): number {
  assert.notEqual(resolveCheckpointDir(dir), null, `a complete checkpoint exists in ${dir}`);
  const config = readCheckpointConfig(dir);
  const model = tinyModel();
  const { optimizer } = generations(model);
  model.params.values.fill(-1);
  loadModelTensors(dir, model);
  loadOptimizerState(dir, optimizer);
  const g = config.step;
  const values = model.params.values;
  for (let i = 0; i < values.length; i++) assert.equal(values[i], Math.fround(g + i / 1000), `parameter ${i}`);
  assert.equal(optimizer.steps, g, 'optimizer steps of the same generation');
  assert.equal(optimizer.state.m![0], g, 'optimizer state of the same generation');
  return g;
}

/** The fault points of one save of generation g into `dir` (a copy is used, so `dir` is untouched). */
function pointsOfSave(dir: string, g: number): FaultPoint[] {
  const copy = `${dir}-count`;
  // the leftovers `<dir>.tmp` and `<dir>.old` are part of the state
  for (const suffix of ['', '.tmp', '.old']) {
    rmSync(copy + suffix, { recursive: true, force: true });
    if (existsSync(dir + suffix)) cpSync(dir + suffix, copy + suffix, { recursive: true });
  }
  const model = tinyModel();
  const seen: FaultPoint[] = [];
  setFaultHook((point) => seen.push(point));
  saveCheckpoint(copy, generations(model).contents(g));
  setFaultHook(null);
  for (const suffix of ['', '.tmp', '.old']) rmSync(copy + suffix, { recursive: true, force: true });
  return seen;
}

/** Saves generation g into `dir`, killed at fault point k of that save (k past the last: not killed). */
function saveKilledAt(dir: string, g: number, k: number): boolean {
  const model = tinyModel();
  const contents = generations(model).contents(g);
  resetFaultCounters();
  setFaultHook((point) => {
    if (point.point === k) throw new Killed(`killed at ${point.point}: ${point.step} ${point.path}`);
  });
  try {
    saveCheckpoint(dir, contents);
    return false;
  } catch (error) {
    if (error instanceof Killed) return true;
    throw error;
  } finally {
    setFaultHook(null);
  }
}

describe('checkpoint saves killed at every step', () => {
  it('a save killed at any step k, then the next killed at any step j: a complete checkpoint always loads', () => {
    const base = join(work, 'exhaustive');
    // the steps of a save over a clean directory
    const probe = join(base, 'probe', 'checkpoint');
    saveKilledAt(probe, 1, Infinity);
    const clean = pointsOfSave(probe, 2);
    assert.ok(clean.length >= 12, `a save has its steps (${clean.map((p) => p.step).join(', ')})`);
    let cases = 0;
    for (let k = 1; k <= clean.length; k++) {
      const root = join(base, `k${k}`);
      const dir = join(root, 'checkpoint');
      saveKilledAt(dir, 1, Infinity);
      assert.equal(saveKilledAt(dir, 2, k), true);
      const first = loadedGeneration(dir);
      assert.ok(first === 1 || first === 2, `after a kill at step ${k} (${clean[k - 1]!.step}): generation ${first}`);
      // the next save starts from what the kill left (leftovers, a missing checkpoint/): cut it at every step too
      for (let j = 1; ; j++) {
        const trial = join(base, `k${k}-j${j}`);
        cpSync(root, trial, { recursive: true });
        const trialDir = join(trial, 'checkpoint');
        const killed = saveKilledAt(trialDir, 3, j);
        const second = loadedGeneration(trialDir);
        assert.ok(
          second === first || second === 3,
          `kill at ${k} then at ${j}: generation ${second}, expected ${first} or 3`,
        );
        if (!killed) assert.equal(second, 3, 'an uninterrupted save is the newest');
        // and a save after both kills completes and is the newest
        saveKilledAt(trialDir, 4, Infinity);
        assert.equal(loadedGeneration(trialDir), 4);
        assert.deepEqual(
          readdirSync(trial).filter((n) => n.startsWith('checkpoint')),
          ['checkpoint'],
          'a complete save leaves no leftovers',
        );
        rmSync(trial, { recursive: true, force: true });
        cases += 1;
        if (!killed) break;
      }
      rmSync(root, { recursive: true, force: true });
    }
    assert.ok(cases > clean.length * 10, `${cases} pairs of kills`);
  });

  it('a checkpoint written by the previous save code (checkpoint.old only, partial checkpoint.tmp) is recovered', () => {
    const root = join(work, 'legacy');
    const dir = join(root, 'checkpoint');
    saveKilledAt(dir, 1, Infinity);
    // the state the previous code left when killed between its renames
    cpSync(dir, `${dir}.old`, { recursive: true });
    rmSync(dir, { recursive: true });
    cpSync(`${dir}.old`, `${dir}.tmp`, { recursive: true });
    rmSync(join(`${dir}.tmp`, 'config.json'));
    assert.equal(loadedGeneration(dir), 1);
    // the old code's next save deleted checkpoint.old before its rename: this one renames it back first
    const points = pointsOfSave(dir, 2);
    assert.match(points[0]!.step, /remove|rename/);
    for (let k = 1; k <= points.length; k++) {
      const trial = join(work, `legacy-${k}`);
      cpSync(root, trial, { recursive: true });
      saveKilledAt(join(trial, 'checkpoint'), 2, k);
      assert.ok([1, 2].includes(loadedGeneration(join(trial, 'checkpoint'))));
    }
  });
});

describe('a full disk during a save', () => {
  it('ENOSPC at any step keeps the previous checkpoint and names the path', () => {
    const dir = join(work, 'enospc', 'checkpoint');
    saveKilledAt(dir, 1, Infinity);
    const points = pointsOfSave(dir, 2);
    for (let k = 1; k <= points.length; k++) {
      const model = tinyModel();
      const contents = generations(model).contents(2);
      resetFaultCounters();
      let injectedAt = '';
      setFaultHook((point) => {
        if (point.point !== k) return;
        injectedAt = point.path;
        throw Object.assign(new Error(`ENOSPC: no space left on device, write '${point.path}'`), {
          code: 'ENOSPC',
          syscall: 'write',
          path: point.path,
        });
      });
      assert.throws(
        () => saveCheckpoint(dir, contents),
        (error: unknown) =>
          error instanceof UsageError &&
          error.message.startsWith(`${injectedAt}: no space left on the device`) &&
          !error.message.includes('\n'),
      );
      setFaultHook(null);
      const g = loadedGeneration(dir);
      // before the rename into place the previous one stays; after it, the new one is complete
      assert.ok(g === 1 || g === 2, `ENOSPC at ${points[k - 1]!.step}: generation ${g}`);
      if (g === 2) saveKilledAt(dir, 1, Infinity); // back to generation 1 for the next k
    }
  });
});

describe('saving streams the tensors', () => {
  it('saving allocates far less than the file size (no copy of the model)', () => {
    const model = tinyModel(12, 512, 'permutation'); // 12 layers of 512 x 512: 12 MB of weights, 25 MB of Adam state
    const { contents } = generations(model);
    const dir = join(work, 'memory', 'checkpoint');
    const state = contents(1);
    global.gc?.();
    const before = process.memoryUsage();
    let peakArrayBuffers = before.arrayBuffers;
    let peakRss = before.rss;
    setFaultHook(() => {
      const now = process.memoryUsage();
      peakArrayBuffers = Math.max(peakArrayBuffers, now.arrayBuffers);
      peakRss = Math.max(peakRss, now.rss);
    });
    saveCheckpoint(dir, state);
    setFaultHook(null);
    const size = statSync(join(dir, 'model.safetensors')).size + statSync(join(dir, 'optimizer.safetensors')).size;
    assert.ok(size > 20e6, `the files are large (${size} bytes)`);
    const grown = peakArrayBuffers - before.arrayBuffers;
    assert.ok(grown < size / 10, `array buffers grew by ${grown} bytes while saving ${size} bytes`);
    assert.ok(peakRss - before.rss < size / 2, `resident memory grew by ${peakRss - before.rss} bytes`);
  });
});
