// Builds any model from its configuration, applying what each baseline fixes:
// `mlp` and `rnn` have alpha = 0 (beta = 1), `resmlp` has O = I and alpha = beta = 1.

import type { Backend } from '../backend/backend.js';
import { isRecurrent, validateModelConfig, type ModelConfig } from './config.js';
import type { Model } from './model.js';
import { RecurrentModel } from './recurrent.js';
import { RoafMLP } from './roaf-mlp.js';

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
