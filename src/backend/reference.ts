// The reference backend: the backend core in plain TypeScript, plus BackendBase's fused kernels unchanged.
//
// Together they are the specification. The code is written for clarity first (loops that mirror the
// formulas of docs/math.md), works in float32 and float64 (arithmetic happens in JavaScript doubles; results
// are rounded into the output array's type on store, and the fused kernels' own intermediates stay float64),
// and every faster backend is tested against it. Products use the i-k-j loop order so the inner loop runs
// along contiguous rows. Arguments are checked by the kernel table (kernel-checks.ts) exactly as for the
// native backend: `referenceBackend` is the checked instance.

import type {
  AdamUpdateArgs,
  ApplyFilterArgs,
  DType,
  FloatArray,
  GemmArgs,
  SgdUpdateArgs,
  SoftmaxCrossEntropyArgs,
  SquaredErrorArgs,
} from './backend.js';
import { allocateHost } from './backend.js';
import type { Backend } from './backend.js';
import { BackendBase } from './backend-base.js';
import { bf16Round } from './bf16-round.js';
import { withArgumentChecks } from './kernel-checks.js';

export class ReferenceBackend extends BackendBase {
  readonly name = 'reference';

  describe(): string {
    return 'reference (plain TypeScript)';
  }

  supports(_dtype: DType): boolean {
    return true;
  }

  allocate(dtype: DType, length: number): FloatArray {
    return allocateHost(dtype, length);
  }

  /** Intermediates of the fused kernels in float64: the specification rounds only on storing a result. */
  protected override workDType(): DType {
    return 'float64';
  }

  /** A fresh buffer per call, which the garbage collector takes back (as plain TypeScript code would do). */
  protected override scratch(_slot: string, dtype: DType, length: number): FloatArray {
    return this.allocate(dtype, length);
  }

  gemm({ transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc }: GemmArgs): void {
    const row = new Float64Array(N);
    for (let i = 0; i < M; i++) {
      row.fill(0);
      for (let k = 0; k < K; k++) {
        const aik = transA ? A[k * lda + i]! : A[i * lda + k]!;
        if (aik === 0) continue;
        if (transB) {
          for (let j = 0; j < N; j++) row[j] = row[j]! + aik * B[j * ldb + k]!;
        } else {
          const offset = k * ldb;
          for (let j = 0; j < N; j++) row[j] = row[j]! + aik * B[offset + j]!;
        }
      }
      const offset = i * ldc;
      if (beta === 0) {
        for (let j = 0; j < N; j++) C[offset + j] = alpha * row[j]!;
      } else {
        for (let j = 0; j < N; j++) C[offset + j] = beta * C[offset + j]! + alpha * row[j]!;
      }
    }
  }

  /** gemm on operands rounded to bf16 as they are read (bf16Round), products and sums in float64. */
  gemmBf16({ transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc }: GemmArgs): void {
    const row = new Float64Array(N);
    const b = new Float64Array(K * N); // op(B) rounded, (K, N)
    for (let k = 0; k < K; k++)
      for (let j = 0; j < N; j++) b[k * N + j] = bf16Round(transB ? B[j * ldb + k]! : B[k * ldb + j]!);
    for (let i = 0; i < M; i++) {
      row.fill(0);
      for (let k = 0; k < K; k++) {
        const aik = bf16Round(transA ? A[k * lda + i]! : A[i * lda + k]!);
        if (aik === 0) continue;
        for (let j = 0; j < N; j++) row[j] = row[j]! + aik * b[k * N + j]!;
      }
      const offset = i * ldc;
      if (beta === 0) {
        for (let j = 0; j < N; j++) C[offset + j] = alpha * row[j]!;
      } else {
        for (let j = 0; j < N; j++) C[offset + j] = beta * C[offset + j]! + alpha * row[j]!;
      }
    }
  }

  addRowVector(rows: number, n: number, y: FloatArray, bias: FloatArray): void {
    for (let r = 0; r < rows; r++) {
      const offset = r * n;
      for (let j = 0; j < n; j++) y[offset + j] = y[offset + j]! + bias[j]!;
    }
  }

  sumRows(rows: number, n: number, x: FloatArray, out: FloatArray): void {
    const sums = new Float64Array(n);
    for (let r = 0; r < rows; r++) {
      const offset = r * n;
      for (let j = 0; j < n; j++) sums[j] = sums[j]! + x[offset + j]!;
    }
    for (let j = 0; j < n; j++) out[j] = out[j]! + sums[j]!;
  }

  tanh(n: number, x: FloatArray, out: FloatArray): void {
    for (let i = 0; i < n; i++) out[i] = Math.tanh(x[i]!);
  }

  tanhBackward(n: number, a: FloatArray, gy: FloatArray, gx: FloatArray): void {
    for (let i = 0; i < n; i++) gx[i] = gy[i]! * (1 - a[i]! * a[i]!);
  }

  sumSquares(n: number, x: FloatArray): number {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += x[i]! * x[i]!;
    return sum;
  }

  scale(n: number, x: FloatArray, s: number): void {
    for (let i = 0; i < n; i++) x[i] = x[i]! * s;
  }

  axpy(n: number, s: number, x: FloatArray, y: FloatArray): void {
    for (let i = 0; i < n; i++) y[i] = y[i]! + s * x[i]!;
  }

  applyFilter({ filter, transpose, B, alpha, x, betaY, y }: ApplyFilterArgs): void {
    const N = filter.n;
    if (filter.kind === 'dense') {
      // Rows are vectors: (O x)ᵀ = xᵀ Oᵀ, so Y = X Oᵀ; the transpose filter gives Y = X O.
      this.gemm({
        transA: false,
        transB: !transpose,
        M: B,
        N,
        K: N,
        alpha,
        A: x,
        lda: N,
        B: filter.matrix,
        ldb: N,
        beta: betaY,
        C: y,
        ldc: N,
      });
      return;
    }
    for (let r = 0; r < B; r++) {
      const offset = r * N;
      for (let i = 0; i < N; i++) {
        const old = betaY === 0 ? 0 : betaY * y[offset + i]!;
        y[offset + i] = old; // written before the scatter below for the transposed permutation
      }
      if (filter.kind === 'identity') {
        for (let i = 0; i < N; i++) y[offset + i] = y[offset + i]! + alpha * x[offset + i]!;
      } else if (!transpose) {
        // (O x)[i] = s_i x[perm_i]
        for (let i = 0; i < N; i++)
          y[offset + i] = y[offset + i]! + alpha * filter.signs[i]! * x[offset + filter.perm[i]!]!;
      } else {
        // (Oᵀ g)[perm_i] = s_i g[i]
        for (let i = 0; i < N; i++) {
          const j = offset + filter.perm[i]!;
          y[j] = y[j]! + alpha * filter.signs[i]! * x[offset + i]!;
        }
      }
    }
  }

  softmaxCrossEntropy({ B, K, logits, labels, gradScale, grad, correct }: SoftmaxCrossEntropyArgs): number {
    let total = 0;
    for (let r = 0; r < B; r++) {
      const offset = r * K;
      let max = -Infinity;
      let argmax = 0;
      for (let k = 0; k < K; k++) {
        if (logits[offset + k]! > max) {
          max = logits[offset + k]!;
          argmax = k;
        }
      }
      let sum = 0;
      for (let k = 0; k < K; k++) sum += Math.exp(logits[offset + k]! - max);
      const label = labels[r]!;
      total += Math.log(sum) + max - logits[offset + label]!;
      if (correct !== null) correct[r] = argmax === label ? 1 : 0;
      if (grad !== null) {
        for (let k = 0; k < K; k++) {
          const p = Math.exp(logits[offset + k]! - max) / sum;
          grad[offset + k] = (p - (k === label ? 1 : 0)) * gradScale;
        }
      }
    }
    return total;
  }

  squaredError({ B, K, pred, target, gradScale, grad }: SquaredErrorArgs): number {
    let total = 0;
    for (let i = 0; i < B * K; i++) {
      const diff = pred[i]! - target[i]!;
      total += diff * diff;
      if (grad !== null) grad[i] = 2 * diff * gradScale;
    }
    return total;
  }

  adamUpdate({ n, params, grads, m, v, lr, beta1, beta2, eps, weightDecay, t }: AdamUpdateArgs): void {
    const correction1 = 1 - Math.pow(beta1, t);
    const correction2 = 1 - Math.pow(beta2, t);
    for (let i = 0; i < n; i++) {
      const g = grads[i]!;
      m[i] = beta1 * m[i]! + (1 - beta1) * g;
      v[i] = beta2 * v[i]! + (1 - beta2) * g * g;
      const mHat = m[i]! / correction1;
      const vHat = v[i]! / correction2;
      params[i] = params[i]! - ((lr * mHat) / (Math.sqrt(vHat) + eps) + lr * weightDecay * params[i]!);
    }
  }

  sgdUpdate({ n, params, grads, velocity, lr, momentum }: SgdUpdateArgs): void {
    for (let i = 0; i < n; i++) {
      velocity[i] = momentum * velocity[i]! + grads[i]!;
      params[i] = params[i]! - lr * velocity[i]!;
    }
  }
}

/** The one reference backend instance (it holds no state), behind the kernel table's argument checks. */
export const referenceBackend: Backend = withArgumentChecks(new ReferenceBackend());
