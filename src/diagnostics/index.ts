// Gradient-flow diagnostics (SPEC §4): gradient-norm curves, Jacobian spectra at any depth, theory bounds.

export { diagnose, summarizeSpectrum, toLog10, type Diagnostics, type DiagnoseOptions } from './diagnose.js';
export { ProductSpectrum } from './product-spectrum.js';
export { jacobianChain, type JacobianChain } from './jacobians.js';
export {
  boundsFromNorms, checkSpectrum, lanczosSpectralNorm, theoryBounds,
  type BoundCheck, type SpectralNormFn, type TheoryBounds,
} from './bounds.js';
export {
  downsampleIndices, gradientSummaryCallback, measureGradientNorms, summarizeNorms,
  type GradientCurve, type GradientSummary,
} from './gradients.js';
export { logSingularValuesScaledColumns, spectralNorm } from './linalg.js';
