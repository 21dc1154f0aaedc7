// ONNX export on random inputs: the protobuf writer's bytes, every model kind and setting (filters, alpha,
// shared or per-layer filters, stacks, per-step readout, float64) run by onnxruntime-web against roaf's
// reference forward pass, the graph's size independent of depth, filters that stay O(N), external data,
// and the library's refusals. Real data is in onnx-data.test.ts, the ONNX checker in onnx-checker.test.ts.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { referenceBackend } from '../src/backend/reference.js';
import { exportOnnx, saveOnnx } from '../src/export/onnx.js';
import { ProtoWriter } from '../src/export/protobuf.js';
import { createModel, modelConfig, type ModelOptions } from '../src/models/factory.js';
import { RecurrentModel } from '../src/models/recurrent.js';
import type { SequenceCell } from '../src/nn/layers.js';
import { UsageError } from '../src/util/errors.js';
import { Random } from '../src/util/random.js';
import { onnxSession, parity } from './onnx-helpers.js';

const work = mkdtempSync(join(tmpdir(), 'roaf-onnx-'));
after(() => rmSync(work, { recursive: true, force: true }));

function randomInputs(n: number, seed: number): Float32Array {
  const rng = new Random(seed);
  return Float32Array.from({ length: n }, () => rng.normal());
}

describe('protobuf writer', () => {
  it('writes varints, negative int64, floats, strings and nested messages as the wire format says', () => {
    // The protobuf documentation's example: field 1 = 150 is 08 96 01.
    assert.deepEqual([...new ProtoWriter().int(1, 150).bytesJoined()], [0x08, 0x96, 0x01]);
    // A negative int64 is its 64-bit two's complement: ten bytes.
    assert.deepEqual(
      [...new ProtoWriter().int(3, -1).bytesJoined()],
      [0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
    );
    // 2^40, beyond 32 bits (offsets of external data can be).
    assert.deepEqual([...new ProtoWriter().int(1, 2 ** 40).bytesJoined()], [0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20]);
    // field 2, fixed32 1.0f = 0x3f800000 little-endian
    assert.deepEqual([...new ProtoWriter().float(2, 1).bytesJoined()], [0x15, 0x00, 0x00, 0x80, 0x3f]);
    assert.deepEqual([...new ProtoWriter().string(2, 'hé').bytesJoined()], [0x12, 0x03, 0x68, 0xc3, 0xa9]);
    const inner = new ProtoWriter().int(1, 150);
    assert.deepEqual([...new ProtoWriter().message(3, inner).bytesJoined()], [0x1a, 0x03, 0x08, 0x96, 0x01]);
  });

  it("keeps a large bytes field as the caller's chunks, and the message's length counts every byte", () => {
    const big = new Uint8Array(1000).map((_, i) => i % 251);
    const w = new ProtoWriter().string(1, 'x').bytes(9, [big.subarray(0, 600), big.subarray(600)]);
    const chunks = w.chunks();
    assert.ok(
      chunks.some((chunk) => chunk.buffer === big.buffer),
      'the data is not copied',
    );
    const joined = w.bytesJoined();
    assert.equal(joined.length, w.length);
    // 0a 01 78 | 4a e8 07 | data: tag 9 wire type 2 = 0x4a, length 1000 = e8 07
    assert.deepEqual([...joined.subarray(0, 6)], [0x0a, 0x01, 0x78, 0x4a, 0xe8, 0x07]);
    assert.deepEqual(joined.subarray(6), big);
  });
});

/** Configurations covering every kind and every way a layer or cell is written. */
const SMALL: Array<{ label: string; options: ModelOptions }> = [
  {
    label: 'roaf-mlp, per-layer haar filters',
    options: { model: 'roaf-mlp', inputDim: 12, outputs: 5, depth: 7, width: 8 },
  },
  {
    label: 'roaf-mlp, per-layer qr-uniform filters, alpha 0.8',
    options: { model: 'roaf-mlp', inputDim: 12, outputs: 5, depth: 5, width: 8, filter: 'qr-uniform', alpha: 0.8 },
  },
  {
    label: 'roaf-mlp, shared haar filter',
    options: { model: 'roaf-mlp', inputDim: 12, outputs: 5, depth: 6, width: 8, sharedFilter: true },
  },
  {
    label: 'roaf-mlp, per-layer permutation filters, alpha 0.7',
    options: { model: 'roaf-mlp', inputDim: 12, outputs: 5, depth: 7, width: 8, filter: 'permutation', alpha: 0.7 },
  },
  {
    label: 'roaf-mlp, shared permutation filter',
    options: {
      model: 'roaf-mlp',
      inputDim: 12,
      outputs: 5,
      depth: 7,
      width: 8,
      filter: 'permutation',
      sharedFilter: true,
    },
  },
  {
    label: 'roaf-mlp, cycle filter',
    options: { model: 'roaf-mlp', inputDim: 12, outputs: 5, depth: 7, width: 8, filter: 'cycle' },
  },
  {
    label: 'roaf-mlp, identity filter, alpha 0.5',
    options: { model: 'roaf-mlp', inputDim: 12, outputs: 5, depth: 7, width: 8, filter: 'identity', alpha: 0.5 },
  },
  { label: 'mlp (alpha 0: no filter branch)', options: { model: 'mlp', inputDim: 12, outputs: 5, depth: 7, width: 8 } },
  { label: 'resmlp', options: { model: 'resmlp', inputDim: 12, outputs: 5, depth: 7, width: 8 } },
  { label: 'roaf-rnn, haar', options: { model: 'roaf-rnn', inputDim: 3, outputs: 4, hidden: 6 } },
  {
    label: 'roaf-rnn, permutation, alpha 0.9, per-step readout',
    options: {
      model: 'roaf-rnn',
      inputDim: 3,
      outputs: 4,
      hidden: 6,
      filter: 'permutation',
      alpha: 0.9,
      readout: 'every',
    },
  },
  {
    label: 'roaf-rnn, identity filter',
    options: { model: 'roaf-rnn', inputDim: 3, outputs: 4, hidden: 6, filter: 'identity' },
  },
  {
    label: 'roaf-rnn, 3 stacked layers, per-layer permutation filters',
    options: { model: 'roaf-rnn', inputDim: 3, outputs: 4, hidden: 6, filter: 'permutation', layers: 3 },
  },
  {
    label: 'roaf-rnn, 2 stacked layers, shared haar filter, per-step readout',
    options: { model: 'roaf-rnn', inputDim: 3, outputs: 4, hidden: 6, sharedFilter: true, layers: 2, readout: 'every' },
  },
  { label: 'rnn', options: { model: 'rnn', inputDim: 3, outputs: 4, hidden: 6 } },
  { label: 'rnn, 2 stacked layers', options: { model: 'rnn', inputDim: 3, outputs: 4, hidden: 6, layers: 2 } },
  { label: 'lstm', options: { model: 'lstm', inputDim: 3, outputs: 4, hidden: 6 } },
  { label: 'lstm, per-step readout', options: { model: 'lstm', inputDim: 3, outputs: 4, hidden: 6, readout: 'every' } },
  { label: 'lstm, 3 stacked layers', options: { model: 'lstm', inputDim: 3, outputs: 4, hidden: 6, layers: 3 } },
  { label: 'gru', options: { model: 'gru', inputDim: 3, outputs: 4, hidden: 6 } },
  {
    label: 'gru, 2 stacked layers, per-step readout',
    options: { model: 'gru', inputDim: 3, outputs: 4, hidden: 6, layers: 2, readout: 'every' },
  },
];

describe('every kind and setting runs in onnxruntime as in roaf', () => {
  for (const { label, options } of SMALL) {
    it(label, async () => {
      const model = createModel(modelConfig({ seed: 3, ...options }), referenceBackend);
      const session = await onnxSession(exportOnnx(model));
      const { inputDim: D, outputs: K } = model.config;
      // two batch sizes and, for sequences, two lengths: B and T are dynamic
      for (const [B, T] of model.recurrent
        ? [
            [5, 9],
            [2, 17],
          ]
        : [
            [5, 1],
            [3, 1],
          ]) {
        const result = await parity(model, session, B!, T!, randomInputs(T! * B! * D, B! + T!));
        const rows = model.outputRows(B!, T!);
        assert.deepEqual(result.dims, model.config.readout === 'every' ? [T, B, K] : [B, K]);
        assert.equal(result.rows, rows);
        assert.ok(result.maxRelative <= 1e-5, `max relative difference ${result.maxRelative.toExponential(2)}`);
        assert.equal(result.sameClass, 1);
      }
    });
  }

  it('a float64 model is written as float32 with one warning, and agrees with its float64 forward to float32 precision', async () => {
    const warnings: string[] = [];
    const model = createModel(
      modelConfig({ model: 'roaf-mlp', inputDim: 12, outputs: 5, depth: 9, width: 8, dtype: 'float64' }),
      referenceBackend,
    );
    const session = await onnxSession(exportOnnx(model, { warn: (message) => warnings.push(message) }));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /float64.*float32/);
    const inputs = Float64Array.from(randomInputs(4 * 12, 5));
    const result = await parity(model, session, 4, 1, inputs);
    assert.ok(result.maxRelative <= 1e-5, `max relative difference ${result.maxRelative.toExponential(2)}`);
    assert.ok(result.maxRelative > 0, 'the float32 export is not bit-identical to a float64 forward');
  });
});

describe('size of the graph and of the weights', () => {
  it('the graph of a deep MLP does not grow with depth (one Scan over stacked layers)', () => {
    const graphBytes = (depth: number, filter: 'haar' | 'permutation') =>
      saveOnnx(
        createModel(
          modelConfig({ model: 'roaf-mlp', inputDim: 20, outputs: 10, depth, width: 16, filter }),
          referenceBackend,
        ),
        join(work, `depth-${depth}-${filter}.onnx`),
      ).graphBytes;
    for (const filter of ['haar', 'permutation'] as const) {
      const shallow = graphBytes(10, filter);
      const deep = graphBytes(1000, filter);
      // the same nodes; only the varints of the stacked dims and data lengths grow by a byte or two
      assert.ok(Math.abs(deep - shallow) <= 16, `${filter}: graph ${shallow} B at depth 10, ${deep} B at depth 1000`);
      assert.ok(deep < 8000, `${filter}: the graph is a few kB, got ${deep} B`);
    }
  });

  it('permutation filters are written as O(N) index and sign vectors, never as dense matrices', () => {
    const [L, N, D, K] = [50, 32, 20, 10];
    const model = createModel(
      modelConfig({ model: 'roaf-mlp', inputDim: D, outputs: K, depth: L, width: N, filter: 'permutation' }),
      referenceBackend,
    );
    const saved = saveOnnx(model, join(work, 'perm.onnx'));
    // input, layers (W, b), readout as float32, per layer an int32 permutation and float32 signs, and beta
    const expected = 4 * (N * D + N + L * (N * N + N) + K * N + K) + 4 * L * 2 * N + 4;
    assert.equal(saved.weightBytes, expected);
    assert.equal(saved.fileBytes, saved.graphBytes + saved.weightBytes);
  });

  it('exportOnnx gives the bytes saveOnnx writes', () => {
    const model = createModel(modelConfig({ model: 'gru', inputDim: 3, outputs: 4, hidden: 6 }), referenceBackend);
    const path = join(work, 'same.onnx');
    saveOnnx(model, path);
    assert.deepEqual(new Uint8Array(readFileSync(path)), exportOnnx(model));
  });
});

describe('external data', () => {
  it('weights above the threshold go to <file>.data, which onnxruntime reads, and the model file keeps only the graph', async () => {
    const model = createModel(
      modelConfig({ model: 'roaf-mlp', inputDim: 30, outputs: 10, depth: 40, width: 16 }),
      referenceBackend,
    );
    const path = join(work, 'external.onnx');
    const saved = saveOnnx(model, path, { externalDataThreshold: 0 });
    assert.equal(saved.dataPath, `${path}.data`);
    assert.ok(existsSync(saved.dataPath));
    assert.ok(saved.dataBytes >= saved.weightBytes - 1024, 'the tensors of 1 kB or more are in the data file');
    assert.ok(saved.fileBytes < 8000, `the model file holds the graph only, ${saved.fileBytes} B`);
    const session = await onnxSession(path, {
      path: 'external.onnx.data',
      data: new Uint8Array(readFileSync(saved.dataPath)),
    });
    const result = await parity(model, session, 6, 1, randomInputs(6 * 30, 7));
    assert.ok(result.maxRelative <= 1e-5, `max relative difference ${result.maxRelative.toExponential(2)}`);

    // Exported again inline over it (--force), the stale data file goes.
    const inline = saveOnnx(model, path, { force: true });
    assert.equal(inline.dataPath, null);
    assert.ok(!existsSync(`${path}.data`));
  });
});

describe('refusals', () => {
  it('an existing file without force is an error, and nothing is written', () => {
    const dir = mkdtempSync(join(work, 'exists-'));
    const path = join(dir, 'model.onnx');
    writeFileSync(path, 'keep me');
    const model = createModel(modelConfig({ model: 'rnn', inputDim: 2, outputs: 1, hidden: 4 }), referenceBackend);
    assert.throws(
      () => saveOnnx(model, path),
      (error: unknown) =>
        error instanceof UsageError && error.message.includes(path) && error.message.includes('exists'),
    );
    assert.equal(readFileSync(path, 'utf8'), 'keep me');
    assert.deepEqual(readdirSync(dir), ['model.onnx']);
    assert.throws(() => saveOnnx(model, join(work, 'no-such-dir', 'model.onnx')), /does not exist/);
  });

  it('a recurrent model with a cell the exporter does not know is refused, naming the cell', () => {
    class EchoCell implements SequenceCell {
      constructor(
        readonly inputDim: number,
        readonly units: number,
      ) {}
      reserve(): void {}
      forward(): Float32Array {
        return new Float32Array(0);
      }
      backward(): null {
        return null;
      }
    }
    const config = modelConfig({ model: 'rnn', inputDim: 2, outputs: 1, hidden: 4 });
    const model = new RecurrentModel(config, referenceBackend, {
      filtered: () => false,
      create: (_store, _name, D) => new EchoCell(D, 4),
    });
    assert.throws(
      () => exportOnnx(model),
      (error: unknown) =>
        error instanceof UsageError &&
        /cannot be exported to ONNX/.test(error.message) &&
        error.message.includes('EchoCell'),
    );
  });
});
