// The QR that draws the dense filters (orthogonalFromQr): the native kernel equals the reference bit for bit on
// every instruction set and thread count (so a model's filters depend on its seed only, not on the backend),
// its Q is orthogonal and, with the sign fix, Qᵀ A is upper triangular with a positive diagonal; and models
// built on the native backend equal models built on the reference, filters and parameters alike.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';

import { allocateHost, type Backend, type DType, type FilterOperand } from '../src/backend/backend.js';
import {
  loadNativeBackend,
  nativeInfo,
  nativeLoadError,
  setNativeIsa,
  setNativeParallelThreshold,
  setNativeThreads,
} from '../src/backend/native.js';
import { referenceBackend } from '../src/backend/reference.js';
import { filterMatrix, makeFilter, makeFilters, orthogonalFromQr, type FilterMemory } from '../src/nn/filter.js';
import { createModel } from '../src/models/factory.js';
import type { ModelConfig } from '../src/models/config.js';
import { Random } from '../src/util/random.js';

const native = loadNativeBackend();
const info = nativeInfo();
const nativeSkip = native === null ? `native backend not built: ${nativeLoadError() ?? 'unknown reason'}` : false;

/** Whether two float64 arrays hold the same bits (NaN payloads and the sign of zero included). */
function sameBits(x: Float64Array, y: Float64Array): boolean {
  if (x.length !== y.length) return false;
  const a = new BigUint64Array(x.buffer, x.byteOffset, x.length);
  const b = new BigUint64Array(y.buffer, y.byteOffset, y.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The first element where two arrays differ, for a readable failure. */
function firstDifference(x: ArrayLike<number>, y: ArrayLike<number>): string {
  for (let i = 0; i < x.length; i++) {
    if (!Object.is(x[i], y[i])) return `element ${i}: ${x[i]} vs ${y[i]}`;
  }
  return 'none';
}

/** Matrices that reach every branch of the Householder step, `count` of size n. */
function inputs(kind: string, n: number, count: number, rng: Random): Float64Array {
  const a = new Float64Array(count * n * n);
  switch (kind) {
    case 'normal':
      for (let i = 0; i < a.length; i++) a[i] = rng.normal();
      break;
    case 'uniform':
      for (let i = 0; i < a.length; i++) a[i] = 2 * rng.uniform() - 1;
      break;
    case 'zero columns': // norm = 0: the step is skipped
      for (let i = 0; i < a.length; i++) a[i] = (i % n) % 3 === 1 ? 0 : rng.normal();
      break;
    case 'rank one': // the trailing columns become zero below the diagonal after one step
      for (let m = 0; m < count; m++) {
        const u = Array.from({ length: n }, () => rng.normal());
        const w = Array.from({ length: n }, () => rng.normal());
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[m * n * n + i * n + j] = u[i]! * w[j]!;
      }
      break;
    case 'tiny': // squares underflow: norm or vᵀv is 0 while the column is not
      for (let i = 0; i < a.length; i++) a[i] = rng.normal() * 1e-160;
      break;
    case 'triangular': // already upper triangular, with diagonal entries of both signs
      for (let m = 0; m < count; m++)
        for (let i = 0; i < n; i++) for (let j = i; j < n; j++) a[m * n * n + i * n + j] = rng.normal();
      break;
  }
  return a;
}

const INPUT_KINDS = ['normal', 'uniform', 'zero columns', 'rank one', 'tiny', 'triangular'];

describe('the reference QR (orthogonalFromQr)', () => {
  for (const n of [1, 2, 5, 16, 64, 128]) {
    it(`N = ${n}: Q is orthogonal and Qᵀ A is upper triangular with a positive diagonal (sign fix)`, () => {
      const rng = new Random(100 + n);
      const a = inputs('normal', n, 1, rng);
      const q = orthogonalFromQr(a.slice(), n, true);
      let worstOrtho = 0;
      let worstLower = 0;
      let scale = 0;
      for (const x of a) scale = Math.max(scale, Math.abs(x));
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          let qtq = 0;
          let r = 0; // (Qᵀ A)[i][j]
          for (let k = 0; k < n; k++) {
            qtq += q[k * n + i]! * q[k * n + j]!;
            r += q[k * n + i]! * a[k * n + j]!;
          }
          worstOrtho = Math.max(worstOrtho, Math.abs(qtq - (i === j ? 1 : 0)));
          if (i > j) worstLower = Math.max(worstLower, Math.abs(r));
          if (i === j) assert.ok(r > 0, `R[${i}][${i}] = ${r} is not positive`);
        }
      }
      assert.ok(worstOrtho < 1e-13, `||QᵀQ - I||∞ = ${worstOrtho}`);
      assert.ok(worstLower < 1e-12 * n * scale, `largest |(QᵀA)[i][j]|, i > j: ${worstLower}`);
    });
  }

  it('the backend default computes one matrix after another, as the function does', () => {
    const n = 7;
    const a = inputs('uniform', n, 3, new Random(5));
    const q = new Float64Array(a.length);
    referenceBackend.orthogonalFromQr({ count: 3, N: n, signFix: false, a: a.slice(), q });
    for (let m = 0; m < 3; m++) {
      const one = orthogonalFromQr(a.slice(m * n * n, (m + 1) * n * n), n, false);
      assert.ok(sameBits(q.subarray(m * n * n, (m + 1) * n * n), one), `matrix ${m}`);
    }
  });
});

describe('the native QR', { skip: nativeSkip }, () => {
  const nat = native!;
  const configurations = (info?.available ?? []).flatMap((isa) => [1, 2].map((threads) => ({ isa, threads })));
  const initial = info === null ? null : { isa: info.isa, threads: info.threads };
  let threshold: number | null = null; // the parallel threshold before the test set it to 0
  after(() => {
    if (initial !== null) {
      setNativeIsa(initial.isa);
      setNativeThreads(initial.threads);
    }
    if (threshold !== null) setNativeParallelThreshold(threshold);
  });

  it('equals the reference bit for bit: every size 1..128, every branch, every instruction set, 1 and 2 threads', () => {
    threshold = setNativeParallelThreshold(0); // so that 2 threads really split these small batches
    const cases: { label: string; n: number; count: number; signFix: boolean; a: Float64Array; q: Float64Array }[] = [];
    const rng = new Random(2026);
    for (let n = 1; n <= 128; n++) {
      const kind = INPUT_KINDS[n % INPUT_KINDS.length]!;
      const count = n <= 16 ? 5 : n <= 64 ? 2 : 1;
      const a = inputs(kind, n, count, rng);
      const q = new Float64Array(a.length);
      const signFix = n % 2 === 0;
      referenceBackend.orthogonalFromQr({ count, N: n, signFix, a: a.slice(), q });
      cases.push({ label: `N = ${n} (${kind}, ${count} matrices, signFix ${signFix})`, n, count, signFix, a, q });
    }
    for (const kind of INPUT_KINDS) {
      // every branch also on the sizes that leave vector tails on each instruction set
      for (const n of [3, 9, 17, 33]) {
        const a = inputs(kind, n, 3, rng);
        const q = new Float64Array(a.length);
        referenceBackend.orthogonalFromQr({ count: 3, N: n, signFix: true, a: a.slice(), q });
        cases.push({ label: `N = ${n} (${kind}, 3 matrices, signFix true)`, n, count: 3, signFix: true, a, q });
      }
    }
    for (const { isa, threads } of configurations) {
      setNativeIsa(isa);
      setNativeThreads(threads);
      for (const c of cases) {
        const a = c.a.slice();
        const q = new Float64Array(c.q.length).fill(NaN);
        nat.orthogonalFromQr({ count: c.count, N: c.n, signFix: c.signFix, a, q });
        assert.ok(sameBits(q, c.q), `${isa}, ${threads} threads, ${c.label}: ${firstDifference(q, c.q)}`);
      }
    }
  });

  it('leaves nothing outside count matrices, and does nothing for count 0 or N 0', () => {
    const n = 4;
    const a = inputs('normal', n, 3, new Random(9));
    const q = new Float64Array(a.length).fill(7);
    nat.orthogonalFromQr({ count: 2, N: n, signFix: true, a, q });
    assert.ok(q.subarray(2 * n * n).every((x) => x === 7));
    nat.orthogonalFromQr({ count: 0, N: n, signFix: true, a, q });
    nat.orthogonalFromQr({ count: 3, N: 0, signFix: true, a, q });
    assert.ok(q.subarray(2 * n * n).every((x) => x === 7));
  });

  it('rejects arrays that are too short or overlap', () => {
    const a = new Float64Array(8);
    assert.throws(() => nat.orthogonalFromQr({ count: 1, N: 3, signFix: true, a, q: new Float64Array(9) }), RangeError);
    assert.throws(() => nat.orthogonalFromQr({ count: 2, N: 2, signFix: true, a, q: a.subarray(0) }), /overlap/);
  });
});

describe('filters and models built on either backend', { skip: nativeSkip }, () => {
  const nat = native!;
  /** The native QR with host memory in any dtype (the native backend itself allocates float32 only). */
  const nativeQr = (dtype: DType): FilterMemory =>
    dtype === 'float32' ? nat : { allocate: allocateHost, orthogonalFromQr: (args) => nat.orthogonalFromQr(args) };

  const matrices = (filters: readonly FilterOperand[]) => filters.map((f) => filterMatrix(f));

  for (const dtype of ['float32', 'float64'] as const) {
    for (const kind of ['haar', 'qr-uniform'] as const) {
      it(`makeFilters(${kind}, ${dtype}) is the same on native, on the reference and one filter at a time`, () => {
        for (const [n, count] of [
          [1, 3],
          [5, 40],
          [64, 3],
        ] as const) {
          const want = matrices(makeFilters(kind, n, count, false, 11, dtype));
          const got = matrices(makeFilters(kind, n, count, false, 11, dtype, nativeQr(dtype)));
          const ref = matrices(makeFilters(kind, n, count, false, 11, dtype, referenceBackend));
          const filterSeed = Random.derive(11, 0x0f17e5).nextUint32();
          for (let l = 0; l < count; l++) {
            const one = filterMatrix(makeFilter(kind, n, Random.derive(filterSeed, l), dtype, nativeQr(dtype)));
            assert.ok(sameBits(got[l]!, want[l]!), `N = ${n}, filter ${l}: ${firstDifference(got[l]!, want[l]!)}`);
            assert.ok(sameBits(ref[l]!, want[l]!), `reference, N = ${n}, filter ${l}`);
            assert.ok(sameBits(one, want[l]!), `one at a time, N = ${n}, filter ${l}`);
          }
        }
      });
    }
  }

  it('draws across batch boundaries as it draws within one (N = 128: 128 matrices per batch)', () => {
    const n = 128;
    const count = 130;
    const filters = makeFilters('haar', n, count, false, 3, 'float32', nat);
    const filterSeed = Random.derive(3, 0x0f17e5).nextUint32();
    for (const l of [0, 127, 128, 129]) {
      const one = makeFilter('haar', n, Random.derive(filterSeed, l), 'float32', nat);
      assert.ok(sameBits(filterMatrix(filters[l]!), filterMatrix(one)), `filter ${l}`);
    }
  });

  const config = (overrides: Partial<ModelConfig>): Partial<ModelConfig> => ({
    inputDim: 6,
    outputs: 3,
    readout: 'last',
    filter: 'haar',
    sharedFilter: false,
    seed: 21,
    dtype: 'float32',
    ...overrides,
  });
  const cases: [string, Partial<ModelConfig>][] = [
    ['roaf-mlp, haar, depth 40, width 24', config({ model: 'roaf-mlp', depth: 40, width: 24 })],
    [
      'roaf-mlp, qr-uniform, depth 3, width 70',
      config({ model: 'roaf-mlp', depth: 3, width: 70, filter: 'qr-uniform' }),
    ],
    ['roaf-rnn, haar, 2 layers of 33', config({ model: 'roaf-rnn', hidden: 33, layers: 2 })],
  ];
  for (const [label, options] of cases) {
    it(`${label}: the native model equals the reference model, bit for bit`, () => {
      const built = (backend: Backend) => createModel(options, backend);
      const want = built(referenceBackend);
      const got = built(nat);
      assert.equal(got.filters.length, want.filters.length);
      assert.ok(want.filters.length > 0);
      want.filters.forEach((f, l) => {
        assert.ok(sameBits(filterMatrix(got.filters[l]!), filterMatrix(f)), `filter ${l}`);
      });
      assert.deepStrictEqual(got.params.values, want.params.values);
    });
  }
});
