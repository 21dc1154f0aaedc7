// The rule that ends a baseline early, so that a baseline which cannot learn does not spend a claim's
// budget: a classifier whose test accuracy is within 2 points of chance at two evaluations in a row,
// both after at least a quarter of its budget of steps. (A non-finite loss ends any run: the trainer
// throws DivergedError.) The rule reads only the metrics records, so it gives the same answer when a
// run is resumed, and a run it ended is not continued by a later session.

import type { MetricsRecord } from '../train/metrics.js';

/** How close to chance counts as stuck: 2 percentage points. */
export const CHANCE_MARGIN = 0.02;
/** The share of the budget a baseline gets before the rule applies. */
export const MIN_BUDGET_SHARE = 0.25;

export interface ChanceRule {
  /** Steps the run would take in all (batches per epoch × epochs). */
  budgetSteps: number;
  /** Classes of a one-label-per-sample task; chance accuracy is 1/classes. */
  classes: number;
}

export interface StopDecision {
  reason: 'chance';
  step: number;
  epoch: number;
  detail: string;
}

/** Whether the last two evaluations of `records` show a classifier stuck at chance (null: go on). */
export function stuckAtChance(records: readonly MetricsRecord[], rule: ChanceRule): StopDecision | null {
  if (records.length < 2) return null;
  const chance = 1 / rule.classes;
  const last = records.slice(-2);
  const stuck = last.every(
    (r) =>
      typeof r.test_accuracy === 'number' &&
      r.step >= MIN_BUDGET_SHARE * rule.budgetSteps &&
      Math.abs(r.test_accuracy - chance) <= CHANCE_MARGIN + 1e-12,
  );
  if (!stuck) return null;
  const [a, b] = last as [MetricsRecord, MetricsRecord];
  const pct = (x: number | undefined) => `${((x ?? NaN) * 100).toFixed(2)} %`;
  return {
    reason: 'chance',
    step: b.step,
    epoch: b.epoch,
    detail:
      `test accuracy ${pct(a.test_accuracy)} at step ${a.step} and ${pct(b.test_accuracy)} at step ${b.step} (of ${rule.budgetSteps}), ` +
      `within ${CHANCE_MARGIN * 100} points of chance (${pct(chance)}) after at least ${MIN_BUDGET_SHARE * 100} % of the budget`,
  };
}
