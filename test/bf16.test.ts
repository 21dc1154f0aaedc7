// bf16 products with float32 accumulation (`--precision bf16`, docs/precision.md): the rounding, the product
// kernel gemmBf16 on every backend and instruction set against float64 within the bound bf16's 8-bit
// significand gives, the native kernel against the reference's bf16 arithmetic, the fused kernels on bf16
// products, 20-step training trajectories against float32, and the option's plumbing.
//
// The bound. bf16 keeps 8 significant bits: unit roundoff u = 2^-8. Rounding both operands gives
// ã·b̃ = a·b·(1+δ1)(1+δ2) with |δ| <= u, so |ã·b̃ - a·b| <= (2u + u²)·|a·b|. Summing K products in float32
// (u32 = 2^-24) adds at most γ_K·Σ|ã·b̃|, γ_K = K·u32 / (1 - K·u32) (Higham, Accuracy and Stability of
// Numerical Algorithms, §3.1; the reference sums in float64, far below it). Scaling by alpha, adding beta·C
// and storing as float32 round twice more. So, elementwise, with S = Σ_k |op(A)_ik|·|op(B)_kj|:
//   |C_bf16 - C_exact| <= |alpha|·(2u + u² + γ_K·(1+u)²)·S + 2·u32·(|alpha|·S·(1+2u) + |beta·C0|).
// The native kernel against the reference's bf16 result (the same rounded operands): only the float32 sum
// differs, |diff| <= γ_K·|alpha|·S̃ + 2·u32·(|alpha|·S̃ + |beta·C0|), S̃ = Σ|ã·b̃| <= (1+u)²·S.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

import type { Backend, GemmArgs } from '../src/backend/backend.js';
import { backendForPrecision, bf16Round, roundToBf16, withBf16Products } from '../src/backend/bf16.js';
import { loadBackend } from '../src/backend/index.js';
import { nativeInfo, setNativeIsa, setNativeThreads, type NativeIsa } from '../src/backend/native.js';
import { referenceBackend } from '../src/backend/reference.js';
import { loadTask } from '../src/data/tasks.js';
import type { Dataset } from '../src/data/dataset.js';
import type { ModelKind } from '../src/models/config.js';
import { createModel, modelConfig } from '../src/models/factory.js';
import { DEFAULT_OPTIMIZER, Optimizer } from '../src/train/optimizer.js';
import { BatchBuffers, batchLoss, epochOrder } from '../src/train/trainer.js';
import { Random } from '../src/util/random.js';
import { cellCases, execute, gatedCases, layerCases, mlpStackCases, relativeError, type Case } from './kernel-cases.js';
import { nativeSettingsForSuite } from './native-settings.js';

const U = 2 ** -8; // bf16 unit roundoff
const U32 = 2 ** -24; // float32 unit roundoff
const gamma = (K: number): number => (K * U32) / (1 - K * U32);

const native = loadBackend('native', { quiet: true });
const info = nativeInfo();
const nativeSkip = native === null ? 'the native addon is not built' : false;

// ---- rounding ----

describe('bf16 rounding', () => {
  it('rounds to nearest with ties to even, keeps NaN, overflows to Infinity, and is idempotent', () => {
    assert.equal(bf16Round(1), 1);
    assert.equal(bf16Round(1 + 2 ** -8), 1); // a tie: 1 has the even significand
    assert.equal(bf16Round(1 + 3 * 2 ** -8), 1 + 2 ** -6); // a tie: 1 + 2^-6 is even, 1 + 2^-7 odd
    assert.equal(bf16Round(1 + 2 ** -8 + 2 ** -20), 1 + 2 ** -7); // past the tie
    assert.equal(bf16Round(-(1 + 2 ** -8 + 2 ** -20)), -(1 + 2 ** -7));
    assert.equal(bf16Round(3.4e38), Infinity);
    assert.ok(Number.isNaN(bf16Round(Number.NaN)));
    assert.equal(bf16Round(Infinity), Infinity);
    assert.ok(Object.is(bf16Round(-0), -0));
    const rng = new Random(3);
    const x = new Float32Array(2000);
    for (let i = 0; i < x.length; i++) x[i] = rng.normal() * 10 ** (rng.uniform() * 40 - 20);
    const r = roundToBf16(x);
    for (let i = 0; i < x.length; i++) {
      assert.ok(Math.abs(r[i]! - x[i]!) <= U * Math.abs(x[i]!), `${x[i]} -> ${r[i]}`);
      assert.equal(bf16Round(r[i]!), r[i]); // a bf16 value is its own rounding
      assert.equal(new Uint32Array(Float32Array.of(r[i]!).buffer)[0]! & 0xffff, 0); // low 16 bits cleared
    }
  });
});

// ---- the product ----

interface ProductCase {
  name: string;
  transA: boolean;
  transB: boolean;
  M: number;
  N: number;
  K: number;
  lda: number;
  ldb: number;
  ldc: number;
  alpha: number;
  beta: number;
}

/**
 * Awkward shapes: odd K (a half-empty last pair), K past one packed block (512), K long enough to be split
 * into chunks of whole blocks (the weight-gradient shape, K >= 4 (M + N), here with an odd K), strides,
 * every transpose.
 */
function productCases(): ProductCase[] {
  const shapes: [number, number, number][] = [
    [1, 1, 1],
    [7, 33, 5],
    [8, 32, 2],
    [17, 65, 129],
    [40, 24, 1100],
    [24, 16, 2049],
    [3, 100, 513],
    [33, 1, 300],
    [1, 70, 64],
  ];
  const list: ProductCase[] = [];
  let i = 0;
  for (const [M, N, K] of shapes) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const pad = i++ % 3; // row strides longer than the rows
        list.push({
          name: `${M}x${N}x${K}${transA ? ' Aᵀ' : ''}${transB ? ' Bᵀ' : ''}${pad > 0 ? ` +${pad} stride` : ''}`,
          transA,
          transB,
          M,
          N,
          K,
          lda: (transA ? M : K) + pad,
          ldb: (transB ? K : N) + pad,
          ldc: N + pad,
          alpha: i % 2 === 0 ? 1 : -0.75,
          beta: i % 4 === 0 ? 0 : 0.5,
        });
      }
    }
  }
  return list;
}

interface ProductInputs {
  A: Float32Array;
  B: Float32Array;
  C0: Float32Array;
}

function productInputs(c: ProductCase, rng: Random): ProductInputs {
  const fill = (n: number) => Float32Array.from({ length: n }, () => rng.normal() * 2 ** (rng.uniform() * 6 - 3));
  const rowsA = c.transA ? c.K : c.M;
  const rowsB = c.transB ? c.N : c.K;
  return { A: fill(rowsA * c.lda), B: fill(rowsB * c.ldb), C0: fill(c.M * c.ldc) };
}

function args(c: ProductCase, x: ProductInputs, C: Float32Array | Float64Array, A = x.A, B = x.B): GemmArgs {
  return {
    transA: c.transA,
    transB: c.transB,
    M: c.M,
    N: c.N,
    K: c.K,
    alpha: c.alpha,
    A,
    lda: c.lda,
    B,
    ldb: c.ldb,
    beta: c.beta,
    C,
    ldc: c.ldc,
  };
}

/** C = alpha op(A) op(B) + beta C0 in float64 on the operands as given, and S = Σ|op(A)|·|op(B)|. */
function exact(c: ProductCase, x: ProductInputs, round: boolean): { C: Float64Array; S: Float64Array } {
  const A = Float64Array.from(x.A, (v) => (round ? bf16Round(v) : v));
  const B = Float64Array.from(x.B, (v) => (round ? bf16Round(v) : v));
  const C = Float64Array.from(x.C0);
  referenceBackend.gemm({ ...args(c, x, C), A, B });
  const S = new Float64Array(c.M * c.ldc);
  referenceBackend.gemm({ ...args(c, x, S), A: A.map(Math.abs), B: B.map(Math.abs), alpha: 1, beta: 0 });
  return { C, S };
}

/** Asserts |got - want| <= bound(S, C0) elementwise over C, leaving the padding alone. */
function within(
  c: ProductCase,
  got: Float32Array,
  want: Float64Array,
  S: Float64Array,
  x: ProductInputs,
  bound: (s: number, c0: number) => number,
  label: string,
): number {
  let worst = 0; // the largest error as a fraction of its bound
  for (let i = 0; i < c.M; i++) {
    for (let j = 0; j < c.N; j++) {
      const at = i * c.ldc + j;
      const limit = bound(S[at]!, c.beta === 0 ? 0 : Math.abs(c.beta * x.C0[at]!));
      const err = Math.abs(got[at]! - want[at]!);
      assert.ok(
        err <= limit,
        `${label} ${c.name}: C[${i}, ${j}] = ${got[at]} vs ${want[at]}: error ${err} > bound ${limit}`,
      );
      if (limit > 0) worst = Math.max(worst, err / limit);
    }
  }
  for (let i = 0; i < c.M; i++)
    for (let j = c.N; j < c.ldc; j++)
      assert.equal(got[i * c.ldc + j], x.C0[i * c.ldc + j], `${label}: padding written`);
  return worst;
}

/** The bound against the exact product of the unrounded operands (see the header). */
function bf16Bound(c: ProductCase): (s: number, c0: number) => number {
  const a = Math.abs(c.alpha);
  return (s, c0) => a * (2 * U + U * U + gamma(c.K) * (1 + U) ** 2) * s + 2 * U32 * (a * s * (1 + 2 * U) + c0);
}

/** The bound between two sums of the same rounded products (S here is S̃). */
function accumulationBound(c: ProductCase): (s: number, c0: number) => number {
  const a = Math.abs(c.alpha);
  return (s, c0) => a * gamma(c.K) * s + 2 * U32 * (a * s + c0) + 1e-45;
}

function gemmBf16On(backend: Backend, c: ProductCase, x: ProductInputs): Float32Array {
  const C = x.C0.slice();
  backend.gemmBf16(args(c, x, C));
  return C;
}

describe('gemmBf16 against float64', () => {
  const cases = productCases();
  const rng = new Random(11);
  const inputs = cases.map((c) => productInputs(c, rng));
  const exactResults = cases.map((c, i) => exact(c, inputs[i]!, false));
  const roundedResults = cases.map((c, i) => exact(c, inputs[i]!, true));
  const isas: NativeIsa[] = info?.available ?? [];
  nativeSettingsForSuite();

  it('the reference: within the bf16 bound of the exact product, and not within float32 accuracy of it', () => {
    let rounded = 0;
    cases.forEach((c, i) => {
      const got = gemmBf16On(referenceBackend, c, inputs[i]!);
      within(c, got, exactResults[i]!.C, exactResults[i]!.S, inputs[i]!, bf16Bound(c), 'reference');
      // The reference is the exact product of the rounded operands, rounded once more to float32.
      within(
        c,
        got,
        roundedResults[i]!.C,
        roundedResults[i]!.S,
        inputs[i]!,
        (s, c0) => 2 * U32 * (Math.abs(c.alpha) * s + c0) + 1e-45,
        'reference vs rounded',
      );
      for (let j = 0; j < c.M * c.N; j++) {
        const at = Math.floor(j / c.N) * c.ldc + (j % c.N);
        if (Math.abs(got[at]! - exactResults[i]!.C[at]!) > 1e-5 * exactResults[i]!.S[at]!) rounded++;
      }
    });
    assert.ok(rounded > 100, `only ${rounded} elements show the bf16 rounding: are the operands rounded?`);
  });

  for (const isa of isas) {
    it(
      `native ${isa}: within the bf16 bound of the exact product, and within float32 accumulation of the reference's bf16 result`,
      { skip: nativeSkip },
      () => {
        setNativeIsa(isa);
        setNativeThreads(1);
        cases.forEach((c, i) => {
          const got = gemmBf16On(native!, c, inputs[i]!);
          within(c, got, exactResults[i]!.C, exactResults[i]!.S, inputs[i]!, bf16Bound(c), isa);
          within(
            c,
            got,
            roundedResults[i]!.C,
            roundedResults[i]!.S,
            inputs[i]!,
            accumulationBound(c),
            `${isa} vs rounded`,
          );
        });
      },
    );
  }

  it(
    'native: every instruction set gives the same bits (vdpbf16ps and the C fallback), on 1 and 2 threads',
    { skip: nativeSkip },
    () => {
      const results = new Map<string, Float32Array[]>();
      for (const isa of isas) {
        setNativeIsa(isa);
        for (const threads of [1, 2]) {
          setNativeThreads(threads);
          results.set(
            `${isa}, ${threads} thread(s)`,
            cases.map((c, i) => gemmBf16On(native!, c, inputs[i]!)),
          );
        }
      }
      const [first, ...rest] = [...results.entries()];
      for (const [label, outs] of rest)
        outs.forEach((out, i) =>
          assert.deepEqual(out, first![1][i], `${cases[i]!.name}: ${label} differs from ${first![0]}`),
        );
    },
  );

  it(
    'native: beta = 0 does not read C (NaN there is overwritten), alpha = 0 or K = 0 scales C',
    { skip: nativeSkip },
    () => {
      setNativeIsa(info!.isa);
      const A = Float32Array.of(1, 2, 3, 4);
      const B = Float32Array.of(1, 0, 0, 1);
      const C = new Float32Array(4).fill(Number.NaN);
      native!.gemmBf16({
        transA: false,
        transB: false,
        M: 2,
        N: 2,
        K: 2,
        alpha: 1,
        A,
        lda: 2,
        B,
        ldb: 2,
        beta: 0,
        C,
        ldc: 2,
      });
      assert.deepEqual([...C], [1, 2, 3, 4]);
      native!.gemmBf16({
        transA: false,
        transB: false,
        M: 2,
        N: 2,
        K: 2,
        alpha: 0,
        A,
        lda: 2,
        B,
        ldb: 2,
        beta: 2,
        C,
        ldc: 2,
      });
      assert.deepEqual([...C], [2, 4, 6, 8]);
      native!.gemmBf16({
        transA: false,
        transB: false,
        M: 2,
        N: 2,
        K: 0,
        alpha: 1,
        A,
        lda: 2,
        B,
        ldb: 2,
        beta: 0.5,
        C,
        ldc: 2,
      });
      assert.deepEqual([...C], [1, 2, 3, 4]);
    },
  );
});

// ---- the fused kernels on bf16 products ----

/**
 * The fused kernels' cases of the conformance suite, run on bf16 products. Tolerances (normwise relative error,
 * as in kernel-cases.ts):
 * - against float64 (the reference on float64, no rounding): one product's relative error is at most about
 *   2u = 7.8e-3 of Σ|a·b| (normwise much less: the roundings of the K terms are independent, ~2u/√K), and a
 *   whole sequence or stack carries it through 16-20 steps amplified by each step's Jacobian, as in
 *   kernel-cases.ts: 5e-2;
 * - native against the reference's bf16 arithmetic: one layer (forward or backward) has the same rounded
 *   operands on both, so only the float32 sums differ: 1e-5, as for float32 products (kernel-cases.ts). A
 *   sequence or stack carries a state that differs by float32 rounding, and a state element within that
 *   distance of a bf16 rounding boundary rounds the other way (an error of u in one operand, ~u/√N normwise,
 *   then carried forward): 2e-2.
 * Measured here: against float64 at most 2.9e-2 (the cell); native against the reference 3.6e-7 (layer),
 * 8.9e-3 (the cell).
 */
const TOL_BF16_VS_FLOAT64 = 5e-2;
const TOL_BF16_VS_REFERENCE = 2e-2;
const TOL_BF16_LAYER_VS_REFERENCE = 1e-5;

function fusedCases(): [string, Case[]][] {
  const rng = new Random(20251202);
  return [
    ['ROAF layer', layerCases(rng)],
    ['ROAF cell', cellCases(rng)],
    ['ROAF MLP', mlpStackCases(rng)],
    ['LSTM and GRU', gatedCases(rng)],
  ];
}

describe('fused kernels on bf16 products', () => {
  const groups = fusedCases();
  const reference = withBf16Products(referenceBackend);
  for (const [group, cases] of groups) {
    it(`${group} (${cases.length} cases): the reference's bf16 within ${TOL_BF16_VS_FLOAT64} of float64, and rounded`, () => {
      let differs = 0;
      for (const c of cases) {
        const want = execute(c, referenceBackend, true);
        const got = execute(c, reference, false);
        for (const name of c.outputs) {
          const initial = c.inputs[name] instanceof Float32Array ? c.inputs[name] : null;
          const err = relativeError(got[name] as ArrayLike<number>, want[name] as ArrayLike<number>, initial);
          assert.ok(err <= TOL_BF16_VS_FLOAT64, `${c.name}: ${name} relative error ${err.toExponential(2)}`);
          if (err > 1e-4) differs++;
        }
      }
      assert.ok(differs > 0, 'no output shows the bf16 rounding');
    });
    const tol = group === 'ROAF layer' ? TOL_BF16_LAYER_VS_REFERENCE : TOL_BF16_VS_REFERENCE;
    it(`${group}: native bf16 within ${tol} of the reference's bf16`, { skip: nativeSkip }, () => {
      setNativeIsa(info!.isa);
      const nativeBf16 = withBf16Products(native!);
      for (const c of cases) {
        const want = execute(c, reference, false);
        const got = execute(c, nativeBf16, false);
        for (const name of c.outputs) {
          const initial = c.inputs[name] instanceof Float32Array ? c.inputs[name] : null;
          const err = relativeError(got[name] as ArrayLike<number>, want[name] as ArrayLike<number>, initial);
          assert.ok(err <= tol, `${c.name}: ${name} relative error ${err.toExponential(2)}`);
        }
      }
    });
  }
});

// ---- training in bf16 ----

const STEPS = 20;

function trajectory(
  backend: Backend,
  kind: ModelKind,
  data: Dataset,
  extra: object,
  precision: 'float32' | 'bf16',
): number[] {
  const outputs = data.target.kind === 'regression' ? data.target.outputs : data.target.classes;
  const model = createModel(
    modelConfig({ model: kind, inputDim: data.inputDim, outputs, seed: 5, precision, ...extra }),
    backend,
  );
  const optimizer = new Optimizer({ ...DEFAULT_OPTIMIZER, lr: 3e-3 }, model.params, model.backend);
  const B = 16;
  const buffers = new BatchBuffers(data, model, B);
  const order = epochOrder(1, 0, data.count);
  const losses: number[] = [];
  for (let step = 0; step < STEPS; step++) {
    const indices = order.subarray(step * B, (step + 1) * B);
    const { loss, rows, inputs, gOutputs } = batchLoss(model, buffers, indices, true);
    losses.push(loss.lossSum / rows);
    model.params.zeroGrad();
    model.backward(B, data.steps, inputs, gOutputs);
    optimizer.step();
  }
  return losses;
}

/**
 * A 20-step trajectory in bf16 follows float32's: every step's loss within a relative 1e-2. The products'
 * error (normwise ~u/√K to 2u, see above) perturbs each step's loss by well under 1 %, and Adam's updates
 * (normalised steps) carry a perturbation of the weights from step to step without amplifying it much in 20
 * steps (measured: at most 3.6e-3 over these models, reference and native alike); a model computing something
 * else (a product in the wrong precision, a dropped term) moves the loss by far more. The float32 run must
 * make progress, so the comparison is not between two flat lines.
 */
const TOL_TRAJECTORY = 1e-2;

describe('20-step training trajectories in bf16 follow float32', () => {
  const mnist = loadTask('mnist', { seed: 0, trainLimit: STEPS * 16 }).train;
  const adding = loadTask('adding', { seed: 0, seqLen: 30, trainSize: STEPS * 16, testSize: 16 }).train;
  const cases: [ModelKind, Dataset, object][] = [
    ['roaf-mlp', mnist, { depth: 30, width: 32 }],
    ['roaf-rnn', adding, { hidden: 24, inputScale: 3 }],
    ['lstm', adding, { hidden: 12 }],
    ['gru', adding, { hidden: 12 }],
  ];
  const backends: [string, Backend | null][] = [
    ['reference', referenceBackend],
    ['native', info?.bf16 === true ? native : null],
  ];
  for (const [name, backend] of backends) {
    for (const [kind, data, extra] of cases) {
      it(
        `${name}: ${kind} ${JSON.stringify(extra)}`,
        { skip: backend === null ? 'no native backend with AVX512_BF16' : false },
        () => {
          const float32 = trajectory(backend!, kind, data, extra, 'float32');
          const bf16 = trajectory(backend!, kind, data, extra, 'bf16');
          assert.ok(float32[STEPS - 1]! < float32[0]!, 'the float32 trajectory should make progress');
          let moved = 0;
          float32.forEach((want, i) => {
            const relative = Math.abs(bf16[i]! - want) / Math.abs(want);
            moved = Math.max(moved, relative);
            assert.ok(
              relative < TOL_TRAJECTORY,
              `step ${i + 1}: bf16 loss ${bf16[i]} vs float32 ${want} (relative ${relative.toExponential(2)})`,
            );
          });
          assert.ok(moved > 1e-6, 'bf16 gave float32 losses: were the products rounded?');
        },
      );
    }
  }
});

// ---- plumbing ----

describe('--precision bf16', () => {
  it('runs a model on bf16 products, float32 weights; float64 is refused', () => {
    const model = createModel(
      { model: 'roaf-rnn', inputDim: 1, outputs: 10, hidden: 8, precision: 'bf16' },
      referenceBackend,
    );
    assert.match(model.backend.describe(), /bf16 products/);
    assert.equal(model.config.precision, 'bf16');
    for (const p of model.params.parameters) assert.ok(p.value instanceof Float32Array);
    assert.throws(
      () =>
        createModel(
          { model: 'roaf-rnn', inputDim: 1, outputs: 10, hidden: 8, precision: 'bf16', dtype: 'float64' },
          referenceBackend,
        ),
      /--precision bf16 needs --dtype float32, got --dtype float64/,
    );
    assert.equal(backendForPrecision(referenceBackend, 'float32'), referenceBackend);
    assert.equal(withBf16Products(withBf16Products(referenceBackend)), withBf16Products(referenceBackend));
  });

  it('is refused on the native backend without vdpbf16ps, naming AVX512_BF16', { skip: nativeSkip }, () => {
    const other = info!.available.find((isa) => isa !== 'avx512');
    assert.ok(other !== undefined);
    try {
      setNativeIsa(other);
      assert.throws(
        () => createModel({ model: 'roaf-rnn', inputDim: 1, outputs: 10, hidden: 8, precision: 'bf16' }, native!),
        /--precision bf16 needs a CPU with AVX512_BF16 \(the avx512_bf16 flag of \/proc\/cpuinfo\)/,
      );
    } finally {
      setNativeIsa(info!.isa);
    }
  });

  it('roaf train --precision bf16 records it in the checkpoint, which loads as float32 and resumes in bf16', () => {
    const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');
    const out = mkdtempSync(join(tmpdir(), 'roaf-bf16-'));
    try {
      const common = [
        '--task',
        'mnist',
        '--model',
        'roaf-mlp',
        '--depth',
        '4',
        '--width',
        '16',
        '--batch',
        '32',
        '--train-limit',
        '64',
        '--test-limit',
        '32',
        '--out',
        out,
      ];
      const backend = info?.bf16 === true ? 'native' : 'reference';
      const first = spawnSync(
        process.execPath,
        [cli, 'train', ...common, '--epochs', '1', '--precision', 'bf16', '--backend', backend],
        { encoding: 'utf8' },
      );
      assert.equal(first.status, 0, first.stderr);
      const config = JSON.parse(readFileSync(join(out, 'checkpoint', 'config.json'), 'utf8')) as {
        model: { precision?: string; dtype: string };
      };
      assert.equal(config.model.precision, 'bf16');
      assert.equal(config.model.dtype, 'float32');
      const header = readFileSync(join(out, 'checkpoint', 'model.safetensors'));
      assert.ok(!header.includes('BF16') && header.includes('F32'), 'the checkpoint holds float32 tensors');
      const resumed = spawnSync(
        process.execPath,
        [cli, 'train', '--out', out, '--resume', '--epochs', '2', '--backend', backend],
        { encoding: 'utf8' },
      );
      assert.equal(resumed.status, 0, resumed.stderr);
      const again = JSON.parse(readFileSync(join(out, 'checkpoint', 'config.json'), 'utf8')) as {
        model: { precision?: string };
        epoch: number;
      };
      assert.equal(again.model.precision, 'bf16');
      assert.equal(again.epoch, 2);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
