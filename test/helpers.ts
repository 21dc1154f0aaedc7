// Shared test helpers: random buffers, finite-difference gradient checks, the list of backends the suites
// run on (reference always; native when its addon is built, and BackendBase's fused kernels on the native
// core; wasm when its module loads), and CoreOnlyBackend, a backend that implements the core only.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import type {
  AdamUpdateArgs,
  ApplyFilterArgs,
  Backend,
  DType,
  FloatArray,
  GemmArgs,
  SgdUpdateArgs,
  SoftmaxCrossEntropyArgs,
  SquaredErrorArgs,
} from '../src/backend/backend.js';
import { BackendBase } from '../src/backend/backend-base.js';
import { withArgumentChecks } from '../src/backend/kernel-checks.js';
import { referenceBackend } from '../src/backend/reference.js';
import { Random } from '../src/util/random.js';

export function randomArray(n: number, rng: Random, scale = 1, dtype: 'float32' | 'float64' = 'float64'): FloatArray {
  const out = dtype === 'float64' ? new Float64Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.normal() * scale;
  return out;
}

/**
 * Central finite differences of `loss` with respect to every entry of `values` (perturbed in place and
 * restored), compared with `analytic`. Fails when max |fd - analytic| / max(|fd|, |analytic|, floor)
 * exceeds `tolerance`. Returns the worst relative error.
 */
export function checkGradient(
  label: string,
  values: FloatArray,
  analytic: ArrayLike<number>,
  loss: () => number,
  {
    tolerance = 1e-6,
    step = 1e-5,
    floor = 1e-3,
    indices,
  }: { tolerance?: number; step?: number; floor?: number; indices?: number[] } = {},
): number {
  let worst = 0;
  const which = indices ?? Array.from({ length: values.length }, (_, i) => i);
  let scaleRef = 0;
  for (const i of which) scaleRef = Math.max(scaleRef, Math.abs(analytic[i]!));
  for (const i of which) {
    const saved = values[i]!;
    const want = analytic[i]!;
    values[i] = saved + step;
    const plus = loss();
    values[i] = saved - step;
    const minus = loss();
    values[i] = saved;
    const fd = (plus - minus) / (2 * step);
    // Relative to the gradient's overall scale, so entries near zero do not inflate the error.
    const denominator = Math.max(Math.abs(fd), Math.abs(want), floor * scaleRef, 1e-12);
    const relative = Math.abs(fd - want) / denominator;
    worst = Math.max(worst, relative);
    if (relative > tolerance) {
      assert.fail(
        `${label}[${i}]: finite difference ${fd} vs analytic ${want} (relative error ${relative.toExponential(2)})`,
      );
    }
  }
  return worst;
}

/** Σ c ⊙ y in float64: a scalar loss with a known gradient (c) for any output y. */
export function weightedSum(y: ArrayLike<number>, c: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += y[i]! * c[i]!;
  return s;
}

export interface NamedBackend {
  name: string;
  backend: Backend;
}

/**
 * A backend that implements only the core, each core kernel by calling `core`'s, and counts those calls; every
 * fused kernel is BackendBase's default, built on `this`. The shape a new backend (WebAssembly, say) starts
 * from, and the proof that a faster core alone makes every fused kernel faster. `workDType` is the dtype the
 * defaults keep their intermediates in: the model's unless given (the reference's is float64).
 */
export class CoreOnlyBackend extends BackendBase {
  readonly name: string;
  /** Calls of each core kernel (and of allocate) since the last reset. */
  readonly calls = new Map<string, number>();

  constructor(
    private readonly core: Backend,
    private readonly work?: DType,
  ) {
    super();
    this.name = `${core.name} core + defaults`;
  }

  private count(kernel: string): void {
    this.calls.set(kernel, (this.calls.get(kernel) ?? 0) + 1);
  }

  protected override workDType(dtype: DType): DType {
    return this.work ?? dtype;
  }

  describe(): string {
    return `the core of ${this.core.describe()} with BackendBase's fused kernels`;
  }
  supports(dtype: DType): boolean {
    return this.core.supports(dtype);
  }
  allocate(dtype: DType, length: number): FloatArray {
    this.count('allocate');
    return this.core.allocate(dtype, length);
  }
  gemm(args: GemmArgs): void {
    this.count('gemm');
    this.core.gemm(args);
  }
  gemmBf16(args: GemmArgs): void {
    this.count('gemmBf16');
    this.core.gemmBf16(args);
  }
  addRowVector(rows: number, n: number, y: FloatArray, bias: FloatArray): void {
    this.count('addRowVector');
    this.core.addRowVector(rows, n, y, bias);
  }
  sumRows(rows: number, n: number, x: FloatArray, out: FloatArray): void {
    this.count('sumRows');
    this.core.sumRows(rows, n, x, out);
  }
  tanh(n: number, x: FloatArray, out: FloatArray): void {
    this.count('tanh');
    this.core.tanh(n, x, out);
  }
  tanhBackward(n: number, a: FloatArray, gy: FloatArray, gx: FloatArray): void {
    this.count('tanhBackward');
    this.core.tanhBackward(n, a, gy, gx);
  }
  sumSquares(n: number, x: FloatArray): number {
    this.count('sumSquares');
    return this.core.sumSquares(n, x);
  }
  scale(n: number, x: FloatArray, s: number): void {
    this.count('scale');
    this.core.scale(n, x, s);
  }
  axpy(n: number, s: number, x: FloatArray, y: FloatArray): void {
    this.count('axpy');
    this.core.axpy(n, s, x, y);
  }
  applyFilter(args: ApplyFilterArgs): void {
    this.count('applyFilter');
    this.core.applyFilter(args);
  }
  softmaxCrossEntropy(args: SoftmaxCrossEntropyArgs): number {
    this.count('softmaxCrossEntropy');
    return this.core.softmaxCrossEntropy(args);
  }
  squaredError(args: SquaredErrorArgs): number {
    this.count('squaredError');
    return this.core.squaredError(args);
  }
  adamUpdate(args: AdamUpdateArgs): void {
    this.count('adamUpdate');
    this.core.adamUpdate(args);
  }
  sgdUpdate(args: SgdUpdateArgs): void {
    this.count('sgdUpdate');
    this.core.sgdUpdate(args);
  }
}

/**
 * The backends to run a suite on: reference always; native when it loads, and then also BackendBase's fused
 * kernels on the native core (what a backend with only a fast core computes). Each behind the table's checks.
 */
export async function availableBackends(): Promise<NamedBackend[]> {
  const list: NamedBackend[] = [{ name: 'reference', backend: referenceBackend }];
  const { loadBackend } = await import('../src/backend/index.js');
  const native = loadBackend('native', { quiet: true });
  if (native !== null) {
    list.push({ name: 'native', backend: native });
    list.push({ name: 'native core + defaults', backend: withArgumentChecks(new CoreOnlyBackend(native)) });
  }
  const wasm = loadBackend('wasm', { quiet: true });
  if (wasm !== null) list.push({ name: 'wasm', backend: wasm });
  return list;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'lengths differ');
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

/** Debian's Python, which the PyTorch checks run (python3-torch). */
export const PYTHON = '/usr/bin/python3';

/** Why the PyTorch checks cannot run here (PYTHON or its torch missing), or null when they can. */
export function torchMissing(): string | null {
  const probe = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.error) return `${PYTHON} is not available (${probe.error.message}): apt-get install python3-torch`;
  if (probe.status !== 0) return `${PYTHON} cannot import torch: apt-get install python3-torch`;
  return null;
}
