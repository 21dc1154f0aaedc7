// How much of the forward pass a feed-forward stack keeps for its backward pass: everything (`full`), or
// every k-th layer's input with the segments recomputed (`checkpoint`, RoafMLP.setMemoryMode). `auto`
// checkpoints once the stored activations of a training step would take more than a fixed share of the
// machine's memory: the results are the same bit for bit, only memory and time differ.

import { UsageError } from '../util/errors.js';
import { defaultSegmentLength, type ActivationMemory, type MemoryMode } from './kind.js';
import { modelKind } from './kinds.js';
import type { ModelConfig } from './config.js';
import type { Model } from './model.js';

export const MEMORY_OPTIONS = ['auto', 'full', 'checkpoint'] as const;
export type MemoryOption = (typeof MEMORY_OPTIONS)[number];

/** `auto` checkpoints when the full activations of a step would exceed this share of the machine's memory. */
export const AUTO_CHECKPOINT_SHARE = 0.25;

/** A model whose activation memory can be chosen (the feed-forward stack). */
interface MemoryConfigurable {
  setMemoryMode(mode: MemoryMode, segmentLength?: number): void;
  readonly memory: ActivationMemory;
}

function isConfigurable(model: Model): model is Model & MemoryConfigurable {
  return typeof (model as Partial<MemoryConfigurable>).setMemoryMode === 'function';
}

/** The mode `requested` means for `config` at batch size B on a machine of `totalMemoryBytes`. */
export function chooseMemoryMode(
  config: ModelConfig,
  B: number,
  requested: MemoryOption,
  totalMemoryBytes: number,
): MemoryMode {
  if (requested !== 'auto') return requested;
  const full = modelKind(config.model).activationBytes(config, B, 1, { mode: 'full', segmentLength: config.depth });
  return full > AUTO_CHECKPOINT_SHARE * totalMemoryBytes ? 'checkpoint' : 'full';
}

/**
 * Applies `requested` to `model` for batches of up to B samples; returns what it chose, or null for a model
 * that always keeps its states (recurrent kinds: `auto` and `full` leave them as they are).
 */
export function applyMemoryOption(
  model: Model,
  B: number,
  requested: MemoryOption,
  totalMemoryBytes: number,
): ActivationMemory | null {
  if (!isConfigurable(model)) {
    if (requested === 'checkpoint') {
      throw new UsageError(
        `--memory checkpoint: activation checkpointing is for feed-forward models (roaf-mlp, mlp, resmlp), not ${model.config.model}`,
      );
    }
    return null;
  }
  const mode = chooseMemoryMode(model.config, B, requested, totalMemoryBytes);
  model.setMemoryMode(mode, mode === 'checkpoint' ? defaultSegmentLength(model.config.depth) : undefined);
  return model.memory;
}
