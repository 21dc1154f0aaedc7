// Builds any model from its configuration: the kind (kinds.ts) applies what it fixes (the baselines:
// `mlp` and `rnn` have alpha = 0 and beta = 1, `resmlp` O = I and alpha = beta = 1) and constructs it.
// A partial configuration is completed first with the CLI's defaults for the task (modelConfig).

import type { Backend } from '../backend/backend.js';
import { backendForPrecision } from '../backend/bf16.js';
import { loadBackend } from '../backend/index.js';
import { buildModel, type ModelOptions } from './build.js';
import type { Model } from './model.js';

// Everything but the default backend lives in build.ts (shared with the browser entry).
export {
  buildModel,
  datasetShape,
  datasetTask,
  modelConfig,
  resolveBaseline,
  taskShape,
  type ModelOptions,
} from './build.js';

/**
 * Builds a model. `options` may be a complete ModelConfig (a checkpoint's) or any part of one: the rest is
 * filled by `modelConfig` (e.g. `createModel({ model: 'roaf-rnn', data })`). Without a backend, the best
 * available one for the dtype (`loadBackend('auto')`).
 */
export function createModel(options: ModelOptions, backend?: Backend): Model {
  // bf16 products: the model's kernels run on the backend with its products in bf16 (float32 master weights).
  return buildModel(options, (dtype, precision) =>
    backendForPrecision(backend ?? loadBackend('auto', { dtype })!, precision, dtype),
  );
}
