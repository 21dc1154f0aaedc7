// The reference backend: every kernel of the `Backend` interface in plain TypeScript.
//
// This file is the specification. It is written for clarity first (loops that mirror SPEC §2), works in
// float32 and float64 (arithmetic happens in JavaScript doubles; results are rounded into the output
// array's type on store), and every faster backend is tested against it. Products use the i-k-j loop order
// so the inner loop runs along contiguous rows.

import type { Backend, DType, FilterOperand, FloatArray, GruSaved, LstmSaved } from './backend.js';

/** C = alpha op(A) op(B) + beta C (see Backend.gemm). */
function gemm(
  transA: boolean, transB: boolean, M: number, N: number, K: number,
  alpha: number, A: FloatArray, lda: number, B: FloatArray, ldb: number,
  beta: number, C: FloatArray, ldc: number,
): void {
  const row = new Float64Array(N);
  for (let i = 0; i < M; i++) {
    row.fill(0);
    for (let k = 0; k < K; k++) {
      const aik = transA ? A[k * lda + i] : A[i * lda + k];
      if (aik === 0) continue;
      if (transB) {
        for (let j = 0; j < N; j++) row[j] += aik * B[j * ldb + k];
      } else {
        const offset = k * ldb;
        for (let j = 0; j < N; j++) row[j] += aik * B[offset + j];
      }
    }
    const offset = i * ldc;
    if (beta === 0) {
      for (let j = 0; j < N; j++) C[offset + j] = alpha * row[j];
    } else {
      for (let j = 0; j < N; j++) C[offset + j] = beta * C[offset + j] + alpha * row[j];
    }
  }
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

export class ReferenceBackend implements Backend {
  readonly name = 'reference';

  describe(): string {
    return 'reference (plain TypeScript)';
  }

  supports(_dtype: DType): boolean {
    return true;
  }

  gemm = gemm;

  addRowVector(rows: number, n: number, y: FloatArray, bias: FloatArray): void {
    for (let r = 0; r < rows; r++) {
      const offset = r * n;
      for (let j = 0; j < n; j++) y[offset + j] += bias[j];
    }
  }

  sumRows(rows: number, n: number, x: FloatArray, out: FloatArray): void {
    const sums = new Float64Array(n);
    for (let r = 0; r < rows; r++) {
      const offset = r * n;
      for (let j = 0; j < n; j++) sums[j] += x[offset + j];
    }
    for (let j = 0; j < n; j++) out[j] += sums[j];
  }

  tanh(n: number, x: FloatArray, out: FloatArray): void {
    for (let i = 0; i < n; i++) out[i] = Math.tanh(x[i]);
  }

  tanhBackward(n: number, a: FloatArray, gy: FloatArray, gx: FloatArray): void {
    for (let i = 0; i < n; i++) gx[i] = gy[i] * (1 - a[i] * a[i]);
  }

  sumSquares(n: number, x: FloatArray): number {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += x[i] * x[i];
    return sum;
  }

  scale(n: number, x: FloatArray, s: number): void {
    for (let i = 0; i < n; i++) x[i] *= s;
  }

  axpy(n: number, s: number, x: FloatArray, y: FloatArray): void {
    for (let i = 0; i < n; i++) y[i] += s * x[i];
  }

  applyFilter(
    filter: FilterOperand, transpose: boolean, B: number,
    alpha: number, x: FloatArray, betaY: number, y: FloatArray,
  ): void {
    const N = filter.n;
    if (filter.kind === 'dense') {
      // Rows are vectors: (O x)ᵀ = xᵀ Oᵀ, so Y = X Oᵀ; the transpose filter gives Y = X O.
      gemm(false, !transpose, B, N, N, alpha, x, N, filter.matrix, N, betaY, y, N);
      return;
    }
    for (let r = 0; r < B; r++) {
      const offset = r * N;
      for (let i = 0; i < N; i++) {
        const old = betaY === 0 ? 0 : betaY * y[offset + i];
        y[offset + i] = old; // written before the scatter below for the transposed permutation
      }
      if (filter.kind === 'identity') {
        for (let i = 0; i < N; i++) y[offset + i] += alpha * x[offset + i];
      } else if (!transpose) {
        // (O x)[i] = s_i x[perm_i]
        for (let i = 0; i < N; i++) y[offset + i] += alpha * filter.signs[i] * x[offset + filter.perm[i]];
      } else {
        // (Oᵀ g)[perm_i] = s_i g[i]
        for (let i = 0; i < N; i++) y[offset + filter.perm[i]] += alpha * filter.signs[i] * x[offset + i];
      }
    }
  }

  roafLayerForward(
    B: number, N: number, alpha: number, beta: number, filter: FilterOperand,
    x: FloatArray, W: FloatArray, b: FloatArray, a: FloatArray, y: FloatArray,
  ): void {
    gemm(false, true, B, N, N, 1, x, N, W, N, 0, a, N); // z = x Wᵀ
    this.addRowVector(B, N, a, b);
    this.tanh(B * N, a, a);
    for (let i = 0; i < B * N; i++) y[i] = beta * a[i];
    if (alpha !== 0) this.applyFilter(filter, false, B, alpha, x, 1, y);
  }

  roafLayerBackward(
    B: number, N: number, alpha: number, beta: number, filter: FilterOperand,
    x: FloatArray, a: FloatArray, W: FloatArray, gy: FloatArray,
    gx: FloatArray | null, gW: FloatArray, gb: FloatArray, gz: FloatArray,
  ): void {
    for (let i = 0; i < B * N; i++) gz[i] = beta * gy[i] * (1 - a[i] * a[i]);
    gemm(true, false, N, N, B, 1, gz, N, x, N, 1, gW, N); // gW += gzᵀ x
    this.sumRows(B, N, gz, gb);
    if (gx === null) return;
    gemm(false, false, B, N, N, 1, gz, N, W, N, 0, gx, N); // gx = gz W
    if (alpha !== 0) this.applyFilter(filter, true, B, alpha, gy, 1, gx);
  }

  roafMlpForward(
    L: number, B: number, N: number, alpha: number, beta: number, filters: readonly FilterOperand[],
    Ws: FloatArray, bs: FloatArray, xs: FloatArray, as: FloatArray,
  ): void {
    const size = B * N;
    for (let l = 0; l < L; l++) {
      this.roafLayerForward(
        B, N, alpha, beta, filters[l], xs.subarray(l * size, (l + 1) * size), Ws.subarray(l * N * N, (l + 1) * N * N),
        bs.subarray(l * N, (l + 1) * N), as.subarray(l * size, (l + 1) * size), xs.subarray((l + 1) * size, (l + 2) * size),
      );
    }
  }

  roafMlpBackward(
    L: number, B: number, N: number, alpha: number, beta: number, filters: readonly FilterOperand[],
    Ws: FloatArray, xs: FloatArray, as: FloatArray, gy: FloatArray,
    gWs: FloatArray, gbs: FloatArray, gradSquares: Float64Array | null,
  ): void {
    const size = B * N;
    const scratch = (): FloatArray => (gy instanceof Float64Array ? new Float64Array(size) : new Float32Array(size));
    let g = scratch(); // ∂loss/∂x_{l+1}
    let gx = scratch(); // ∂loss/∂x_l
    const gz = scratch();
    g.set(gy.subarray(0, size));
    for (let l = L - 1; l >= 0; l--) {
      if (gradSquares !== null) gradSquares[l + 1] = this.sumSquares(size, g);
      this.roafLayerBackward(
        B, N, alpha, beta, filters[l], xs.subarray(l * size, (l + 1) * size), as.subarray(l * size, (l + 1) * size),
        Ws.subarray(l * N * N, (l + 1) * N * N), g, gx, gWs.subarray(l * N * N, (l + 1) * N * N),
        gbs.subarray(l * N, (l + 1) * N), gz,
      );
      [g, gx] = [gx, g];
    }
    gy.set(g);
    if (gradSquares !== null) gradSquares[0] = this.sumSquares(size, gy);
  }

  roafCellForward(
    T: number, B: number, D: number, N: number, alpha: number, beta: number, filter: FilterOperand,
    xs: FloatArray, W: FloatArray, U: FloatArray, b: FloatArray, hs: FloatArray, as: FloatArray,
  ): void {
    const step = B * N;
    // The input drive of every step at once: as_t = x_t Uᵀ + b, (T·B, N).
    gemm(false, true, T * B, N, D, 1, xs, D, U, D, 0, as, N);
    this.addRowVector(T * B, N, as, b);
    for (let t = 0; t < T; t++) {
      const hPrev = hs.subarray(t * step, (t + 1) * step);
      const hNext = hs.subarray((t + 1) * step, (t + 2) * step);
      const a = as.subarray(t * step, (t + 1) * step);
      gemm(false, true, B, N, N, 1, hPrev, N, W, N, 1, a, N); // z_t = h_{t-1} Wᵀ + drive
      this.tanh(step, a, a);
      for (let i = 0; i < step; i++) hNext[i] = beta * a[i];
      if (alpha !== 0) this.applyFilter(filter, false, B, alpha, hPrev, 1, hNext);
    }
  }

  roafCellBackward(
    T: number, B: number, D: number, N: number, alpha: number, beta: number, filter: FilterOperand,
    xs: FloatArray, W: FloatArray, U: FloatArray, hs: FloatArray, as: FloatArray,
    ghs: FloatArray, gzs: FloatArray, gW: FloatArray, gU: FloatArray, gb: FloatArray,
    gh0: FloatArray | null, gxs: FloatArray | null, lastStepOnly: boolean,
  ): void {
    const step = B * N;
    for (let t = T - 1; t >= 0; t--) {
      const gh = ghs.subarray(t * step, (t + 1) * step); // complete ∂loss/∂h_{t+1}
      const a = as.subarray(t * step, (t + 1) * step);
      const gz = gzs.subarray(t * step, (t + 1) * step);
      for (let i = 0; i < step; i++) gz[i] = beta * gh[i] * (1 - a[i] * a[i]);
      // ∂loss/∂h_t: the loss term already there plus what flows back through step t.
      const target = t > 0 ? ghs.subarray((t - 1) * step, t * step) : gh0;
      if (target === null) continue;
      const keep = t > 0 && !lastStepOnly ? 1 : 0; // with lastStepOnly the earlier entries are not read
      gemm(false, false, B, N, N, 1, gz, N, W, N, keep, target, N);
      if (alpha !== 0) this.applyFilter(filter, true, B, alpha, gh, 1, target);
    }
    // Weight gradients as one product each over all T·B rows.
    gemm(true, false, N, N, T * B, 1, gzs, N, hs, N, 1, gW, N); // Σ_t gz_tᵀ h_{t-1}
    gemm(true, false, N, D, T * B, 1, gzs, N, xs, D, 1, gU, D);
    this.sumRows(T * B, N, gzs, gb);
    if (gxs !== null) gemm(false, false, T * B, D, N, 1, gzs, N, U, D, 0, gxs, D);
  }

  lstmForward(
    T: number, B: number, D: number, N: number,
    xs: FloatArray, Wx: FloatArray, Wh: FloatArray, b: FloatArray, saved: LstmSaved,
  ): void {
    const { hs, cs, gates } = saved;
    const G = 4 * N;
    gemm(false, true, T * B, G, D, 1, xs, D, Wx, D, 0, gates, G);
    this.addRowVector(T * B, G, gates, b);
    for (let t = 0; t < T; t++) {
      const hPrev = hs.subarray(t * B * N, (t + 1) * B * N);
      const g = gates.subarray(t * B * G, (t + 1) * B * G);
      gemm(false, true, B, G, N, 1, hPrev, N, Wh, N, 1, g, G);
      for (let r = 0; r < B; r++) {
        const go = r * G;
        const prev = t * B * N + r * N;
        const next = (t + 1) * B * N + r * N;
        for (let j = 0; j < N; j++) {
          const i = sigmoid(g[go + j]);
          const f = sigmoid(g[go + N + j]);
          const gg = Math.tanh(g[go + 2 * N + j]);
          const o = sigmoid(g[go + 3 * N + j]);
          g[go + j] = i;
          g[go + N + j] = f;
          g[go + 2 * N + j] = gg;
          g[go + 3 * N + j] = o;
          const c = f * cs[prev + j] + i * gg;
          cs[next + j] = c;
          hs[next + j] = o * Math.tanh(c);
        }
      }
    }
  }

  lstmBackward(
    T: number, B: number, D: number, N: number,
    xs: FloatArray, Wx: FloatArray, Wh: FloatArray, saved: LstmSaved,
    ghs: FloatArray, gGates: FloatArray, gWx: FloatArray, gWh: FloatArray, gb: FloatArray,
    gxs: FloatArray | null, lastStepOnly: boolean,
  ): void {
    const { hs, cs, gates } = saved;
    const G = 4 * N;
    const gc = new Float64Array(B * N); // ∂loss/∂c_{t+1}, carried backwards
    for (let t = T - 1; t >= 0; t--) {
      const g = gates.subarray(t * B * G, (t + 1) * B * G);
      const gg = gGates.subarray(t * B * G, (t + 1) * B * G);
      for (let r = 0; r < B; r++) {
        const go = r * G;
        const prev = t * B * N + r * N;
        const next = (t + 1) * B * N + r * N;
        for (let j = 0; j < N; j++) {
          const i = g[go + j], f = g[go + N + j], c2 = g[go + 2 * N + j], o = g[go + 3 * N + j];
          const tc = Math.tanh(cs[next + j]);
          const gh = ghs[t * B * N + r * N + j];
          const gcTotal = gc[r * N + j] + gh * o * (1 - tc * tc);
          gg[go + j] = gcTotal * c2 * i * (1 - i);
          gg[go + N + j] = gcTotal * cs[prev + j] * f * (1 - f);
          gg[go + 2 * N + j] = gcTotal * i * (1 - c2 * c2);
          gg[go + 3 * N + j] = gh * tc * o * (1 - o);
          gc[r * N + j] = gcTotal * f;
        }
      }
      if (t > 0) {
        const ghPrev = ghs.subarray((t - 1) * B * N, t * B * N);
        gemm(false, false, B, N, G, 1, gg, G, Wh, N, lastStepOnly ? 0 : 1, ghPrev, N);
      }
    }
    gemm(true, false, G, N, T * B, 1, gGates, G, hs, N, 1, gWh, N);
    gemm(true, false, G, D, T * B, 1, gGates, G, xs, D, 1, gWx, D);
    this.sumRows(T * B, G, gGates, gb);
    if (gxs !== null) gemm(false, false, T * B, D, G, 1, gGates, G, Wx, D, 0, gxs, D);
  }

  gruForward(
    T: number, B: number, D: number, N: number,
    xs: FloatArray, Wx: FloatArray, Wh: FloatArray, bx: FloatArray, bh: FloatArray, saved: GruSaved,
  ): void {
    const { hs, gates, hn } = saved;
    const G = 3 * N;
    gemm(false, true, T * B, G, D, 1, xs, D, Wx, D, 0, gates, G);
    this.addRowVector(T * B, G, gates, bx);
    const hproj = new Float64Array(B * G);
    for (let t = 0; t < T; t++) {
      const hPrev = hs.subarray(t * B * N, (t + 1) * B * N);
      const g = gates.subarray(t * B * G, (t + 1) * B * G);
      hproj.fill(0);
      gemm(false, true, B, G, N, 1, hPrev, N, Wh, N, 0, hproj, G);
      for (let r = 0; r < B; r++) {
        const go = r * G;
        const prev = t * B * N + r * N;
        const next = (t + 1) * B * N + r * N;
        for (let j = 0; j < N; j++) {
          const rg = sigmoid(g[go + j] + hproj[go + j] + bh[j]);
          const z = sigmoid(g[go + N + j] + hproj[go + N + j] + bh[N + j]);
          const hnj = hproj[go + 2 * N + j] + bh[2 * N + j];
          const n = Math.tanh(g[go + 2 * N + j] + rg * hnj);
          g[go + j] = rg;
          g[go + N + j] = z;
          g[go + 2 * N + j] = n;
          hn[t * B * N + r * N + j] = hnj;
          hs[next + j] = (1 - z) * n + z * hs[prev + j];
        }
      }
    }
  }

  gruBackward(
    T: number, B: number, D: number, N: number,
    xs: FloatArray, Wx: FloatArray, Wh: FloatArray, saved: GruSaved,
    ghs: FloatArray, gGates: FloatArray, gHn: FloatArray,
    gWx: FloatArray, gWh: FloatArray, gbx: FloatArray, gbh: FloatArray,
    gxs: FloatArray | null, lastStepOnly: boolean,
  ): void {
    const { hs, gates, hn } = saved;
    const G = 3 * N;
    // gGates holds the gradients of the input-side pre-activations [r, z, n];
    // the recurrent side differs only in the candidate: ∂/∂(W_hn h + b_hn) = gn ⊙ r, kept in ghRec.
    const ghRec = new Float64Array(B * G);
    for (let t = T - 1; t >= 0; t--) {
      const g = gates.subarray(t * B * G, (t + 1) * B * G);
      const gg = gGates.subarray(t * B * G, (t + 1) * B * G);
      for (let r = 0; r < B; r++) {
        const go = r * G;
        const prev = t * B * N + r * N;
        for (let j = 0; j < N; j++) {
          const rg = g[go + j], z = g[go + N + j], n = g[go + 2 * N + j];
          const gh = ghs[t * B * N + r * N + j];
          const gn = gh * (1 - z) * (1 - n * n);
          const gz = gh * (hs[prev + j] - n) * z * (1 - z);
          const gr = gn * hn[t * B * N + r * N + j] * rg * (1 - rg);
          gg[go + j] = gr;
          gg[go + N + j] = gz;
          gg[go + 2 * N + j] = gn;
          gHn[t * B * N + r * N + j] = gn * rg;
          ghRec[go + j] = gr;
          ghRec[go + N + j] = gz;
          ghRec[go + 2 * N + j] = gn * rg;
        }
      }
      if (t > 0) {
        const ghPrev = ghs.subarray((t - 1) * B * N, t * B * N);
        gemm(false, false, B, N, G, 1, ghRec, G, Wh, N, lastStepOnly ? 0 : 1, ghPrev, N);
        for (let r = 0; r < B; r++) {
          for (let j = 0; j < N; j++) {
            ghPrev[r * N + j] += ghs[t * B * N + r * N + j] * g[r * G + N + j];
          }
        }
      }
    }
    // Recurrent-side pre-activation gradients: [gr, gz, gn ⊙ r] per step, rebuilt in gGates' r,z part.
    const recurrent = new Float64Array(T * B * G);
    for (let i = 0; i < T * B; i++) {
      for (let j = 0; j < 2 * N; j++) recurrent[i * G + j] = gGates[i * G + j];
      for (let j = 0; j < N; j++) recurrent[i * G + 2 * N + j] = gHn[i * N + j];
    }
    gemm(true, false, G, N, T * B, 1, recurrent, G, hs, N, 1, gWh, N);
    this.sumRows(T * B, G, recurrent, gbh);
    gemm(true, false, G, D, T * B, 1, gGates, G, xs, D, 1, gWx, D);
    this.sumRows(T * B, G, gGates, gbx);
    if (gxs !== null) gemm(false, false, T * B, D, G, 1, gGates, G, Wx, D, 0, gxs, D);
  }

  softmaxCrossEntropy(
    B: number, K: number, logits: FloatArray, labels: Int32Array, gradScale: number,
    grad: FloatArray | null, correct: Uint8Array | null,
  ): number {
    let total = 0;
    for (let r = 0; r < B; r++) {
      const offset = r * K;
      let max = -Infinity;
      let argmax = 0;
      for (let k = 0; k < K; k++) {
        if (logits[offset + k] > max) {
          max = logits[offset + k];
          argmax = k;
        }
      }
      let sum = 0;
      for (let k = 0; k < K; k++) sum += Math.exp(logits[offset + k] - max);
      const label = labels[r];
      total += Math.log(sum) + max - logits[offset + label];
      if (correct !== null) correct[r] = argmax === label ? 1 : 0;
      if (grad !== null) {
        for (let k = 0; k < K; k++) {
          const p = Math.exp(logits[offset + k] - max) / sum;
          grad[offset + k] = (p - (k === label ? 1 : 0)) * gradScale;
        }
      }
    }
    return total;
  }

  squaredError(
    B: number, K: number, pred: FloatArray, target: FloatArray, gradScale: number, grad: FloatArray | null,
  ): number {
    let total = 0;
    for (let i = 0; i < B * K; i++) {
      const diff = pred[i] - target[i];
      total += diff * diff;
      if (grad !== null) grad[i] = 2 * diff * gradScale;
    }
    return total;
  }

  adamUpdate(
    n: number, params: FloatArray, grads: FloatArray, m: FloatArray, v: FloatArray,
    lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, t: number,
  ): void {
    const correction1 = 1 - Math.pow(beta1, t);
    const correction2 = 1 - Math.pow(beta2, t);
    for (let i = 0; i < n; i++) {
      const g = grads[i];
      m[i] = beta1 * m[i] + (1 - beta1) * g;
      v[i] = beta2 * v[i] + (1 - beta2) * g * g;
      const mHat = m[i] / correction1;
      const vHat = v[i] / correction2;
      params[i] -= lr * mHat / (Math.sqrt(vHat) + eps) + lr * weightDecay * params[i];
    }
  }

  sgdUpdate(
    n: number, params: FloatArray, grads: FloatArray, velocity: FloatArray, lr: number, momentum: number,
  ): void {
    for (let i = 0; i < n; i++) {
      velocity[i] = momentum * velocity[i] + grads[i];
      params[i] -= lr * velocity[i];
    }
  }
}

/** The one reference backend instance (it holds no state). */
export const referenceBackend: Backend = new ReferenceBackend();
