// ONNX export (opset 17, float32) of every model kind, so a model trained in roaf runs in onnxruntime and
// any other ONNX runtime. docs/onnx.md describes the graphs, names and layouts.
//
// - Feed-forward kinds (roaf-mlp, mlp, resmlp): input projection (Gemm), then ONE `Scan` over the stacked
//   layer weights (L, N, N), biases (L, N) and, for per-layer filters, the stacked filters, whose body is one
//   ROAF layer; then the readout. The graph has the same nodes at depth 10 and 50,000.
// - ROAF/Elman RNN (roaf-rnn, rnn): the input drive U x_t + b of all steps as one MatMul over (T, B, D),
//   then a `Scan` over time whose body is the cell h' = alpha O h + beta tanh(W h + drive_t).
// - LSTM, GRU: ONNX's own `LSTM` and `GRU` operators, gate blocks reordered from roaf's (PyTorch's) orders.
// - Filters: dense (haar, qr-uniform) as a Gemm; permutation and cycle as Gather + Mul, never a dense
//   product; identity: the state itself; alpha = 0: no filter branch at all.
//
// The exporter reads the model objects roaf builds (RoafMLP, RecurrentModel and its cells), not kind names:
// a model or cell class it does not know is refused with the reason, so a new kind is exported once its
// computation has a graph here.
//
// Shapes: B batch, T steps, N width/units, L depth, D input dim, K outputs, k stacked layers.

import { closeSync, existsSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { FilterOperand } from '../backend/backend.js';
import type { Model } from '../models/model.js';
import { RecurrentModel, cellName } from '../models/recurrent.js';
import { RoafMLP } from '../models/roaf-mlp.js';
import { GruCell, LstmCell, RoafCell, type SequenceCell } from '../nn/layers.js';
import { UsageError } from '../util/errors.js';
import { GraphBuilder, NameScope, floatValue, int32Value, type ArrayData } from './onnx-graph.js';
import { OPSET_VERSION, encodeModel, type ModelProto, type ValueInfoProto } from './onnx-proto.js';

/**
 * The most weight bytes an ONNX file holds inline: a protobuf message cannot exceed 2 GiB, and the graph
 * needs a little room (it is a few kB). Above it, weights go to an external data file.
 */
export const ONNX_INLINE_LIMIT = 2 ** 31 - 2 ** 24;
/** Tensors smaller than this stay inline even in a model with external data (scalars, axes), as ONNX's own tools do. */
const EXTERNAL_MIN_BYTES = 1024;
/** Offsets of external tensors are multiples of this (a page), so a runtime may memory-map them. */
const EXTERNAL_ALIGNMENT = 4096;

export interface OnnxExportOptions {
  /**
   * Receives the one warning an export can give (a float64 model is written as float32). Default: a line
   * `roaf: warning: ...` on stderr.
   */
  warn?: (message: string) => void;
  /** Extra metadata_props entries (the CLI adds the checkpoint's task). */
  metadata?: Record<string, string>;
}

export interface OnnxSaveOptions extends OnnxExportOptions {
  /** Replace an existing file (and its external data file); otherwise an existing file is an error. Default false. */
  force?: boolean;
  /**
   * Weights above this many bytes in total go to an external data file `<file>.data` next to the model.
   * Default ONNX_INLINE_LIMIT (just under 2 GiB, protobuf's limit); 0 puts every tensor of 1 kB or more there.
   */
  externalDataThreshold?: number;
}

/** What saveOnnx wrote. */
export interface OnnxSaved {
  /** The .onnx file. */
  path: string;
  /** Its size in bytes. */
  fileBytes: number;
  /** Bytes of the file that are not tensor data: the graph, names, shapes and the initializers' headers. */
  graphBytes: number;
  /** Bytes of all weights (and filters) as float32/int32, inline or external. */
  weightBytes: number;
  /** The external data file, or null when every tensor is inline. */
  dataPath: string | null;
  /** Its size in bytes (0 without one). */
  dataBytes: number;
}

function defaultWarn(message: string): void {
  process.stderr.write(`roaf: warning: ${message}\n`);
}

let roafVersion: string | undefined;
function producerVersion(): string {
  if (roafVersion === undefined) {
    try {
      // dist/src/export/onnx.js -> the package's package.json
      const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
        version?: string;
      };
      roafVersion = pkg.version ?? 'unknown';
    } catch {
      roafVersion = 'unknown';
    }
  }
  return roafVersion;
}

/** A filter as the graph applies it: the names of its initializers. */
type FilterRef =
  { kind: 'dense'; matrix: string } | { kind: 'permutation'; perm: string; signs: string } | { kind: 'identity' };

/** The scalars alpha and beta as initializers, each made once when first needed (every layer of a model shares them). */
class Scalars {
  private readonly names = new Map<string, string>();
  constructor(private readonly g: GraphBuilder) {}

  get(name: 'alpha' | 'beta', value: number): string {
    const key = `${name}=${value}`;
    let existing = this.names.get(key);
    if (existing === undefined) {
      existing = this.g.scalar(this.names.has(name) ? `${name}.${this.names.size}` : name, value);
      this.names.set(key, existing).set(name, existing);
    }
    return existing;
  }
}

/**
 * One ROAF update in graph `b`: y = alpha O x + beta tanh(x Wᵀ + c), with c the bias (N) or the input drive
 * (B, N). `filter` null: alpha = 0, no filter branch.
 */
function roafUpdate(
  b: GraphBuilder,
  scalars: Scalars,
  x: string,
  W: string,
  c: string,
  alpha: number,
  beta: number,
  filter: FilterRef | null,
  out: string,
): string {
  const z = b.op('Gemm', [x, W, c], 'z', { transB: 1 });
  const a = b.op('Tanh', [z], 'a');
  const branch = beta === 1 ? a : b.op('Mul', [a, scalars.get('beta', beta)], 'beta_a');
  if (filter === null || alpha === 0) return branch;
  let filtered: string;
  switch (filter.kind) {
    case 'dense':
      filtered = b.op(
        'Gemm',
        [x, filter.matrix],
        'Ox',
        alpha === 1 ? { transB: 1 } : { transB: 1, alpha: { float: alpha } },
      );
      break;
    case 'permutation': {
      // (O x)[i] = signs[i] x[perm[i]]: a Gather along the features, then a Mul
      const gathered = b.op('Gather', [x, filter.perm], 'x_perm', { axis: 1 });
      const signed = b.op('Mul', [gathered, filter.signs], 'Ox');
      filtered = alpha === 1 ? signed : b.op('Mul', [signed, scalars.get('alpha', alpha)], 'alpha_Ox');
      break;
    }
    case 'identity':
      filtered = alpha === 1 ? x : b.op('Mul', [x, scalars.get('alpha', alpha)], 'alpha_x');
      break;
  }
  return b.op('Add', [filtered, branch], out);
}

interface GraphIO {
  inputs: ValueInfoProto[];
  outputs: ValueInfoProto[];
  /** The input layout, for the model's doc string and metadata. */
  layout: string;
}

const INPUT_DOC_FLAT = 'float32 (B, D): one sample per row, as roaf feeds MNIST (pixels / 255)';
const INPUT_DOC_SEQUENCE =
  'float32 (T, B, D), time-major as roaf: step t of sequence b at [t, b, :]; T and B are dynamic';

/** roaf-mlp, mlp, resmlp: Gemm, one Scan over the L layers, Gemm. */
function feedForwardGraph(model: RoafMLP, g: GraphBuilder, scalars: Scalars): GraphIO {
  const { width: N, inputDim: D, outputs: K } = model.config;
  const layers = model.layers;
  const L = layers.length;
  const input = g.scope.claim('input');
  const x0 = g.op(
    'Gemm',
    [
      input,
      g.initializer('input.W', [N, D], [model.input.W.value]),
      g.initializer('input.b', [N], [model.input.b.value]),
    ],
    'x0',
    { transB: 1 },
  );

  // The scanned tensors: each layer's W and b, and its filter when every layer has its own.
  const body = new GraphBuilder(g.scope);
  const scanned: string[] = [
    g.initializer(
      'layers.W',
      [L, N, N],
      layers.map((l) => l.W.value),
    ),
    g.initializer(
      'layers.b',
      [L, N],
      layers.map((l) => l.b.value),
    ),
  ];
  const x = g.scope.claim('layer.x');
  const W = g.scope.claim('layer.W');
  const b = g.scope.claim('layer.b');
  const bodyInputs: ValueInfoProto[] = [floatValue(x, ['B', N]), floatValue(W, [N, N]), floatValue(b, [N])];
  const { alpha, beta } = layers[0]!;
  let filter: FilterRef | null = null;
  if (alpha !== 0) {
    const first = layers[0]!.filter;
    const shared = layers.every((layer) => layer.filter === first);
    if (shared) {
      filter = filterInitializers(g, 'filter', first);
    } else if (first.kind === 'dense') {
      scanned.push(
        g.initializer(
          'filters',
          [L, N, N],
          layers.map((l) => denseMatrix(l.filter)),
        ),
      );
      filter = { kind: 'dense', matrix: g.scope.claim('layer.O') };
      bodyInputs.push(floatValue(filter.matrix, [N, N]));
    } else if (first.kind === 'permutation') {
      scanned.push(
        g.initializer(
          'filters.perm',
          [L, N],
          layers.map((l) => permutation(l.filter).perm),
        ),
      );
      scanned.push(
        g.initializer(
          'filters.signs',
          [L, N],
          layers.map((l) => permutation(l.filter).signs),
        ),
      );
      filter = { kind: 'permutation', perm: g.scope.claim('layer.perm'), signs: g.scope.claim('layer.signs') };
      bodyInputs.push(int32Value(filter.perm, [N]), floatValue(filter.signs, [N]));
    } else {
      filter = { kind: 'identity' };
    }
  }
  const y = roafUpdate(body, scalars, x, W, b, alpha, beta, filter, 'layer.y');
  const layerGraph = body.graph(
    'roaf_layer',
    bodyInputs,
    [floatValue(y, ['B', N])],
    'one ROAF layer: y = alpha O x + beta tanh(x Wᵀ + b)',
  );
  const [xL] = g.node('Scan', [x0, ...scanned], ['xL'], { body: layerGraph, num_scan_inputs: scanned.length });
  g.op(
    'Gemm',
    [
      xL!,
      g.initializer('readout.W', [K, N], [model.readout.W.value]),
      g.initializer('readout.b', [K], [model.readout.b.value]),
    ],
    'logits',
    { transB: 1 },
  );
  return {
    inputs: [floatValue(input, ['B', D], INPUT_DOC_FLAT)],
    outputs: [floatValue('logits', ['B', K], 'float32 (B, K): the readout of x_L')],
    layout: '(B, D)',
  };
}

function denseMatrix(filter: FilterOperand): ArrayData {
  if (filter.kind !== 'dense') throw new Error('ONNX export: layers mix filter kinds');
  return filter.matrix;
}

function permutation(filter: FilterOperand): { perm: Int32Array; signs: ArrayData } {
  if (filter.kind !== 'permutation') throw new Error('ONNX export: layers mix filter kinds');
  return filter;
}

/** The initializers of one filter (shared by layers, or a cell's) named `name` as in model.safetensors. */
function filterInitializers(g: GraphBuilder, name: string, filter: FilterOperand): FilterRef {
  const N = filter.n;
  switch (filter.kind) {
    case 'dense':
      return { kind: 'dense', matrix: g.initializer(name, [N, N], [filter.matrix]) };
    case 'permutation':
      return {
        kind: 'permutation',
        perm: g.initializer(`${name}.perm`, [N], [filter.perm]),
        signs: g.initializer(`${name}.signs`, [N], [filter.signs]),
      };
    case 'identity':
      return { kind: 'identity' };
  }
}

/** What one recurrent layer gives the next: its hidden states h_1..h_T (T, B, N) and/or its last state h_T (B, N). */
interface LayerOutputs {
  hs?: string;
  hT?: string;
}

/** Rows [blocks[0]·rows, ...) of a (G·rows, cols) matrix, reordered by blocks: views, not copies. */
function reorderBlocks(matrix: ArrayData, rows: number, cols: number, blocks: number[]): ArrayData[] {
  return blocks.map((block) => matrix.subarray(block * rows * cols, (block + 1) * rows * cols));
}

/** ONNX's LSTM gate order i, o, f, c from roaf's (PyTorch's) i, f, g, o. */
const LSTM_BLOCKS = [0, 3, 1, 2];
/** ONNX's GRU gate order z, r, h from roaf's (PyTorch's) r, z, n. */
const GRU_BLOCKS = [1, 0, 2];

class RecurrentGraph {
  private readonly every: boolean;
  private shapeBN: string | undefined;
  private readonly filterRefs = new Map<FilterOperand, FilterRef>();
  private axes0: string | undefined;
  private axes1: string | undefined;

  constructor(
    private readonly model: RecurrentModel,
    private readonly g: GraphBuilder,
    private readonly scalars: Scalars,
    private readonly input: string,
  ) {
    this.every = model.config.readout === 'every';
  }

  /** (2) int64: [B, N] with B read from the input at run time, the shape of a zero initial state. */
  private stateShape(): string {
    if (this.shapeBN === undefined) {
      const g = this.g;
      const shape = g.op('Shape', [this.input], 'input_shape');
      const batch = g.op('Slice', [shape, g.int64s('const.1', [1]), g.int64s('const.2', [2])], 'batch');
      this.shapeBN = g.op('Concat', [batch, g.int64s('const.N', [this.model.config.hidden])], 'state_shape', {
        axis: 0,
      });
    }
    return this.shapeBN;
  }

  private squeeze(value: string, axis: 0 | 1, base: string): string {
    if (axis === 0) this.axes0 ??= this.g.int64s('const.axes0', [0]);
    else this.axes1 ??= this.g.int64s('const.axes1', [1]);
    return this.g.op('Squeeze', [value, axis === 0 ? this.axes0! : this.axes1!], base);
  }

  private filterRef(filter: FilterOperand, j: number): FilterRef {
    let ref = this.filterRefs.get(filter);
    if (ref === undefined) {
      const cells = this.model.cells;
      const shared = cells.every((cell) => cell instanceof RoafCell && cell.filter === filter);
      ref = filterInitializers(this.g, shared ? 'filter' : `filters.${j}`, filter);
      this.filterRefs.set(filter, ref);
    }
    return ref;
  }

  /** Layer j of k reading xs (T, B, Dj); `wantHs`: the next layer or the readout needs every state. */
  layer(cell: SequenceCell, j: number, xs: string, wantHs: boolean, wantHT: boolean): LayerOutputs {
    const k = this.model.cells.length;
    const prefix = cellName(j, k);
    if (cell instanceof RoafCell) return this.roafLayer(cell, prefix, j, xs, wantHs);
    if (cell instanceof LstmCell) return this.lstmLayer(cell, prefix, xs, wantHs, wantHT);
    if (cell instanceof GruCell) return this.gruLayer(cell, prefix, xs, wantHs, wantHT);
    throw new UsageError(
      `model kind ${this.model.config.model} cannot be exported to ONNX: its cell (${cell.constructor.name}) has no ONNX graph in this roaf`,
    );
  }

  private roafLayer(cell: RoafCell, prefix: string, j: number, xs: string, wantHs: boolean): LayerOutputs {
    const g = this.g;
    const N = cell.units,
      Dj = cell.inputDim;
    const W = g.initializer(`${prefix}.W`, [N, N], [cell.W.value]);
    const U = g.initializer(`${prefix}.U`, [N, Dj], [cell.U.value]);
    const bias = g.initializer(`${prefix}.b`, [N], [cell.b.value]);
    // U x_t + b for all steps at once, outside the loop
    const UT = g.op('Transpose', [U], `${prefix}.U_T`, { perm: [1, 0] });
    const drive = g.op('Add', [g.op('MatMul', [xs, UT], `${prefix}.Ux`), bias], `${prefix}.drive`);
    const h0 = g.op('ConstantOfShape', [this.stateShape()], `${prefix}.h0`);
    const filter = cell.alpha === 0 ? null : this.filterRef(cell.filter, j);

    const body = new GraphBuilder(g.scope);
    const h = g.scope.claim(`${prefix}.h`);
    const d = g.scope.claim(`${prefix}.drive_t`);
    const next = roafUpdate(body, this.scalars, h, W, d, cell.alpha, cell.beta, filter, `${prefix}.h_next`);
    const outputs = [floatValue(next, ['B', N])];
    if (wantHs) outputs.push(floatValue(body.op('Identity', [next], `${prefix}.h_out`), ['B', N]));
    const cellGraph = body.graph(
      `${prefix.replace('.', '_')}_step`,
      [floatValue(h, ['B', N]), floatValue(d, ['B', N])],
      outputs,
      "one step of the ROAF cell: h' = alpha O h + beta tanh(h Wᵀ + drive_t)",
    );
    const [hT, hs] = g.node('Scan', [h0, drive], wantHs ? [`${prefix}.hT`, `${prefix}.hs`] : [`${prefix}.hT`], {
      body: cellGraph,
      num_scan_inputs: 1,
    });
    return { hT: hT!, ...(hs !== undefined ? { hs } : {}) };
  }

  private lstmLayer(cell: LstmCell, prefix: string, xs: string, wantHs: boolean, wantHT: boolean): LayerOutputs {
    const g = this.g;
    const N = cell.units,
      Dj = cell.inputDim;
    const W = g.initializer(`${prefix}.W_iofc`, [1, 4 * N, Dj], reorderBlocks(cell.Wx.value, N, Dj, LSTM_BLOCKS));
    const R = g.initializer(`${prefix}.R_iofc`, [1, 4 * N, N], reorderBlocks(cell.Wh.value, N, N, LSTM_BLOCKS));
    // ONNX adds two biases (input and recurrent); roaf's single b is the first, the second is zero
    const B = g.initializer(
      `${prefix}.B_iofc`,
      [1, 8 * N],
      [...reorderBlocks(cell.b.value, N, 1, LSTM_BLOCKS), new Float32Array(4 * N)],
    );
    const [Y, Yh] = g.node('LSTM', [xs, W, R, B], [wantHs ? `${prefix}.Y` : '', wantHT ? `${prefix}.Y_h` : ''], {
      hidden_size: N,
    });
    return this.squeezeOutputs(prefix, Y!, Yh!);
  }

  private gruLayer(cell: GruCell, prefix: string, xs: string, wantHs: boolean, wantHT: boolean): LayerOutputs {
    const g = this.g;
    const N = cell.units,
      Dj = cell.inputDim;
    const W = g.initializer(`${prefix}.W_zrh`, [1, 3 * N, Dj], reorderBlocks(cell.Wx.value, N, Dj, GRU_BLOCKS));
    const R = g.initializer(`${prefix}.R_zrh`, [1, 3 * N, N], reorderBlocks(cell.Wh.value, N, N, GRU_BLOCKS));
    const B = g.initializer(
      `${prefix}.B_zrh`,
      [1, 6 * N],
      [...reorderBlocks(cell.bx.value, N, 1, GRU_BLOCKS), ...reorderBlocks(cell.bh.value, N, 1, GRU_BLOCKS)],
    );
    // linear_before_reset = 1: n = tanh(W_n x + b_n + r ⊙ (R_n h + b_hn)), PyTorch's (and roaf's) equation
    const [Y, Yh] = g.node('GRU', [xs, W, R, B], [wantHs ? `${prefix}.Y` : '', wantHT ? `${prefix}.Y_h` : ''], {
      hidden_size: N,
      linear_before_reset: 1,
    });
    return this.squeezeOutputs(prefix, Y!, Yh!);
  }

  /** LSTM/GRU outputs Y (T, 1, B, N) and Y_h (1, B, N) without their direction axes. */
  private squeezeOutputs(prefix: string, Y: string, Yh: string): LayerOutputs {
    return {
      ...(Y !== '' ? { hs: this.squeeze(Y, 1, `${prefix}.hs`) } : {}),
      ...(Yh !== '' ? { hT: this.squeeze(Yh, 0, `${prefix}.hT`) } : {}),
    };
  }

  build(): GraphIO {
    const { model, g } = this;
    const { hidden: N, inputDim: D, outputs: K } = model.config;
    const k = model.cells.length;
    let xs = this.input;
    let top: LayerOutputs = {};
    model.cells.forEach((cell, j) => {
      const isTop = j === k - 1;
      top = this.layer(cell, j, xs, !isTop || this.every, isTop && !this.every);
      if (!isTop) xs = top.hs!;
    });
    const Wr = g.initializer('readout.W', [K, N], [model.readout.W.value]);
    const br = g.initializer('readout.b', [K], [model.readout.b.value]);
    if (this.every) {
      const WrT = g.op('Transpose', [Wr], 'readout.W_T', { perm: [1, 0] });
      g.op('Add', [g.op('MatMul', [top.hs!, WrT], 'readout.hW'), br], 'logits');
    } else {
      g.op('Gemm', [top.hT!, Wr, br], 'logits', { transB: 1 });
    }
    return {
      inputs: [floatValue(this.input, ['T', 'B', D], INPUT_DOC_SEQUENCE)],
      outputs: [
        this.every
          ? floatValue('logits', ['T', 'B', K], 'float32 (T, B, K): the readout of every state h_1..h_T, time-major')
          : floatValue('logits', ['B', K], 'float32 (B, K): the readout of the last state h_T'),
      ],
      layout: '(T, B, D) time-major',
    };
  }
}

/** The ModelProto of `model`, and the bytes of its weights. */
function buildModel(model: Model, options: OnnxExportOptions): { proto: ModelProto; weightBytes: number } {
  const config = model.config;
  const scope = new NameScope();
  const g = new GraphBuilder(scope);
  const scalars = new Scalars(g);
  let io: GraphIO;
  if (model instanceof RoafMLP) {
    io = feedForwardGraph(model, g, scalars);
  } else if (model instanceof RecurrentModel) {
    io = new RecurrentGraph(model as RecurrentModel<SequenceCell>, g, scalars, scope.claim('input')).build();
  } else {
    throw new UsageError(
      `model kind ${config.model} cannot be exported to ONNX: its model class has no ONNX graph in this roaf`,
    );
  }
  if (config.dtype === 'float64') {
    (options.warn ?? defaultWarn)('the model is float64; its ONNX export is float32 (weights rounded to float32)');
  }
  const description = `roaf ${config.model}: input ${io.layout} -> logits`;
  const proto: ModelProto = {
    producerName: 'roaf',
    producerVersion: producerVersion(),
    docString: description,
    graph: g.graph(`roaf_${config.model.replace('-', '_')}`, io.inputs, io.outputs, description),
    metadata: {
      'roaf.model': config.model,
      'roaf.config': JSON.stringify(config),
      'roaf.input_layout': io.layout,
      ...options.metadata,
    },
  };
  const weightBytes = g.initializers.reduce((sum, tensor) => sum + tensor.data.byteLength, 0);
  return { proto, weightBytes };
}

/** Bytes for a message: '3.2 GB', '819.4 MB', '1.4 kB'. */
export function formatBytes(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
  return bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${(bytes / 1e3).toFixed(1)} kB`;
}

/**
 * The ONNX model (opset 17, float32) of `model`, as the bytes of a .onnx file with every weight inline.
 * Weights above ONNX_INLINE_LIMIT (2 GB) cannot be inline: use saveOnnx, which writes external data.
 */
export function exportOnnx(model: Model, options: OnnxExportOptions = {}): Uint8Array {
  const { proto, weightBytes } = buildModel(model, options);
  if (weightBytes > ONNX_INLINE_LIMIT) {
    throw new UsageError(
      `the model's weights take ${formatBytes(weightBytes)}, more than one ONNX file holds inline (2 GB): ` +
        'write it with saveOnnx (roaf export), which puts them in an external data file',
    );
  }
  return encodeModel(proto).bytesJoined();
}

/** Writes all of `chunks` to `fd` from `position` (writeSync may write less than asked). */
function writeChunks(fd: number, chunks: readonly Uint8Array[], position: number): number {
  let offset = position;
  for (const chunk of chunks) {
    for (let done = 0; done < chunk.length;) {
      done += writeSync(fd, chunk, done, Math.min(chunk.length - done, 1 << 26), offset + done);
    }
    offset += chunk.length;
  }
  return offset;
}

function writeFileChunks(path: string, chunks: readonly Uint8Array[]): void {
  const fd = openSync(path, 'w');
  try {
    writeChunks(fd, chunks, 0);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes the ONNX model of `model` to `path` (and, when its weights exceed `externalDataThreshold`, its
 * tensors of 1 kB or more to `<path>.data` in the same directory, which the model references by that name).
 * Files are written under temporary names in the same directory and renamed into place, so an error or a
 * kill leaves nothing half-written. An existing file is an error unless `force`.
 */
export function saveOnnx(model: Model, path: string, options: OnnxSaveOptions = {}): OnnxSaved {
  const dir = dirname(path);
  const name = basename(path);
  const dataName = `${name}.data`;
  const dataPath = join(dir, dataName);
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new UsageError(`${path}: directory ${dir} does not exist`);
  if (existsSync(path) && statSync(path).isDirectory()) throw new UsageError(`${path}: is a directory`);
  if (existsSync(path) && !options.force) throw new UsageError(`${path}: file exists (use --force to overwrite it)`);
  const { proto, weightBytes } = buildModel(model, options);
  const threshold = options.externalDataThreshold ?? ONNX_INLINE_LIMIT;
  const external = weightBytes > threshold;
  if (external && existsSync(dataPath) && !options.force)
    throw new UsageError(`${dataPath}: file exists (use --force to overwrite it)`);

  let dataBytes = 0;
  const externalTensors = external
    ? proto.graph.initializers.filter((t) => t.data.byteLength >= EXTERNAL_MIN_BYTES)
    : [];
  for (const tensor of externalTensors) {
    const offset = Math.ceil(dataBytes / EXTERNAL_ALIGNMENT) * EXTERNAL_ALIGNMENT;
    tensor.external = { location: dataName, offset, length: tensor.data.byteLength };
    dataBytes = offset + tensor.data.byteLength;
  }
  const inlineDataBytes = weightBytes - externalTensors.reduce((sum, t) => sum + t.data.byteLength, 0);
  const encoded = encodeModel(proto);

  const tmpModel = join(dir, `.${name}.${process.pid}.tmp`);
  const tmpData = join(dir, `.${dataName}.${process.pid}.tmp`);
  try {
    if (external) {
      const fd = openSync(tmpData, 'w');
      try {
        for (const tensor of externalTensors) writeChunks(fd, tensor.data.chunks, tensor.external!.offset);
      } finally {
        closeSync(fd);
      }
    }
    writeFileChunks(tmpModel, encoded.chunks());
    // Both files are complete before either replaces anything: the data first, which a model refers to.
    if (external) renameSync(tmpData, dataPath);
    renameSync(tmpModel, path);
  } catch (error) {
    rmSync(tmpModel, { force: true });
    rmSync(tmpData, { force: true });
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== undefined)
      throw new UsageError(`${path}: cannot write the ONNX model (${code}: ${(error as Error).message})`);
    throw error;
  }
  // A stale external data file of an earlier export to this path is no longer referenced.
  if (!external && options.force && existsSync(dataPath)) rmSync(dataPath, { force: true });
  return {
    path,
    fileBytes: encoded.length,
    graphBytes: encoded.length - inlineDataBytes,
    weightBytes,
    dataPath: external ? dataPath : null,
    dataBytes,
  };
}

export { OPSET_VERSION };
