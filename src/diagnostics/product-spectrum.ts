// All singular values of a long product of n x n matrices, A = J_L ⋯ J_2 J_1, for any L: 50,000 layers
// of a vanishing (plain tanh MLP) or exploding (residual MLP) network neither underflow nor overflow.
//
// Method, in float64:
// 1. Carry an orthonormal frame through the product, as for Lyapunov spectra: Q_0 = I and, for each
//    factor, the Householder QR  J_l Q_{l-1} = Q_l R_l  (R_l upper triangular). The product telescopes,
//    A = Q_L R_L ⋯ R_1, so A has the singular values of the triangular product R_L ⋯ R_1 (Q_L is
//    orthogonal). The frame is never formed: its Householder reflectors are applied to the next factor.
//    Σ_l log|(R_l)_ii| are the Lyapunov sums; divided by L they converge to the Lyapunov exponents, but
//    for a finite L they are NOT the log singular values (they differ by O(1), not O(L)).
// 2. Accumulate the triangular product P = R_L ⋯ R_1 exactly as P = diag(e^s) M: every row carries its
//    own log-scale s_i and M has rows of max-norm 1. Because the frame picks up the most expanded
//    directions first, P is row-graded (row i has size ~ σ_i(A)), so this representation holds every
//    row to full relative precision even when the rows differ by e^50000. Each update R P is formed row
//    by row with coefficients R_ik e^{s_k - c_i} <= 1, c_i being that row's largest scale.
// 3. The singular values of P are those of Pᵀ = Mᵀ diag(e^s): a matrix with log-scaled columns, whose
//    one-sided Jacobi SVD (linalg.ts) works entirely in ratios e^{s_j - s_i} <= 1 and returns log σ_i.
// Exactness: at any depth, these are the singular values of A, to the accuracy of a backward-stable
// factorisation of each J_l (each step is one Householder QR and one triangular product), with no final
// SVD of a formed product (which would overflow) and no reliance on Lyapunov convergence. The tests
// compare it with a direct SVD of the explicitly formed Jacobian.
//
// Cost per factor: about 2n³ (reflectors applied to J_l) + 4n³/3 (QR) + n³/3 (triangular product) flops.

import type { ProductSpectrumPushArgs } from '../backend/backend.js';
import { logSingularValuesScaledColumns } from './linalg.js';

/** Who computes each factor's step: a backend's kernel (native: C), or by default the reference below. */
export type ProductSpectrumKernel = (args: ProductSpectrumPushArgs) => void;

export class ProductSpectrum {
  /** Factors pushed so far (L). */
  steps = 0;
  /** Σ_l log|(R_l)_ii|, per i: the Lyapunov sums (natural log). */
  readonly lyapunovSums: Float64Array;
  private readonly reflectors: Float64Array; // (n, n): row k holds v_k in entries k..n-1
  private readonly tau: Float64Array; // (n): 2 / v_kᵀ v_k (0 when the reflector is the identity)
  private readonly m: Float64Array; // (n, n) M of P = diag(e^s) M, upper triangular
  private readonly s: Float64Array; // (n) row log-scales of P
  private readonly work: Float64Array; // (3n² + n) the step's scratch

  /**
   * `kernel`: a backend's productSpectrumPush (bound), e.g. `(a) => backend.productSpectrumPush(a)`; the
   * reference, in TypeScript, by default.
   */
  constructor(
    readonly n: number,
    private readonly kernel: ProductSpectrumKernel = productSpectrumPush,
  ) {
    this.lyapunovSums = new Float64Array(n);
    this.reflectors = new Float64Array(n * n);
    this.tau = new Float64Array(n);
    this.m = new Float64Array(n * n);
    this.s = new Float64Array(n);
    this.work = new Float64Array(3 * n * n + n);
  }

  /** Multiplies the product on the left by J (n, n) row-major; J is used as scratch and overwritten. */
  push(J: Float64Array): void {
    const n = this.n;
    if (J.length !== n * n) throw new Error(`ProductSpectrum.push: expected ${n}x${n}, got ${J.length} entries`);
    this.kernel({
      n,
      first: this.steps === 0,
      J,
      reflectors: this.reflectors,
      tau: this.tau,
      lyapunovSums: this.lyapunovSums,
      m: this.m,
      s: this.s,
      work: this.work,
    });
    this.steps += 1;
  }

  /** Natural logs of all n singular values of the product, largest first (-Infinity for exact zeros). */
  logSingularValues(): Float64Array {
    if (this.steps === 0) return new Float64Array(this.n); // the empty product is I
    // σ(P) = σ(Pᵀ); the columns of Pᵀ are the rows of M, scaled by e^{s_i}.
    return logSingularValuesScaledColumns(Float64Array.from(this.m), Float64Array.from(this.s), this.n, this.n);
  }

  /** Lyapunov exponents: the Lyapunov sums divided by the number of factors, largest first. */
  lyapunovExponents(): Float64Array {
    const steps = Math.max(1, this.steps);
    return this.lyapunovSums
      .map((x) => x / steps)
      .sort()
      .reverse();
  }
}

/**
 * The reference step (the specification of every backend's productSpectrumPush): the frame applied to J, the
 * Householder QR of the result, then the triangular product (the file header, steps 1 and 2).
 */
export function productSpectrumPush(args: ProductSpectrumPushArgs): void {
  const { n, J, work } = args;
  if (!args.first) applyFrame(args);
  // zt = (J Q_{l-1})ᵀ: the columns to factor become contiguous rows.
  const zt = work.subarray(0, n * n);
  const r = work.subarray(n * n, 2 * n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) zt[j * n + i] = J[i * n + j]!;
  factor(args, zt, r);
  if (args.first) startProduct(args, r);
  else multiplyProduct(args, r, work.subarray(2 * n * n, 3 * n * n), work.subarray(3 * n * n, 3 * n * n + n));
}

/** J <- J Q_{l-1} = J H_0 H_1 ⋯ H_{n-1}, each H_k = I - tau_k v_k v_kᵀ. */
function applyFrame({ n, J, reflectors: V, tau }: ProductSpectrumPushArgs): void {
  for (let k = 0; k < n; k++) {
    const tauK = tau[k]!;
    if (tauK === 0) continue;
    const vk = k * n;
    for (let i = 0; i < n; i++) {
      const ji = i * n;
      const f = tauK * dot(J, ji + k, V, vk + k, n - k);
      if (f === 0) continue;
      for (let c = k; c < n; c++) J[ji + c]! -= f * V[vk + c]!;
    }
  }
}

/** Householder QR of Z (held as zt, rows = columns of Z): stores the reflectors, R and the Lyapunov sums. */
function factor(
  { n, reflectors: V, tau, lyapunovSums }: ProductSpectrumPushArgs,
  zt: Float64Array,
  R: Float64Array,
): void {
  R.fill(0);
  for (let k = 0; k < n; k++) {
    const zk = k * n;
    let norm2 = 0;
    for (let c = k; c < n; c++) norm2 += zt[zk + c]! * zt[zk + c]!;
    let norm = Math.sqrt(norm2);
    if (norm2 < 1e-290 || norm2 > 1e290) {
      let max = 0;
      for (let c = k; c < n; c++) max = Math.max(max, Math.abs(zt[zk + c]!));
      norm = 0;
      if (max > 0) {
        for (let c = k; c < n; c++) norm += (zt[zk + c]! / max) ** 2;
        norm = max * Math.sqrt(norm);
      }
    }
    const x0 = zt[zk + k]!;
    const diag = x0 > 0 ? -norm : norm; // R_kk; the sign avoids cancellation in v_k
    let vNorm2 = 0;
    for (let c = k; c < n; c++) {
      const v = c === k ? x0 - diag : zt[zk + c]!;
      V[k * n + c] = v;
      vNorm2 += v * v;
    }
    const tauK = vNorm2 === 0 ? 0 : 2 / vNorm2;
    tau[k] = tauK;
    R[k * n + k] = diag;
    for (let j = k + 1; j < n; j++) {
      const zj = j * n;
      if (tauK !== 0) {
        const f = tauK * dot(V, k * n + k, zt, zj + k, n - k);
        for (let c = k; c < n; c++) zt[zj + c]! -= f * V[k * n + c]!;
      }
      R[k * n + j] = zt[zj + k]!;
    }
    lyapunovSums[k]! += Math.log(Math.abs(diag));
  }
}

/** P = R_1: M = R with rows scaled to max-norm 1. */
function startProduct({ n, m: M, s }: ProductSpectrumPushArgs, R: Float64Array): void {
  M.set(R);
  for (let i = 0; i < n; i++) s[i] = normalizeRow(M, i * n, i, n, 0);
}

/** P <- R_l P, row by row in the scaled representation (see the file header, step 2). */
function multiplyProduct(
  { n, m: M, s }: ProductSpectrumPushArgs,
  R: Float64Array,
  logR: Float64Array,
  row: Float64Array,
): void {
  for (let i = 0; i < n; i++) {
    for (let k = i; k < n; k++) logR[i * n + k] = Math.log(Math.abs(R[i * n + k]!));
  }
  // Row i of the new P only needs rows k >= i of the old one, so rows can be replaced in order.
  for (let i = 0; i < n; i++) {
    let c = -Infinity;
    for (let k = i; k < n; k++) c = Math.max(c, logR[i * n + k]! + s[k]!);
    if (c === -Infinity) {
      M.fill(0, i * n, (i + 1) * n);
      s[i] = -Infinity;
      continue;
    }
    row.fill(0);
    for (let k = i; k < n; k++) {
      const e = logR[i * n + k]! + s[k]! - c;
      if (e === -Infinity || e < -745) continue; // e^e underflows: negligible against the row's scale
      const coefficient = Math.sign(R[i * n + k]!) * Math.exp(e);
      const mk = k * n;
      for (let j = k; j < n; j++) row[j]! += coefficient * M[mk + j]!;
    }
    for (let j = i; j < n; j++) M[i * n + j] = row[j]!;
    s[i] = normalizeRow(M, i * n, i, n, c);
  }
}

/** Scales row entries [from, n) of M at `offset` to max-norm 1; returns the row's new log-scale. */
function normalizeRow(M: Float64Array, offset: number, from: number, n: number, logScale: number): number {
  let max = 0;
  for (let j = from; j < n; j++) max = Math.max(max, Math.abs(M[offset + j]!));
  if (max === 0) return -Infinity;
  for (let j = from; j < n; j++) M[offset + j]! /= max;
  return logScale + Math.log(max);
}

/** Σ a[ia + c] b[ib + c] for c < count, with four partial sums (the adds no longer wait on each other). */
function dot(a: Float64Array, ia: number, b: Float64Array, ib: number, count: number): number {
  let s0 = 0,
    s1 = 0,
    s2 = 0,
    s3 = 0;
  let c = 0;
  for (; c + 3 < count; c += 4) {
    s0 += a[ia + c]! * b[ib + c]!;
    s1 += a[ia + c + 1]! * b[ib + c + 1]!;
    s2 += a[ia + c + 2]! * b[ib + c + 2]!;
    s3 += a[ia + c + 3]! * b[ib + c + 3]!;
  }
  for (; c < count; c++) s0 += a[ia + c]! * b[ib + c]!;
  return s0 + s1 + (s2 + s3);
}
