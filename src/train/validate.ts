// Validation of a training configuration at the library's boundary (`runTraining` calls it; so does
// `roaf train`), against the ranges of the options table: errors name the option, the value and what is
// allowed, exactly as the command line reports them.

import { OPTIONS, checkOption, checkOptionChoice } from '../options/table.js';
import type { TrainingConfig } from './checkpoint.js';

/** Checks every field the options table covers and returns the config unchanged. */
export function validateTrainingConfig(config: TrainingConfig): TrainingConfig {
  checkOption(OPTIONS.epochs, config.epochs);
  checkOption(OPTIONS.batch, config.batch);
  checkOptionChoice(OPTIONS.optimizer, config.optimizer.kind);
  checkOption(OPTIONS.lr, config.optimizer.lr);
  checkOption(OPTIONS.momentum, config.optimizer.momentum);
  checkOption(OPTIONS.weightDecay, config.optimizer.weightDecay);
  if (config.lrSchedule !== undefined) checkOptionChoice(OPTIONS.lrSchedule, config.lrSchedule);
  checkOption(OPTIONS.clip, config.clip);
  checkOption(OPTIONS.evalEvery, config.evalEvery);
  checkOption(OPTIONS.checkpointEvery, config.checkpointEvery);
  checkOption(OPTIONS.seed, config.seed);
  return config;
}
