// Builds any model from its configuration: the kind (kinds.ts) applies what it fixes (the baselines:
// `mlp` and `rnn` have alpha = 0 and beta = 1, `resmlp` O = I and alpha = beta = 1) and constructs it.

import type { Backend } from '../backend/backend.js';
import { UsageError } from '../util/errors.js';
import { validateModelConfig, type ModelConfig } from './config.js';
import { kindsWhere, modelKind } from './kinds.js';
import type { Model } from './model.js';

/** The config with the kind's fixed settings applied (the baselines'). */
export function resolveBaseline(config: ModelConfig): ModelConfig {
  const { fixed } = modelKind(config.model);
  return Object.keys(fixed).length === 0 ? config : { ...config, ...fixed };
}

export function createModel(config: ModelConfig, backend: Backend): Model {
  const kind = modelKind(config.model);
  const resolved = validateModelConfig(resolveBaseline(config));
  if ((resolved.layers ?? 1) !== 1 && !kind.stackable) {
    throw new UsageError(`--layers must be 1 for --model ${kind.name}, got ${resolved.layers}: stacked layers are for ` +
      `${kindsWhere((k) => k.stackable).join(', ')} (a feed-forward model's depth is --depth)`);
  }
  if (!backend.supports(resolved.dtype)) {
    throw new Error(`the ${backend.name} backend does not support ${resolved.dtype}`);
  }
  return kind.create(resolved, backend);
}

/** The fields a user must give; everything else has a documented default. */
export type ModelOptions = Partial<ModelConfig> & Pick<ModelConfig, 'model' | 'inputDim' | 'outputs'>;

/**
 * A complete config from the essentials: depth 100, width 64, hidden 128, one layer, haar filters, seed 0,
 * float32, and the model's default alpha/beta (roaf-mlp: alpha 1, beta min(0.5, 1/sqrt(L)); roaf-rnn:
 * alpha 1, beta 0.1).
 */
export function modelConfig(options: ModelOptions): ModelConfig {
  const depth = options.depth ?? 100;
  const coefficients = modelKind(options.model).defaultCoefficients(depth);
  return {
    readout: 'last', depth, width: 64, hidden: 128, filter: 'haar', sharedFilter: false, inputScale: 1, seed: 0,
    dtype: 'float32', ...coefficients, ...options,
  };
}
