// The tasks' names, kinds and size constants, apart from the loader (tasks.ts), which reads files: the
// options table, the models and the browser entry need these without reaching the file system.

export const TASKS = ['mnist', 'fashion-mnist', 'smnist', 'psmnist', 'adding', 'copy'] as const;
export type TaskName = (typeof TASKS)[number];

/**
 * What a task's model must output, following its `TargetSpec`:
 * - 'classification': one class per sample ('class'): mnist, fashion-mnist, smnist, psmnist;
 * - 'regression': real targets per sample ('regression'): adding;
 * - 'sequence-classification': one class per step ('class-per-step'): copy.
 */
export type TaskKind = 'classification' | 'regression' | 'sequence-classification';

export function taskKind(name: TaskName): TaskKind {
  switch (name) {
    case 'mnist':
    case 'fashion-mnist':
    case 'smnist':
    case 'psmnist':
      return 'classification';
    case 'adding':
      return 'regression';
    case 'copy':
      return 'sequence-classification';
  }
}

/** True if the task feeds its input over many steps (a recurrent model's task); false for flat images. */
export function isSequential(name: TaskName): boolean {
  return name !== 'mnist' && name !== 'fashion-mnist';
}

/** Default sample counts of the generated tasks (adding, copy). */
export const DEFAULT_TRAIN_SIZE = 10_000;
export const DEFAULT_TEST_SIZE = 1_000;
/** Default `seqLen`: adding T = 200; copy L = 100 blanks (T = 120). */
export const DEFAULT_SEQ_LEN = { adding: 200, copy: 100 } as const;
/** Largest accepted `seqLen`, only to catch typos before allocating; far beyond the T = 10,000 goal. */
export const MAX_SEQ_LEN = 10_000_000;
