// The theory bounds (docs/math.md) and the check that a measured spectrum lies inside them.
//
// A ROAF layer's Jacobian is J_l = alpha O_l + beta D_l W_l with O_l orthogonal and 0 <= D_l <= I, so
//     max(0, alpha - beta ||W_l||₂)  <=  σ_min(J_l)  <=  σ_max(J_l)  <=  alpha + beta ||W_l||₂,
// and since σ_min(AB) >= σ_min(A) σ_min(B) and σ_max(AB) <= σ_max(A) σ_max(B), every singular value of
// the whole input-output Jacobian lies between the products of these (kept as sums of logs). The same
// holds for the ROAF/Elman cell with one W for all T steps. Which W's a model's bound is made of, or why
// it has none (LSTM, GRU, stacked recurrent layers), its kind declares (models/kinds/).

import { isNotApplicable, type NotApplicable } from '../models/kind.js';
import { modelKindOf } from '../models/kinds.js';
import type { Model } from '../models/model.js';
import { spectralNorm } from './linalg.js';

/** ||W||₂ of an (n, n) matrix; injectable so that tests can check a broken one is caught. */
export type SpectralNormFn = (W: ArrayLike<number>, n: number) => number;

/** ||W||₂ by Lanczos on WᵀW (linalg.ts), to ~1e-10 relative. */
export const lanczosSpectralNorm: SpectralNormFn = (W, n) => spectralNorm(W, n, n).norm;

export interface TheoryBounds {
  /** Number of factors (layers or steps). */
  count: number;
  alpha: number;
  beta: number;
  /** ||W_l||₂ per layer (one entry for a recurrent cell, whose W is shared by all steps). */
  spectralNorms: Float64Array;
  /** Σ_l ln max(0, alpha - beta ||W_l||₂): -Infinity when some layer's lower bound is 0. */
  logLowerProduct: number;
  /** Σ_l ln (alpha + beta ||W_l||₂). */
  logUpperProduct: number;
}

/** The bounds for a model run for T steps, or why there are none (the kind's reason). */
export function theoryBoundsOrReason(
  model: Model,
  T: number,
  norm: SpectralNormFn = lanczosSpectralNorm,
): TheoryBounds | NotApplicable {
  const factors = modelKindOf(model).boundFactors(model, T);
  if (isNotApplicable(factors)) return factors;
  const norms = Float64Array.from(factors.weights, (W) => norm(W, factors.n));
  return boundsFromNorms(factors.alpha, factors.beta, norms, factors.repeat);
}

/** The bounds for a ROAF model (roaf-mlp, mlp, resmlp, single-layer roaf-rnn and rnn) run for T steps; null for the others. */
export function theoryBounds(model: Model, T: number, norm: SpectralNormFn = lanczosSpectralNorm): TheoryBounds | null {
  const bounds = theoryBoundsOrReason(model, T, norm);
  return isNotApplicable(bounds) ? null : bounds;
}

/** Bounds from per-factor spectral norms, each used `repeat` times (T for a recurrent cell). */
export function boundsFromNorms(alpha: number, beta: number, norms: Float64Array, repeat: number): TheoryBounds {
  let logLower = 0,
    logUpper = 0;
  for (const s of norms) {
    logLower += repeat * Math.log(Math.max(0, alpha - beta * s));
    logUpper += repeat * Math.log(alpha + beta * s);
  }
  return {
    count: norms.length * repeat,
    alpha,
    beta,
    spectralNorms: norms,
    logLowerProduct: logLower,
    logUpperProduct: logUpper,
  };
}

export interface BoundCheck {
  /** Whether every singular value lies in [lower product, upper product] (within `tolerance`). */
  inside: boolean;
  /** ln σ_min - ln(lower product): >= -tolerance when inside (+Infinity for a zero lower bound). */
  lowerMargin: number;
  /** ln(upper product) - ln σ_max: >= -tolerance when inside. */
  upperMargin: number;
  /** Slack allowed for rounding, in natural log. */
  tolerance: number;
}

/**
 * Checks a spectrum (natural logs of singular values, any order) against the bounds. The tolerance
 * covers float64 rounding in the spectrum and the Lanczos estimate's relative error (~1e-10 per layer).
 */
export function checkSpectrum(logSingularValues: ArrayLike<number>, bounds: TheoryBounds): BoundCheck {
  let logMin = Infinity,
    logMax = -Infinity;
  for (let i = 0; i < logSingularValues.length; i++) {
    logMin = Math.min(logMin, logSingularValues[i]!);
    logMax = Math.max(logMax, logSingularValues[i]!);
  }
  const tolerance = 1e-8 * (1 + bounds.count) + 1e-9 * Math.abs(bounds.logUpperProduct);
  const lowerMargin = bounds.logLowerProduct === -Infinity ? Infinity : logMin - bounds.logLowerProduct;
  const upperMargin = bounds.logUpperProduct - logMax;
  return { inside: lowerMargin >= -tolerance && upperMargin >= -tolerance, lowerMargin, upperMargin, tolerance };
}
