// Exported ONNX files against the reference implementation of the format: Debian's python3-onnx runs its
// checker with full_check (schema, types and strict shape inference, external data loaded) on every kind,
// and reads the graphs back, so the tests also see their structure: one Scan at any depth, filters as
// Gather + Mul, LSTM/GRU as ONNX's operators. Skipped, saying why, where /usr/bin/python3 or its onnx module
// is missing (`apt-get install python3-onnx`; the `python3` on PATH may be another Python without it).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { referenceBackend } from '../src/backend/reference.js';
import { saveOnnx, type OnnxSaveOptions } from '../src/export/onnx.js';
import { createModel, modelConfig, type ModelOptions } from '../src/models/factory.js';

const PYTHON = '/usr/bin/python3';

function onnxUnavailable(): string | false {
  if (!existsSync(PYTHON)) return `${PYTHON} is missing (apt-get install python3-onnx)`;
  const probe = spawnSync(PYTHON, ['-c', 'import onnx'], { encoding: 'utf8' });
  return probe.status === 0
    ? false
    : `${PYTHON} has no onnx module (apt-get install python3-onnx): ${probe.stderr.trim().split('\n').pop()}`;
}

const skip = onnxUnavailable();
if (skip) process.stderr.write(`onnx-checker.test: skipped: ${skip}\n`);

/** Checks every file with onnx.checker (full_check) and returns, per file, its ops and attributes. */
const SCRIPT = `
import json, sys, onnx
def ops(graph):
    out = []
    for node in graph.node:
        attrs = {}
        sub = []
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                sub = ops(a.g)
            elif a.type == onnx.AttributeProto.INT:
                attrs[a.name] = a.i
        out.append({'op': node.op_type, 'attrs': attrs, 'body': sub})
    return out
result = {}
for path in sys.argv[1:]:
    onnx.checker.check_model(path, full_check=True)
    model = onnx.load(path)
    result[path] = {
        'ir_version': model.ir_version,
        'opset': [o.version for o in model.opset_import if o.domain == ''],
        'inputs': [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input],
        'outputs': [[d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output],
        'output_names': [o.name for o in model.graph.output],
        'nodes': ops(model.graph),
        'metadata': {p.key: p.value for p in model.metadata_props},
    }
print(json.dumps(result))
`;

interface NodeInfo {
  op: string;
  attrs: Record<string, number>;
  body: NodeInfo[];
}
interface FileInfo {
  ir_version: number;
  opset: number[];
  inputs: Array<Array<number | string>>;
  outputs: Array<Array<number | string>>;
  output_names: string[];
  nodes: NodeInfo[];
  metadata: Record<string, string>;
}

const work = mkdtempSync(join(tmpdir(), 'roaf-onnx-check-'));
after(() => rmSync(work, { recursive: true, force: true }));

const CASES: Record<string, { options: ModelOptions; save?: OnnxSaveOptions }> = {
  'mlp-10': { options: { model: 'roaf-mlp', inputDim: 20, outputs: 10, depth: 10, width: 16, filter: 'haar' } },
  'mlp-500': { options: { model: 'roaf-mlp', inputDim: 20, outputs: 10, depth: 500, width: 16, filter: 'haar' } },
  'mlp-perm': {
    options: { model: 'roaf-mlp', inputDim: 20, outputs: 10, depth: 30, width: 16, filter: 'permutation', alpha: 0.9 },
  },
  'mlp-plain': { options: { model: 'mlp', inputDim: 20, outputs: 10, depth: 30, width: 16 } },
  resmlp: { options: { model: 'resmlp', inputDim: 20, outputs: 10, depth: 30, width: 16 } },
  'mlp-external': {
    options: { model: 'roaf-mlp', inputDim: 20, outputs: 10, depth: 30, width: 16 },
    save: { externalDataThreshold: 0 },
  },
  'roaf-rnn': { options: { model: 'roaf-rnn', inputDim: 1, outputs: 10, hidden: 16, filter: 'haar' } },
  'roaf-rnn-stack-every': {
    options: { model: 'roaf-rnn', inputDim: 10, outputs: 9, hidden: 16, filter: 'cycle', layers: 2, readout: 'every' },
  },
  rnn: { options: { model: 'rnn', inputDim: 1, outputs: 10, hidden: 16 } },
  lstm: { options: { model: 'lstm', inputDim: 1, outputs: 10, hidden: 16 } },
  'lstm-stack-every': { options: { model: 'lstm', inputDim: 10, outputs: 9, hidden: 16, layers: 2, readout: 'every' } },
  gru: { options: { model: 'gru', inputDim: 1, outputs: 10, hidden: 16 } },
  'gru-f64': { options: { model: 'gru', inputDim: 2, outputs: 1, hidden: 8, dtype: 'float64' } },
};

function checkAll(): Record<string, FileInfo> {
  const paths: Record<string, string> = {};
  for (const [name, { options, save }] of Object.entries(CASES)) {
    const path = join(work, `${name}.onnx`);
    paths[name] = path;
    saveOnnx(createModel(modelConfig(options), referenceBackend), path, { warn: () => {}, ...save });
  }
  const run = spawnSync(PYTHON, ['-c', SCRIPT, ...Object.values(paths)], { encoding: 'utf8', maxBuffer: 1 << 26 });
  assert.equal(run.status, 0, `onnx.checker.check_model failed:\n${run.stderr}`);
  const byPath = JSON.parse(run.stdout) as Record<string, FileInfo>;
  return Object.fromEntries(Object.entries(paths).map(([name, path]) => [name, byPath[path]!]));
}

const opTypes = (nodes: NodeInfo[]): string[] => nodes.map((node) => node.op);
const scanBody = (info: FileInfo, index = 0): NodeInfo[] =>
  info.nodes.filter((node) => node.op === 'Scan')[index]!.body;

describe('python3-onnx: checker and structure of the exported graphs', { skip }, () => {
  let files: Record<string, FileInfo> = {};
  before(() => {
    files = checkAll();
  });

  it('onnx.checker.check_model(path, full_check=True) accepts every kind, stacks, float64 input and external data', () => {
    assert.deepEqual(Object.keys(files), Object.keys(CASES));
    for (const [name, info] of Object.entries(files)) {
      assert.equal(info.ir_version, 8, name);
      assert.deepEqual(info.opset, [17], name);
      assert.deepEqual(info.output_names, ['logits'], name);
    }
  });

  it('inputs and outputs have the documented layouts with dynamic batch and steps', () => {
    assert.deepEqual(files['mlp-10']!.inputs, [['B', 20]]);
    assert.deepEqual(files['mlp-10']!.outputs, [['B', 10]]);
    assert.deepEqual(files['roaf-rnn']!.inputs, [['T', 'B', 1]]);
    assert.deepEqual(files['roaf-rnn']!.outputs, [['B', 10]]);
    assert.deepEqual(files['lstm-stack-every']!.outputs, [['T', 'B', 9]]);
    assert.equal(files['gru']!.metadata['roaf.model'], 'gru');
    assert.equal((JSON.parse(files['gru']!.metadata['roaf.config']!) as { hidden: number }).hidden, 16);
  });

  it('a deep MLP is one Scan whose body is one layer, the same at depth 10 and 500', () => {
    const shallow = files['mlp-10']!,
      deep = files['mlp-500']!;
    assert.deepEqual(opTypes(deep.nodes), ['Gemm', 'Scan', 'Gemm']);
    assert.deepEqual(deep.nodes, shallow.nodes);
    // per-layer haar: W x + b, tanh, beta ·, alpha O x as a Gemm over the scanned filter, the sum
    assert.deepEqual(opTypes(scanBody(deep)), ['Gemm', 'Tanh', 'Mul', 'Gemm', 'Add']);
    assert.equal(deep.nodes[1]!.attrs.num_scan_inputs, 3, 'the scan runs over W, b and the filters');
  });

  it('permutation filters are a Gather and a Mul; alpha = 0 has no filter branch; the identity filter adds x itself', () => {
    assert.deepEqual(opTypes(scanBody(files['mlp-perm']!)), ['Gemm', 'Tanh', 'Mul', 'Gather', 'Mul', 'Mul', 'Add']);
    assert.deepEqual(opTypes(scanBody(files['mlp-plain']!)), ['Gemm', 'Tanh']);
    assert.deepEqual(opTypes(scanBody(files['resmlp']!)), ['Gemm', 'Tanh', 'Add']);
  });

  it('the ROAF RNN is a Scan over time after one MatMul for U x_t + b of all steps; stacks are one Scan per layer', () => {
    const rnn = files['roaf-rnn']!;
    assert.deepEqual(
      opTypes(rnn.nodes).filter((op) => op === 'Scan' || op === 'MatMul'),
      ['MatMul', 'Scan'],
    );
    assert.deepEqual(opTypes(scanBody(rnn)), ['Gemm', 'Tanh', 'Mul', 'Gemm', 'Add']);
    const stack = files['roaf-rnn-stack-every']!;
    assert.equal(opTypes(stack.nodes).filter((op) => op === 'Scan').length, 2);
    assert.ok(opTypes(scanBody(stack, 1)).includes('Gather'), 'the cycle filter is a Gather');
    assert.deepEqual(opTypes(scanBody(files['rnn']!)), ['Gemm', 'Tanh']);
  });

  it("LSTM and GRU use ONNX's operators; the GRU with linear_before_reset = 1", () => {
    assert.deepEqual(
      files['lstm']!.nodes.filter((n) => n.op === 'LSTM').map((n) => n.attrs.hidden_size),
      [16],
    );
    assert.equal(files['lstm-stack-every']!.nodes.filter((n) => n.op === 'LSTM').length, 2);
    const gru = files['gru']!.nodes.filter((n) => n.op === 'GRU');
    assert.deepEqual(
      gru.map((n) => n.attrs),
      [{ hidden_size: 16, linear_before_reset: 1 }],
    );
  });
});
