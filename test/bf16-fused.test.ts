// The native backend's fused bf16 ROAF cell (roafCellForwardBf16, roafCellBackwardBf16: native/src/roaf_cell.c)
// against the reference's bf16 arithmetic on the same rounded operands, on every instruction set the CPU runs,
// on 1 and 2 threads, every filter kind, D = 1 and D > 1, lastStepOnly true and false.
//
// Why a tight bound holds. The fused kernel and the reference round the same float32 operands to bf16 and
// multiply them exactly (a product of two bf16 values has at most 16 significant bits); they differ only in
// how the products are summed (float32 in C, float64 in the reference) and in the float32 roundings of the
// elementwise terms. A whole sequence is not compared with a whole sequence, though: a state that differs in its
// last float32 bit may round to the other bf16 neighbour at the next step, an error of u = 2^-8 relative in one
// operand, and over many steps such flips grow chaotically. So every step is checked on its own, from the native
// kernel's own inputs to that step (h_{t-1}, or gz_t and ∂loss/∂h_t), against the reference backend computing
// that step in float64 on them (its bf16 products round the same values). Per element, with u32 = 2^-24,
// γ_K = K·u32 / (1 - K·u32) and S = Σ_k |ã_k|·|b̃_k| the sum of the magnitudes of a product's rounded terms:
//   z = W h + U x + b:   |Δz| <= γ_N·S_W + γ_D·S_U + 4·u32·(S_W + S_U + |b|)   (float32 sums; the drive's sum
//                        and acc + drive round a few times more)
//   a = tanh(z):         |Δa| <= |Δz| + 16·u32                                   (tanh' <= 1; the vector tanh of
//                        simd.h is within a few float32 ulps of tanh, |a| <= 1)
//   h = beta a + alpha O h_{t-1}: |Δh| <= |beta|·|Δa| + |alpha|·γ_N·S_O + 4·u32·(|beta·a| + |alpha|·S_O)
//                        (a dense O h is a float32 product; a permutation is exact up to its roundings)
//   gz = beta gh (1 - a²): |Δ| <= 4·u32·|beta·gh|
//   ∂loss/∂h_{t-1} = loss term + gz W + alpha Oᵀ gh: |Δ| <= γ_N·(S_W + |alpha|·S_O) + 4·u32·(|loss| + S_W + |alpha|·S_O)
//   the weight gradients (one bf16 product over all T·B rows, as gemmBf16): |Δ| <= γ_K·S + 2·u32·(S + |C0|)
//                        (with D = 1 those of the input side, matrix-vector products, are float32: the same bound
//                        on the unrounded operands)
// These are around 1e-6 of the values, while the bf16 rounding itself moves them by up to 2u ≈ 0.8 %: each
// forward check also asserts that the bf16 result is not within its bound of the float32 cell's.
//
// lastStepOnly = true is checked against lastStepOnly = false with the same last-step loss and zeros elsewhere,
// bit for bit (the kernel then only skips adding zeros). The 20-step training trajectories of test/bf16.test.ts
// run the fused cell on the native backend as well.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';

import type { Backend, FilterOperand, GemmArgs } from '../src/backend/backend.js';
import { bf16Round, withBf16Products } from '../src/backend/bf16.js';
import { loadBackend } from '../src/backend/index.js';
import { nativeGemmPackedOnce, nativeInfo, setNativeIsa } from '../src/backend/native.js';
import { referenceBackend } from '../src/backend/reference.js';
import { Random } from '../src/util/random.js';
import { makeFilter, randomArray, type FilterSpec } from './kernel-cases.js';
import { nativeSettingsForSuite, nativeVariants, useNativeVariant } from './native-settings.js';

const U32 = 2 ** -24;
const gamma = (K: number): number => (K * U32) / (1 - K * U32);
const TANH_ERROR = 16 * U32;

const native = loadBackend('native', { quiet: true });
const info = nativeInfo();
const nativeSkip = native === null ? 'the native addon is not built' : false;

interface Config {
  kind: FilterSpec['filter'];
  T: number;
  B: number;
  D: number;
  N: number;
  alpha: number;
  beta: number;
}

// Odd N (a last pair with an empty half), N past one register tile (two and five column panels), B not a
// multiple of any tile's rows, D = 1 (the drive formed in the tiles) and D > 1 (precomputed), alpha = 0.
const CONFIGS: Config[] = [
  { kind: 'dense', T: 6, B: 19, D: 1, N: 37, alpha: 1, beta: 0.4 },
  { kind: 'dense', T: 5, B: 17, D: 3, N: 64, alpha: 0.9, beta: 0.5 },
  { kind: 'permutation', T: 6, B: 13, D: 1, N: 33, alpha: 1, beta: 0.4 },
  { kind: 'permutation', T: 4, B: 9, D: 2, N: 20, alpha: 1, beta: 0.4 },
  { kind: 'identity', T: 5, B: 11, D: 1, N: 16, alpha: 1, beta: 0.4 },
  { kind: 'dense', T: 4, B: 9, D: 2, N: 24, alpha: 0, beta: 1 },
  { kind: 'dense', T: 3, B: 8, D: 1, N: 1, alpha: 1, beta: 0.5 },
  { kind: 'dense', T: 2, B: 10, D: 1, N: 130, alpha: 1, beta: 0.3 },
  // K past one packed block of pairs (512 values): W packed whole in more than one block of rounded rows
  { kind: 'permutation', T: 2, B: 5, D: 1, N: 600, alpha: 1, beta: 0.3 },
];

interface Inputs {
  filter: FilterOperand;
  xs: Float32Array;
  W: Float32Array;
  U: Float32Array;
  b: Float32Array;
  h0: Float32Array;
  loss: Float32Array; // ∂loss/∂h_t for every step
  gW: Float32Array;
  gU: Float32Array;
  gb: Float32Array;
}

function inputs(c: Config, rng: Random): Inputs {
  const spec = makeFilter(rng, c.kind, c.N);
  const filter: FilterOperand =
    spec.filter === 'dense'
      ? { kind: 'dense', n: c.N, matrix: spec.matrix! }
      : spec.filter === 'permutation'
        ? { kind: 'permutation', n: c.N, perm: spec.perm!, signs: spec.signs! }
        : { kind: 'identity', n: c.N };
  return {
    filter,
    xs: randomArray(rng, c.T * c.B * c.D),
    W: randomArray(rng, c.N * c.N, 1.5 / Math.sqrt(c.N)),
    U: randomArray(rng, c.N * c.D),
    b: randomArray(rng, c.N, 0.1),
    h0: randomArray(rng, c.B * c.N, 0.5),
    loss: randomArray(rng, c.T * c.B * c.N, 0.1),
    gW: randomArray(rng, c.N * c.N),
    gU: randomArray(rng, c.N * c.D),
    gb: randomArray(rng, c.N),
  };
}

interface Run {
  hs: Float32Array;
  as: Float32Array;
  ghs: Float32Array;
  gzs: Float32Array;
  gW: Float32Array;
  gU: Float32Array;
  gb: Float32Array;
  gh0: Float32Array;
  gxs: Float32Array;
}

/** Forward and backward of the bf16 cell on `backend`; `ghs` holds the loss terms on entry. */
function run(backend: Backend, c: Config, x: Inputs, ghs: Float32Array, lastStepOnly: boolean): Run {
  const { T, B, D, N, alpha, beta } = c;
  const hs = new Float32Array((T + 1) * B * N);
  hs.set(x.h0);
  const as = new Float32Array(T * B * N).fill(NaN);
  const args = { T, B, D, N, alpha, beta, filter: x.filter, xs: x.xs, W: x.W, U: x.U };
  backend.roafCellForwardBf16({ ...args, b: x.b, hs, as });
  const r: Run = {
    hs,
    as,
    ghs: ghs.slice(),
    gzs: new Float32Array(T * B * N),
    gW: x.gW.slice(),
    gU: x.gU.slice(),
    gb: x.gb.slice(),
    gh0: new Float32Array(B * N).fill(NaN),
    gxs: new Float32Array(T * B * D).fill(NaN),
  };
  backend.roafCellBackwardBf16({
    ...args,
    hs,
    as,
    ghs: r.ghs,
    gzs: r.gzs,
    gW: r.gW,
    gU: r.gU,
    gb: r.gb,
    gh0: r.gh0,
    gxs: r.gxs,
    lastStepOnly,
  });
  return r;
}

const f64 = (x: ArrayLike<number>): Float64Array => Float64Array.from(x);
const abs64 = (x: ArrayLike<number>): Float64Array => Float64Array.from(x, (v) => Math.abs(v));

/** The filter in float64 (the reference applies it in float64), and with |O| for the magnitudes. */
function filter64(f: FilterOperand, magnitude: boolean): FilterOperand {
  if (f.kind === 'dense') return { kind: 'dense', n: f.n, matrix: magnitude ? abs64(f.matrix) : f64(f.matrix) };
  if (f.kind === 'permutation')
    return { kind: 'permutation', n: f.n, perm: f.perm, signs: magnitude ? abs64(f.signs) : f64(f.signs) };
  return f;
}

/** C (M, N) = op(A) op(B) on bf16-rounded operands in float64 (the reference's gemmBf16). */
function product(transA: boolean, transB: boolean, M: number, N: number, K: number, A: Float64Array, B: Float64Array) {
  const C = new Float64Array(M * N);
  referenceBackend.gemmBf16({
    transA,
    transB,
    M,
    N,
    K,
    alpha: 1,
    A,
    lda: transA ? M : K,
    B,
    ldb: transB ? K : N,
    beta: 0,
    C,
    ldc: N,
  });
  return C;
}

/**
 * A product of the input side of a backward pass (the input weights' gradient, ∂loss/∂x): with one input
 * (D = 1) a matrix-vector product, which the bf16 kernels run in float32 (docs/precision.md), so its operands
 * are not rounded; else `product`.
 */
function inputSide(
  D: number,
  transA: boolean,
  transB: boolean,
  M: number,
  N: number,
  K: number,
  A: Float64Array,
  B: Float64Array,
) {
  if (D > 1) return product(transA, transB, M, N, K, A, B);
  const C = new Float64Array(M * N);
  referenceBackend.gemm({ ...plain(transA, transB, M, N, K), A, B, C });
  return C;
}

/** The sizes and strides of a product C (M, N) = op(A) op(B) of packed row-major matrices, alpha 1, beta 0. */
function plain(transA: boolean, transB: boolean, M: number, N: number, K: number) {
  return { transA, transB, M, N, K, alpha: 1, lda: transA ? M : K, ldb: transB ? K : N, beta: 0, ldc: N };
}

/** y = alpha O x (or Oᵀ x) in float64 for B rows. */
function filtered(f: FilterOperand, transpose: boolean, B: number, alpha: number, x: Float64Array): Float64Array {
  const y = new Float64Array(x.length);
  referenceBackend.applyFilter({ filter: f, transpose, B, alpha, x, betaY: 0, y });
  return y;
}

/** Asserts |got - want| <= bound elementwise. */
function within(label: string, got: ArrayLike<number>, want: ArrayLike<number>, bound: ArrayLike<number>): void {
  for (let i = 0; i < want.length; i++) {
    const diff = Math.abs(got[i]! - want[i]!);
    if (!(diff <= bound[i]!))
      assert.fail(
        `${label}[${i}]: ${got[i]} vs ${want[i]}, |diff| ${diff.toExponential(3)} > ${bound[i]!.toExponential(3)}`,
      );
  }
}

/**
 * Step t of the forward against the reference on the native kernel's own h_{t-1}; returns whether some element
 * of a lies outside its bound of the float32 cell's (the products were rounded).
 */
function checkForwardStep(c: Config, x: Inputs, r: Run, t: number, label: string): boolean {
  const { B, D, N, alpha, beta } = c;
  const step = B * N;
  const h = r.hs.subarray(t * step, (t + 1) * step);
  const xt = x.xs.subarray(t * B * D, (t + 1) * B * D);
  // The reference's bf16 cell for this one step, in float64 on the same values.
  const hs = new Float64Array(2 * step);
  hs.set(h);
  const as = new Float64Array(step);
  const f = filter64(x.filter, false);
  const one = { T: 1, B, D, N, alpha, beta, filter: f, xs: f64(xt), W: f64(x.W), U: f64(x.U), b: f64(x.b) };
  referenceBackend.roafCellForwardBf16({ ...one, hs, as });
  // The float32 cell's z for the same step (exact products), to show the bf16 rounding.
  const hs32 = hs.slice();
  const as32 = new Float64Array(step);
  referenceBackend.roafCellForward({ ...one, hs: hs32, as: as32 });
  // Magnitudes of the products' terms.
  const SW = product(false, true, B, N, N, abs64(h), abs64(x.W));
  const SU = product(false, true, B, N, D, abs64(xt), abs64(x.U));
  const SO =
    alpha !== 0 ? filtered(filter64(x.filter, true), false, B, Math.abs(alpha), abs64(h)) : new Float64Array(step);
  const boundA = new Float64Array(step);
  const boundH = new Float64Array(step);
  let rounded = false;
  for (let i = 0; i < step; i++) {
    const j = i % N;
    const dz = gamma(N) * SW[i]! + gamma(D) * SU[i]! + 4 * U32 * (SW[i]! + SU[i]! + Math.abs(x.b[j]!));
    boundA[i] = dz + TANH_ERROR;
    boundH[i] = Math.abs(beta) * boundA[i]! + gamma(N) * SO[i]! + 4 * U32 * (Math.abs(beta * as[i]!) + SO[i]!);
    if (Math.abs(r.as[t * step + i]! - as32[i]!) > boundA[i]!) rounded = true;
  }
  within(`${label} step ${t}: a`, r.as.subarray(t * step, (t + 1) * step), as, boundA);
  within(`${label} step ${t}: h`, r.hs.subarray((t + 1) * step, (t + 2) * step), hs.subarray(step), boundH);
  return rounded;
}

/** The backward of every step, and the parameter gradients, against the reference on the kernel's own values. */
function checkBackward(c: Config, x: Inputs, r: Run, label: string): void {
  const { T, B, D, N, alpha, beta } = c;
  const step = B * N;
  const W = f64(x.W);
  const absW = abs64(x.W);
  const f = filter64(x.filter, false);
  const fAbs = filter64(x.filter, true);
  for (let t = T - 1; t >= 0; t--) {
    const gh = r.ghs.subarray(t * step, (t + 1) * step); // complete ∂loss/∂h_t (the input at the last step)
    const a = r.as.subarray(t * step, (t + 1) * step);
    const gz = r.gzs.subarray(t * step, (t + 1) * step);
    const wantGz = new Float64Array(step);
    const boundGz = new Float64Array(step);
    for (let i = 0; i < step; i++) {
      wantGz[i] = beta * gh[i]! * (1 - a[i]! * a[i]!);
      boundGz[i] = 4 * U32 * Math.abs(beta * gh[i]!);
    }
    within(`${label} step ${t}: gz`, gz, wantGz, boundGz);
    // ∂loss/∂h_{t-1} (∂loss/∂h_0 at t = 0) = its loss term + gz W + alpha Oᵀ gh, on the kernel's gz and gh.
    const flow = product(false, false, B, N, N, f64(gz), W);
    const SW = product(false, false, B, N, N, abs64(gz), absW);
    const filterTerm = alpha !== 0 ? filtered(f, true, B, alpha, f64(gh)) : new Float64Array(step);
    const SO = alpha !== 0 ? filtered(fAbs, true, B, Math.abs(alpha), abs64(gh)) : new Float64Array(step);
    const loss = t > 0 ? x.loss.subarray((t - 1) * step, t * step) : new Float32Array(step);
    const want = new Float64Array(step);
    const bound = new Float64Array(step);
    for (let i = 0; i < step; i++) {
      want[i] = loss[i]! + flow[i]! + filterTerm[i]!;
      bound[i] = gamma(N) * (SW[i]! + SO[i]!) + 4 * U32 * (Math.abs(loss[i]!) + SW[i]! + SO[i]!);
    }
    const got = t > 0 ? r.ghs.subarray((t - 1) * step, t * step) : r.gh0;
    within(`${label} step ${t}: ∂loss/∂h_${t - 1 < 0 ? '0 (gh0)' : t - 1}`, got, want, bound);
  }
  // The parameter gradients over all T·B rows.
  const rows = T * B;
  const gzs = f64(r.gzs);
  const hs = f64(r.hs.subarray(0, rows * N));
  const check = (
    name: string,
    got: ArrayLike<number>,
    initial: ArrayLike<number> | null,
    C: Float64Array,
    S: Float64Array,
    K: number,
  ) => {
    const want = new Float64Array(C.length);
    const bound = new Float64Array(C.length);
    for (let i = 0; i < C.length; i++) {
      const c0 = initial === null ? 0 : initial[i]!;
      want[i] = c0 + C[i]!;
      bound[i] = gamma(K) * S[i]! + 2 * U32 * (S[i]! + Math.abs(c0));
    }
    within(`${label}: ${name}`, got, want, bound);
  };
  check(
    'gW',
    r.gW,
    x.gW,
    product(true, false, N, N, rows, gzs, hs),
    product(true, false, N, N, rows, abs64(gzs), abs64(hs)),
    rows,
  );
  check(
    'gU',
    r.gU,
    x.gU,
    inputSide(D, true, false, N, D, rows, gzs, f64(x.xs)),
    inputSide(D, true, false, N, D, rows, abs64(gzs), abs64(x.xs)),
    rows,
  );
  check(
    'gxs',
    r.gxs,
    null,
    inputSide(D, false, false, rows, D, N, gzs, f64(x.U)),
    inputSide(D, false, false, rows, D, N, abs64(gzs), abs64(x.U)),
    N,
  );
  const sums = new Float64Array(N);
  const sumsAbs = new Float64Array(N);
  for (let i = 0; i < rows * N; i++) {
    sums[i % N] = sums[i % N]! + gzs[i]!;
    sumsAbs[i % N] = sumsAbs[i % N]! + Math.abs(gzs[i]!);
  }
  check('gb', r.gb, x.gb, sums, sumsAbs, rows); // a float32 sum, not a product: the same bound
}

describe('the native fused bf16 ROAF cell against the reference bf16 arithmetic, step by step', () => {
  nativeSettingsForSuite();
  for (const variant of nativeVariants()) {
    it(`${variant.label}: forward, backward, lastStepOnly`, { skip: nativeSkip }, () => {
      useNativeVariant(variant);
      const rng = new Random(4242);
      let rounded = 0;
      for (const c of CONFIGS) {
        const label = `${c.kind} T=${c.T} B=${c.B} D=${c.D} N=${c.N} alpha=${c.alpha}`;
        const x = inputs(c, rng);
        const r = run(native!, c, x, x.loss, false);
        for (let t = 0; t < c.T; t++) if (checkForwardStep(c, x, r, t, label)) rounded++;
        checkBackward(c, x, r, label);
        // lastStepOnly: the same loss at the last step, nothing before (NaN: never read), equals the full
        // backward with zeros before the last step, bit for bit.
        const step = c.B * c.N;
        const last = new Float32Array(c.T * step).fill(NaN);
        last.set(x.loss.subarray((c.T - 1) * step), (c.T - 1) * step);
        const zeros = new Float32Array(c.T * step);
        zeros.set(x.loss.subarray((c.T - 1) * step), (c.T - 1) * step);
        const a = run(native!, c, x, last, true);
        const b = run(native!, c, x, zeros, false);
        for (const name of ['gzs', 'gW', 'gU', 'gb', 'gh0', 'gxs'] as const) {
          a[name].forEach((v, i) => {
            if (v !== b[name][i]) assert.fail(`${label} lastStepOnly: ${name}[${i}] ${v} vs ${b[name][i]}`);
          });
        }
      }
      assert.ok(rounded > 0, 'no step shows the bf16 rounding: were the products rounded?');
    });
  }
});

// ---- the stack ----

interface StackConfig {
  kinds: FilterSpec['filter'][]; // one per layer (L = its length)
  shared: boolean; // one filter for every layer
  B: number;
  N: number;
  alpha: number;
  beta: number;
}

const STACKS: StackConfig[] = [
  { kinds: ['dense', 'permutation', 'identity'], shared: false, B: 19, N: 37, alpha: 1, beta: 0.4 },
  { kinds: ['dense', 'dense', 'dense', 'dense'], shared: true, B: 9, N: 64, alpha: 0.9, beta: 0.5 },
  { kinds: ['dense'], shared: false, B: 9, N: 70, alpha: 1, beta: 0.3 },
  { kinds: ['permutation'], shared: false, B: 17, N: 33, alpha: 1, beta: 0.3 },
  { kinds: ['dense', 'dense'], shared: false, B: 10, N: 16, alpha: 0, beta: 1 },
];

function operand(spec: FilterSpec, N: number): FilterOperand {
  return spec.filter === 'dense'
    ? { kind: 'dense', n: N, matrix: spec.matrix! }
    : spec.filter === 'permutation'
      ? { kind: 'permutation', n: N, perm: spec.perm!, signs: spec.signs! }
      : { kind: 'identity', n: N };
}

/**
 * The fused bf16 stack: every layer's forward against the reference on the kernel's own input to it (the
 * bounds of the cell's forward, with the bias as the drive); the backward of a one-layer stack (∂loss/∂x_0, gW,
 * gb, the gradient norms) and of the last layer of a deeper one (gW_{L-1}, gb_{L-1}: gz_{L-1} comes from the
 * given ∂loss/∂x_L) on the same rounded operands; the rest of a deeper backward composes layers whose gz the
 * kernel keeps to itself, so test/bf16.test.ts compares it with the reference's whole stack at a tolerance.
 */
function checkStack(c: StackConfig, rng: Random, label: string): void {
  const { B, N, alpha, beta } = c;
  const L = c.kinds.length;
  const size = B * N;
  const first = operand(makeFilter(rng, c.kinds[0]!, N), N);
  const filters = c.kinds.map((kind, l) => (c.shared || l === 0 ? first : operand(makeFilter(rng, kind, N), N)));
  const Ws = randomArray(rng, L * N * N, 1.5 / Math.sqrt(N));
  const bs = randomArray(rng, L * N, 0.1);
  const xs = new Float32Array((L + 1) * size);
  xs.set(randomArray(rng, size));
  const as = new Float32Array(L * size).fill(NaN);
  native!.roafMlpForwardBf16({ L, B, N, alpha, beta, filters, Ws, bs, xs, as });
  for (let l = 0; l < L; l++) {
    const x = xs.subarray(l * size, (l + 1) * size);
    const W = Ws.subarray(l * N * N, (l + 1) * N * N);
    const b = bs.subarray(l * N, (l + 1) * N);
    const a = new Float64Array(size);
    const y = new Float64Array(size);
    const f = filter64(filters[l]!, false);
    referenceBackend.roafLayerForwardBf16({ B, N, alpha, beta, filter: f, x: f64(x), W: f64(W), b: f64(b), a, y });
    const SW = product(false, true, B, N, N, abs64(x), abs64(W));
    const SO =
      alpha !== 0 ? filtered(filter64(filters[l]!, true), false, B, Math.abs(alpha), abs64(x)) : new Float64Array(size);
    const boundA = new Float64Array(size);
    const boundY = new Float64Array(size);
    for (let i = 0; i < size; i++) {
      boundA[i] = gamma(N) * SW[i]! + 4 * U32 * (SW[i]! + Math.abs(b[i % N]!)) + TANH_ERROR;
      boundY[i] = Math.abs(beta) * boundA[i]! + gamma(N) * SO[i]! + 4 * U32 * (Math.abs(beta * a[i]!) + SO[i]!);
    }
    within(`${label} layer ${l}: a`, as.subarray(l * size, (l + 1) * size), a, boundA);
    within(`${label} layer ${l}: x_${l + 1}`, xs.subarray((l + 1) * size, (l + 2) * size), y, boundY);
  }
  // The backward.
  const gy0 = randomArray(rng, size, 0.1);
  const gy = gy0.slice();
  const gWs0 = randomArray(rng, L * N * N);
  const gbs0 = randomArray(rng, L * N);
  const gWs = gWs0.slice();
  const gbs = gbs0.slice();
  const gradSquares = new Float64Array(L + 1);
  native!.roafMlpBackwardBf16({ L, B, N, alpha, beta, filters, Ws, xs, as, gy, gWs, gbs, gradSquares });
  // The last layer's gz from ∂loss/∂x_L. The kernel forms it in float32 (within 4 u32 of the exact value, as in
  // the cell's check), so its bf16 rounding may differ from this one's where gz lies that close to the midpoint
  // between two bf16 values: those terms may move by one bf16 step (2^-7 relative) more.
  const l = L - 1;
  const aL = as.subarray(l * size);
  const gz = new Float32Array(size);
  const tie = new Float64Array(size);
  for (let i = 0; i < size; i++) {
    gz[i] = beta * gy0[i]! * (1 - aL[i]! * aL[i]!);
    const v = gz[i]!;
    if (bf16Round(v * (1 + 4 * U32)) !== bf16Round(v * (1 - 4 * U32))) tie[i] = 2 ** -7 * Math.abs(v);
  }
  const x = f64(xs.subarray(l * size, (l + 1) * size));
  const gW = product(true, false, N, N, B, f64(gz), x);
  const SgW = product(true, false, N, N, B, abs64(gz), abs64(x));
  const tieW = new Float64Array(N * N);
  referenceBackend.gemm({ ...plain(true, false, N, N, B), A: tie, B: abs64(x), C: tieW });
  const wantW = new Float64Array(N * N);
  const boundW = new Float64Array(N * N);
  for (let i = 0; i < N * N; i++) {
    const c0 = gWs0[l * N * N + i]!;
    wantW[i] = c0 + gW[i]!;
    boundW[i] = gamma(B) * SgW[i]! + 6 * U32 * SgW[i]! + 2 * U32 * Math.abs(c0) + tieW[i]!;
  }
  within(`${label}: gW_${l}`, gWs.subarray(l * N * N, (l + 1) * N * N), wantW, boundW);
  let gySquares = 0;
  for (const v of gy0) gySquares += v * v;
  assert.ok(Math.abs(gradSquares[L]! - gySquares) <= 1e-12 * gySquares, `${label}: gradSquares[L]`);
  if (L === 1) {
    // ∂loss/∂x_0 = gz W + alpha Oᵀ gy, gb += Σ gz, gradSquares[0] = ||∂loss/∂x_0||².
    const flow = product(false, false, B, N, N, f64(gz), f64(Ws));
    const SW = product(false, false, B, N, N, abs64(gz), abs64(Ws));
    const filterTerm =
      alpha !== 0 ? filtered(filter64(filters[0]!, false), true, B, alpha, f64(gy0)) : new Float64Array(size);
    const SO =
      alpha !== 0
        ? filtered(filter64(filters[0]!, true), true, B, Math.abs(alpha), abs64(gy0))
        : new Float64Array(size);
    const tieFlow = new Float64Array(size);
    referenceBackend.gemm({ ...plain(false, false, B, N, N), A: tie, B: abs64(Ws), C: tieFlow });
    const want = new Float64Array(size);
    const bound = new Float64Array(size);
    for (let i = 0; i < size; i++) {
      want[i] = flow[i]! + filterTerm[i]!;
      bound[i] = gamma(N) * (SW[i]! + SO[i]!) + 8 * U32 * (SW[i]! + SO[i]!) + tieFlow[i]!;
    }
    within(`${label}: ∂loss/∂x_0`, gy, want, bound);
    let squares = 0;
    for (const v of gy) squares += v * v;
    assert.ok(Math.abs(gradSquares[0]! - squares) <= 1e-12 * squares, `${label}: gradSquares[0]`);
    for (let j = 0; j < N; j++) {
      let sum = 0;
      let sumAbs = 0;
      for (let r = 0; r < B; r++) {
        sum += gz[r * N + j]!;
        sumAbs += Math.abs(gz[r * N + j]!);
      }
      const wantB = gbs0[j]! + sum;
      assert.ok(
        Math.abs(gbs[j]! - wantB) <= gamma(B) * sumAbs + 4 * U32 * (sumAbs + Math.abs(gbs0[j]!)),
        `${label}: gb[${j}] ${gbs[j]} vs ${wantB}`,
      );
    }
  }
}

describe('the native fused bf16 ROAF stack against the reference bf16 arithmetic, layer by layer', () => {
  nativeSettingsForSuite();
  for (const variant of nativeVariants()) {
    it(variant.label, { skip: nativeSkip }, () => {
      useNativeVariant(variant);
      const rng = new Random(99);
      for (const c of STACKS)
        checkStack(c, rng, `${c.kinds.join('/')}${c.shared ? ' (shared)' : ''} B=${c.B} N=${c.N} alpha=${c.alpha}`);
    });
  }
});

// ---- LSTM and GRU ----

const ACT_ERROR = 16 * U32; // the vector sigmoid and tanh of simd.h: within a few float32 ulps, |value| <= 1

interface Gated {
  kind: 'lstm' | 'gru';
  T: number;
  B: number;
  D: number;
  N: number;
}

const GATED: Gated[] = [
  { kind: 'lstm', T: 4, B: 11, D: 3, N: 21 },
  { kind: 'lstm', T: 3, B: 9, D: 1, N: 40 },
  { kind: 'gru', T: 4, B: 11, D: 3, N: 21 },
  { kind: 'gru', T: 3, B: 9, D: 1, N: 40 },
  // N past one packed block of pairs (512 values): Wh packed whole in more than one block of rounded rows
  { kind: 'lstm', T: 2, B: 3, D: 1, N: 520 },
  { kind: 'gru', T: 2, B: 3, D: 1, N: 520 },
];

/** |value| of every element of a float64 array. */
const mags = (x: ArrayLike<number>): Float64Array => abs64(x);

/**
 * The fused bf16 LSTM or GRU: every forward step against the reference's one-step bf16 forward in float64 from
 * the kernel's own h_{t-1} (and c_{t-1}), within the float32 sums' bound of each pre-activation carried through
 * the gates (sigmoid' <= 1/4, tanh' <= 1; the products of gates with their float32 roundings); the backward's
 * products on the kernel's own gate gradients (∂loss/∂h_{t-1} = its loss term + the gate gradients Wh (+ the
 * GRU's z term), every weight gradient, the bias sums) within the bounds of one product; lastStepOnly bit for
 * bit against zeros before the last step. The gate gradients themselves are elementwise float32 work on a
 * carried state (the LSTM's ∂loss/∂c) that test/bf16.test.ts compares with the reference at a tolerance.
 */
function checkGated(c: Gated, rng: Random, label: string): void {
  const { T, B, D, N } = c;
  const k = c.kind === 'lstm' ? 4 : 3;
  const G = k * N;
  const step = B * N;
  const xs = randomArray(rng, T * B * D);
  const Wx = randomArray(rng, G * D, 1 / Math.sqrt(D));
  const Wh = randomArray(rng, G * N, 1.5 / Math.sqrt(N));
  const b = randomArray(rng, G, 0.1);
  const bh = randomArray(rng, G, 0.1);
  const loss = randomArray(rng, T * step, 0.1);
  const gWx0 = randomArray(rng, G * D);
  const gWh0 = randomArray(rng, G * N);
  const gb0 = randomArray(rng, G);
  const gbh0 = randomArray(rng, G);
  const h0 = randomArray(rng, step, 0.5);
  const c0 = randomArray(rng, step, 0.5);
  const run = (ghsIn: Float32Array, lastStepOnly: boolean) => {
    const hs = new Float32Array((T + 1) * step);
    hs.set(h0);
    const cs = new Float32Array((T + 1) * step);
    cs.set(c0);
    const gates = new Float32Array(T * B * G).fill(NaN);
    const hn = new Float32Array(T * step).fill(NaN);
    const o = {
      ghs: ghsIn.slice(),
      gGates: new Float32Array(T * B * G).fill(NaN),
      gHn: new Float32Array(T * step).fill(NaN),
      gWx: gWx0.slice(),
      gWh: gWh0.slice(),
      gb: gb0.slice(),
      gbh: gbh0.slice(),
      gxs: new Float32Array(T * B * D).fill(NaN),
    };
    if (c.kind === 'lstm') {
      native!.lstmForwardBf16({ T, B, D, N, xs, Wx, Wh, b, hs, cs, gates });
      native!.lstmBackwardBf16({
        ...{ T, B, D, N, xs, Wx, Wh, hs, cs, gates, ghs: o.ghs, gGates: o.gGates },
        ...{ gWx: o.gWx, gWh: o.gWh, gb: o.gb, gxs: o.gxs, lastStepOnly },
      });
    } else {
      native!.gruForwardBf16({ T, B, D, N, xs, Wx, Wh, bx: b, bh, hs, gates, hn });
      native!.gruBackwardBf16({
        ...{ T, B, D, N, xs, Wx, Wh, hs, gates, hn, ghs: o.ghs, gGates: o.gGates, gHn: o.gHn },
        ...{ gWx: o.gWx, gWh: o.gWh, gbx: o.gb, gbh: o.gbh, gxs: o.gxs, lastStepOnly },
      });
    }
    return { hs, cs, gates, hn, ...o };
  };
  const r = run(loss, false);
  // The forward, step by step.
  for (let t = 0; t < T; t++) {
    const h = r.hs.subarray(t * step, (t + 1) * step);
    const xt = xs.subarray(t * B * D, (t + 1) * B * D);
    const Sx = product(false, true, B, G, D, mags(xt), mags(Wx));
    const Sh = product(false, true, B, G, N, mags(h), mags(Wh));
    const hs = new Float64Array(2 * step);
    hs.set(h);
    const gates = new Float64Array(B * G);
    const one = { T: 1, B, D, N, xs: f64(xt), Wx: f64(Wx), Wh: f64(Wh) };
    const boundGates = new Float64Array(B * G);
    const boundH = new Float64Array(step);
    const got = r.gates.subarray(t * B * G, (t + 1) * B * G);
    const dz = (row: number, col: number, bias: number): number =>
      gamma(D) * Sx[row * G + col]! +
      gamma(N) * Sh[row * G + col]! +
      4 * U32 * (Sx[row * G + col]! + Sh[row * G + col]! + bias);
    if (c.kind === 'lstm') {
      const cs = new Float64Array(2 * step);
      cs.set(r.cs.subarray(t * step, (t + 1) * step));
      referenceBackend.lstmForwardBf16({ ...one, b: f64(b), hs, cs, gates });
      const boundC = new Float64Array(step);
      for (let row = 0; row < B; row++) {
        for (let j = 0; j < N; j++) {
          const e = row * N + j;
          const at = (q: number): number => gates[row * G + q * N + j]!;
          const d = [0, 1, 2, 3].map(
            (q) => dz(row, q * N + j, Math.abs(b[q * N + j]!)) * (q === 2 ? 1 : 0.25) + ACT_ERROR,
          );
          d.forEach((v, q) => (boundGates[row * G + q * N + j] = v));
          const cPrev = Math.abs(cs[e]!);
          boundC[e] =
            d[1]! * cPrev +
            d[0]! * Math.abs(at(2)) +
            Math.abs(at(0)) * d[2]! +
            4 * U32 * (Math.abs(at(1)) * cPrev + Math.abs(at(0) * at(2)));
          boundH[e] =
            d[3]! * Math.abs(Math.tanh(cs[step + e]!)) +
            Math.abs(at(3)) * (boundC[e] + ACT_ERROR) +
            2 * U32 * Math.abs(hs[step + e]!);
        }
      }
      within(
        `${label} step ${t}: c`,
        r.cs.subarray((t + 1) * step, (t + 2) * step),
        cs.subarray(step),
        boundC.map((v) => v * 1.01),
      );
    } else {
      const hn = new Float64Array(step);
      referenceBackend.gruForwardBf16({ ...one, bx: f64(b), bh: f64(bh), hs, gates, hn });
      const boundHn = new Float64Array(step);
      for (let row = 0; row < B; row++) {
        for (let j = 0; j < N; j++) {
          const e = row * N + j;
          const at = (q: number): number => gates[row * G + q * N + j]!;
          const gx = (q: number): number =>
            gamma(D) * Sx[row * G + q * N + j]! + 2 * U32 * (Sx[row * G + q * N + j]! + Math.abs(b[q * N + j]!));
          const dP = (q: number): number => (gamma(N) + U32) * Sh[row * G + q * N + j]!;
          const pre = (q: number): number =>
            gx(q) +
            dP(q) +
            3 *
              U32 *
              (Sx[row * G + q * N + j]! +
                Math.abs(b[q * N + j]!) +
                Sh[row * G + q * N + j]! +
                Math.abs(bh[q * N + j]!));
          const dR = pre(0) / 4 + ACT_ERROR;
          const dZ = pre(1) / 4 + ACT_ERROR;
          boundHn[e] = dP(2) + 2 * U32 * (Sh[row * G + 2 * N + j]! + Math.abs(bh[2 * N + j]!));
          const hnj = Math.abs(hn[e]!);
          const dN =
            gx(2) +
            dR * hnj +
            Math.abs(at(0)) * boundHn[e] +
            3 * U32 * (Sx[row * G + 2 * N + j]! + Math.abs(b[2 * N + j]!) + Math.abs(at(0)) * hnj) +
            ACT_ERROR;
          boundGates[row * G + j] = dR;
          boundGates[row * G + N + j] = dZ;
          boundGates[row * G + 2 * N + j] = dN;
          const hp = h[e]!;
          boundH[e] =
            dZ * Math.abs(hp - at(2)) +
            Math.abs(1 - at(1)) * dN +
            4 * U32 * (Math.abs(at(1) * (hp - at(2))) + Math.abs(at(2)) + Math.abs(hp));
        }
      }
      within(
        `${label} step ${t}: hn`,
        r.hn.subarray(t * step, (t + 1) * step),
        hn,
        boundHn.map((v) => v * 1.01),
      );
    }
    within(
      `${label} step ${t}: gates`,
      got,
      gates,
      boundGates.map((v) => v * 1.01),
    );
    within(
      `${label} step ${t}: h`,
      r.hs.subarray((t + 1) * step, (t + 2) * step),
      hs.subarray(step),
      boundH.map((v) => v * 1.01),
    );
  }
  // The backward's products on the kernel's own gate gradients.
  const rows = T * B;
  const recurrent = new Float32Array(rows * G); // the A operand of the recurrent product, (T·B, G)
  for (let i = 0; i < rows; i++)
    for (let q = 0; q < G; q++)
      recurrent[i * G + q] = c.kind === 'gru' && q >= 2 * N ? r.gHn[i * N + q - 2 * N]! : r.gGates[i * G + q]!;
  for (let t = T - 1; t > 0; t--) {
    const A = recurrent.subarray(t * B * G, (t + 1) * B * G);
    const flow = product(false, false, B, N, G, f64(A), f64(Wh));
    const S = product(false, false, B, N, G, mags(A), mags(Wh));
    const want = new Float64Array(step);
    const bound = new Float64Array(step);
    for (let e = 0; e < step; e++) {
      const lossTerm = loss[(t - 1) * step + e]!;
      // GRU: ∂loss/∂h_{t-1} also gets gh_t ⊙ z_t, formed first (one rounding, or one fused multiply-add)
      const zTerm =
        c.kind === 'gru' ? r.ghs[t * step + e]! * r.gates[t * B * G + Math.floor(e / N) * G + N + (e % N)]! : 0;
      want[e] = lossTerm + zTerm + flow[e]!;
      bound[e] = gamma(G) * S[e]! + 4 * U32 * (Math.abs(lossTerm) + Math.abs(zTerm) + S[e]!);
    }
    within(`${label}: ∂loss/∂h_${t - 1}`, r.ghs.subarray((t - 1) * step, t * step), want, bound);
  }
  const check = (
    name: string,
    got: ArrayLike<number>,
    initial: ArrayLike<number> | null,
    C: Float64Array,
    S: Float64Array,
    K: number,
  ): void => {
    const want = new Float64Array(C.length);
    const bound = new Float64Array(C.length);
    for (let i = 0; i < C.length; i++) {
      const c0 = initial === null ? 0 : initial[i]!;
      want[i] = c0 + C[i]!;
      bound[i] = gamma(K) * S[i]! + 2 * U32 * (S[i]! + Math.abs(c0));
    }
    within(`${label}: ${name}`, got, want, bound);
  };
  const hsRows = f64(r.hs.subarray(0, rows * N));
  const gGates = f64(r.gGates);
  check(
    'gWh',
    r.gWh,
    gWh0,
    product(true, false, G, N, rows, f64(recurrent), hsRows),
    product(true, false, G, N, rows, mags(recurrent), mags(hsRows)),
    rows,
  );
  check(
    'gWx',
    r.gWx,
    gWx0,
    inputSide(D, true, false, G, D, rows, gGates, f64(xs)),
    inputSide(D, true, false, G, D, rows, mags(gGates), mags(xs)),
    rows,
  );
  check(
    'gxs',
    r.gxs,
    null,
    inputSide(D, false, false, rows, D, G, gGates, f64(Wx)),
    inputSide(D, false, false, rows, D, G, mags(gGates), mags(Wx)),
    G,
  );
  const sums = (x: ArrayLike<number>, initial: ArrayLike<number>, name: string, got: ArrayLike<number>) => {
    const C = new Float64Array(G);
    const S = new Float64Array(G);
    for (let i = 0; i < rows * G; i++) {
      C[i % G] = C[i % G]! + x[i]!;
      S[i % G] = S[i % G]! + Math.abs(x[i]!);
    }
    check(name, got, initial, C, S, rows);
  };
  sums(r.gGates, gb0, c.kind === 'lstm' ? 'gb' : 'gbx', r.gb);
  if (c.kind === 'gru') sums(recurrent, gbh0, 'gbh', r.gbh);
  // lastStepOnly: bit for bit the backward with zeros before the last step.
  const last = new Float32Array(T * step).fill(NaN);
  last.set(loss.subarray((T - 1) * step), (T - 1) * step);
  const zeros = new Float32Array(T * step);
  zeros.set(loss.subarray((T - 1) * step), (T - 1) * step);
  const a = run(last, true);
  const z = run(zeros, false);
  const outputs: ('gGates' | 'gWx' | 'gWh' | 'gb' | 'gbh' | 'gxs' | 'gHn')[] = [
    'gGates',
    'gWx',
    'gWh',
    'gb',
    'gbh',
    'gxs',
  ];
  if (c.kind === 'gru') outputs.push('gHn');
  for (const name of outputs) {
    a[name].forEach((v, i) => {
      if (v !== z[name][i]) assert.fail(`${label} lastStepOnly: ${name}[${i}] ${v} vs ${z[name][i]}`);
    });
  }
}

describe('the native fused bf16 LSTM and GRU against the reference bf16 arithmetic, step by step', () => {
  nativeSettingsForSuite();
  for (const variant of nativeVariants()) {
    it(variant.label, { skip: nativeSkip }, () => {
      useNativeVariant(variant);
      const rng = new Random(31);
      for (const c of GATED) checkGated(c, rng, `${c.kind} T=${c.T} B=${c.B} D=${c.D} N=${c.N}`);
    });
  }
});

describe('the benchmark product with B packed once (bench/gemm.ts)', () => {
  after(() => {
    if (native !== null) setNativeIsa(info!.isa);
  });
  it(
    'float32 and bf16 on every instruction set, against the reference, within the bound of one product',
    { skip: nativeSkip },
    () => {
      const rng = new Random(77);
      for (const isa of info!.available) {
        setNativeIsa(isa);
        for (const [M, N, K] of [
          [13, 37, 45],
          [8, 32, 64],
          [1, 1, 1],
          [70, 65, 300],
        ] as const) {
          const A = randomArray(rng, M * K);
          const B = randomArray(rng, K * N);
          for (const bf16 of [false, true]) {
            const C = new Float32Array(M * N).fill(NaN);
            nativeGemmPackedOnce(bf16, M, N, K, A, B, C, 2);
            const want = new Float64Array(M * N);
            const S = new Float64Array(M * N);
            const gemm = (args: GemmArgs): void =>
              bf16 ? referenceBackend.gemmBf16(args) : referenceBackend.gemm(args);
            const base = { transA: false, transB: false, M, N, K, alpha: 1, lda: K, ldb: N, beta: 0, ldc: N };
            gemm({ ...base, A: f64(A), B: f64(B), C: want });
            gemm({ ...base, A: abs64(A), B: abs64(B), C: S });
            within(
              `${isa} ${bf16 ? 'bf16' : 'float32'} ${M}x${N}x${K}`,
              C,
              want,
              Array.from(S, (v) => (gamma(K) + 2 * U32) * v),
            );
          }
        }
      }
      assert.throws(
        () => nativeGemmPackedOnce(true, 2, 2, 2, new Float32Array(3), new Float32Array(4), new Float32Array(4), 1),
        /A must be/,
      );
      assert.throws(
        () => nativeGemmPackedOnce(true, 2, 2, 0, new Float32Array(4), new Float32Array(4), new Float32Array(4), 1),
        /K must be/,
      );
    },
  );
});

describe('the bf16 cell on every backend', () => {
  it('withBf16Products runs the backend’s own bf16 cell, whose default rounds W h but keeps the filter float32', () => {
    // The reference's default: the same as the float32 cell with only its own products (not the filter's)
    // on bf16 operands, checked on one step in float64 from a state that bf16 represents exactly.
    const c: Config = { kind: 'dense', T: 1, B: 3, D: 2, N: 9, alpha: 1, beta: 0.5 };
    const x = inputs(c, new Random(9));
    const r = run(withBf16Products(referenceBackend), c, x, x.loss, false);
    checkForwardStep(c, x, r, 0, 'reference');
    checkBackward(c, x, r, 'reference');
    // The dense filter is not rounded: with W = 0 and U = 0 the step is beta tanh(b) + alpha O h exactly.
    const zero = { ...x, W: new Float32Array(c.N * c.N), U: new Float32Array(c.N * c.D) };
    const z = run(withBf16Products(referenceBackend), c, zero, x.loss, false);
    const O = (x.filter as { matrix: Float32Array }).matrix;
    assert.ok(
      O.some((v) => bf16Round(v) !== v),
      'the test needs filter entries that bf16 cannot hold',
    );
    for (let i = 0; i < c.B; i++)
      for (let j = 0; j < c.N; j++) {
        let oh = 0;
        for (let k = 0; k < c.N; k++) oh += O[j * c.N + k]! * x.h0[i * c.N + k]!;
        const want = c.beta * Math.tanh(x.b[j]!) + c.alpha * oh;
        assert.ok(Math.abs(z.hs[c.B * c.N + i * c.N + j]! - want) <= 1e-6, `O h was rounded: ${want}`);
      }
  });
});
