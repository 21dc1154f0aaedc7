// The kernel table and the argument checks it drives, on every backend: a wrong call (array too short, row
// stride below the row length, wrong dtype or type, null where an array is required, sizes that are negative,
// fractional, above 2^32 - 1, whose product passes 2^31, 2^53 or 2^64, absurd behind a zero factor (B = 0 with
// N = 2^31 - 1, which would loop for ever), a filter of the wrong width or with a permutation
// entry out of range, ...) throws a TypeError or RangeError naming the kernel and the argument, and the
// backend keeps working afterwards. Also: the length expressions, the table's consistency, and that the
// committed N-API glue (native/src/addon_kernels.inc) and WebAssembly exports (native/wasm/wasm_kernels.inc) are
// what the generator writes from the table.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

import type { Backend, FilterOperand } from '../src/backend/backend.js';
import { BackendBase } from '../src/backend/backend-base.js';
import { compileLength } from '../src/backend/kernel-checks.js';
import { KERNEL_NAMES, KERNEL_TABLE, kernelTableId, type KernelSpec } from '../src/backend/kernel-table.js';
import { availableBackends } from './helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A bad call, the error class it must throw and what its message must say. */
interface BadCall {
  what: string;
  call(b: Backend): unknown;
  error: typeof TypeError | typeof RangeError;
  message: RegExp;
}

const f32 = (n: number): Float32Array => new Float32Array(n);
const identity = (n: number): FilterOperand => ({ kind: 'identity', n });

/** gemm arguments for C (2, 2) = A (2, 3) B (3, 2), all packed; `change` overrides fields. */
function gemmArgs(change: Record<string, unknown> = {}): Parameters<Backend['gemm']>[0] {
  return {
    transA: false,
    transB: false,
    M: 2,
    N: 2,
    K: 3,
    alpha: 1,
    A: f32(6),
    lda: 3,
    B: f32(6),
    ldb: 2,
    beta: 0,
    C: f32(4),
    ldc: 2,
    ...change,
  };
}

const BAD_CALLS: BadCall[] = [
  // lengths and strides
  {
    what: 'an output too short',
    call: (b) => b.gemm(gemmArgs({ C: f32(3) })),
    error: RangeError,
    message: /^gemm: C has 3 elements, needs at least span\(M, N, ldc\) = 4 \(M = 2, N = 2, ldc = 2\)$/,
  },
  {
    what: 'an input too short, transposed',
    call: (b) => b.gemm(gemmArgs({ transA: true, lda: 2, A: f32(5) })),
    error: RangeError,
    message: /^gemm: A has 5 elements, needs at least span\(K, M, lda\) = 6 .*as transA = true$/,
  },
  {
    what: 'a row stride below the row length',
    call: (b) => b.gemm(gemmArgs({ lda: 2 })),
    error: RangeError,
    message: /^gemm: A: row stride lda = 2 is smaller than its row length 3$/,
  },
  {
    what: 'a short bias',
    call: (b) => b.addRowVector(3, 4, f32(12), f32(3)),
    error: RangeError,
    message: /^addRowVector: bias has 3 elements, needs at least n = 4$/,
  },
  {
    what: 'a short saved state',
    call: (b) =>
      b.lstmForward({
        T: 2,
        B: 1,
        D: 1,
        N: 1,
        xs: f32(2),
        Wx: f32(4),
        Wh: f32(4),
        b: f32(4),
        hs: f32(3),
        cs: f32(2),
        gates: f32(8),
      }),
    error: RangeError,
    message: /^lstmForward: cs has 2 elements, needs at least \(T\+1\)\*B\*N = 3/,
  },
  // sizes whose products pass 2^31, 2^53 and 2^64 (a signed 32- or 64-bit product would wrap to a small number)
  {
    what: 'sizes whose product is 2^32 (0 in 32-bit integers)',
    call: (b) =>
      b.roafCellForward({
        T: 2 ** 16,
        B: 2 ** 16,
        D: 1,
        N: 1,
        alpha: 1,
        beta: 0.1,
        filter: identity(1),
        xs: f32(1),
        W: f32(1),
        U: f32(1),
        b: f32(1),
        hs: f32(64),
        as: f32(64),
      }),
    error: RangeError,
    message:
      /^roafCellForward: xs has 1 elements, needs at least T\*B\*D = 4294967296 \(T = 65536, B = 65536, D = 1\)$/,
  },
  {
    what: 'a filter whose matrix needs 2^60 elements',
    call: (b) =>
      b.applyFilter({
        filter: { kind: 'dense', n: 2 ** 30, matrix: f32(1) },
        transpose: false,
        B: 0,
        alpha: 1,
        x: f32(0),
        betaY: 0,
        y: f32(0),
      }),
    error: RangeError,
    message: /^applyFilter: filter\.matrix has 1 elements, needs at least 1152921504606847000$/,
  },
  {
    what: 'sizes whose product is 2^64 (0 in 64-bit integers) behind T = B = 0',
    call: (b) =>
      b.lstmForward({
        T: 0,
        B: 0,
        D: 2 ** 31,
        N: 2 ** 31,
        xs: f32(1),
        Wx: f32(1),
        Wh: f32(1),
        b: f32(1),
        hs: f32(1),
        cs: f32(1),
        gates: f32(1),
      }),
    error: RangeError,
    message: /^lstmForward: xs is empty as T\*B\*D = 0 .*, but its other sizes imply 2147483648 iterations/,
  },
  {
    what: 'a row stride whose span is 2^63 + 1',
    call: (b) =>
      b.gemm(gemmArgs({ M: 2 ** 31 + 1, N: 1, K: 1, lda: 2 ** 32, ldb: 1, ldc: 1, A: f32(1), B: f32(1), C: f32(1) })),
    error: RangeError,
    message: /^gemm: lda must be an integer in \[0, 2\^32 - 1\], got 4294967296$/,
  },
  {
    what: 'a row stride whose span passes 2^62',
    call: (b) =>
      b.gemm(gemmArgs({ M: 2 ** 31, N: 1, K: 1, lda: 2 ** 32 - 1, ldb: 1, ldc: 1, A: f32(1), B: f32(1), C: f32(1) })),
    error: RangeError,
    message: /^gemm: A has 1 elements, needs at least span\(M, K, lda\) = 9223372030412325000 /,
  },
  // absurd sizes hidden behind a zero factor: nothing to read or write, but a loop of 2^40 or more iterations
  {
    what: 'B = 0 with N = 2^31 - 1 and an identity filter',
    call: (b) =>
      b.roafLayerForward({
        B: 0,
        N: 2 ** 31 - 1,
        alpha: 1,
        beta: 0.1,
        filter: identity(2 ** 31 - 1),
        x: f32(0),
        W: f32(0),
        b: f32(0),
        a: f32(0),
        y: f32(0),
      }),
    error: RangeError,
    message:
      /^roafLayerForward: x is empty as B\*N = 0 \(B = 0, N = 2147483647\), but its other sizes imply 2147483647 iterations/,
  },
  {
    what: 'B = 0 with T = 2^32 - 1 steps',
    call: (b) =>
      b.lstmForward({
        T: 2 ** 32 - 1,
        B: 0,
        D: 1,
        N: 1,
        xs: f32(0),
        Wx: f32(4),
        Wh: f32(4),
        b: f32(4),
        hs: f32(0),
        cs: f32(0),
        gates: f32(0),
      }),
    error: RangeError,
    message: /^lstmForward: xs is empty as T\*B\*D = 0 .*, but its other sizes imply 4294967295 iterations/,
  },
  {
    what: 'a size of 2^32',
    call: (b) => b.tanh(2 ** 32, f32(1), f32(1)),
    error: RangeError,
    message: /^tanh: n must be an integer in \[0, 2\^32 - 1\], got 4294967296$/,
  },
  // sizes that are not sizes
  {
    what: 'a negative size',
    call: (b) => b.tanh(-1, f32(1), f32(1)),
    error: RangeError,
    message: /^tanh: n must be an integer in \[0, 2\^32 - 1\], got -1$/,
  },
  {
    what: 'a fractional size',
    call: (b) => b.scale(2.5, f32(3), 2),
    error: RangeError,
    message: /^scale: n must be an integer in \[0, 2\^32 - 1\], got 2\.5$/,
  },
  {
    what: 'a size of 2^53',
    call: (b) => b.sumSquares(2 ** 53, f32(1)),
    error: RangeError,
    message: /^sumSquares: n must be an integer in \[0, 2\^32 - 1\], got 9007199254740992$/,
  },
  {
    what: 'a NaN size',
    call: (b) => b.gemm(gemmArgs({ K: Number.NaN })),
    error: RangeError,
    message: /^gemm: K must be an integer in \[0, 2\^32 - 1\], got NaN$/,
  },
  {
    what: 'an infinite size',
    call: (b) => b.sumRows(Infinity, 1, f32(1), f32(1)),
    error: RangeError,
    message: /^sumRows: rows must be .*, got Infinity$/,
  },
  {
    what: 'a size given as a string',
    call: (b) => b.gemm(gemmArgs({ M: '2' })),
    error: TypeError,
    message: /^gemm: M must be an integer in \[0, 2\^32 - 1\], got 2$/,
  },
  {
    what: 'a missing size',
    call: (b) => b.gemm(gemmArgs({ ldc: undefined })),
    error: TypeError,
    message: /^gemm: ldc must be .*, got undefined$/,
  },
  // types, dtypes and null
  {
    what: 'an Int32Array where floats are needed',
    call: (b) => b.tanh(2, new Int32Array(2) as never, f32(2)),
    error: TypeError,
    message: /^tanh: x must be a Float32Array or Float64Array, got Int32Array$/,
  },
  {
    what: 'a plain array',
    call: (b) => b.axpy(1, 1, [1] as never, f32(1)),
    error: TypeError,
    message: /^axpy: x must be a Float32Array or Float64Array, got an array$/,
  },
  {
    what: 'two dtypes in one call',
    call: (b) => b.axpy(1, 1, f32(1), new Float64Array(1)),
    error: TypeError,
    message: /^axpy: y is a Float64Array, but x is a Float32Array \(one dtype per call\)$/,
  },
  {
    what: 'null where an array is required',
    call: (b) =>
      b.roafLayerForward({
        B: 1,
        N: 1,
        alpha: 1,
        beta: 1,
        filter: identity(1),
        x: f32(1),
        W: null as never,
        b: f32(1),
        a: f32(1),
        y: f32(1),
      }),
    error: TypeError,
    message: /^roafLayerForward: W must be a Float32Array or Float64Array, got null$/,
  },
  {
    what: 'undefined for a nullable output',
    call: (b) => b.squaredError({ B: 1, K: 1, pred: f32(1), target: f32(1), gradScale: 1, grad: undefined as never }),
    error: TypeError,
    message: /^squaredError: grad must be a Float32Array or Float64Array, got undefined$/,
  },
  {
    what: 'Float32Array labels',
    call: (b) =>
      b.softmaxCrossEntropy({
        B: 1,
        K: 2,
        logits: f32(2),
        labels: f32(1) as never,
        gradScale: 1,
        grad: null,
        correct: null,
      }),
    error: TypeError,
    message: /^softmaxCrossEntropy: labels must be an? Int32Array, got Float32Array$/,
  },
  {
    what: 'a Float32Array where float64 squares go',
    call: (b) =>
      b.roafMlpBackward({
        L: 0,
        B: 1,
        N: 1,
        alpha: 1,
        beta: 1,
        filters: [],
        Ws: f32(0),
        xs: f32(1),
        as: f32(0),
        gy: f32(1),
        gWs: f32(0),
        gbs: f32(0),
        gradSquares: f32(1) as never,
      }),
    error: TypeError,
    message: /^roafMlpBackward: gradSquares must be a Float64Array or null, got Float32Array$/,
  },
  {
    what: 'a flag that is not a boolean',
    call: (b) => b.gemm(gemmArgs({ transA: 1 })),
    error: TypeError,
    message: /^gemm: transA must be a boolean, got number$/,
  },
  {
    what: 'a scalar that is not a number',
    call: (b) => b.scale(1, f32(1), '2' as never),
    error: TypeError,
    message: /^scale: s must be a number, got string$/,
  },
  {
    what: 'positional arguments to a kernel that takes an object',
    call: (b) => (b.gemm as (...args: unknown[]) => void)(false, false, 1, 1, 1),
    error: TypeError,
    message: /^gemm: expects one argument object, got boolean$/,
  },
  // filters
  {
    what: 'a filter of the wrong width',
    call: (b) =>
      b.roafLayerForward({
        B: 1,
        N: 4,
        alpha: 1,
        beta: 1,
        filter: identity(5),
        x: f32(4),
        W: f32(16),
        b: f32(4),
        a: f32(4),
        y: f32(4),
      }),
    error: RangeError,
    message: /^roafLayerForward: filter is 5 wide, but N = 4$/,
  },
  {
    what: 'a filter list of the wrong length',
    call: (b) =>
      b.roafMlpForward({
        L: 2,
        B: 1,
        N: 1,
        alpha: 1,
        beta: 1,
        filters: [identity(1)],
        Ws: f32(2),
        bs: f32(2),
        xs: f32(3),
        as: f32(2),
      }),
    error: RangeError,
    message: /^roafMlpForward: filters has 1 filters, needs L = 2$/,
  },
  {
    what: 'one filter of a list of the wrong width',
    call: (b) =>
      b.roafMlpForward({
        L: 2,
        B: 1,
        N: 1,
        alpha: 1,
        beta: 1,
        filters: [identity(1), identity(2)],
        Ws: f32(2),
        bs: f32(2),
        xs: f32(3),
        as: f32(2),
      }),
    error: RangeError,
    message: /^roafMlpForward: filters\[1\] is 2 wide, but N = 1$/,
  },
  {
    what: 'a permutation entry out of range',
    call: (b) =>
      b.applyFilter({
        filter: { kind: 'permutation', n: 3, perm: Int32Array.of(0, 1, 3), signs: f32(3) },
        transpose: false,
        B: 1,
        alpha: 1,
        x: f32(3),
        betaY: 0,
        y: f32(3),
      }),
    error: RangeError,
    message: /^applyFilter: filter\.perm\[2\] = 3 is outside \[0, 3\)$/,
  },
  {
    what: 'a dense filter too small',
    call: (b) =>
      b.applyFilter({
        filter: { kind: 'dense', n: 3, matrix: f32(8) },
        transpose: false,
        B: 1,
        alpha: 1,
        x: f32(3),
        betaY: 0,
        y: f32(3),
      }),
    error: RangeError,
    message: /^applyFilter: filter\.matrix has 8 elements, needs at least 9$/,
  },
  {
    what: 'an unknown filter kind',
    call: (b) =>
      b.applyFilter({
        filter: { kind: 'householder', n: 1 } as never,
        transpose: false,
        B: 1,
        alpha: 1,
        x: f32(1),
        betaY: 0,
        y: f32(1),
      }),
    error: TypeError,
    message: /^applyFilter: filter\.kind must be 'dense', 'permutation' or 'identity', got householder$/,
  },
  {
    what: 'overlapping input and output',
    call: (b) => {
      const x = f32(4);
      b.applyFilter({
        filter: identity(2),
        transpose: false,
        B: 1,
        alpha: 1,
        x: x.subarray(0, 2),
        betaY: 0,
        y: x.subarray(1, 3),
      });
    },
    error: RangeError,
    message: /^applyFilter: x and y must not overlap$/,
  },
  // values
  {
    what: 'a label out of range',
    call: (b) =>
      b.softmaxCrossEntropy({
        B: 2,
        K: 3,
        logits: f32(6),
        labels: Int32Array.of(0, -1),
        gradScale: 1,
        grad: null,
        correct: null,
      }),
    error: RangeError,
    message: /^softmaxCrossEntropy: labels\[1\] = -1 is outside \[0, K = 3\)$/,
  },
  {
    what: 'no classes',
    call: (b) =>
      b.softmaxCrossEntropy({
        B: 1,
        K: 0,
        logits: f32(0),
        labels: Int32Array.of(0),
        gradScale: 1,
        grad: null,
        correct: null,
      }),
    error: RangeError,
    message: /^softmaxCrossEntropy: K must be at least 1 when B > 0, got 0$/,
  },
  // allocation
  {
    what: 'a negative allocation',
    call: (b) => b.allocate('float32', -1),
    error: RangeError,
    message: /^allocate: length must be an integer in \[0, 2\^32 - 1\], got -1$/,
  },
  {
    what: 'an unknown dtype',
    call: (b) => b.allocate('float16' as never, 1),
    error: TypeError,
    message: /^allocate: dtype must be 'float32' or 'float64', got float16$/,
  },
];

describe('argument checks on every backend', async () => {
  for (const { name, backend } of await availableBackends()) {
    describe(name, () => {
      for (const bad of BAD_CALLS) {
        it(`rejects ${bad.what}`, () => {
          assert.throws(
            () => bad.call(backend),
            (error: Error) => {
              assert.ok(error instanceof bad.error, `${error.constructor.name}: ${error.message}`);
              assert.match(error.message, bad.message);
              return true;
            },
          );
        });
      }

      if (!backend.supports('float64')) {
        it('rejects float64 arrays and allocations, which it does not support', () => {
          assert.throws(
            () => backend.tanh(1, new Float64Array(1), new Float64Array(1)),
            /^TypeError: tanh: x is a Float64Array, but the .* backend does not support float64$/,
          );
          assert.throws(
            () => backend.allocate('float64', 1),
            /^TypeError: allocate: the .* backend does not support float64$/,
          );
        });
      }

      it('still computes after every rejected call, and accepts empty sizes', () => {
        for (const bad of BAD_CALLS) assert.throws(() => bad.call(backend));
        const C = f32(4);
        backend.gemm(gemmArgs({ A: Float32Array.of(1, 2, 3, 4, 5, 6), B: Float32Array.of(1, 0, 0, 1, 1, 1), C }));
        assert.deepEqual(Array.from(C), [4, 5, 10, 11]);
        backend.gemm(gemmArgs({ M: 0, N: 0, K: 0, A: f32(0), B: f32(0), C: f32(0), lda: 0, ldb: 0, ldc: 0 }));
        backend.roafCellForward({
          T: 0,
          B: 3,
          D: 2,
          N: 1,
          alpha: 1,
          beta: 1,
          filter: identity(1),
          xs: f32(0),
          W: f32(1),
          U: f32(2),
          b: f32(1),
          hs: f32(3),
          as: f32(0),
        });
        assert.equal(backend.allocate('float32', 5).length, 5);
      });
    });
  }
});

describe('length expressions', () => {
  const scope = (sizes: Record<string, number>, flags: Record<string, boolean> = {}) => ({
    sizes: new Map(Object.entries(sizes)),
    flags: new Map(Object.entries(flags)),
  });

  it('evaluate sums, products, parentheses and literals', () => {
    assert.equal(compileLength('(T+1)*B*N').evaluate(scope({ T: 2, B: 3, N: 4 })), 36);
    assert.equal(compileLength('4*N*D + 3').evaluate(scope({ N: 2, D: 5 })), 43);
  });

  it('span is 0 for an empty matrix whatever the stride, else (rows - 1)·ld + cols, and checks ld >= cols', () => {
    const span = compileLength('span(M, K, lda)');
    assert.equal(span.evaluate(scope({ M: 0, K: 5, lda: 1 })), 0);
    assert.equal(span.evaluate(scope({ M: 3, K: 5, lda: 7 })), 19);
    assert.throws(
      () => span.evaluate(scope({ M: 3, K: 5, lda: 4 })),
      /row stride lda = 4 is smaller than its row length 5/,
    );
  });

  it('a flag chooses a branch, and the explanation says which', () => {
    const e = compileLength('transA ? span(K, M, lda) : span(M, K, lda)');
    const s = scope({ M: 2, K: 3, lda: 3 }, { transA: false });
    assert.equal(e.evaluate(s), 6);
    assert.equal(e.explain(s, 6), 'span(M, K, lda) = 6 (M = 2, K = 3, lda = 3), as transA = false');
  });

  it('stays far beyond any array length where the exact product passes 2^53, instead of wrapping', () => {
    const huge = compileLength('T*B*N*D').evaluate(scope({ T: 2 ** 40, B: 2 ** 40, N: 2 ** 40, D: 2 ** 40 }));
    assert.equal(huge, 2 ** 160);
    assert.ok(compileLength('(T+1)*B').evaluate(scope({ T: 2 ** 53 - 1, B: 3 })) >= 3 * 2 ** 53);
  });

  it('rejects text outside the language', () => {
    assert.throws(() => compileLength('N - 1'), SyntaxError);
    assert.throws(() => compileLength('span(M, K)'), SyntaxError);
    assert.throws(() => compileLength('(N'), SyntaxError);
  });
});

describe('the kernel table', () => {
  it('declares every length over the sizes of its own kernel', () => {
    for (const name of KERNEL_NAMES) {
      const spec = KERNEL_TABLE[name];
      const sizes = new Map<string, number>();
      for (const arg of spec.args) {
        if (arg.kind === 'size') sizes.set(arg.name, 2);
        if (arg.kind === 'filter' || arg.kind === 'filters') sizes.set(arg.width, 2);
      }
      const flags = new Map(spec.args.filter((a) => a.kind === 'bool').map((a) => [a.name, true] as [string, boolean]));
      for (const arg of spec.args) {
        if (arg.kind === 'filters')
          assert.ok(sizes.has(arg.count), `${name}.${arg.name}: count ${arg.count} is not a size`);
        if ('length' in arg) {
          for (const flag of [true, false]) {
            for (const key of flags.keys()) flags.set(key, flag);
            const n = compileLength(arg.length).evaluate({ sizes, flags });
            assert.ok(Number.isSafeInteger(n) && n >= 0, `${name}.${arg.name}: ${arg.length} = ${n}`);
          }
        }
      }
      assert.equal(new Set(spec.args.map((a) => a.name)).size, spec.args.length, `${name}: an argument name repeats`);
    }
  });

  it('has every core kernel in C (only a fused kernel, which has a default, may wait for its C version)', () => {
    for (const name of KERNEL_NAMES) {
      const spec: KernelSpec = KERNEL_TABLE[name];
      if (spec.native === false)
        assert.ok(name in BackendBase.prototype, `${name} is a core kernel marked native: false`);
    }
  });

  it('is what the committed N-API glue was generated from (rerun scripts/generate-kernel-glue.mjs if not)', async () => {
    const generator = (await import(pathToFileURL(join(root, 'scripts', 'generate-kernel-glue.mjs')).href)) as {
      renderKernelGlue(table: unknown, id: string): string;
    };
    const committed = readFileSync(join(root, 'native', 'src', 'addon_kernels.inc'), 'utf8');
    assert.equal(committed, generator.renderKernelGlue(KERNEL_TABLE, kernelTableId()));
  });

  it('is what the committed WebAssembly exports were generated from (rerun scripts/generate-kernel-glue.mjs if not)', async () => {
    const generator = (await import(pathToFileURL(join(root, 'scripts', 'generate-kernel-glue.mjs')).href)) as {
      renderWasmGlue(table: unknown, id: string): string;
    };
    const committed = readFileSync(join(root, 'native', 'wasm', 'wasm_kernels.inc'), 'utf8');
    assert.equal(committed, generator.renderWasmGlue(KERNEL_TABLE, kernelTableId()));
  });
});
