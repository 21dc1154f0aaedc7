// Optimisers over a model's flat parameter buffer: Adam (AdamW with weight decay) and SGD with momentum,
// plus global gradient-norm clipping. Their state is flat buffers too, saved whole in a checkpoint.

import type { Backend, FloatArray } from '../backend/backend.js';
import type { ParameterStore } from '../nn/parameters.js';

export const OPTIMIZER_KINDS = ['adam', 'sgd'] as const;
export type OptimizerKind = (typeof OPTIMIZER_KINDS)[number];

export interface OptimizerOptions {
  kind: OptimizerKind;
  /** Learning rate, > 0. */
  lr: number;
  /** SGD momentum in [0, 1). */
  momentum: number;
  /** Adam's decoupled weight decay (AdamW), >= 0. */
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
}

export const LR_SCHEDULES = ['constant', 'cosine'] as const;
export type LrSchedule = (typeof LR_SCHEDULES)[number];

/**
 * The learning rate of step `step` (1-based) of `totalSteps`: constant, or cosine decay from `lr` to 0
 * (lr · (1 + cos(π (step - 1) / totalSteps)) / 2). It depends on the step alone, so resuming is exact.
 */
export function scheduledLr(schedule: LrSchedule, lr: number, step: number, totalSteps: number): number {
  if (schedule === 'constant') return lr;
  return lr * 0.5 * (1 + Math.cos((Math.PI * (step - 1)) / Math.max(1, totalSteps)));
}

export const DEFAULT_OPTIMIZER: OptimizerOptions = {
  kind: 'adam',
  lr: 1e-3,
  momentum: 0.9,
  weightDecay: 0,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
};

export class Optimizer {
  /** Updates taken so far (Adam's t). */
  steps = 0;
  /** Named state buffers, (P) each: Adam `m`, `v`; SGD `velocity`. */
  readonly state: Record<string, FloatArray>;

  constructor(
    readonly options: OptimizerOptions,
    private readonly store: ParameterStore,
    private readonly backend: Backend,
  ) {
    const n = store.size;
    this.state =
      options.kind === 'adam'
        ? { m: backend.allocate(store.dtype, n), v: backend.allocate(store.dtype, n) }
        : { velocity: backend.allocate(store.dtype, n) };
  }

  /** One update; `lr` overrides the configured rate (a schedule's value for this step). */
  step(lr = this.options.lr): void {
    const { store, backend, options: o } = this;
    // the constructor made exactly the buffers of this kind
    const { m, v, velocity } = this.state;
    this.steps += 1;
    if (o.kind === 'adam') {
      backend.adamUpdate({
        n: store.size,
        params: store.values,
        grads: store.grads,
        m: m!,
        v: v!,
        lr,
        beta1: o.beta1,
        beta2: o.beta2,
        eps: o.eps,
        weightDecay: o.weightDecay,
        t: this.steps,
      });
    } else {
      backend.sgdUpdate({
        n: store.size,
        params: store.values,
        grads: store.grads,
        velocity: velocity!,
        lr,
        momentum: o.momentum,
      });
    }
  }
}

/** Global L2 norm of all gradients. */
export function gradientNorm(store: ParameterStore, backend: Backend): number {
  return Math.sqrt(backend.sumSquares(store.size, store.grads));
}

/** Scales the gradients so their global norm is at most `maxNorm`; returns the norm before clipping. */
export function clipGradients(store: ParameterStore, backend: Backend, maxNorm: number): number {
  const norm = gradientNorm(store, backend);
  if (norm > maxNorm) backend.scale(store.size, store.grads, maxNorm / norm);
  return norm;
}
