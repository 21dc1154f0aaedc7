// The Jacobian spectrum of src/diagnostics against independent computations, in float64:
// - the explicit input-output Jacobian formed by the model's own backward kernels (pushing the identity
//   back through every layer or step), whose singular values come from a plain textbook Jacobi SVD
//   written here, must equal the QR-propagated spectrum (depth 5-50, width 8-32);
// - at depths where the product underflows or overflows a double, Σ log σ_i must equal Σ_l log|det J_l|
//   (exact for any product), and the spectrum must stay finite;
// - the GRU and LSTM step Jacobians against finite differences of the backend's forward kernels.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FloatArray } from '../src/backend/backend.js';
import { referenceBackend as backend } from '../src/backend/reference.js';
import { jacobianChain } from '../src/diagnostics/jacobians.js';
import { ProductSpectrum } from '../src/diagnostics/product-spectrum.js';
import type { ModelConfig, ModelKind } from '../src/models/config.js';
import { createModel } from '../src/models/factory.js';
import { RecurrentModel } from '../src/models/recurrent.js';
import { RoafMLP } from '../src/models/roaf-mlp.js';
import type { FilterKind } from '../src/nn/filter.js';
import { GruCell, LstmCell, RoafCell } from '../src/nn/layers.js';
import { Random } from '../src/util/random.js';

function config(overrides: Partial<ModelConfig>): ModelConfig {
  return {
    model: 'roaf-mlp',
    inputDim: 12,
    outputs: 3,
    readout: 'last',
    depth: 5,
    width: 8,
    hidden: 8,
    alpha: 1,
    beta: 0.3,
    filter: 'haar',
    sharedFilter: false,
    inputScale: 1,
    seed: 1,
    dtype: 'float64',
    ...overrides,
  };
}

function randomInput(n: number, seed: number, scale = 1): Float64Array {
  const rng = new Random(seed);
  return Float64Array.from({ length: n }, () => rng.normal() * scale);
}

/** Singular values of a row-major (n, n) matrix by cyclic one-sided Jacobi, textbook form, descending. */
function jacobiSingularValues(matrix: ArrayLike<number>, n: number): number[] {
  // Columns of A as rows of `c`.
  const c = Array.from({ length: n }, (_, j) => Float64Array.from({ length: n }, (_, i) => matrix[i * n + j]!));
  for (let sweep = 0; sweep < 80; sweep++) {
    let off = 0;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        let a = 0,
          b = 0,
          g = 0;
        for (let k = 0; k < n; k++) {
          a += c[p]![k]! * c[p]![k]!;
          b += c[q]![k]! * c[q]![k]!;
          g += c[p]![k]! * c[q]![k]!;
        }
        if (g === 0 || Math.abs(g) <= 1e-16 * Math.sqrt(a * b)) continue;
        off = Math.max(off, Math.abs(g) / Math.sqrt(a * b));
        const zeta = (b - a) / (2 * g);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const cs = 1 / Math.sqrt(1 + t * t),
          sn = cs * t;
        for (let k = 0; k < n; k++) {
          const x = c[p]![k]!,
            y = c[q]![k]!;
          c[p]![k] = cs * x - sn * y;
          c[q]![k] = sn * x + cs * y;
        }
      }
    }
    if (off < 1e-15) break;
  }
  return c.map((col) => Math.sqrt(col.reduce((s, x) => s + x * x, 0))).sort((x, y) => y - x);
}

/** ln |det A| of a row-major (n, n) matrix by LU with partial pivoting (the matrix is copied). */
function logAbsDet(matrix: ArrayLike<number>, n: number): number {
  const a = Float64Array.from(matrix);
  let sum = 0;
  for (let k = 0; k < n; k++) {
    let pivot = k;
    for (let i = k + 1; i < n; i++) if (Math.abs(a[i * n + k]!) > Math.abs(a[pivot * n + k]!)) pivot = i;
    if (pivot !== k) for (let j = 0; j < n; j++) [a[k * n + j], a[pivot * n + j]] = [a[pivot * n + j]!, a[k * n + j]!];
    const d = a[k * n + k]!;
    sum += Math.log(Math.abs(d));
    for (let i = k + 1; i < n; i++) {
      const f = a[i * n + k]! / d;
      for (let j = k; j < n; j++) a[i * n + j]! -= f * a[k * n + j]!;
    }
  }
  return sum;
}

/** ∂x_L/∂x_0 of a RoafMLP at `input`, formed by the model's own layer backward kernels on the identity. */
function explicitMlpJacobian(model: RoafMLP, input: Float64Array): Float64Array {
  const N = model.config.width;
  const inputs = new Float64Array(N * input.length);
  for (let r = 0; r < N; r++) inputs.set(input, r * input.length); // N copies of the sample
  model.forward(N, 1, inputs);
  let g: FloatArray = new Float64Array(N * N);
  for (let i = 0; i < N; i++) g[i * N + i] = 1;
  let next: FloatArray = new Float64Array(N * N);
  const a = new Float64Array(N * N),
    y = new Float64Array(N * N),
    gz = new Float64Array(N * N);
  for (let l = model.layers.length - 1; l >= 0; l--) {
    const x = model.savedLayerInput(l, N);
    model.layers[l]!.forward(backend, N, x, a, y);
    model.layers[l]!.backward(backend, N, x, a, g, next, gz); // rows: next = g J_l
    [g, next] = [next, g];
  }
  return g;
}

/** ∂h_T/∂h_0 of a ROAF/Elman cell at inputs xs (T, D), from the backend's backward through time. */
function explicitCellJacobian(cell: RoafCell, xs: Float64Array, T: number): Float64Array {
  const N = cell.units,
    D = cell.inputDim,
    B = N;
  const batch = new Float64Array(T * B * D);
  for (let t = 0; t < T; t++)
    for (let r = 0; r < B; r++) for (let k = 0; k < D; k++) batch[(t * B + r) * D + k] = xs[t * D + k]!;
  const hs = new Float64Array((T + 1) * B * N),
    as = new Float64Array(T * B * N);
  const { alpha, beta, filter } = cell;
  backend.roafCellForward({
    T,
    B,
    D,
    N,
    alpha,
    beta,
    filter,
    xs: batch,
    W: cell.W.value,
    U: cell.U.value,
    b: cell.b.value,
    hs,
    as,
  });
  const ghs = new Float64Array(T * B * N);
  for (let i = 0; i < N; i++) ghs[(T - 1) * B * N + i * N + i] = 1; // ∂loss/∂h_T = identity rows
  const gh0 = new Float64Array(B * N);
  backend.roafCellBackward({
    T,
    B,
    D,
    N,
    alpha,
    beta,
    filter,
    xs: batch,
    W: cell.W.value,
    U: cell.U.value,
    hs,
    as,
    ghs,
    gzs: new Float64Array(T * B * N),
    gW: new Float64Array(N * N),
    gU: new Float64Array(N * D),
    gb: new Float64Array(N),
    gh0,
    gxs: null,
    lastStepOnly: false,
  });
  return gh0;
}

interface QrResult {
  /** ln σ_i from the QR propagation, largest first. */
  logs: Float64Array;
  /** Σ_l ln|det J_l| over the chain's factors (LU of each). */
  logDet: number;
}

function qrSpectrum(model: Parameters<typeof jacobianChain>[0], input: Float64Array, T: number): QrResult {
  const chain = jacobianChain(model, input, T);
  const product = new ProductSpectrum(chain.size);
  let logDet = 0;
  chain.run((_, J) => {
    logDet += logAbsDet(J, chain.size);
    product.push(J);
  });
  assert.equal(product.steps, chain.count);
  return { logs: product.logSingularValues(), logDet };
}

/** σ from the QR propagation vs σ of the explicit matrix: close relative to σ_max, and in log where σ is not tiny. */
function assertSameSpectrum(label: string, { logs, logDet }: QrResult, explicit: Float64Array, n: number): void {
  const direct = jacobiSingularValues(explicit, n);
  const mine = Array.from(logs, Math.exp);
  const max = direct[0]!;
  for (let i = 0; i < n; i++) {
    const absolute = Math.abs(mine[i]! - direct[i]!) / max;
    assert.ok(
      absolute < 1e-12,
      `${label}: σ_${i} = ${mine[i]} vs direct ${direct[i]} (|Δ|/σ_max = ${absolute.toExponential(2)})`,
    );
    if (direct[i]! > 1e-6 * max) {
      const relative = Math.abs(logs[i]! - Math.log(direct[i]!));
      assert.ok(relative < 1e-9, `${label}: ln σ_${i} = ${logs[i]} vs direct ${Math.log(direct[i]!)}`);
    }
  }
  // Invariants: Σ σ² = ||A||_F²; Σ ln σ = ln|det A| = Σ_l ln|det J_l|, exact however ill-conditioned A is
  // (the explicit A has lost its small singular values to rounding once σ_min/σ_max < 1e-16).
  let frobenius = 0;
  for (let i = 0; i < n * n; i++) frobenius += explicit[i]! * explicit[i]!;
  const sumSquares = mine.reduce((s, x) => s + x * x, 0);
  assert.ok(
    Math.abs(sumSquares - frobenius) <= 1e-11 * frobenius,
    `${label}: Σσ² ${sumSquares} vs ||A||_F² ${frobenius}`,
  );
  const sumLogs = logs.reduce((s, x) => s + x, 0);
  assert.ok(
    Math.abs(sumLogs - logDet) <= 1e-9 * Math.max(1, Math.abs(logDet)),
    `${label}: Σ ln σ ${sumLogs} vs Σ_l ln|det J_l| ${logDet}`,
  );
}

describe('Jacobian spectrum by QR propagation equals a direct SVD of the explicit Jacobian (float64)', () => {
  const cases: Array<{
    model: ModelKind;
    depth: number;
    width: number;
    alpha: number;
    beta: number;
    filter: FilterKind;
    shared?: boolean;
  }> = [
    { model: 'roaf-mlp', depth: 5, width: 8, alpha: 1, beta: 0.3, filter: 'haar' },
    { model: 'roaf-mlp', depth: 20, width: 16, alpha: 1, beta: 0.1, filter: 'permutation' },
    { model: 'roaf-mlp', depth: 50, width: 32, alpha: 0.9, beta: 0.5, filter: 'qr-uniform', shared: true },
    { model: 'roaf-mlp', depth: 50, width: 8, alpha: 0.5, beta: 1, filter: 'cycle' },
    { model: 'roaf-mlp', depth: 12, width: 16, alpha: 1, beta: 2, filter: 'identity' },
    { model: 'mlp', depth: 50, width: 16, alpha: 0, beta: 1, filter: 'haar' },
    { model: 'mlp', depth: 8, width: 32, alpha: 0, beta: 1, filter: 'haar' },
    { model: 'resmlp', depth: 30, width: 8, alpha: 1, beta: 1, filter: 'identity' },
  ];
  for (const c of cases) {
    it(`${c.model} depth ${c.depth} width ${c.width} alpha ${c.alpha} beta ${c.beta} ${c.filter}`, () => {
      const model = createModel(
        config({
          model: c.model,
          depth: c.depth,
          width: c.width,
          alpha: c.alpha,
          beta: c.beta,
          filter: c.filter,
          sharedFilter: c.shared ?? false,
        }),
        backend,
      );
      assert.ok(model instanceof RoafMLP);
      const input = randomInput(12, c.depth + c.width, 2);
      const logs = qrSpectrum(model, input, 1);
      assertSameSpectrum(`${c.model} L=${c.depth}`, logs, explicitMlpJacobian(model, input), c.width);
    });
  }

  for (const [kind, alpha, beta] of [
    ['roaf-rnn', 1, 0.5],
    ['rnn', 0, 1],
  ] as const) {
    it(`${kind}: ∂h_T/∂h_0 over T = 25 steps, N = 12`, () => {
      const model = createModel(config({ model: kind, hidden: 12, inputDim: 3, alpha, beta, inputScale: 2 }), backend);
      assert.ok(model instanceof RecurrentModel && model.cell instanceof RoafCell);
      const T = 25;
      const xs = randomInput(T * 3, 9);
      assertSameSpectrum(kind, qrSpectrum(model, xs, T), explicitCellJacobian(model.cell, xs, T), 12);
    });
  }

  it('detects a wrong spectrum: a perturbed explicit Jacobian no longer matches', () => {
    const model = createModel(config({ depth: 6, width: 8 }), backend) as RoafMLP;
    const input = randomInput(12, 4);
    const explicit = explicitMlpJacobian(model, input);
    explicit[3]! += 1e-6;
    assert.throws(() => assertSameSpectrum('perturbed', qrSpectrum(model, input, 1), explicit, 8));
  });
});

describe('Jacobian spectrum at depths that under- or overflow a double', () => {
  for (const kind of ['mlp', 'resmlp', 'roaf-mlp'] as const) {
    it(`${kind} at depth 3000: finite logs, Σ ln σ = Σ_l ln|det J_l|, ordered`, () => {
      const model = createModel(config({ model: kind, depth: 3000, width: 8, alpha: 1, beta: 0.05 }), backend);
      const { logs, logDet } = qrSpectrum(model, randomInput(12, 3, 1), 1);
      assert.ok(logs.every(Number.isFinite), `non-finite log singular values: ${Array.from(logs).join()}`);
      for (let i = 1; i < logs.length; i++) assert.ok(logs[i]! <= logs[i - 1]!);
      const sum = logs.reduce((s, x) => s + x, 0);
      assert.ok(Math.abs(sum - logDet) <= 1e-9 * Math.abs(logDet) + 1e-8, `Σ ln σ ${sum} vs Σ ln|det| ${logDet}`);
      if (kind === 'mlp')
        assert.ok(logs[logs.length - 1]! < -745, `σ_min = e^${logs[logs.length - 1]}: beyond the double range`);
    });
  }
});

describe('GRU and LSTM step Jacobians match finite differences of the forward kernels', () => {
  const T = 3,
    D = 2,
    N = 4,
    h = 1e-6;
  const xs = randomInput(T * D, 21);

  it('GRU: ∂h_T/∂h_0', () => {
    const model = createModel(config({ model: 'gru', hidden: N, inputDim: D }), backend) as RecurrentModel;
    const cell = model.cell as GruCell;
    const run = (h0: Float64Array): Float64Array => {
      const hs = new Float64Array((T + 1) * N);
      hs.set(h0);
      backend.gruForward({
        T,
        B: 1,
        D,
        N,
        xs,
        Wx: cell.Wx.value,
        Wh: cell.Wh.value,
        bx: cell.bx.value,
        bh: cell.bh.value,
        hs,
        gates: new Float64Array(T * 3 * N),
        hn: new Float64Array(T * N),
      });
      return hs.subarray(T * N);
    };
    const analytic = explicitFromChain(model, xs, T, N);
    for (let k = 0; k < N; k++) {
      const plus = new Float64Array(N),
        minus = new Float64Array(N);
      plus[k] = h;
      minus[k] = -h;
      const hp = run(plus),
        hm = run(minus);
      for (let i = 0; i < N; i++)
        assert.ok(Math.abs((hp[i]! - hm[i]!) / (2 * h) - analytic[i * N + k]!) < 1e-7, `GRU J[${i},${k}]`);
    }
  });

  it('LSTM: ∂(h_T, c_T)/∂(h_0, c_0)', () => {
    const model = createModel(config({ model: 'lstm', hidden: N, inputDim: D }), backend) as RecurrentModel;
    const cell = model.cell as LstmCell;
    const run = (state: Float64Array): Float64Array => {
      const hs = new Float64Array((T + 1) * N),
        cs = new Float64Array((T + 1) * N);
      hs.set(state.subarray(0, N));
      cs.set(state.subarray(N));
      backend.lstmForward({
        T,
        B: 1,
        D,
        N,
        xs,
        Wx: cell.Wx.value,
        Wh: cell.Wh.value,
        b: cell.b.value,
        hs,
        cs,
        gates: new Float64Array(T * 4 * N),
      });
      return Float64Array.of(...hs.subarray(T * N), ...cs.subarray(T * N));
    };
    const S = 2 * N;
    const analytic = explicitFromChain(model, xs, T, S);
    for (let k = 0; k < S; k++) {
      const plus = new Float64Array(S),
        minus = new Float64Array(S);
      plus[k] = h;
      minus[k] = -h;
      const sp = run(plus),
        sm = run(minus);
      for (let i = 0; i < S; i++)
        assert.ok(Math.abs((sp[i]! - sm[i]!) / (2 * h) - analytic[i * S + k]!) < 1e-7, `LSTM J[${i},${k}]`);
    }
  });

  /** The product of the chain's factors, formed explicitly (T small). */
  function explicitFromChain(model: RecurrentModel, inputs: Float64Array, steps: number, size: number): Float64Array {
    let product = new Float64Array(size * size);
    for (let i = 0; i < size; i++) product[i * size + i] = 1;
    jacobianChain(model, inputs, steps).run((_, J) => {
      const next = new Float64Array(size * size);
      for (let i = 0; i < size; i++)
        for (let k = 0; k < size; k++)
          for (let j = 0; j < size; j++) next[i * size + j]! += J[i * size + k]! * product[k * size + j]!;
      product = next;
    });
    return product;
  }
});
