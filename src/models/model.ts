// What every model offers the trainer and the diagnostics: a forward pass over a batch, a hand-written
// backward pass that accumulates into the flat gradient buffer, and hooks to observe gradient flow.

import type { Backend, FilterOperand, FloatArray } from '../backend/backend.js';
import type { ParameterStore } from '../nn/parameters.js';
import type { ModelConfig } from './config.js';

/**
 * Called during backward with ∂loss/∂x_l for every layer l = L..0 (feed-forward; x_0 is the projected
 * input) or ∂loss/∂h_t for every step t = T..1 (recurrent). The buffer is (B, N) and only valid during
 * the call.
 */
export type GradientHook = (index: number, grad: FloatArray) => void;

export interface Model {
  readonly config: ModelConfig;
  readonly params: ParameterStore;
  /** The fixed filters (one per layer, possibly the same object; one for a ROAF cell; empty otherwise). */
  readonly filters: readonly FilterOperand[];
  /** The backend the model computes with. */
  readonly backend: Backend;
  /** Whether inputs are sequences (T, B, D) rather than (B, D). */
  readonly recurrent: boolean;
  /** Rows of the output for a batch: B, or T·B for per-step readout. */
  outputRows(B: number, T: number): number;
  /** inputs (T, B, D) time-major (T = 1 for feed-forward) -> outputs (rows, K), a view valid until the next forward. */
  forward(B: number, T: number, inputs: FloatArray): FloatArray;
  /** After forward on the same inputs: gOutputs (rows, K) -> accumulates parameter gradients. */
  backward(B: number, T: number, inputs: FloatArray, gOutputs: FloatArray, hook?: GradientHook): void;
}
