// Small dense linear algebra in float64 for the diagnostics: spectral norms by Lanczos (power iteration
// accelerated in its Krylov space) and the one-sided Jacobi SVD of a matrix whose columns carry their own
// logarithmic scale (so that columns of sizes e^-50000 and e^+50000 sit side by side without underflow or
// overflow).
//
// Matrices are row-major Float64Array (n, n) unless a comment says otherwise.

/** Euclidean norm of x[offset .. offset + n), with a rescaling pass only when the plain sum over/underflows. */
export function vectorNorm(x: Float64Array, offset: number, n: number): number {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += x[offset + i]! * x[offset + i]!;
  if (sum > 1e-290 && sum < 1e290) return Math.sqrt(sum);
  let max = 0;
  for (let i = 0; i < n; i++) max = Math.max(max, Math.abs(x[offset + i]!));
  if (max === 0 || !Number.isFinite(max)) return max;
  sum = 0;
  for (let i = 0; i < n; i++) {
    const v = x[offset + i]! / max;
    sum += v * v;
  }
  return max * Math.sqrt(sum);
}

export interface SpectralNormResult {
  /** The estimate of ||W||₂ = σ_max(W), from below (a Ritz value never exceeds the largest eigenvalue). */
  norm: number;
  /** Lanczos steps (products with W and Wᵀ) taken. */
  iterations: number;
  /** Whether the estimate changed by less than the tolerance over the last steps (or is exact). */
  converged: boolean;
}

/**
 * ||W||₂ of a (rows, cols) row-major matrix of any float type, in float64, by the Lanczos iteration on
 * WᵀW with full reorthogonalisation: the Krylov acceleration of power iteration. Power iteration needs
 * hundreds of products for a 64 x 64 Gaussian W (its two largest singular values are close); Lanczos
 * reaches 1e-10 in a few dozen, and is exact once it has taken `cols` steps (or the Krylov space is exhausted). Starts from a fixed
 * vector (ones plus a deterministic ripple), so the result is reproducible.
 */
export function spectralNorm(
  W: ArrayLike<number>,
  rows: number,
  cols: number,
  { tolerance = 1e-10, maxIterations = cols }: { tolerance?: number; maxIterations?: number } = {},
): SpectralNormResult {
  const n = cols;
  const steps = Math.max(1, Math.min(maxIterations, n));
  const basis = new Float64Array(steps * n); // Lanczos vectors v_1..v_k as rows
  const diagonal = new Float64Array(steps); // alpha_j of the tridiagonal T_k
  const offDiagonal = new Float64Array(steps); // beta_j
  const u = new Float64Array(rows);
  const w = new Float64Array(n);
  for (let j = 0; j < n; j++) w[j] = 1 + 0.5 * Math.sin(1.7 * j + 0.3);
  let norm = vectorNorm(w, 0, n);
  let estimate = 0;
  let stable = 0;
  for (let k = 0; k < steps; k++) {
    const vk = k * n;
    for (let j = 0; j < n; j++) basis[vk + j] = w[j]! / norm;
    // w = Wᵀ (W v_k)
    for (let i = 0; i < rows; i++) {
      let sum = 0;
      const offset = i * cols;
      for (let j = 0; j < n; j++) sum += W[offset + j]! * basis[vk + j]!;
      u[i] = sum;
    }
    w.fill(0);
    for (let i = 0; i < rows; i++) {
      const ui = u[i]!;
      const offset = i * cols;
      for (let j = 0; j < n; j++) w[j]! += W[offset + j]! * ui;
    }
    let alpha = 0;
    for (let j = 0; j < n; j++) alpha += w[j]! * basis[vk + j]!;
    diagonal[k] = alpha;
    // Full reorthogonalisation (twice is enough) against v_1..v_k replaces the three-term recurrence.
    for (let pass = 0; pass < 2; pass++) {
      for (let m = 0; m <= k; m++) {
        let dot = 0;
        for (let j = 0; j < n; j++) dot += w[j]! * basis[m * n + j]!;
        for (let j = 0; j < n; j++) w[j]! -= dot * basis[m * n + j]!;
      }
    }
    const next = largestTridiagonalEigenvalue(diagonal, offDiagonal, k + 1);
    norm = vectorNorm(w, 0, n);
    const exhausted = norm <= 1e-14 * Math.sqrt(Math.max(next, 1e-300));
    if (exhausted || k + 1 === n) return { norm: Math.sqrt(Math.max(0, next)), iterations: k + 1, converged: true };
    stable = Math.abs(next - estimate) <= tolerance * next ? stable + 1 : 0;
    estimate = next;
    if (stable >= 2) return { norm: Math.sqrt(Math.max(0, next)), iterations: k + 1, converged: true };
    offDiagonal[k] = norm;
  }
  return { norm: Math.sqrt(Math.max(0, estimate)), iterations: steps, converged: false };
}

/**
 * The largest eigenvalue of the symmetric tridiagonal matrix with diagonal d[0..k) and off-diagonal
 * e[0..k-1) (e[j] couples j and j+1), by bisection on Sturm sequence counts, to full precision.
 */
function largestTridiagonalEigenvalue(d: Float64Array, e: Float64Array, k: number): number {
  let lo = Infinity,
    hi = -Infinity;
  for (let j = 0; j < k; j++) {
    const radius = (j > 0 ? Math.abs(e[j - 1]!) : 0) + (j < k - 1 ? Math.abs(e[j]!) : 0);
    lo = Math.min(lo, d[j]! - radius);
    hi = Math.max(hi, d[j]! + radius);
  }
  // countBelow(x): the number of eigenvalues below x (negative pivots of T - x I = L D Lᵀ).
  const countBelow = (x: number): number => {
    let count = 0;
    let q = 1;
    for (let j = 0; j < k; j++) {
      const coupling = j > 0 ? (e[j - 1]! * e[j - 1]!) / q : 0;
      q = d[j]! - x - coupling;
      if (q === 0) q = -1e-300;
      if (q < 0) count++;
    }
    return count;
  };
  for (let iteration = 0; iteration < 200 && hi - lo > 1e-16 * Math.max(Math.abs(lo), Math.abs(hi)); iteration++) {
    const mid = (lo + hi) / 2;
    if (mid === lo || mid === hi) break;
    if (countBelow(mid) === k)
      hi = mid; // every eigenvalue is below mid
    else lo = mid;
  }
  return hi;
}

/**
 * Singular values of G = U · diag(e^t), where column i of G is e^{t_i} u_i: `u` holds the n column
 * vectors u_i as rows (n, m), each of any nonzero length; `t` the n log-scales (-Infinity: a zero column).
 * Returns the natural logarithms of the n singular values, largest first (-Infinity for exact zeros).
 *
 * One-sided (Hestenes) Jacobi: rotate pairs of columns until all are mutually orthogonal; the singular
 * values are then the column norms. Each rotation is computed from ratios r = e^{t_j - t_i} <= 1 (i the
 * larger column), so no quantity ever over- or underflows: when r underflows to 0 the rotation becomes
 * exactly a Gram-Schmidt step of the small column against the large one, which is its limit. For a
 * column-scaled G the computed singular values have relative errors of order ε·κ(U with unit columns)
 * (Demmel & Veselić, 1992), independent of how wildly the scales t differ.
 */
export function logSingularValuesScaledColumns(
  u: Float64Array,
  t: Float64Array,
  n: number,
  m: number,
  { tolerance = 1e-15 * Math.max(4, n), maxSweeps = 100 }: { tolerance?: number; maxSweeps?: number } = {},
): Float64Array {
  const scale = Float64Array.from(t);
  for (let i = 0; i < n; i++) {
    const norm = vectorNorm(u, i * m, m);
    if (norm === 0 || scale[i] === -Infinity) {
      scale[i] = -Infinity;
      continue;
    }
    scale[i]! += Math.log(norm);
    for (let k = 0; k < m; k++) u[i * m + k]! /= norm;
  }
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      if (scale[p] === -Infinity) continue;
      for (let q = p + 1; q < n; q++) {
        if (scale[q] === -Infinity) continue;
        const op = p * m,
          oq = q * m;
        let gamma = 0; // cosine of the angle between u_p and u_q (both unit vectors)
        for (let k = 0; k < m; k++) gamma += u[op + k]! * u[oq + k]!;
        if (Math.abs(gamma) <= tolerance) continue;
        rotated = true;
        const [i, j] = scale[p]! >= scale[q]! ? [p, q] : [q, p];
        const oi = i * m,
          oj = j * m;
        const r = Math.exp(scale[j]! - scale[i]!); // in [0, 1]
        // With a = |col_i|², b = |col_j|² = r² a, c = col_i·col_j = γ r a, the rotation tangent is
        // t = sign(ζ) / (|ζ| + sqrt(1 + ζ²)), ζ = (b - a) / 2c; tau = t / r stays finite as r -> 0.
        const A = (1 - r * r) / (2 * Math.abs(gamma));
        const tau = -Math.sign(gamma) / (A + Math.sqrt(r * r + A * A));
        const tan = tau * r;
        const cos = 1 / Math.sqrt(1 + tan * tan);
        const tr = tau * r * r;
        let normI = 0,
          normJ = 0;
        for (let k = 0; k < m; k++) {
          const ui = u[oi + k]!,
            uj = u[oj + k]!;
          const vi = ui - tr * uj; // col_i' = e^{t_i} cos (u_i - t r u_j)
          const vj = tau * ui + uj; // col_j' = e^{t_j} cos (t/r u_i + u_j)
          u[oi + k] = vi;
          u[oj + k] = vj;
          normI += vi * vi;
          normJ += vj * vj;
        }
        renormalize(u, scale, i, m, cos, Math.sqrt(normI));
        renormalize(u, scale, j, m, cos, Math.sqrt(normJ));
      }
    }
    if (!rotated) break;
  }
  return scale.sort().reverse();
}

/** After a rotation: column `i` is e^{scale_i} cos v_i with |v_i| = norm; makes v_i a unit vector again. */
function renormalize(u: Float64Array, scale: Float64Array, i: number, m: number, cos: number, norm: number): void {
  if (norm === 0) {
    // The rotation annihilated the column: an exactly rank-deficient matrix.
    scale[i] = -Infinity;
    u.fill(0, i * m, (i + 1) * m);
    return;
  }
  scale[i]! += Math.log(cos * norm);
  for (let k = 0; k < m; k++) u[i * m + k]! /= norm;
}
