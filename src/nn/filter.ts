// The random orthogonal filters O (docs/math.md), drawn once from the model's seed and never trained.
//
// `haar` is the QR of a standard Gaussian matrix with the columns' signs fixed by sign(diag(R)), which
// makes O exactly Haar-distributed (without the fix, QR's sign convention biases the distribution).
// `qr-uniform` is the QR of a uniform(-1, 1) matrix, as the author's reservoir code does (no sign fix).
// `permutation` and `cycle` are signed permutations, applied in O(N) by the kernels.

import { hostMemory, type Backend, type BufferAllocator, type DType, type FilterOperand } from '../backend/backend.js';
import { Random } from '../util/random.js';

/**
 * Where a filter's memory comes from, and, when it has one, the backend's QR (a model passes its backend, whose
 * QR equals the reference's bit for bit); without it, the reference QR below.
 */
export type FilterMemory = BufferAllocator & Partial<Pick<Backend, 'orthogonalFromQr'>>;

/** float64 elements of the random matrices drawn per call of the backend's QR (16 MB: small next to a model). */
const QR_BATCH_ELEMENTS = 1 << 21;

export const FILTER_KINDS = ['haar', 'qr-uniform', 'permutation', 'cycle', 'identity'] as const;
export type FilterKind = (typeof FILTER_KINDS)[number];

/**
 * The filter a model gets when none is named. A signed permutation: O(N) to apply and to store instead of N²,
 * and as accurate as Haar where compared at the same seed and budget (docs/defaults.md, "Which filter":
 * psMNIST at N = 256 after ten epochs 97.11 % against Haar's 97.09 %, a deep MLP of 1,000 layers within 0.02
 * points), so the fastest filter that matches is the default.
 */
export const DEFAULT_FILTER: FilterKind = 'permutation';

/**
 * Q of the QR decomposition of the row-major n x n matrix `a` (consumed), by Householder reflections in
 * float64. With `signFix`, column j of Q is multiplied by sign(R_jj), making the decomposition unique.
 */
export function orthogonalFromQr(a: Float64Array, n: number, signFix: boolean): Float64Array {
  const q = new Float64Array(n * n);
  for (let i = 0; i < n; i++) q[i * n + i] = 1;
  const v = new Float64Array(n);
  const rDiagSign = new Float64Array(n).fill(1);
  for (let k = 0; k < n; k++) {
    // Householder vector for column k below the diagonal.
    let norm = 0;
    for (let i = k; i < n; i++) norm += a[i * n + k]! * a[i * n + k]!;
    norm = Math.sqrt(norm);
    const akk = a[k * n + k]!;
    if (norm === 0) continue;
    const alpha = akk > 0 ? -norm : norm; // R_kk = alpha; the sign choice avoids cancellation
    rDiagSign[k] = Math.sign(alpha);
    let vNorm2 = 0;
    for (let i = k; i < n; i++) {
      v[i] = a[i * n + k]! - (i === k ? alpha : 0);
      vNorm2 += v[i]! * v[i]!;
    }
    if (vNorm2 === 0) continue;
    // A <- (I - 2 v vᵀ / vᵀv) A on columns k..n-1.
    for (let j = k; j < n; j++) {
      let dot = 0;
      for (let i = k; i < n; i++) dot += v[i]! * a[i * n + j]!;
      const f = (2 * dot) / vNorm2;
      for (let i = k; i < n; i++) a[i * n + j]! -= f * v[i]!;
    }
    // Q <- Q (I - 2 v vᵀ / vᵀv), so that Q = H_0 H_1 ... H_{n-1} at the end.
    for (let i = 0; i < n; i++) {
      let dot = 0;
      for (let j = k; j < n; j++) dot += q[i * n + j]! * v[j]!;
      const f = (2 * dot) / vNorm2;
      for (let j = k; j < n; j++) q[i * n + j]! -= f * v[j]!;
    }
  }
  if (signFix) {
    for (let j = 0; j < n; j++) {
      if (rDiagSign[j]! < 0) for (let i = 0; i < n; i++) q[i * n + j] = -q[i * n + j]!;
    }
  }
  return q;
}

/** Whether a kind is a dense matrix drawn as the Q of a random matrix's QR. */
function isQrKind(kind: FilterKind): kind is 'haar' | 'qr-uniform' {
  return kind === 'haar' || kind === 'qr-uniform';
}

/** Fills `a` (n * n, row-major) with the random matrix a dense filter is the QR of, from `rng`. */
function drawQrInput(kind: 'haar' | 'qr-uniform', a: Float64Array, rng: Random): void {
  if (kind === 'haar') for (let i = 0; i < a.length; i++) a[i] = rng.normal();
  else for (let i = 0; i < a.length; i++) a[i] = 2 * rng.uniform() - 1;
}

/**
 * Draws one filter of the given kind; all randomness comes from `rng`. Its arrays come from `memory` (a
 * model passes its backend, whose QR then draws a dense filter; ordinary typed arrays and the reference QR
 * otherwise: the same filter, bit for bit).
 */
export function makeFilter(
  kind: FilterKind,
  n: number,
  rng: Random,
  dtype: DType,
  memory: FilterMemory = hostMemory,
): FilterOperand {
  switch (kind) {
    case 'haar':
    case 'qr-uniform': {
      const a = new Float64Array(n * n);
      drawQrInput(kind, a, rng);
      let q: Float64Array;
      if (memory.orthogonalFromQr !== undefined) {
        q = new Float64Array(n * n);
        memory.orthogonalFromQr({ count: 1, N: n, signFix: kind === 'haar', a, q });
      } else {
        q = orthogonalFromQr(a, n, kind === 'haar');
      }
      const matrix = memory.allocate(dtype, n * n);
      matrix.set(q);
      return { kind: 'dense', n, matrix };
    }
    case 'permutation': {
      const perm = rng.permutation(n);
      const signs = memory.allocate(dtype, n);
      for (let i = 0; i < n; i++) signs[i] = rng.uniform() < 0.5 ? -1 : 1;
      return { kind: 'permutation', n, perm, signs };
    }
    case 'cycle': {
      const perm = new Int32Array(n);
      for (let i = 0; i < n; i++) perm[i] = (i + n - 1) % n; // (O x)[i] = x[i-1]: shift down by one
      return { kind: 'permutation', n, perm, signs: memory.allocate(dtype, n).fill(1) };
    }
    case 'identity':
      return { kind: 'identity', n };
  }
}

/** The dense n x n matrix of any filter (for checkpoints, diagnostics and tests). */
export function filterMatrix(filter: FilterOperand): Float64Array {
  const n = filter.n;
  const m = new Float64Array(n * n);
  if (filter.kind === 'dense') {
    m.set(filter.matrix);
  } else if (filter.kind === 'identity') {
    for (let i = 0; i < n; i++) m[i * n + i] = 1;
  } else {
    for (let i = 0; i < n; i++) m[i * n + filter.perm[i]!] = filter.signs[i]!;
  }
  return m;
}

/**
 * The filters of a model: one per layer, or one shared by all. Each is drawn from its own generator
 * derived from (seed, index), so a filter is reproducible from the seed alone and drawing layer l's
 * filter does not depend on how many came before. Dense filters go through the backend's QR in batches (the
 * native one runs on every core): at 50,000 layers of width 64 the QR was nearly all of a model's construction.
 */
export function makeFilters(
  kind: FilterKind,
  n: number,
  count: number,
  shared: boolean,
  seed: number,
  dtype: DType,
  memory: FilterMemory = hostMemory,
): FilterOperand[] {
  const filterSeed = Random.derive(seed, 0x0f17e5).nextUint32();
  if (shared || kind === 'identity' || kind === 'cycle') {
    const one = makeFilter(kind, n, Random.derive(filterSeed, 0), dtype, memory);
    return new Array<FilterOperand>(count).fill(one);
  }
  const filters: FilterOperand[] = [];
  if (!isQrKind(kind) || memory.orthogonalFromQr === undefined || count === 0 || n === 0) {
    for (let l = 0; l < count; l++) filters.push(makeFilter(kind, n, Random.derive(filterSeed, l), dtype, memory));
    return filters;
  }
  const nn = n * n;
  const batch = Math.max(1, Math.min(count, Math.floor(QR_BATCH_ELEMENTS / nn)));
  const a = new Float64Array(batch * nn);
  const q = new Float64Array(batch * nn);
  for (let start = 0; start < count; start += batch) {
    const m = Math.min(batch, count - start);
    for (let j = 0; j < m; j++)
      drawQrInput(kind, a.subarray(j * nn, (j + 1) * nn), Random.derive(filterSeed, start + j));
    memory.orthogonalFromQr({ count: m, N: n, signFix: kind === 'haar', a, q });
    for (let j = 0; j < m; j++) {
      const matrix = memory.allocate(dtype, nn);
      matrix.set(q.subarray(j * nn, (j + 1) * nn));
      filters.push({ kind: 'dense', n, matrix });
    }
  }
  return filters;
}
