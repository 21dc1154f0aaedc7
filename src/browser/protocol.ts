// The messages between a page and the training worker (training-worker.ts): what to train, and what
// the worker reports while it trains. Plain data only (structured-clone safe).

import type { FilterKind } from '../nn/filter.js';
import type { ModelKind } from '../models/kinds.js';

/** What a worker trains and how; sizes left out take the model kind's defaults for the task. */
export interface WorkerRun {
  model: ModelKind;
  /** 'mnist': flat images (feed-forward kinds); 'smnist' / 'psmnist': 784 steps of one pixel (recurrent kinds). */
  task: 'mnist' | 'smnist' | 'psmnist';
  depth?: number;
  width?: number;
  hidden?: number;
  alpha?: number;
  beta?: number;
  filter?: FilterKind;
  seed?: number;
  /** The backend (browserBackend's choice): 'wasm' (default) or 'reference'. */
  backend?: 'wasm' | 'reference';
  /** URL of the directory with MNIST's four plain IDX files. */
  dataUrl: string;
  trainLimit?: number;
  testLimit: number;
  batch: number;
  lr: number;
  /** Evaluate on the test subset every this many seconds of training (and at the end). */
  evalSeconds: number;
  /** Measure the gradient-norm curve every this many seconds (0: only at the start and the end). */
  gradientSeconds: number;
  /** Stop after this many steps or seconds of training (whichever first); the page may stop it earlier. */
  maxSteps: number;
  maxSeconds: number;
  /** Compute the input-output Jacobian's spectrum at the end. */
  spectrum: boolean;
  /** Recurrent models: the mean hidden-state norm over time, with each gradient curve. */
  hiddenNorms: boolean;
}

export type ToWorker =
  | { type: 'start'; run: WorkerRun }
  | { type: 'stop' }
  | { type: 'predict'; id: number; pixels: Float32Array }
  | { type: 'save' }
  | { type: 'load'; bytes: Uint8Array; source: string };

export type FromWorker =
  | { type: 'ready'; backend: string; parameters: number; config: Record<string, unknown>; dataSeconds: number }
  | { type: 'step'; step: number; loss: number; seconds: number }
  | { type: 'evaluation'; step: number; seconds: number; loss: number; accuracy: number }
  | { type: 'gradients'; step: number; index: 'layer' | 'step'; log10Norms: Array<number | null> }
  | { type: 'hidden'; step: number; norms: number[] }
  | { type: 'spectrum'; step: number; log10SingularValues: Array<number | null> }
  | { type: 'prediction'; id: number; probabilities: number[] }
  | { type: 'checkpoint'; bytes: Uint8Array }
  | { type: 'done'; step: number; seconds: number; stepsPerSecond: number }
  | { type: 'error'; message: string };
