// Sensible defaults for each task and model, shared by the CLI and library users (how each was measured:
// docs/defaults.md). A task gives the training recipe and its usual model; the model's kind gives its
// sizes on that task and its coefficients (kinds.ts).
//
// - mnist, fashion-mnist: batch 64, lr 2e-3 with cosine decay: +1.5 points over batch 128, lr 1e-3,
//   constant at depth 100 (measured with roaf train).
// - adding: 20 epochs of batch 50 at lr 3e-3 reach MSE 0.003-0.004 at T = 200 with the ROAF cell.

import type { TaskName } from '../data/tasks.js';
import type { ModelKind } from './kinds.js';
import { modelKind } from './kinds.js';

export { defaultMlpBeta } from './kinds/feed-forward.js';

export interface RunDefaults {
  model: ModelKind;
  epochs: number;
  batch: number;
  lr: number;
  /** One of train/optimizer.ts's LR_SCHEDULES. */
  lrSchedule: 'constant' | 'cosine';
  depth: number;
  width: number;
  hidden: number;
  inputScale: number;
}

/** A task's training recipe and the model it was measured with. */
type TaskRecipe = Pick<RunDefaults, 'model' | 'epochs' | 'batch' | 'lr' | 'lrSchedule'>;

const RECIPES: Readonly<Record<TaskName, TaskRecipe>> = {
  mnist: { model: 'roaf-mlp', epochs: 1, batch: 64, lr: 2e-3, lrSchedule: 'cosine' },
  'fashion-mnist': { model: 'roaf-mlp', epochs: 1, batch: 64, lr: 2e-3, lrSchedule: 'cosine' },
  smnist: { model: 'roaf-rnn', epochs: 1, batch: 128, lr: 1e-3, lrSchedule: 'constant' },
  psmnist: { model: 'roaf-rnn', epochs: 1, batch: 128, lr: 1e-3, lrSchedule: 'constant' },
  adding: { model: 'roaf-rnn', epochs: 20, batch: 50, lr: 3e-3, lrSchedule: 'constant' },
  copy: { model: 'roaf-rnn', epochs: 5, batch: 50, lr: 1e-3, lrSchedule: 'constant' },
};

/** Defaults for a task (and the model, when the user named one). */
export function runDefaults(task: TaskName, model?: ModelKind): RunDefaults {
  const recipe = RECIPES[task];
  const kind = model ?? recipe.model;
  return { ...recipe, model: kind, ...modelKind(kind).sizeDefaults(task) };
}

/** Default (alpha, beta) of a model at a depth. Baselines fix their own (the kind's `fixed`). */
export function defaultCoefficients(model: ModelKind, depth: number): { alpha: number; beta: number } {
  return modelKind(model).defaultCoefficients(depth);
}
