// The kernel cases of the conformance suite: random inputs with awkward shapes (1, 7, 33, 257, non-square,
// every transpose, row strides larger than the rows), for every kernel, each with the outputs to compare and
// a tolerance. Inputs are float32-representable and copied into the dtype of the backend that runs a case,
// so the float64 reference on the same inputs measures a float32 backend's own error.
//
// Error measure: normwise relative error max|got - want| / max|want| per output array (elementwise relative
// error is meaningless where a product cancels to ~0). Tolerances:
// - products and single-step kernels: 1e-5 (float32 accumulation over K <= 2000 terms gives ~sqrt(K)·6e-8);
// - elementwise functions: 2e-6 (the vectorised tanh/exp are accurate to a few ulp);
// - whole-sequence recurrences (ROAF cell, LSTM, GRU, 16-20 steps) and whole stacks of layers (ROAF MLP, up to
//   17 layers): 1e-4, because every step's rounding (~1e-7) is carried forward through the recurrence and again
//   backward through time, each step amplified by the step Jacobian (norm up to alpha + beta·||W|| > 1 here),
//   and backward also inherits forward's error;
// - the wasm backend (no fused multiply-add): the same, WASM_TOL_SCALE = 1 (docs/wasm.md).

import assert from 'node:assert/strict';

import type { Backend, FilterOperand, FloatArray } from '../src/backend/backend.js';
import type { Random } from '../src/util/random.js';

export const TOL_PRODUCT = 1e-5;
export const TOL_ELEMENTWISE = 2e-6;
export const TOL_RECURRENT = 1e-4;
/**
 * The wasm backend's factor on every tolerance: 1. Baseline WebAssembly SIMD has no fused multiply-add, so each
 * multiply-add rounds twice (product, then sum) where the AVX2/AVX-512 paths round once, like the portable C
 * path. Measured on these cases, the wasm backend's worst error is at most 0.17 of the tolerance in every group
 * (elementwise 0.16: the tanh/exp polynomials without FMA; the AVX2 path's is 0.12): the tolerances above,
 * derived from float32 accumulation, hold as they are (docs/wasm.md).
 */
export const WASM_TOL_SCALE = 1;

// ---- inputs: float32-representable random values, copied into each backend's dtype ----

export type Value =
  Float32Array | Float64Array | Int32Array | Uint8Array | number | boolean | null | FilterSpec | FilterSpec[];
export interface FilterSpec {
  filter: 'dense' | 'permutation' | 'identity';
  n: number;
  matrix?: Float32Array;
  perm?: Int32Array;
  signs?: Float32Array;
}

export function randomArray(rng: Random, n: number, scale = 1): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rng.normal() * scale;
  return x;
}

/** A random orthogonal matrix (QR by Gram-Schmidt in float64), rounded to float32. */
export function orthogonal(rng: Random, n: number): Float32Array {
  const q = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const v = new Float64Array(n);
    for (let j = 0; j < n; j++) v[j] = rng.normal();
    for (let pass = 0; pass < 2; pass++) {
      for (let k = 0; k < i; k++) {
        let dot = 0;
        for (let j = 0; j < n; j++) dot += v[j]! * q[k * n + j]!;
        for (let j = 0; j < n; j++) v[j] = v[j]! - dot * q[k * n + j]!;
      }
    }
    const norm = Math.hypot(...v);
    for (let j = 0; j < n; j++) q[i * n + j] = v[j]! / norm;
  }
  return Float32Array.from(q);
}

export function makeFilter(rng: Random, kind: FilterSpec['filter'], n: number): FilterSpec {
  if (kind === 'dense') return { filter: kind, n, matrix: orthogonal(rng, n) };
  if (kind === 'permutation') {
    const signs = new Float32Array(n);
    for (let i = 0; i < n; i++) signs[i] = rng.uniform() < 0.5 ? -1 : 1;
    return { filter: kind, n, perm: rng.permutation(n), signs };
  }
  return { filter: kind, n };
}

export function isFilterSpec(v: Value): v is FilterSpec {
  return v !== null && typeof v === 'object' && 'filter' in v;
}

/**
 * A copy of one input in the dtype a backend runs (Float32Array for native, Float64Array for the reference).
 * A list of filters keeps its sharing: entries that are one spec become one filter object.
 */
/**
 * Where a float32 input is placed: a copy in an ordinary array by default, or (`place`) in memory the backend
 * allocated, such as a view of a WebAssembly backend's linear memory.
 */
export type Placement = (x: Float32Array) => FloatArray;

export function convert(v: Value, f64: boolean, place?: Placement): unknown {
  if (v instanceof Float32Array) return f64 ? Float64Array.from(v) : place !== undefined ? place(v) : v.slice();
  if (v instanceof Float64Array || v instanceof Int32Array || v instanceof Uint8Array) return v.slice();
  if (Array.isArray(v)) {
    const made = new Map<FilterSpec, unknown>();
    return v.map((spec) => {
      if (!made.has(spec)) made.set(spec, convert(spec, f64, place));
      return made.get(spec);
    });
  }
  if (isFilterSpec(v)) {
    const make = (x: Float32Array): FloatArray =>
      f64 ? Float64Array.from(x) : place !== undefined ? place(x) : x.slice();
    if (v.filter === 'dense') return { kind: 'dense', n: v.n, matrix: make(v.matrix!) } satisfies FilterOperand;
    if (v.filter === 'permutation')
      return { kind: 'permutation', n: v.n, perm: v.perm!.slice(), signs: make(v.signs!) } satisfies FilterOperand;
    return { kind: 'identity', n: v.n } satisfies FilterOperand;
  }
  return v;
}

/**
 * A kernel case: named inputs; `run` calls the backend with them (converted) and returns what it returned;
 * `outputs` names the arrays to compare afterwards (and '<return>' for the return value).
 */
export interface Case<I extends Record<string, Value> = Record<string, Value>> {
  name: string;
  inputs: I;
  /** `x` may also receive derived outputs under new names (e.g. logGradSquares), hence the index signature. */
  run(b: Backend, x: Converted<I> & { [derived: string]: unknown }): number | void;
  outputs: string[];
  tol: number;
}

/** The type `convert` gives an input: float arrays in the backend's dtype, filter specs as filter operands. */
type ConvertedValue<V> = V extends Float32Array
  ? FloatArray
  : V extends FilterSpec
    ? FilterOperand
    : V extends FilterSpec[]
      ? FilterOperand[]
      : V;
export type Converted<I> = { [K in keyof I]: ConvertedValue<I[K]> };

/** A case whose `run` sees its converted inputs with their own types (checked against the Backend's arguments). */
export function kernelCase<I extends Record<string, Value>>(c: Case<I>): Case {
  return c;
}

export function execute(
  c: Case,
  backend: Backend,
  f64: boolean,
  place?: Placement,
): Record<string, ArrayLike<number> | number> {
  const x: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(c.inputs)) x[k] = convert(v, f64, place);
  // convert maps each input to ConvertedValue of its type, which the compiler cannot follow through Object.entries.
  const ret = c.run(backend, x as Converted<Record<string, Value>>);
  const out: Record<string, ArrayLike<number> | number> = {};
  for (const name of c.outputs) out[name] = name === '<return>' ? (ret as number) : (x[name] as FloatArray);
  return out;
}

/** max |x| over the finite entries (0 for none). */
export function maxAbs(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) if (Number.isFinite(x[i])) m = Math.max(m, Math.abs(x[i]!));
  return m;
}

/**
 * max|got - want| / scale, where scale is the larger of max|want| and the output's initial contents (an
 * output that accumulates can cancel to ~0 while its terms are large). NaN in both is equal (untouched padding).
 */
export function relativeError(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  initial: ArrayLike<number> | null,
): number {
  assert.equal(got.length, want.length);
  let maxDiff = 0;
  for (let i = 0; i < want.length; i++) {
    if (Number.isNaN(got[i]) && Number.isNaN(want[i])) continue;
    const d = Math.abs(got[i]! - want[i]!);
    maxDiff = Number.isNaN(d) ? Infinity : Math.max(maxDiff, d);
  }
  const scale = Math.max(maxAbs(want), initial === null ? 0 : maxAbs(initial));
  return scale === 0 ? maxDiff : maxDiff / scale;
}

/** Fails unless every output of `got` is within the case's tolerance of `want`. */
export function checkCase(
  c: Case,
  got: Record<string, ArrayLike<number> | number>,
  want: Record<string, ArrayLike<number> | number>,
  label: string,
  tolScale = 1,
): void {
  for (const name of c.outputs) {
    const g = got[name];
    const w = want[name];
    const initial = c.inputs[name] instanceof Float32Array ? c.inputs[name] : null;
    const err =
      typeof w === 'number'
        ? Math.abs((g as number) - w) / Math.max(Math.abs(w), 1e-30)
        : relativeError(g as ArrayLike<number>, w!, initial);
    const tol = c.tol * tolScale;
    assert.ok(err <= tol, `${label} ${c.name}: ${name} relative error ${err.toExponential(2)} > ${tol}`);
  }
}

// ---- the cases ----

export function gemmCases(rng: Random): Case[] {
  const shapes: [number, number, number][] = [
    [1, 1, 1],
    [7, 33, 257],
    [257, 7, 33],
    [33, 257, 7],
    [1, 257, 33],
    [257, 1, 33],
    [33, 257, 1],
    [64, 96, 300],
    [130, 70, 513],
    [257, 257, 257],
    [40, 24, 1500],
    [7, 1, 2000],
    // A few columns of op(B) with op(A) = Aᵀ: the input side's weight gradients (adding D = 2, copy D = 10; the
    // native gemv_like path up to 10 columns), and one column past it
    [300, 2, 2000],
    [96, 10, 513],
    [64, 11, 300],
  ];
  const cases: Case[] = [];
  let variant = 0;
  for (const [M, N, K] of shapes) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        variant++;
        const pad = variant % 2 === 0 ? 3 : 0; // row strides larger than the rows
        const lda = (transA ? M : K) + pad;
        const ldb = (transB ? K : N) + pad;
        const ldc = N + (variant % 3 === 0 ? 5 : 0);
        const rowsA = transA ? K : M;
        const rowsB = transB ? N : K;
        const beta = variant % 4 === 0 ? 0 : 0.5;
        const alpha = variant % 3 === 1 ? -0.7 : 1;
        const C = randomArray(rng, M * ldc);
        if (beta === 0) C.fill(NaN); // beta = 0 overwrites C, whatever it held
        const tolK = TOL_PRODUCT * Math.max(1, Math.sqrt(K / 256));
        cases.push(
          kernelCase({
            name: `gemm ${M}x${N}x${K} transA=${transA} transB=${transB} lda=${lda} ldb=${ldb} ldc=${ldc} beta=${beta}`,
            inputs: { A: randomArray(rng, rowsA * lda), B: randomArray(rng, rowsB * ldb), C },
            run: (b, x) => b.gemm({ transA, transB, M, N, K, alpha, A: x.A, lda, B: x.B, ldb, beta, C: x.C, ldc }),
            outputs: ['C'],
            tol: tolK,
          }),
        );
      }
    }
  }
  return cases;
}

export function elementwiseCases(rng: Random): Case[] {
  const cases: Case[] = [];
  for (const n of [1, 7, 33, 1000, 100003]) {
    const wide = randomArray(rng, n, 3);
    if (n >= 7) wide.set([20, -20, 1e-8, -1e-8, 0, 9, -9]); // saturation and the tiny-argument end of tanh
    const a = new Float32Array(n).map(() => Math.tanh(rng.normal()));
    cases.push(
      kernelCase({
        name: `tanh n=${n}`,
        inputs: { x: wide, out: new Float32Array(n) },
        run: (b, x) => b.tanh(n, x.x, x.out),
        outputs: ['out'],
        tol: TOL_ELEMENTWISE,
      }),
      kernelCase({
        name: `tanh in place n=${n}`,
        inputs: { x: wide },
        run: (b, x) => b.tanh(n, x.x, x.x),
        outputs: ['x'],
        tol: TOL_ELEMENTWISE,
      }),
      kernelCase({
        name: `tanhBackward n=${n}`,
        inputs: { a, gy: randomArray(rng, n), gx: new Float32Array(n) },
        run: (b, x) => b.tanhBackward(n, x.a, x.gy, x.gx),
        outputs: ['gx'],
        tol: TOL_ELEMENTWISE,
      }),
      kernelCase({
        name: `sumSquares n=${n}`,
        inputs: { x: randomArray(rng, n) },
        run: (b, x) => b.sumSquares(n, x.x),
        outputs: ['<return>'],
        tol: 1e-6,
      }),
      kernelCase({
        name: `scale n=${n}`,
        inputs: { x: randomArray(rng, n) },
        run: (b, x) => b.scale(n, x.x, -0.37),
        outputs: ['x'],
        tol: TOL_ELEMENTWISE,
      }),
      kernelCase({
        name: `axpy n=${n}`,
        inputs: { x: randomArray(rng, n), y: randomArray(rng, n) },
        run: (b, x) => b.axpy(n, 0.61, x.x, x.y),
        outputs: ['y'],
        tol: TOL_ELEMENTWISE,
      }),
    );
  }
  for (const [rows, n] of [
    [1, 1],
    [257, 33],
    [7, 257],
    [3000, 7],
  ] as const) {
    cases.push(
      kernelCase({
        name: `addRowVector ${rows}x${n}`,
        inputs: { y: randomArray(rng, rows * n), bias: randomArray(rng, n) },
        run: (b, x) => b.addRowVector(rows, n, x.y, x.bias),
        outputs: ['y'],
        tol: TOL_ELEMENTWISE,
      }),
      kernelCase({
        name: `sumRows ${rows}x${n}`,
        inputs: { x: randomArray(rng, rows * n), out: randomArray(rng, n) },
        run: (b, x) => b.sumRows(rows, n, x.x, x.out),
        outputs: ['out'],
        tol: TOL_PRODUCT,
      }),
    );
  }
  return cases;
}

export function filterCases(rng: Random): Case[] {
  const cases: Case[] = [];
  for (const kind of ['dense', 'permutation', 'identity'] as const) {
    // Widths for every path of the native filter rows: one register (N <= 16), gathers of 16 with a masked
    // tail (33), whole gathers (64), and the scalar loop past 1,024.
    for (const [B, N] of [
      [1, 1],
      [3, 16],
      [7, 33],
      [33, 64],
      [2, 1030],
    ] as const) {
      const filter = makeFilter(rng, kind, N);
      for (const transpose of [false, true]) {
        for (const betaY of [0, 0.5]) {
          const y = randomArray(rng, B * N);
          if (betaY === 0) y.fill(NaN);
          cases.push(
            kernelCase({
              name: `applyFilter ${kind} B=${B} N=${N} transpose=${transpose} betaY=${betaY}`,
              inputs: { f: filter, x: randomArray(rng, B * N), y },
              run: (b, x) => b.applyFilter({ filter: x.f, transpose, B, alpha: 0.8, x: x.x, betaY, y: x.y }),
              outputs: ['y'],
              tol: TOL_PRODUCT,
            }),
          );
        }
      }
    }
  }
  return cases;
}

export function layerCases(rng: Random): Case[] {
  const cases: Case[] = [];
  const settings: [number, number][] = [
    [1, 0.1],
    [0.9, 0.5],
    [0, 1],
  ];
  for (const kind of ['dense', 'permutation', 'identity'] as const) {
    for (const [B, N] of [
      [7, 33],
      [33, 64],
      [1, 7],
    ] as const) {
      for (const [alpha, beta] of settings) {
        const filter = makeFilter(rng, kind, N);
        const W = randomArray(rng, N * N, 1 / Math.sqrt(N));
        const x = randomArray(rng, B * N);
        cases.push(
          kernelCase({
            name: `roafLayerForward ${kind} B=${B} N=${N} alpha=${alpha} beta=${beta}`,
            inputs: {
              f: filter,
              x,
              W,
              b: randomArray(rng, N, 0.1),
              a: new Float32Array(B * N).fill(NaN),
              y: new Float32Array(B * N).fill(NaN),
            },
            run: (bk, v) =>
              bk.roafLayerForward({ B, N, alpha, beta, filter: v.f, x: v.x, W: v.W, b: v.b, a: v.a, y: v.y }),
            outputs: ['a', 'y'],
            tol: TOL_PRODUCT,
          }),
        );
        for (const withGx of [true, false]) {
          const a = new Float32Array(B * N).map(() => Math.tanh(rng.normal()));
          cases.push(
            kernelCase({
              name: `roafLayerBackward ${kind} B=${B} N=${N} alpha=${alpha} beta=${beta} gx=${withGx}`,
              inputs: {
                f: filter,
                x,
                a,
                W,
                gy: randomArray(rng, B * N),
                gx: withGx ? new Float32Array(B * N).fill(NaN) : null,
                gW: randomArray(rng, N * N),
                gb: randomArray(rng, N),
                gz: new Float32Array(B * N),
              },
              run: (bk, v) =>
                bk.roafLayerBackward({
                  B,
                  N,
                  alpha,
                  beta,
                  filter: v.f,
                  x: v.x,
                  a: v.a,
                  W: v.W,
                  gy: v.gy,
                  gx: v.gx,
                  gW: v.gW,
                  gb: v.gb,
                  gz: v.gz,
                }),
              outputs: withGx ? ['gx', 'gW', 'gb', 'gz'] : ['gW', 'gb', 'gz'],
              tol: TOL_PRODUCT,
            }),
          );
        }
      }
    }
  }
  return cases;
}

/**
 * ∂loss/∂h_t from the loss for T steps of B x N: random at every step, or (lastStepOnly) at the last step only,
 * with NaN before it: a backend that read those entries would spread NaN into every gradient.
 */
export function lossGradients(rng: Random, T: number, B: number, N: number, lastStepOnly: boolean): Float32Array {
  if (!lastStepOnly) return randomArray(rng, T * B * N, 0.1);
  const ghs = new Float32Array(T * B * N).fill(NaN);
  ghs.set(randomArray(rng, B * N, 0.1), (T - 1) * B * N);
  return ghs;
}

/** Forward then backward through time on one backend: compares both passes' outputs. */
export function cellCases(rng: Random): Case[] {
  const cases: Case[] = [];
  const configs: [string, number, number, number, number, number, number][] = [
    // filter, T, B, D, N, alpha, beta
    ['dense', 20, 17, 1, 33, 1, 0.3],
    ['dense', 16, 40, 3, 64, 0.9, 0.1],
    ['permutation', 20, 17, 3, 33, 1, 0.3],
    ['identity', 20, 9, 1, 7, 1, 0.3],
    ['dense', 20, 17, 2, 33, 0, 1],
    ['dense', 3, 1, 1, 1, 1, 0.5],
    ['dense', 2, 9, 1, 33, 1, 0.3],
    ['permutation', 1, 9, 1, 7, 1, 0.3],
  ];
  for (const [kind, T, B, D, N, alpha, beta] of configs) {
    for (const [withOptional, lastStepOnly] of [
      [true, false],
      [false, false],
      [true, true],
    ] as const) {
      const filter = makeFilter(rng, kind as FilterSpec['filter'], N);
      const hs = new Float32Array((T + 1) * B * N);
      hs.set(randomArray(rng, B * N, 0.5));
      cases.push(
        kernelCase({
          name: `roafCell ${kind} T=${T} B=${B} D=${D} N=${N} alpha=${alpha} beta=${beta} gh0/gxs=${withOptional} lastStepOnly=${lastStepOnly}`,
          inputs: {
            f: filter,
            xs: randomArray(rng, T * B * D),
            W: randomArray(rng, N * N, 1 / Math.sqrt(N)),
            U: randomArray(rng, N * D),
            b: randomArray(rng, N, 0.1),
            hs,
            as: new Float32Array(T * B * N).fill(NaN),
            ghs: lossGradients(rng, T, B, N, lastStepOnly),
            gzs: new Float32Array(T * B * N),
            gW: randomArray(rng, N * N),
            gU: randomArray(rng, N * D),
            gb: randomArray(rng, N),
            gh0: withOptional ? new Float32Array(B * N).fill(NaN) : null,
            gxs: withOptional ? new Float32Array(T * B * D).fill(NaN) : null,
          },
          run: (bk, v) => {
            const { f: filter, xs, W, U, b, hs, as } = v;
            bk.roafCellForward({ T, B, D, N, alpha, beta, filter, xs, W, U, b, hs, as });
            bk.roafCellBackward({
              T,
              B,
              D,
              N,
              alpha,
              beta,
              filter,
              xs,
              W,
              U,
              hs,
              as,
              ghs: v.ghs,
              gzs: v.gzs,
              gW: v.gW,
              gU: v.gU,
              gb: v.gb,
              gh0: v.gh0,
              gxs: v.gxs,
              lastStepOnly,
            });
          },
          // ghs holds the complete gradients on return, except with lastStepOnly (unspecified then).
          outputs: [
            'hs',
            'as',
            'gzs',
            'gW',
            'gU',
            'gb',
            ...(withOptional ? ['gh0', 'gxs'] : []),
            ...(lastStepOnly ? [] : ['ghs']),
          ],
          tol: TOL_RECURRENT,
        }),
      );
    }
  }
  return cases;
}

/**
 * A whole stack of ROAF layers, forward then backward, on one backend: L = 1, 3, 17; B = 1, 5, 128;
 * N = 1, 7, 33, 64; every filter kind, one filter per layer or one shared, alpha > 0 and alpha = 0.
 * gradSquares is also compared as logarithms (relative error per entry), and one case makes the gradient
 * vanish to ~1e-25, whose square underflows float32: the squares must be summed in float64.
 */
export function mlpStackCases(rng: Random): Case[] {
  const cases: Case[] = [];
  const shapes: [number, number, number][] = [
    // L, B, N
    [1, 1, 1],
    [3, 5, 7],
    [17, 5, 33],
    [3, 128, 64],
    [1, 128, 33],
    [17, 1, 64],
    [3, 1, 33],
    [17, 128, 7],
  ];
  const settings: [number, number][] = [
    [0.9, 0.3],
    [0, 1],
  ];
  let variant = 0;
  const stack = (
    L: number,
    B: number,
    N: number,
    kind: FilterSpec['filter'],
    shared: boolean,
    alpha: number,
    beta: number,
    squares: boolean,
  ): Case => {
    const one = makeFilter(rng, kind, N);
    const filters = Array.from({ length: L }, () => (shared ? one : makeFilter(rng, kind, N)));
    const xs = new Float32Array((L + 1) * B * N).fill(NaN);
    xs.set(randomArray(rng, B * N));
    return kernelCase({
      name: `roafMlp ${kind} ${shared ? 'shared' : 'per-layer'} L=${L} B=${B} N=${N} alpha=${alpha} beta=${beta} gradSquares=${squares}`,
      inputs: {
        filters,
        Ws: randomArray(rng, L * N * N, 1 / Math.sqrt(N)),
        bs: randomArray(rng, L * N, 0.1),
        xs,
        as: new Float32Array(L * B * N).fill(NaN),
        gy: randomArray(rng, B * N),
        gWs: randomArray(rng, L * N * N),
        gbs: randomArray(rng, L * N),
        gradSquares: squares ? new Float64Array(L + 1).fill(NaN) : null,
      },
      run: (bk, v) => {
        const { filters, Ws, bs, xs, as } = v;
        bk.roafMlpForward({ L, B, N, alpha, beta, filters, Ws, bs, xs, as });
        bk.roafMlpBackward({
          L,
          B,
          N,
          alpha,
          beta,
          filters,
          Ws,
          xs,
          as,
          gy: v.gy,
          gWs: v.gWs,
          gbs: v.gbs,
          gradSquares: v.gradSquares,
        });
        if (squares) v.logGradSquares = Float64Array.from(v.gradSquares as Float64Array, Math.log);
      },
      outputs: ['xs', 'as', 'gy', 'gWs', 'gbs', ...(squares ? ['gradSquares', 'logGradSquares'] : [])],
      tol: TOL_RECURRENT,
    });
  };
  for (const kind of ['dense', 'permutation', 'identity'] as const) {
    for (const [L, B, N] of shapes) {
      for (const shared of [false, true]) {
        for (const [alpha, beta] of settings)
          cases.push(stack(L, B, N, kind, shared, alpha, beta, ++variant % 2 === 0));
      }
    }
  }
  cases.push(stack(17, 5, 7, 'dense', false, 0, 0.05, true)); // ∂loss/∂x_0 ~ 0.05^17: squares ~1e-45
  return cases;
}

export function gatedCases(rng: Random): Case[] {
  const cases: Case[] = [];
  for (const [T, B, D, N] of [
    [12, 17, 3, 33],
    [6, 40, 1, 16],
    [2, 1, 1, 1],
  ] as const) {
    const scale = 1 / Math.sqrt(N);
    for (const [withGxs, lastStepOnly] of [
      [true, false],
      [false, false],
      [false, true],
    ] as const) {
      const h0 = randomArray(rng, B * N, 0.5);
      const lstmHs = new Float32Array((T + 1) * B * N);
      lstmHs.set(h0);
      const lstmCs = new Float32Array((T + 1) * B * N);
      lstmCs.set(randomArray(rng, B * N, 0.5));
      cases.push(
        kernelCase({
          name: `lstm T=${T} B=${B} D=${D} N=${N} gxs=${withGxs} lastStepOnly=${lastStepOnly}`,
          inputs: {
            xs: randomArray(rng, T * B * D),
            Wx: randomArray(rng, 4 * N * D, scale),
            Wh: randomArray(rng, 4 * N * N, scale),
            b: randomArray(rng, 4 * N, 0.1),
            hs: lstmHs,
            cs: lstmCs,
            gates: new Float32Array(T * B * 4 * N),
            ghs: lossGradients(rng, T, B, N, lastStepOnly),
            gGates: new Float32Array(T * B * 4 * N),
            gWx: randomArray(rng, 4 * N * D),
            gWh: randomArray(rng, 4 * N * N),
            gb: randomArray(rng, 4 * N),
            gxs: withGxs ? new Float32Array(T * B * D).fill(NaN) : null,
          },
          run: (bk, v) => {
            const { xs, Wx, Wh, hs, cs, gates } = v;
            bk.lstmForward({ T, B, D, N, xs, Wx, Wh, b: v.b, hs, cs, gates });
            bk.lstmBackward({
              T,
              B,
              D,
              N,
              xs,
              Wx,
              Wh,
              hs,
              cs,
              gates,
              ghs: v.ghs,
              gGates: v.gGates,
              gWx: v.gWx,
              gWh: v.gWh,
              gb: v.gb,
              gxs: v.gxs,
              lastStepOnly,
            });
          },
          outputs: ['hs', 'cs', 'gates', 'gGates', 'gWx', 'gWh', 'gb', ...(withGxs ? ['gxs'] : [])],
          tol: TOL_RECURRENT,
        }),
      );
      const gruHs = new Float32Array((T + 1) * B * N);
      gruHs.set(h0);
      cases.push(
        kernelCase({
          name: `gru T=${T} B=${B} D=${D} N=${N} gxs=${withGxs} lastStepOnly=${lastStepOnly}`,
          inputs: {
            xs: randomArray(rng, T * B * D),
            Wx: randomArray(rng, 3 * N * D, scale),
            Wh: randomArray(rng, 3 * N * N, scale),
            bx: randomArray(rng, 3 * N, 0.1),
            bh: randomArray(rng, 3 * N, 0.1),
            hs: gruHs,
            gates: new Float32Array(T * B * 3 * N),
            hn: new Float32Array(T * B * N),
            ghs: lossGradients(rng, T, B, N, lastStepOnly),
            gGates: new Float32Array(T * B * 3 * N),
            gHn: new Float32Array(T * B * N),
            gWx: randomArray(rng, 3 * N * D),
            gWh: randomArray(rng, 3 * N * N),
            gbx: randomArray(rng, 3 * N),
            gbh: randomArray(rng, 3 * N),
            gxs: withGxs ? new Float32Array(T * B * D).fill(NaN) : null,
          },
          run: (bk, v) => {
            const { xs, Wx, Wh, hs, gates, hn } = v;
            bk.gruForward({ T, B, D, N, xs, Wx, Wh, bx: v.bx, bh: v.bh, hs, gates, hn });
            bk.gruBackward({
              T,
              B,
              D,
              N,
              xs,
              Wx,
              Wh,
              hs,
              gates,
              hn,
              ghs: v.ghs,
              gGates: v.gGates,
              gHn: v.gHn,
              gWx: v.gWx,
              gWh: v.gWh,
              gbx: v.gbx,
              gbh: v.gbh,
              gxs: v.gxs,
              lastStepOnly,
            });
          },
          outputs: ['hs', 'gates', 'hn', 'gGates', 'gHn', 'gWx', 'gWh', 'gbx', 'gbh', ...(withGxs ? ['gxs'] : [])],
          tol: TOL_RECURRENT,
        }),
      );
    }
  }
  return cases;
}

export function lossAndOptimiserCases(rng: Random): Case[] {
  const cases: Case[] = [];
  for (const [B, K] of [
    [1, 1],
    [33, 10],
    [7, 257],
  ] as const) {
    const labels = new Int32Array(B).map(() => rng.int(K));
    for (const withGrad of [true, false]) {
      cases.push(
        kernelCase({
          name: `softmaxCrossEntropy B=${B} K=${K} grad=${withGrad}`,
          inputs: {
            logits: randomArray(rng, B * K, 3),
            labels,
            grad: withGrad ? new Float32Array(B * K) : null,
            correct: new Uint8Array(B),
          },
          run: (bk, v) =>
            bk.softmaxCrossEntropy({
              B,
              K,
              logits: v.logits,
              labels: v.labels,
              gradScale: 1 / B,
              grad: v.grad,
              correct: v.correct,
            }),
          outputs: ['<return>', 'correct', ...(withGrad ? ['grad'] : [])],
          tol: 1e-6,
        }),
      );
      cases.push(
        kernelCase({
          name: `squaredError B=${B} K=${K} grad=${withGrad}`,
          inputs: {
            pred: randomArray(rng, B * K),
            target: randomArray(rng, B * K),
            grad: withGrad ? new Float32Array(B * K) : null,
          },
          run: (bk, v) => bk.squaredError({ B, K, pred: v.pred, target: v.target, gradScale: 0.5 / B, grad: v.grad }),
          outputs: ['<return>', ...(withGrad ? ['grad'] : [])],
          tol: 1e-6,
        }),
      );
    }
  }
  for (const n of [1, 33, 1003, 100003]) {
    for (const [t, wd] of [
      [1, 0],
      [7, 0.01],
    ] as const) {
      cases.push(
        kernelCase({
          name: `adamUpdate n=${n} t=${t} weightDecay=${wd}`,
          inputs: {
            p: randomArray(rng, n),
            g: randomArray(rng, n),
            m: randomArray(rng, n, 0.1),
            v: new Float32Array(n).map(() => rng.uniform() * 0.01),
          },
          run: (bk, x) =>
            bk.adamUpdate({
              n,
              params: x.p,
              grads: x.g,
              m: x.m,
              v: x.v,
              lr: 1e-3,
              beta1: 0.9,
              beta2: 0.999,
              eps: 1e-8,
              weightDecay: wd,
              t,
            }),
          outputs: ['p', 'm', 'v'],
          tol: TOL_PRODUCT,
        }),
      );
    }
    cases.push(
      kernelCase({
        name: `sgdUpdate n=${n}`,
        inputs: { p: randomArray(rng, n), g: randomArray(rng, n), vel: randomArray(rng, n) },
        run: (bk, x) => bk.sgdUpdate({ n, params: x.p, grads: x.g, velocity: x.vel, lr: 0.05, momentum: 0.9 }),
        outputs: ['p', 'vel'],
        tol: TOL_PRODUCT,
      }),
    );
  }
  return cases;
}

/** Every case, by group, drawn from one generator (the same cases for every backend). */
export function caseGroups(rng: Random): [string, Case[]][] {
  return [
    ['gemm', gemmCases(rng)],
    ['elementwise', elementwiseCases(rng)],
    ['filters', filterCases(rng)],
    ['ROAF layer', layerCases(rng)],
    ['ROAF MLP stack', mlpStackCases(rng)],
    ['ROAF cell', cellCases(rng)],
    ['LSTM and GRU', gatedCases(rng)],
    ['losses and optimisers', lossAndOptimiserCases(rng)],
  ];
}
