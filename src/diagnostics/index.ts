// Gradient-flow diagnostics (docs/math.md): gradient-norm curves, Jacobian spectra at any depth, theory bounds.

export { diagnose, summarizeSpectrum, toLog10, type Diagnostics, type DiagnoseOptions } from './diagnose.js';
export { ProductSpectrum } from './product-spectrum.js';
export { jacobianChain, type JacobianChain, type JacobianVisitor } from './jacobians.js';
export {
  boundsFromNorms,
  checkSpectrum,
  lanczosSpectralNorm,
  theoryBounds,
  theoryBoundsOrReason,
  type BoundCheck,
  type SpectralNormFn,
  type TheoryBounds,
} from './bounds.js';
export {
  curvePosition,
  downsampleIndices,
  frobeniusNorm,
  gradientSummaryCallback,
  measureGradientNorms,
  summarizeNorms,
  type CurveIndex,
  type GradientCurve,
  type GradientSummary,
} from './gradients.js';
export { logSingularValuesScaledColumns, spectralNorm } from './linalg.js';
