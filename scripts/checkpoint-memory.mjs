// Peak memory of saving a checkpoint (issue 9): builds a model (default: the 50,000-layer roaf-mlp of
// width 128, a 3.3 GB model.safetensors), saves it, and prints the resident memory before the save and
// the peak during it. A save that copied the model would add about the file's size; roaf's adds almost
// nothing. Run from a built tree: `node scripts/checkpoint-memory.mjs [--depth n] [--width n]
// [--filter kind] [--out DIR] [--dist DIR]` (--dist: another build's dist/, e.g. main's, to compare).
// Not a test: it needs several GB of memory and disk.

import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';

const { values } = parseArgs({
  options: {
    depth: { type: 'string', default: '50000' },
    width: { type: 'string', default: '128' },
    filter: { type: 'string', default: 'permutation' },
    out: { type: 'string' },
    dist: { type: 'string', default: 'dist' },
  },
});
const dist = resolve(values.dist);
const load = (path) => import(pathToFileURL(join(dist, 'src', path)).href);
const { createModel } = await load('models/factory.js');
const { saveCheckpoint } = await load('train/checkpoint.js');
const { Optimizer, DEFAULT_OPTIMIZER } = await load('train/optimizer.js');
const faults = await load('util/fault-injection.js').catch(() => null); // absent in older builds

const mb = (bytes) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
const model = createModel({
  model: 'roaf-mlp',
  depth: Number(values.depth),
  width: Number(values.width),
  filter: values.filter,
  task: 'mnist',
  inputDim: 784,
  outputs: 10,
  readout: 'last',
  seed: 0,
  dtype: 'float32',
});
const optimizer = new Optimizer(DEFAULT_OPTIMIZER, model.params, model.backend);
const root = values.out ?? mkdtempSync(join(tmpdir(), 'roaf-checkpoint-memory-'));
const dir = join(root, 'checkpoint');
const contents = {
  model,
  optimizer,
  task: { name: 'mnist' },
  training: {
    epochs: 1,
    batch: 64,
    optimizer: DEFAULT_OPTIMIZER,
    clip: 0,
    evalEvery: 0,
    checkpointEvery: 0,
    logGradients: false,
    seed: 0,
  },
  progress: { epoch: 0, batchInEpoch: 0, step: 0, seconds: 0 },
};
globalThis.gc?.();
const before = process.memoryUsage().rss;
const maxBefore = process.resourceUsage().maxRSS * 1024;
let sampled = before;
faults?.setFaultHook((point) => {
  sampled = Math.max(sampled, process.memoryUsage().rss);
  void point;
});
saveCheckpoint(dir, contents);
faults?.setFaultHook(null);
const maxAfter = process.resourceUsage().maxRSS * 1024;
const fileBytes = ['model.safetensors', 'optimizer.safetensors'].reduce((s, f) => s + statSync(join(dir, f)).size, 0);
console.log(
  JSON.stringify({
    build: dist,
    depth: Number(values.depth),
    width: Number(values.width),
    params: model.params.size,
    files_bytes: fileBytes,
    rss_before_save: before,
    rss_peak_sampled_during_save: faults ? sampled : null,
    max_rss_before_save: maxBefore,
    max_rss_after_save: maxAfter,
    save_added_to_peak: Math.max(0, maxAfter - Math.max(maxBefore, before)),
  }),
);
console.error(
  `files ${mb(fileBytes)}; resident before the save ${mb(before)}, peak during it ${mb(Math.max(sampled, maxAfter))}`,
);
if (values.out === undefined) rmSync(root, { recursive: true, force: true });
