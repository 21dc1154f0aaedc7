// Model configuration: which network, its sizes and ROAF coefficients, validated at the boundary.
// What each kind of network is and fixes lives in the registry (kinds.ts).

import type { DType } from '../backend/backend.js';
import type { Precision } from '../backend/names.js';
import type { FilterKind } from '../nn/filter.js';
import type { BiasSigns } from '../nn/layers.js';
import { OPTIONS, checkOption, checkOptionChoice } from '../options/table.js';
import { UsageError, checkRange } from '../util/errors.js';
import { MODEL_KINDS, type ModelKind } from './kinds.js';

export { MODEL_KINDS, type ModelKind };

export interface ModelConfig {
  /** Which network (models/kinds.ts). `mlp` is roaf-mlp with alpha = 0; `resmlp` is O = I, alpha = beta = 1; `rnn` is roaf-rnn with alpha = 0. */
  model: ModelKind;
  /** D: input features per sample (feed-forward) or per step (recurrent). */
  inputDim: number;
  /** K: classes or regression outputs. */
  outputs: number;
  /** Recurrent readout: from the last state only, or from every state (per-step targets). */
  readout: 'last' | 'every';
  /** L: number of ROAF layers (feed-forward models). */
  depth: number;
  /** N: width of the ROAF layers (feed-forward models). */
  width: number;
  /** N: units of the recurrent cell (of each layer). */
  hidden: number;
  /**
   * k: stacked recurrent layers (roaf-rnn, rnn, lstm, gru), 1 when absent: layer 1 reads the inputs, layer j
   * the hidden states of layer j-1, the readout the top layer. Feed-forward kinds have `depth` instead.
   */
  layers?: number;
  /** Weight of the filtered input, in [0, 1]. */
  alpha: number;
  /** Weight of the nonlinear branch, > 0. */
  beta: number;
  /** How the orthogonal filters are drawn. */
  filter: FilterKind;
  /** Feed-forward: one filter shared by all layers instead of one per layer. */
  sharedFilter: boolean;
  /** Recurrent ROAF/Elman cells: scale of the input weights U ~ N(0, inputScale²/D). */
  inputScale: number;
  /** ROAF/Elman cells: scale of the recurrent weights at init, W ~ N(0, recurrentScale²/N); 1 when absent. */
  recurrentScale?: number;
  /** ROAF/Elman cells: the bias at init, b = biasInit; 0 when absent. */
  biasInit?: number;
  /** ROAF/Elman cells: how biasInit's signs are laid out over the units (nn/layers.ts); 'constant' when absent. */
  biasSigns?: BiasSigns;
  /** LSTM cells: the forget gate's bias at init, b_f = forgetBias (the other gates keep their uniform init); absent: uniform like them. */
  forgetBias?: number;
  /** Seed of every random draw of the model (weights and filters). */
  seed: number;
  dtype: DType;
  /**
   * The arithmetic of the model's matrix products (src/backend/bf16.ts): 'float32' when absent. The weights,
   * the optimiser state and the checkpoints are float32 either way; recorded so that a resumed run keeps it.
   */
  precision?: Precision;
}

/**
 * Checks every field and returns the config; errors name the CLI option, the value and the allowed range,
 * which come from the options table (src/options/table.ts).
 */
export function validateModelConfig(config: ModelConfig): ModelConfig {
  checkOptionChoice(OPTIONS.model, config.model);
  checkOptionChoice(OPTIONS.filter, config.filter);
  checkOptionChoice(OPTIONS.dtype, config.dtype);
  if (config.precision !== undefined) checkOptionChoice(OPTIONS.precision, config.precision);
  checkOption(OPTIONS.depth, config.depth);
  checkOption(OPTIONS.width, config.width);
  checkOption(OPTIONS.hidden, config.hidden);
  if (config.layers !== undefined) checkOption(OPTIONS.layers, config.layers);
  checkOption(OPTIONS.alpha, config.alpha);
  // mlp and rnn fix beta = 1 and ignore the value given, so 0 passes for them
  checkOption(OPTIONS.beta, config.beta, { minExclusive: config.model !== 'mlp' && config.model !== 'rnn' });
  checkOption(OPTIONS.inputScale, config.inputScale);
  if (config.recurrentScale !== undefined) checkOption(OPTIONS.recurrentScale, config.recurrentScale);
  if (config.biasInit !== undefined) checkOption(OPTIONS.biasInit, config.biasInit);
  if (config.biasSigns !== undefined) checkOptionChoice(OPTIONS.biasSigns, config.biasSigns);
  if (config.forgetBias !== undefined) {
    checkOption(OPTIONS.forgetBias, config.forgetBias);
    // a value no other kind would read: refused rather than silently ignored
    if (config.model !== 'lstm') {
      throw new UsageError(`--forget-bias applies to --model lstm only, got --model ${config.model}`);
    }
  }
  checkOption(OPTIONS.seed, config.seed);
  checkRange('input dimension', config.inputDim, 1, 1e9, { integer: true });
  checkRange('outputs', config.outputs, 1, 1e9, { integer: true });
  if (config.readout !== 'last' && config.readout !== 'every') {
    throw new UsageError(`readout must be 'last' or 'every', got '${String(config.readout)}'`);
  }
  return config;
}
