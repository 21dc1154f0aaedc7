// Sensible defaults for each task and model, shared by the CLI and library users.
//
// ROAF coefficients (SPEC §8, measured before any code was written):
// - feed-forward: alpha = 1 with a small beta keeps the gradient norm flat; the product of L layer
//   Jacobians grows like exp(c·beta²·L/2), so beta = 0.3/sqrt(L) keeps it bounded at every depth
//   (beta ≈ 0.01 at L = 1,000, where SPEC §8 measured a first/last ratio of 1.04).
// - recurrent: alpha = 1, beta = 0.1 (0.01 learns too slowly, 0.3 explodes); larger input weights help.

import type { ModelKind } from '../models/config.js';
import type { TaskName } from '../data/tasks.js';

/** Default beta of `roaf-mlp` at depth L (alpha = 1). */
export function defaultMlpBeta(depth: number): number {
  return Math.min(0.5, 0.3 / Math.sqrt(depth));
}

export interface RunDefaults {
  model: ModelKind;
  epochs: number;
  batch: number;
  lr: number;
  depth: number;
  width: number;
  hidden: number;
  inputScale: number;
}

/** Defaults for a task (and the model, when the user named one). */
export function runDefaults(task: TaskName, model?: ModelKind): RunDefaults {
  switch (task) {
    case 'mnist':
    case 'fashion-mnist':
      return { model: model ?? 'roaf-mlp', epochs: 1, batch: 128, lr: 1e-3, depth: 100, width: 64, hidden: 128, inputScale: 1 };
    case 'smnist':
    case 'psmnist':
      return { model: model ?? 'roaf-rnn', epochs: 1, batch: 128, lr: 1e-3, depth: 100, width: 64, hidden: 256, inputScale: 3 };
    case 'adding':
      return { model: model ?? 'roaf-rnn', epochs: 5, batch: 50, lr: 1e-3, depth: 100, width: 64, hidden: 128, inputScale: 1 };
    case 'copy':
      return { model: model ?? 'roaf-rnn', epochs: 5, batch: 50, lr: 1e-3, depth: 100, width: 64, hidden: 128, inputScale: 1 };
  }
}

/** Default (alpha, beta) of a model at a depth. Baselines fix their own (see models/factory.ts). */
export function defaultCoefficients(model: ModelKind, depth: number): { alpha: number; beta: number } {
  if (model === 'roaf-mlp') return { alpha: 1, beta: defaultMlpBeta(depth) };
  if (model === 'roaf-rnn') return { alpha: 1, beta: 0.1 };
  return { alpha: 0, beta: 1 };
}
