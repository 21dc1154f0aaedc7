// The Jacobian product spectrum's step, productSpectrumPush, on every backend against the reference (the
// float64 TypeScript of src/diagnostics/product-spectrum.ts, which test/diagnostics-spectrum.test.ts checks
// against a direct SVD): the native kernel on each instruction set with one and two threads, and the wasm
// module. They agree to rounding, not bit for bit (the C reorders the loops and vectorises the sums), so the
// log singular values and the Lyapunov sums are compared to 1e-9 relative; exact zeros must stay exact. The
// chains cover the C's block edges (sizes around its 8-lane vectors and its 32-column QR blocks), products
// far beyond a double's range both ways, the rescaled-norm branch of the QR and an all-zero factor. Then
// `diagnose` of one model on the native and on the reference backend, and the kernel's argument checks.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { Backend } from '../src/backend/backend.js';
import { loadNativeBackend, nativeLoadError } from '../src/backend/native.js';
import { referenceBackend } from '../src/backend/reference.js';
import { loadWasmBackendSync, wasmLoadError } from '../src/backend/wasm-node.js';
import { loadTask } from '../src/data/tasks.js';
import { diagnose } from '../src/diagnostics/diagnose.js';
import { ProductSpectrum } from '../src/diagnostics/product-spectrum.js';
import type { ModelConfig } from '../src/models/config.js';
import { createModel } from '../src/models/factory.js';
import { Random } from '../src/util/random.js';
import { nativeSettingsForSuite, nativeVariants, useNativeVariant } from './native-settings.js';

const native = loadNativeBackend();
const nativeSkip = native === null ? `native backend not built: ${nativeLoadError() ?? 'unknown reason'}` : false;
const wasm = loadWasmBackendSync();
const wasmSkip = wasm === null ? `wasm backend not loaded: ${wasmLoadError() ?? 'unknown reason'}` : false;

const TOLERANCE = 1e-9;

interface Chain {
  label: string;
  n: number;
  factors: Float64Array[];
}

/** Gaussian factors of size n with entries of scale `scale`/√n plus `diagonal` on the diagonal. */
function gaussianFactors(rng: Random, n: number, count: number, scale: number, diagonal = 0): Float64Array[] {
  return Array.from({ length: count }, () => {
    const J = new Float64Array(n * n);
    for (let i = 0; i < J.length; i++) J[i] = (scale * rng.normal()) / Math.sqrt(n);
    for (let i = 0; i < n; i++) J[i * n + i]! += diagonal;
    return J;
  });
}

function chains(): Chain[] {
  const rng = new Random(19);
  const out: Chain[] = [];
  for (const n of [1, 2, 7, 8, 9, 31, 32, 33, 65, 100])
    out.push({ label: `n = ${n}, 12 Gaussian factors`, n, factors: gaussianFactors(rng, n, 12, 1, 0.5) });
  // 400 factors growing (shrinking) by about e^3 each: the product's σ span e^±1200, far beyond a double.
  out.push({ label: 'n = 40, exploding over 400 factors', n: 40, factors: gaussianFactors(rng, 40, 400, 20) });
  out.push({ label: 'n = 40, vanishing over 400 factors', n: 40, factors: gaussianFactors(rng, 40, 400, 0.05) });
  // Columns whose sum of squares under- and overflows (below 1e-290, above 1e290): the QR's rescaled norm.
  // (Not much further: at entries of 1e-160 the reference's 2 / vᵀv overflows to Infinity, and it returns NaN.)
  const tiny = gaussianFactors(rng, 17, 3, 1e-150);
  const huge = gaussianFactors(rng, 17, 3, 1e150);
  out.push({ label: 'n = 17, factors of 1e-150 and 1e150', n: 17, factors: [tiny[0]!, huge[0]!, tiny[1]!, huge[1]!] });
  // A zero factor in the middle: every singular value is exactly 0 from then on.
  const withZero = gaussianFactors(rng, 9, 4, 1, 0.5);
  withZero[2]!.fill(0);
  out.push({ label: 'n = 9, a zero factor', n: 9, factors: withZero });
  return out;
}

interface Spectrum {
  logSingularValues: Float64Array;
  lyapunovSums: Float64Array;
}

function spectrumOf(chain: Chain, kernel?: Backend['productSpectrumPush']): Spectrum {
  const product = new ProductSpectrum(chain.n, kernel);
  for (const J of chain.factors) product.push(J.slice());
  return { logSingularValues: product.logSingularValues(), lyapunovSums: product.lyapunovSums };
}

/** Fails unless each value is within TOLERANCE · max(1, |want|) of the reference (-Infinity: exactly). */
function assertClose(got: Float64Array, want: Float64Array, what: string): void {
  assert.equal(got.length, want.length);
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!,
      g = got[i]!;
    if (!Number.isFinite(w)) {
      assert.equal(g, w, `${what}[${i}]: ${g}, the reference ${w}`);
      continue;
    }
    const error = Math.abs(g - w) / Math.max(1, Math.abs(w));
    assert.ok(error <= TOLERANCE, `${what}[${i}]: ${g}, the reference ${w} (relative error ${error.toExponential(2)})`);
  }
}

function checkAgainstReference(kernel: Backend['productSpectrumPush']): void {
  for (const chain of chains()) {
    const want = spectrumOf(chain);
    const got = spectrumOf(chain, kernel);
    assertClose(got.logSingularValues, want.logSingularValues, `${chain.label}: log σ`);
    assertClose(got.lyapunovSums, want.lyapunovSums, `${chain.label}: Lyapunov sums`);
  }
}

describe('productSpectrumPush on the native backend equals the reference', { skip: nativeSkip }, () => {
  nativeSettingsForSuite();
  for (const variant of nativeVariants()) {
    it(variant.label, () => {
      useNativeVariant(variant);
      checkAgainstReference((args) => native!.productSpectrumPush(args));
    });
  }

  it('the chains reach what they are meant to (a check of the test itself)', () => {
    const spans = new Map(chains().map((c) => [c.label, spectrumOf(c).logSingularValues]));
    assert.ok(spans.get('n = 40, exploding over 400 factors')![0]! > 800); // e^800 overflows a double
    assert.ok(spans.get('n = 40, vanishing over 400 factors')![0]! < -800); // the largest: all underflow
    assert.ok(spans.get('n = 17, factors of 1e-150 and 1e150')!.every((x) => Number.isFinite(x)));
    assert.ok(spans.get('n = 9, a zero factor')!.every((x) => x === -Infinity));
  });

  it('diagnose gives the same spectrum on the native backend as on the reference', () => {
    const config: ModelConfig = {
      model: 'roaf-rnn',
      inputDim: 1,
      outputs: 10,
      readout: 'last',
      depth: 1,
      width: 48,
      hidden: 48,
      alpha: 1,
      beta: 0.3,
      filter: 'haar',
      sharedFilter: false,
      inputScale: 3,
      seed: 4,
      dtype: 'float32',
    };
    const data = loadTask('smnist', { seed: 0, trainLimit: 8, testLimit: 8 }).test;
    const options = { batch: 4, samples: 2 };
    const want = diagnose(createModel(config, referenceBackend), data, options).spectrum!;
    const got = diagnose(createModel(config, native!), data, options).spectrum!;
    assert.equal(got.factors, 784);
    assertClose(Float64Array.from(got.log10_singular_values), Float64Array.from(want.log10_singular_values), 'log10 σ');
  });

  it('checks its arguments: lengths and overlap', () => {
    const n = 4;
    const args = () => ({
      n,
      first: true,
      J: new Float64Array(n * n),
      reflectors: new Float64Array(n * n),
      tau: new Float64Array(n),
      lyapunovSums: new Float64Array(n),
      m: new Float64Array(n * n),
      s: new Float64Array(n),
      work: new Float64Array(3 * n * n + n),
    });
    for (const backend of [native!, referenceBackend]) {
      assert.throws(() => backend.productSpectrumPush({ ...args(), work: new Float64Array(3 * n * n) }), /work/);
      assert.throws(() => backend.productSpectrumPush({ ...args(), tau: new Float64Array(n - 1) }), /tau/);
      const shared = new Float64Array(3 * n * n + n);
      assert.throws(
        () => backend.productSpectrumPush({ ...args(), work: shared, m: shared.subarray(0, n * n) }),
        /must not overlap/,
      );
    }
  });
});

describe('productSpectrumPush on the wasm backend equals the reference', { skip: wasmSkip }, () => {
  it('simd128, 1 thread', () => {
    checkAgainstReference((args) => wasm!.productSpectrumPush(args));
  });
});
