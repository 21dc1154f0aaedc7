// Builds any model from its configuration, applying what each baseline fixes:
// `mlp` and `rnn` have alpha = 0 (beta = 1), `resmlp` has O = I and alpha = beta = 1.

import type { Backend } from '../backend/backend.js';
import { isRecurrent, validateModelConfig, type ModelConfig } from './config.js';
import type { Model } from './model.js';
import { RecurrentModel } from './recurrent.js';
import { RoafMLP } from './roaf-mlp.js';
import { defaultCoefficients } from '../train/defaults.js';

/** The config with each baseline's fixed settings applied. */
export function resolveBaseline(config: ModelConfig): ModelConfig {
  switch (config.model) {
    case 'mlp':
    case 'rnn':
      return { ...config, alpha: 0, beta: 1 };
    case 'resmlp':
      return { ...config, alpha: 1, beta: 1, filter: 'identity', sharedFilter: true };
    default:
      return config;
  }
}

export function createModel(config: ModelConfig, backend: Backend): Model {
  const resolved = validateModelConfig(resolveBaseline(config));
  if (!backend.supports(resolved.dtype)) {
    throw new Error(`the ${backend.name} backend does not support ${resolved.dtype}`);
  }
  return isRecurrent(resolved.model) ? new RecurrentModel(resolved, backend) : new RoafMLP(resolved, backend);
}

/** The fields a user must give; everything else has a documented default. */
export type ModelOptions = Partial<ModelConfig> & Pick<ModelConfig, 'model' | 'inputDim' | 'outputs'>;

/**
 * A complete config from the essentials: depth 100, width 64, hidden 128, haar filters, seed 0, float32,
 * and the model's default alpha/beta (roaf-mlp: alpha 1, beta 0.3/sqrt(L); roaf-rnn: alpha 1, beta 0.1).
 */
export function modelConfig(options: ModelOptions): ModelConfig {
  const depth = options.depth ?? 100;
  const coefficients = defaultCoefficients(options.model, depth);
  return {
    readout: 'last', depth, width: 64, hidden: 128, filter: 'haar', sharedFilter: false, inputScale: 1, seed: 0,
    dtype: 'float32', ...coefficients, ...options,
  };
}
