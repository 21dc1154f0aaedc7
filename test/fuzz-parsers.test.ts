// Fuzzing every parser of user files (fast-check, fixed seeds): valid files mutated at random (bytes
// flipped, set, inserted or cut, JSON fields replaced by any JSON value, header numbers made huge or
// negative) and read by roaf's own readers: safetensors (model.safetensors with every tensor read), a
// checkpoint's config.json (with the model-size check made before allocating), IDX plain and gzip, and
// metrics.jsonl as `roaf report` reads it. Every case must end either with a result or with the
// reader's UsageError; anything else (a TypeError, a RangeError from an allocation, a hang, a crash) fails
// the property, and fast-check's shrunk counterexample is kept below as a regression case. Memory is
// bounded: the process's resident memory must stay below 1 GiB whatever the file announces. A sample of
// cases also runs the CLI (`roaf eval --checkpoint`, `roaf report`): exit code 0, or 2 with one line.
// One summary line per parser gives the cases and cases/s (printed, not asserted).

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { before, describe, it } from 'node:test';

import fc from 'fast-check';

import { encodeIdx, readIdx } from '../src/data/idx.js';
import { readRun } from '../src/report/runs.js';
import { checkModelFits } from '../src/serve/checkpoint.js';
import { readCheckpointConfig } from '../src/train/checkpoint.js';
import { SafetensorsFile } from '../src/train/safetensors.js';
import { UsageError } from '../src/util/errors.js';
import { buildSafetensors, copyCheckpoint, makeCheckpointRun, parseSafetensors, roaf } from './hostile-files.js';

const root = mkdtempSync(join(tmpdir(), 'roaf-fuzz-'));
const MAX_RSS = 2 ** 30;
let peakRss = 0;

/** A byte-level mutation: flip, set, insert or cut at a position given as a fraction of the length. */
const byteMutation = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.double({ min: 0, max: 1, noNaN: true }), bit: fc.nat(7) }),
  fc.record({ op: fc.constant('set' as const), at: fc.double({ min: 0, max: 1, noNaN: true }), value: fc.nat(255) }),
  fc.record({
    op: fc.constant('insert' as const),
    at: fc.double({ min: 0, max: 1, noNaN: true }),
    bytes: fc.uint8Array({ maxLength: 16 }),
  }),
  fc.record({ op: fc.constant('cut' as const), at: fc.double({ min: 0, max: 1, noNaN: true }) }),
);
type ByteMutation = typeof byteMutation extends fc.Arbitrary<infer T> ? T : never;

function mutateBytes(input: Uint8Array, mutations: readonly ByteMutation[], from = 0): Uint8Array {
  let bytes = Uint8Array.from(input);
  for (const m of mutations) {
    const at = Math.min(bytes.length - 1, from + Math.floor(m.at * (bytes.length - from)));
    if (at < 0) continue;
    if (m.op === 'flip') bytes[at]! ^= 1 << m.bit;
    else if (m.op === 'set') bytes[at] = m.value;
    else if (m.op === 'insert') bytes = Uint8Array.from([...bytes.subarray(0, at), ...m.bytes, ...bytes.subarray(at)]);
    else bytes = bytes.slice(0, at);
  }
  return bytes;
}

/** A JSON-level mutation: the value at a path (chosen by index among all paths) replaced by `value`. */
const jsonMutation = fc.record({
  which: fc.nat(),
  value: fc.oneof(
    fc.jsonValue({ maxDepth: 2 }),
    fc.constantFrom(-1, 0, 2 ** 31, 2 ** 53, 1e308, -1e308, 0.5, '<script>', null, [], {}),
  ),
});
type JsonMutation = typeof jsonMutation extends fc.Arbitrary<infer T> ? T : never;

function paths(value: unknown, prefix: Array<string | number> = []): Array<Array<string | number>> {
  if (typeof value !== 'object' || value === null) return [prefix];
  const keys = Array.isArray(value) ? value.map((_, i) => i) : Object.keys(value);
  return [prefix, ...keys.flatMap((k) => paths((value as Record<string | number, unknown>)[k], [...prefix, k]))];
}

function mutateJson(input: unknown, mutations: readonly JsonMutation[]): unknown {
  let doc = structuredClone(input);
  for (const m of mutations) {
    const all = paths(doc);
    const path = all[m.which % all.length]!;
    if (path.length === 0) {
      doc = structuredClone(m.value);
      continue;
    }
    let parent = doc as Record<string | number, unknown>;
    for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>;
    parent[path[path.length - 1]!] = structuredClone(m.value);
  }
  return doc;
}

/** Runs `read`; only a UsageError may come out. Tracks the peak resident memory. */
function expectResultOrUsageError(read: () => unknown): 'ok' | 'refused' {
  try {
    read();
    return 'ok';
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    assert.ok(!error.message.includes('\n'), `a one-line message: ${error.message}`);
    return 'refused';
  } finally {
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
    assert.ok(peakRss < MAX_RSS, `resident memory ${peakRss} bytes`);
  }
}

/** Runs a property with a fixed seed; prints cases, refusals and cases/s. */
function fuzz<T>(name: string, arbitrary: fc.Arbitrary<T>, numRuns: number, check: (value: T) => 'ok' | 'refused') {
  let refused = 0;
  const started = performance.now();
  fc.assert(
    fc.property(arbitrary, (value) => {
      if (check(value) === 'refused') refused++;
    }),
    { numRuns, seed: 1313, includeErrorInReport: true },
  );
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(
    `fuzz ${name}: ${numRuns} cases, ${refused} refused, ${(numRuns / seconds).toFixed(0)} cases/s, peak RSS ${(peakRss / 2 ** 20).toFixed(0)} MiB\n`,
  );
  assert.ok(refused > 0, `${name}: the mutations make invalid files`);
}

describe('fuzzing the parsers of user files', { timeout: 300_000 }, () => {
  let checkpoint = '';
  before(() => {
    checkpoint = join(makeCheckpointRun('haar', root), 'checkpoint');
  });

  it('safetensors: mutated model.safetensors files', () => {
    const valid = readFileSync(join(checkpoint, 'model.safetensors'));
    const { header, data } = parseSafetensors(valid);
    const path = join(root, 'fuzz.safetensors');
    const readAll = (): void => {
      const file = new SafetensorsFile(path);
      for (const [name, entry] of file.entries) {
        const count = entry.shape.reduce((a, b) => a * b, 1);
        const Type = entry.dtype === 'F64' ? Float64Array : entry.dtype === 'I32' ? Int32Array : Float32Array;
        file.readInto(name, new Type(count), entry.shape);
      }
    };
    const structural = fc
      .array(jsonMutation, { minLength: 1, maxLength: 3 })
      .map((m) => ({ kind: 'json' as const, m }));
    const bytes = fc.array(byteMutation, { minLength: 1, maxLength: 4 }).map((m) => ({ kind: 'bytes' as const, m }));
    fuzz('safetensors', fc.oneof(structural, bytes), 1000, (c) => {
      const file =
        c.kind === 'json' ? buildSafetensors({ header: mutateJson(header, c.m), data }) : mutateBytes(valid, c.m);
      writeFileSync(path, file);
      return expectResultOrUsageError(readAll);
    });
  });

  it('config.json: mutated checkpoint configurations, checked before a model is allocated', () => {
    const config: unknown = JSON.parse(readFileSync(join(checkpoint, 'config.json'), 'utf8'));
    const dir = join(root, 'fuzz-config');
    mkdirSync(dir, { recursive: true });
    const text = JSON.stringify(config);
    const cases = fc.oneof(
      fc.array(jsonMutation, { minLength: 1, maxLength: 3 }).map((m) => JSON.stringify(mutateJson(config, m))),
      fc.array(byteMutation, { minLength: 1, maxLength: 3 }).map((m) => Buffer.from(mutateBytes(Buffer.from(text), m))),
    );
    fuzz('config.json', cases, 1000, (file) => {
      writeFileSync(join(dir, 'config.json'), file);
      return expectResultOrUsageError(() => {
        const read = readCheckpointConfig(dir);
        checkModelFits(read.model, join(dir, 'config.json'), 16 * 2 ** 30);
      });
    });
  });

  const images = encodeIdx(
    [3, 4, 5],
    Uint8Array.from({ length: 60 }, (_, i) => (i * 37) % 256),
  );
  const header = fc.record({ at: fc.nat(15), value: fc.constantFrom(0, 1, 3, 8, 0x0d, 255, 0x7f, 0x80) });

  it('IDX plain: mutated image files (headers, sizes, trailing and missing bytes)', () => {
    const path = join(root, 'fuzz-idx');
    const cases = fc.tuple(fc.array(header, { maxLength: 3 }), fc.array(byteMutation, { maxLength: 3 }));
    fuzz('IDX', cases, 1500, ([headerEdits, mutations]) => {
      const bytes = mutateBytes(images, mutations);
      for (const e of headerEdits) if (e.at < bytes.length) bytes[e.at] = e.value;
      writeFileSync(path, bytes);
      return expectResultOrUsageError(() => readIdx(path));
    });
  });

  it('IDX gzip: mutated files before and after compression, and gzip bombs', () => {
    const path = join(root, 'fuzz-idx.gz');
    const cases = fc.tuple(
      fc.array(header, { maxLength: 3 }),
      fc.array(byteMutation, { maxLength: 2 }),
      fc.array(byteMutation, { maxLength: 2 }),
    );
    fuzz('IDX gzip', cases, 1000, ([headerEdits, plain, compressed]) => {
      const bytes = mutateBytes(images, plain);
      for (const e of headerEdits) if (e.at < bytes.length) bytes[e.at] = e.value;
      writeFileSync(path, mutateBytes(gzipSync(bytes), compressed, 2)); // keep the gzip magic
      return expectResultOrUsageError(() => readIdx(path));
    });
    // a bomb: 16 bytes of header announcing 12 bytes of data, followed by 1 GiB of zeros, 1 MiB compressed
    const announced = encodeIdx([3, 2, 2], new Uint8Array(12));
    const zeros = Buffer.alloc(2 ** 26);
    const parts = [gzipSync(announced)];
    for (let i = 0; i < 16; i++) parts.push(gzipSync(zeros, { level: 1 })); // gzip members concatenate
    writeFileSync(path, Buffer.concat(parts));
    const before = process.memoryUsage.rss();
    assert.throws(() => readIdx(path), /decompresses to more than the 28 bytes its header announces/);
    assert.ok(process.memoryUsage.rss() - before < 2 ** 28, 'the bomb was not inflated');
  });

  it('metrics.jsonl: mutated logs as roaf report reads them', () => {
    const run = join(root, 'fuzz-run');
    copyCheckpoint(join(checkpoint, '..'), run);
    const valid = readFileSync(join(run, 'metrics.jsonl'), 'utf8');
    const records = valid
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as unknown);
    const cases = fc.oneof(
      fc
        .tuple(fc.nat(records.length - 1), fc.array(jsonMutation, { minLength: 1, maxLength: 3 }))
        .map(([i, m]) => records.map((r, j) => JSON.stringify(j === i ? mutateJson(r, m) : r)).join('\n')),
      fc
        .array(byteMutation, { minLength: 1, maxLength: 4 })
        .map((m) => Buffer.from(mutateBytes(Buffer.from(valid), m))),
    );
    fuzz('metrics.jsonl', cases, 1000, (file) => {
      writeFileSync(join(run, 'metrics.jsonl'), file);
      let skipped = false;
      const result = expectResultOrUsageError(() => {
        skipped = readRun(run).warnings.length > 0;
      });
      return skipped ? 'refused' : result; // a record skipped with a warning counts as refused
    });
  });

  it('the CLI on a sample of mutated files: exit code 0, or 2 with one line', () => {
    const valid = readFileSync(join(checkpoint, 'model.safetensors'));
    const samples = fc.sample(fc.array(byteMutation, { minLength: 1, maxLength: 3 }), { numRuns: 3, seed: 7 });
    samples.forEach((mutations, i) => {
      const dir = copyCheckpoint(checkpoint, join(root, `cli-${i}`));
      writeFileSync(join(dir, 'model.safetensors'), mutateBytes(valid, mutations, 8));
      const out = roaf(['eval', '--checkpoint', dir, '--backend', 'reference', '--test-limit', '8']);
      assert.ok(out.status === 0 || out.status === 2, `exit ${out.status}: ${out.stderr}`);
      if (out.status === 2) assert.equal(out.stderr.trim().split('\n').length, 1, out.stderr);
    });
    const run = join(root, 'cli-run');
    copyCheckpoint(join(checkpoint, '..'), run);
    writeFileSync(join(run, 'metrics.jsonl'), 'null\n{"step": "<script>"}\n');
    const out = roaf(['report', run, '--out', join(root, 'cli-report')]);
    assert.ok(out.status === 0 || out.status === 2, `exit ${out.status}: ${out.stderr}`);
  });
});
