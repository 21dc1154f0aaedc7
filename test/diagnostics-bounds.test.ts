// The theory bounds (docs/math.md): every singular value of the input-output Jacobian of random ROAF models
// (across alpha, beta, depth, width and filter kinds) lies in [Π max(0, alpha - beta ||W_l||₂),
// Π (alpha + beta ||W_l||₂)]; a deliberately broken bound (spectral norms underestimated by 10 %) is
// caught; the spectral norm itself matches the largest singular value of a full SVD.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { referenceBackend as backend } from '../src/backend/reference.js';
import {
  boundsFromNorms,
  checkSpectrum,
  lanczosSpectralNorm,
  theoryBounds,
  type SpectralNormFn,
} from '../src/diagnostics/bounds.js';
import { jacobianChain } from '../src/diagnostics/jacobians.js';
import { logSingularValuesScaledColumns, spectralNorm } from '../src/diagnostics/linalg.js';
import { ProductSpectrum } from '../src/diagnostics/product-spectrum.js';
import type { ModelConfig } from '../src/models/config.js';
import { createModel } from '../src/models/factory.js';
import type { Model } from '../src/models/model.js';
import { FILTER_KINDS } from '../src/nn/filter.js';
import { Random } from '../src/util/random.js';

function config(overrides: Partial<ModelConfig>): ModelConfig {
  return {
    model: 'roaf-mlp',
    inputDim: 6,
    outputs: 2,
    readout: 'last',
    depth: 4,
    width: 8,
    hidden: 8,
    alpha: 1,
    beta: 0.3,
    filter: 'haar',
    sharedFilter: false,
    inputScale: 1,
    seed: 1,
    dtype: 'float64',
    ...overrides,
  };
}

function spectrumOf(model: Model, input: Float64Array, T = 1): Float64Array {
  const chain = jacobianChain(model, input, T);
  const product = new ProductSpectrum(chain.size);
  chain.run((_, J) => product.push(J));
  return product.logSingularValues();
}

interface Case {
  label: string;
  model: Model;
  input: Float64Array;
  T: number;
}

/** A sweep of random models over alpha, beta, depth, width and every filter kind. */
function randomCases(): Case[] {
  const cases: Case[] = [];
  const rng = new Random(2024);
  const coefficients = [
    [1, 0.05],
    [1, 0.5],
    [0.9, 0.1],
    [0.5, 0.5],
    [0.99, 1.5],
    [0, 1],
  ] as const;
  let seed = 0;
  for (const filter of FILTER_KINDS) {
    for (const [alpha, beta] of coefficients) {
      for (const depth of [1, 3, 17]) {
        seed += 1;
        const width = [8, 12, 16][seed % 3]!;
        const inputScale = [0.01, 1, 5][seed % 3]!; // small inputs keep D near I, where the bounds are tightest
        const model = createModel(
          config({ depth, width, alpha, beta, filter, seed, sharedFilter: seed % 2 === 0 }),
          backend,
        );
        const input = Float64Array.from({ length: 6 }, () => rng.normal() * inputScale);
        cases.push({ label: `${filter} alpha ${alpha} beta ${beta} L=${depth} N=${width}`, model, input, T: 1 });
      }
    }
  }
  for (const [kind, alpha, beta] of [
    ['roaf-rnn', 1, 0.1],
    ['roaf-rnn', 0.7, 0.6],
    ['rnn', 0, 1],
  ] as const) {
    seed += 1;
    const model = createModel(config({ model: kind, hidden: 10, inputDim: 2, alpha, beta, seed }), backend);
    const T = 15;
    const input = Float64Array.from({ length: T * 2 }, () => rng.normal());
    cases.push({ label: `${kind} alpha ${alpha} beta ${beta} T=${T}`, model, input, T });
  }
  return cases;
}

/** The cases whose spectrum falls outside the bounds computed with `norm`. */
function outsideCases(cases: Case[], norm: SpectralNormFn): string[] {
  return cases.flatMap((c) => {
    const bounds = theoryBounds(c.model, c.T, norm);
    assert.ok(bounds !== null, `${c.label}: bounds apply to ROAF models`);
    const check = checkSpectrum(spectrumOf(c.model, c.input, c.T), bounds);
    return check.inside
      ? []
      : [`${c.label} (margins ${check.lowerMargin.toExponential(2)}, ${check.upperMargin.toExponential(2)})`];
  });
}

describe('theory bounds alpha ± beta ||W_l||₂ contain the Jacobian spectrum', () => {
  const cases = randomCases();

  it(`holds for ${cases.length} random models across alpha, beta, depth, width and every filter kind`, () => {
    assert.deepEqual(outsideCases(cases, lanczosSpectralNorm), []);
  });

  it('is violated, and detected, when the spectral norms are underestimated by 10 %', () => {
    const broken: SpectralNormFn = (W, n) => 0.9 * lanczosSpectralNorm(W, n);
    const outside = outsideCases(cases, broken);
    assert.ok(outside.length > 0, 'a bound computed from wrong spectral norms went unnoticed');
    // A single tanh layer with tiny inputs has D ≈ I: σ_max(J) ≈ ||W||₂ (alpha = 0) is then near the bound.
    assert.ok(
      outside.some((label) => label.includes('alpha 0 beta 1 L=1')),
      `expected the one-layer plain case among ${outside.join('; ')}`,
    );
  });

  it('is violated, and detected, when the lower bound uses spectral norms 4x too small', () => {
    const wrongLower = (c: Case): boolean => {
      const right = theoryBounds(c.model, c.T);
      if (right === null) return false;
      // max(0, alpha - beta ||W||/4) per factor, the upper bound left right: the lower product rises.
      let logLower = 0;
      for (const s of right.spectralNorms) logLower += c.T * Math.log(Math.max(0, right.alpha - right.beta * 0.25 * s));
      const bounds = { ...right, logLowerProduct: logLower };
      return !checkSpectrum(spectrumOf(c.model, c.input, c.T), bounds).inside;
    };
    assert.ok(cases.some(wrongLower), 'a too-high lower bound went unnoticed');
  });

  it('LSTM and GRU have no such bound', () => {
    for (const kind of ['lstm', 'gru'] as const) {
      assert.equal(theoryBounds(createModel(config({ model: kind, hidden: 4, inputDim: 2 }), backend), 5), null);
    }
  });
});

describe('checkSpectrum', () => {
  const bounds = boundsFromNorms(1, 0.5, Float64Array.of(1, 1), 1); // per layer [0.5, 1.5], product [0.25, 2.25]
  it('accepts a spectrum inside and rejects one outside on either side', () => {
    assert.ok(Math.abs(bounds.logLowerProduct - Math.log(0.25)) < 1e-15);
    assert.ok(Math.abs(bounds.logUpperProduct - Math.log(2.25)) < 1e-15);
    assert.equal(checkSpectrum([Math.log(2.2), Math.log(0.3)], bounds).inside, true);
    assert.equal(checkSpectrum([Math.log(2.3), Math.log(0.3)], bounds).inside, false);
    assert.equal(checkSpectrum([Math.log(2.2), Math.log(0.24)], bounds).inside, false);
    assert.equal(checkSpectrum([Math.log(1), -Infinity], bounds).inside, false);
  });
  it('treats a zero lower bound as no constraint', () => {
    const trivial = boundsFromNorms(0, 1, Float64Array.of(2), 3);
    assert.equal(trivial.logLowerProduct, -Infinity);
    assert.equal(checkSpectrum([Math.log(7), -Infinity], trivial).inside, true);
    assert.equal(checkSpectrum([Math.log(9), -Infinity], trivial).inside, false);
  });
});

describe('spectral norm (Lanczos on WᵀW)', () => {
  it('equals the largest singular value of a full SVD for square and rectangular matrices', () => {
    const rng = new Random(5);
    for (const [rows, cols] of [
      [8, 8],
      [64, 64],
      [30, 50],
      [50, 30],
      [1, 5],
    ] as const) {
      const W = Float64Array.from({ length: rows * cols }, () => rng.normal() / Math.sqrt(cols));
      const estimate = spectralNorm(W, rows, cols);
      // σ_max of W = σ_max of Wᵀ: its rows are the columns of Wᵀ for the Jacobi SVD.
      const exact = Math.exp(
        logSingularValuesScaledColumns(Float64Array.from(W), new Float64Array(rows), rows, cols)[0]!,
      );
      assert.ok(estimate.converged, `${rows}x${cols} did not converge`);
      assert.ok(Math.abs(estimate.norm - exact) <= 1e-9 * exact, `${rows}x${cols}: ${estimate.norm} vs ${exact}`);
    }
  });
  it('is exact for a diagonal matrix with a repeated top value, and 0 for a zero matrix', () => {
    const n = 6;
    const W = new Float64Array(n * n);
    [3, 3, 1, 0.5, 2, 0].forEach((d, i) => {
      W[i * n + i] = d;
    });
    assert.ok(Math.abs(spectralNorm(W, n, n).norm - 3) < 1e-12);
    assert.equal(spectralNorm(new Float64Array(n * n), n, n).norm, 0);
  });
});
