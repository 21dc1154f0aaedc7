// `diagnose`: everything the diagnostics measure for one model on one batch of a task's real data, as
// one JSON-ready object: the gradient-norm curve, the input-output Jacobian's singular spectrum and the
// theory bounds with their check. Used by `roaf diagnose`, the experiments and the report.
//
// Data: the first B samples of the dataset given (the CLI passes the test split), in order, so a run
// is reproducible. The gradient curve is over that whole batch (the mean loss); the spectrum is the
// Jacobian's for sample 0, or, with `samples` = S > 1, for samples 0..S-1: then the reported spectrum is
// the mean of the S log-spectra (the geometric mean of each singular value) and each sample is checked
// against the bounds.

import type { Dataset } from '../data/dataset.js';
import { isNotApplicable, type CurveIndex } from '../models/kind.js';
import { modelKindOf } from '../models/kinds.js';
import type { Model } from '../models/model.js';
import { BatchBuffers, batchLoss } from '../train/batches.js';
import { checkSpectrum, theoryBoundsOrReason, type SpectralNormFn, lanczosSpectralNorm } from './bounds.js';
import { measureGradientNorms } from './gradients.js';
import { ProductSpectrum } from './product-spectrum.js';

export interface DiagnoseOptions {
  /** B: samples in the batch (the first B of the dataset), >= 1. */
  batch: number;
  /** S: samples whose Jacobian spectrum is computed (0..S-1), 1 <= S <= B. 0 skips the spectrum. */
  samples: number;
  /** Called at the start of each phase (gradient norms, bounds, spectrum). */
  onPhase?(phase: string): void;
  /** Called now and then during the spectrum: factors done, factors in all. */
  onProgress?(phase: string, done: number, total: number): void;
  /** For tests: the spectral-norm routine of the bounds. */
  spectralNorm?: SpectralNormFn;
}

/** log10 of a quantity given as a natural log; JSON has no ±Infinity, so those become null. */
export type Log10 = number | null;

export interface SpectrumSummary {
  log10: { min: Log10; max: Log10; median: Log10; condition: Log10 };
  /** The same as plain numbers; null where the value under- or overflows a double. */
  value: { min: number | null; max: number | null; median: number | null; condition: number | null };
}

export interface Diagnostics {
  model: string;
  /** The model's configuration (baselines resolved: mlp has alpha 0, resmlp O = I and alpha = beta = 1). */
  config: Model['config'];
  data: { dataset: string; batch: number; steps: number };
  backend: string;
  loss: number;
  gradients: {
    index: CurveIndex;
    /** Entries: x_0..x_L (layer) or h_1..h_T (step). */
    count: number;
    /** log10 ||∂loss/∂x_l|| over the batch, in layer/step order; null for an exact zero. */
    log10_norms: Log10[];
    log10_first: Log10;
    log10_last: Log10;
    log10_min: Log10;
    log10_max: Log10;
    /** ||first|| / ||last||, and its log10 (the value is null if it is not representable). */
    first_last_ratio: number | null;
    log10_first_last_ratio: Log10;
  };
  spectrum:
    | (SpectrumSummary & {
        jacobian: string;
        size: number;
        factors: number;
        samples: number[];
        /** All singular values (log10), largest first: the mean over the samples of their log-spectra. */
        log10_singular_values: Log10[];
        per_sample: Array<{ sample: number; log10_min: Log10; log10_max: Log10; inside_bounds: boolean | null }>;
        /** Lyapunov exponents of the chain (log10 growth per factor, largest first), for comparison. */
        lyapunov_log10_per_factor: Log10[];
        method: string;
      })
    | null;
  /** Why there is no spectrum although one was asked for: the model's kind has no Jacobian chain for it. */
  spectrum_note?: string;
  bounds: {
    applicable: boolean;
    alpha?: number;
    beta?: number;
    factors?: number;
    /** ||W_l||₂ per layer (one value for a recurrent cell). */
    spectral_norms?: number[];
    /** The per-layer bounds max(0, alpha - beta ||W_l||₂) and alpha + beta ||W_l||₂: their range over layers. */
    layer_lower?: { min: number; max: number };
    layer_upper?: { min: number; max: number };
    log10_lower_product?: Log10;
    log10_upper_product?: Log10;
    /** Every sample's spectrum inside [lower, upper] (null without a spectrum). */
    inside?: boolean | null;
    /** log10 margins of the worst sample: σ_min over the lower bound, the upper bound over σ_max. */
    log10_lower_margin?: Log10;
    log10_upper_margin?: Log10;
    note?: string;
  };
  seconds: { gradients: number; spectrum: number; bounds: number; total: number };
}

const METHOD =
  'Householder QR frame propagation with a row-scaled triangular product and a log-scaled one-sided Jacobi SVD, float64 (src/diagnostics/product-spectrum.ts)';

/** Natural log -> log10, rounded to 1e-9, ±Infinity -> null. */
export function toLog10(ln: number): Log10 {
  if (!Number.isFinite(ln)) return null;
  return Math.round((ln / Math.LN10) * 1e9) / 1e9;
}

function log10Round(x: number): Log10 {
  return Number.isFinite(x) ? Math.round(x * 1e9) / 1e9 : null;
}

/** 10^x when it is a finite, nonzero double (or exactly 0 for x = -Infinity); otherwise null. */
function fromLog10(x: number): number | null {
  if (x === -Infinity) return 0;
  const value = 10 ** x;
  return Number.isFinite(value) && value > 0 ? value : null;
}

/** Min, max, median and condition number of a spectrum given as natural logs. */
export function summarizeSpectrum(logs: ArrayLike<number>): SpectrumSummary {
  const sorted = Float64Array.from(logs).sort();
  const n = sorted.length;
  const min = sorted[0]! / Math.LN10,
    max = sorted[n - 1]! / Math.LN10;
  const median = (n % 2 === 1 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2) / Math.LN10;
  const condition = max - min;
  return {
    log10: { min: log10Round(min), max: log10Round(max), median: log10Round(median), condition: log10Round(condition) },
    value: {
      min: fromLog10(min),
      max: fromLog10(max),
      median: fromLog10(median),
      condition: condition === Infinity ? null : fromLog10(condition),
    },
  };
}

/** The inputs (T, D) of sample b of a time-major batch (T, B, D). */
function sampleInputs(inputs: ArrayLike<number>, T: number, B: number, D: number, b: number): Float64Array {
  const out = new Float64Array(T * D);
  for (let t = 0; t < T; t++) for (let k = 0; k < D; k++) out[t * D + k] = inputs[(t * B + b) * D + k]!;
  return out;
}

export function diagnose(model: Model, dataset: Dataset, options: DiagnoseOptions): Diagnostics {
  const start = performance.now();
  const B = Math.min(options.batch, dataset.count);
  const S = Math.min(options.samples, B);
  const T = dataset.steps;
  const kind = modelKindOf(model);
  const what = kind.labels.extent(model.config, T);
  options.onPhase?.(`gradient norms over ${what}, batch of ${B}`);
  const indices = Int32Array.from({ length: B }, (_, i) => i);
  const buffers = new BatchBuffers(dataset, model, B);
  const { loss, rows, inputs, gOutputs } = batchLoss(model, buffers, indices, true);
  const meanLoss =
    dataset.target.kind === 'regression' ? loss.lossSum / (rows * dataset.target.outputs) : loss.lossSum / rows;
  const curve = measureGradientNorms(model, B, T, inputs, gOutputs);
  model.params.zeroGrad();
  const norms = curve.log10Norms;
  const first = norms[0] ?? NaN,
    last = norms[norms.length - 1] ?? NaN;
  const ratio = first - last;
  const gradientsDone = performance.now();

  options.onPhase?.('spectral norms for the bounds');
  const boundsStart = performance.now();
  const boundsOrReason = theoryBoundsOrReason(model, T, options.spectralNorm ?? lanczosSpectralNorm);
  const bounds = isNotApplicable(boundsOrReason) ? null : boundsOrReason;
  const boundsSeconds = (performance.now() - boundsStart) / 1000;

  let spectrum: Diagnostics['spectrum'] = null;
  let spectrumNote: string | undefined;
  let worstLower = Infinity,
    worstUpper = Infinity,
    allInside: boolean | null = null;
  const spectrumStart = performance.now();
  const chainOf = (b: number) => kind.jacobianChain(model, sampleInputs(inputs, T, B, dataset.inputDim, b), T);
  const firstChain = S > 0 ? chainOf(0) : null;
  if (firstChain !== null && isNotApplicable(firstChain)) {
    spectrumNote = `no Jacobian spectrum for ${model.config.model}: ${firstChain.notApplicable}`;
  }
  if (firstChain !== null && !isNotApplicable(firstChain)) {
    const perSample: NonNullable<Diagnostics['spectrum']>['per_sample'] = [];
    let meanLogs: Float64Array | null = null;
    let meanLyapunov: Float64Array | null = null;
    let chainInfo = { description: '', size: 0, count: 0 };
    for (let b = 0; b < S; b++) {
      options.onPhase?.(`Jacobian spectrum of sample ${b}`);
      const chain = b === 0 ? firstChain : chainOf(b);
      if (isNotApplicable(chain))
        throw new Error(`${model.config.model}: a Jacobian chain for sample 0 but not for sample ${b}`);
      chainInfo = chain;
      const product = new ProductSpectrum(chain.size, (args) => model.backend.productSpectrumPush(args));
      const every = Math.max(1, Math.floor(chain.count / 100));
      chain.run((index, J) => {
        product.push(J);
        if ((index + 1) % every === 0) options.onProgress?.(`spectrum of sample ${b}`, index + 1, chain.count);
      });
      const logs = product.logSingularValues();
      const lyapunov = product.lyapunovExponents();
      meanLogs ??= new Float64Array(logs.length);
      meanLyapunov ??= new Float64Array(lyapunov.length);
      for (let i = 0; i < logs.length; i++) {
        meanLogs[i] = meanLogs[i]! + logs[i]! / S;
        meanLyapunov[i] = meanLyapunov[i]! + lyapunov[i]! / S;
      }
      const summary = summarizeSpectrum(logs);
      let inside: boolean | null = null;
      if (bounds !== null) {
        const check = checkSpectrum(logs, bounds);
        inside = check.inside;
        allInside = (allInside ?? true) && check.inside;
        worstLower = Math.min(worstLower, check.lowerMargin);
        worstUpper = Math.min(worstUpper, check.upperMargin);
      }
      perSample.push({ sample: b, log10_min: summary.log10.min, log10_max: summary.log10.max, inside_bounds: inside });
    }
    const logs = meanLogs as Float64Array;
    spectrum = {
      jacobian: chainInfo.description,
      size: chainInfo.size,
      factors: chainInfo.count,
      samples: perSample.map((p) => p.sample),
      ...summarizeSpectrum(logs),
      log10_singular_values: Array.from(logs, toLog10),
      per_sample: perSample,
      lyapunov_log10_per_factor: Array.from(meanLyapunov as Float64Array, toLog10),
      method: METHOD,
    };
  }
  const spectrumSeconds = (performance.now() - spectrumStart) / 1000;

  const boundsReport: Diagnostics['bounds'] =
    bounds === null
      ? { applicable: false, note: isNotApplicable(boundsOrReason) ? boundsOrReason.notApplicable : '' }
      : {
          applicable: true,
          alpha: bounds.alpha,
          beta: bounds.beta,
          factors: bounds.count,
          spectral_norms: Array.from(bounds.spectralNorms, (s) => Number(s.toPrecision(12))),
          layer_lower: layerRange(bounds.spectralNorms, (s) => Math.max(0, bounds.alpha - bounds.beta * s)),
          layer_upper: layerRange(bounds.spectralNorms, (s) => bounds.alpha + bounds.beta * s),
          log10_lower_product: toLog10(bounds.logLowerProduct),
          log10_upper_product: toLog10(bounds.logUpperProduct),
          inside: allInside,
          log10_lower_margin: toLog10(worstLower),
          log10_upper_margin: toLog10(worstUpper),
          ...(bounds.logLowerProduct === -Infinity
            ? { note: 'the lower bound is 0: alpha <= beta ||W_l||₂ for some layer' }
            : {}),
        };

  return {
    model: model.config.model,
    config: model.config,
    data: { dataset: dataset.name, batch: B, steps: T },
    backend: model.backend.describe(),
    loss: meanLoss,
    gradients: {
      index: curve.index,
      count: norms.length,
      log10_norms: Array.from(norms, log10Round),
      log10_first: log10Round(first),
      log10_last: log10Round(last),
      log10_min: log10Round(norms.reduce((m, x) => Math.min(m, x), Infinity)),
      log10_max: log10Round(norms.reduce((m, x) => Math.max(m, x), -Infinity)),
      first_last_ratio: Number.isNaN(ratio) ? null : fromLog10(ratio),
      log10_first_last_ratio: log10Round(ratio),
    },
    spectrum,
    ...(spectrumNote !== undefined ? { spectrum_note: spectrumNote } : {}),
    bounds: boundsReport,
    seconds: {
      gradients: round3((gradientsDone - start) / 1000),
      spectrum: round3(spectrumSeconds),
      bounds: round3(boundsSeconds),
      total: round3((performance.now() - start) / 1000),
    },
  };
}

function layerRange(norms: Float64Array, bound: (s: number) => number): { min: number; max: number } {
  let min = Infinity,
    max = -Infinity;
  for (const s of norms) {
    min = Math.min(min, bound(s));
    max = Math.max(max, bound(s));
  }
  return { min: Number(min.toPrecision(12)), max: Number(max.toPrecision(12)) };
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
