// `roaf diagnose`: gradient norms at every layer (step), the input-output Jacobian's singular spectrum
// and the theory bounds, for a model at initialisation or a saved one, on a batch of its task's data.

import { totalmem } from 'node:os';
import type { Command } from 'commander';
import { BACKEND_NAMES, requireBackend, type BackendName } from '../backend/index.js';
import type { Dataset } from '../data/dataset.js';
import { TASKS, isSequential, loadTask } from '../data/tasks.js';
import { diagnose, type Diagnostics } from '../diagnostics/diagnose.js';
import type { ModelConfig } from '../models/config.js';
import { runDefaults } from '../models/defaults.js';
import { createModel } from '../models/factory.js';
import { applyMemoryOption } from '../models/memory.js';
import { CURVE_LABELS } from '../models/kind.js';
import { MODEL_KINDS, modelKind } from '../models/kinds.js';
import type { Model } from '../models/model.js';
import { DEFAULT_FILTER, FILTER_KINDS } from '../nn/filter.js';
import { describeModel, writeDiagnosticsOutputs } from '../report/figures.js';
import { loadModelTensors, readCheckpointConfig } from '../train/checkpoint.js';
import { UsageError, checkChoice, checkRange } from '../util/errors.js';
import { OPTIONS, checkOptionChoice } from '../options/table.js';
import { numberOption, printJsonResult, tableOption } from './options.js';
import { taskShape } from './train.js';

interface DiagnoseCliOptions {
  memory: string;
  model?: string;
  task?: string;
  depth?: number;
  width?: number;
  hidden?: number;
  layers?: number;
  seqLen?: number;
  alpha?: number;
  beta?: number;
  filter?: string;
  sharedFilter?: boolean;
  inputScale?: number;
  seed: number;
  dtype: string;
  checkpoint?: string;
  dataDir?: string;
  batch: number;
  samples: number;
  spectrum: boolean;
  backend: string;
  threads?: number;
  out?: string;
  json: boolean;
  quiet: boolean;
}

/** Options that define the model, so they cannot be combined with --checkpoint. */
const MODEL_OPTIONS = [
  ['model', '--model'],
  ['task', '--task'],
  ['depth', '--depth'],
  ['width', '--width'],
  ['hidden', '--hidden'],
  ['layers', '--layers'],
  ['seqLen', '--seq-len'],
  ['alpha', '--alpha'],
  ['beta', '--beta'],
  ['filter', '--filter'],
  ['sharedFilter', '--shared-filter'],
  ['inputScale', '--input-scale'],
] as const;

interface Setup {
  model: Model;
  dataset: Dataset;
  taskName: string;
}

function fromCheckpoint(options: DiagnoseCliOptions, backendName: BackendName): Setup {
  for (const [key, flag] of MODEL_OPTIONS) {
    if (options[key] !== undefined)
      throw new UsageError(`${flag} cannot be combined with --checkpoint: the checkpoint fixes the model and its task`);
  }
  const dir = options.checkpoint as string;
  const saved = readCheckpointConfig(dir);
  const backend = requireBackend(backendName, saved.model.dtype, options.threads);
  const data = loadTask(saved.task.name, {
    ...saved.task,
    seed: saved.training.seed,
    dataDir: options.dataDir ?? saved.task.dataDir,
  });
  const model = createModel(saved.model, backend);
  loadModelTensors(dir, model);
  return { model, dataset: data.test, taskName: saved.task.name };
}

function atInitialisation(options: DiagnoseCliOptions, backendName: BackendName): Setup {
  if (options.model === undefined)
    throw new UsageError('diagnose needs --model KIND (a model at initialisation) or --checkpoint DIR (a saved one)');
  const kind = checkChoice('--model', options.model, MODEL_KINDS);
  const recurrent = modelKind(kind).recurrent;
  const taskName = checkChoice('--task', options.task ?? (recurrent ? 'adding' : 'mnist'), TASKS);
  if (!recurrent && isSequential(taskName)) {
    throw new UsageError(
      `--model ${kind} is feed-forward: it needs a flat task (mnist, fashion-mnist), got --task ${taskName}`,
    );
  }
  const seed = checkRange('--seed', options.seed, 0, 2 ** 32 - 1, { integer: true });
  const defaults = runDefaults(taskName, kind);
  const depth = checkRange('--depth', options.depth ?? defaults.depth, 1, 1_000_000, { integer: true });
  const coefficients = modelKind(kind).defaultCoefficients(depth);
  const dtype = checkChoice('--dtype', options.dtype, ['float32', 'float64'] as const);
  const backend = requireBackend(backendName, dtype, options.threads);
  const data = loadTask(taskName, { seed, seqLen: options.seqLen, dataDir: options.dataDir, testLimit: options.batch });
  const config: ModelConfig = {
    model: kind,
    depth,
    width: checkRange('--width', options.width ?? defaults.width, 1, 65_536, { integer: true }),
    hidden: checkRange('--hidden', options.hidden ?? defaults.hidden, 1, 65_536, { integer: true }),
    ...(options.layers !== undefined
      ? { layers: checkRange('--layers', options.layers, 1, 64, { integer: true }) }
      : {}),
    alpha: checkRange('--alpha', options.alpha ?? coefficients.alpha, 0, 1),
    beta: checkRange('--beta', options.beta ?? coefficients.beta, 0, 100, { minExclusive: true }),
    filter: checkChoice('--filter', options.filter ?? DEFAULT_FILTER, FILTER_KINDS),
    sharedFilter: options.sharedFilter ?? false,
    inputScale: checkRange('--input-scale', options.inputScale ?? defaults.inputScale, 0, 1e6, { minExclusive: true }),
    seed,
    dtype,
    ...taskShape(data),
  };
  return { model: createModel(config, backend), dataset: data.test, taskName };
}

/** 1.23e-4 for moderate exponents, 10^-20000.3 beyond what a double holds. */
function power(log10: number | null): string {
  if (log10 === null) return '0';
  if (Math.abs(log10) < 300) return Number((10 ** log10).toPrecision(3)).toString();
  return `10^${log10.toFixed(1)}`;
}

function humanSummary(d: Diagnostics, taskName: string): string {
  const lines: string[] = [];
  const g = d.gradients;
  const curve = CURVE_LABELS[g.index];
  lines.push(
    `${describeModel(d.config)} (filter ${d.config.filter}${d.config.sharedFilter ? ', shared' : ''}), ` +
      `${taskName} batch of ${d.data.batch} test samples, loss ${d.loss.toFixed(4)}; backend ${d.backend}`,
  );
  lines.push(
    `gradient norm ||∂loss/∂${curve.symbol}||: ${curve.first} ${power(g.log10_first)}, ${curve.last} ${power(g.log10_last)}, ` +
      `first/last ratio ${power(g.log10_first_last_ratio)}; range ${power(g.log10_min)} .. ${power(g.log10_max)}`,
  );
  if (d.spectrum) {
    const s = d.spectrum;
    const samples =
      s.samples.length === 1 ? `sample ${s.samples[0]}` : `mean log-spectrum of samples 0..${s.samples.length - 1}`;
    lines.push(
      `Jacobian ${s.jacobian} (${s.size}x${s.size}, ${s.factors} factors, ${samples}): singular values ` +
        `${power(s.log10.min)} .. ${power(s.log10.max)}, median ${power(s.log10.median)}, ` +
        `condition number ${power(s.log10.condition)} (log10 min ${s.log10.min?.toFixed(3) ?? '-inf'}, max ${s.log10.max?.toFixed(3) ?? '-inf'})`,
    );
  } else if (d.spectrum_note !== undefined) {
    lines.push(`Jacobian spectrum: ${d.spectrum_note}`);
  }
  const b = d.bounds;
  if (b.applicable) {
    const inside = b.inside === null ? 'not checked (no spectrum)' : b.inside ? 'yes' : 'NO';
    lines.push(
      `bounds alpha ± beta·||W||₂ over ${b.factors} factors: [${power(b.log10_lower_product ?? null)}, ` +
        `${power(b.log10_upper_product ?? null)}]; spectrum inside: ${inside}`,
    );
  } else {
    lines.push(`bounds: ${b.note}`);
  }
  lines.push(
    `time: gradients ${d.seconds.gradients.toFixed(1)} s, spectrum ${d.seconds.spectrum.toFixed(1)} s, ` +
      `bounds ${d.seconds.bounds.toFixed(1)} s, total ${d.seconds.total.toFixed(1)} s`,
  );
  return lines.join('\n') + '\n';
}

async function diagnoseCommand(options: DiagnoseCliOptions): Promise<void> {
  const backendName = checkChoice('--backend', options.backend, BACKEND_NAMES);
  checkRange('--batch', options.batch, 1, 1_000_000, { integer: true });
  checkRange('--samples', options.samples, 1, options.batch, { integer: true });
  if (options.threads !== undefined) checkRange('--threads', options.threads, 1, 256, { integer: true });
  const memory = checkOptionChoice(OPTIONS.memory, options.memory);
  const setup =
    options.checkpoint !== undefined ? fromCheckpoint(options, backendName) : atInitialisation(options, backendName);
  applyMemoryOption(setup.model, options.batch, memory, totalmem());
  let lastReport = performance.now();
  const diagnostics = diagnose(setup.model, setup.dataset, {
    batch: options.batch,
    samples: options.spectrum ? options.samples : 0,
    onPhase: (phase) => {
      if (!options.quiet) process.stderr.write(`diagnose: ${phase}\n`);
    },
    onProgress: (phase, done, total) => {
      const now = performance.now();
      if (options.quiet || (now - lastReport < 5000 && done !== total)) return;
      lastReport = now;
      process.stderr.write(
        `diagnose: ${phase}: ${done.toLocaleString('en-US')}/${total.toLocaleString('en-US')} (${Math.round((100 * done) / total)} %)\n`,
      );
    },
  });
  const summary = humanSummary(diagnostics, setup.taskName);
  if (options.out !== undefined) {
    const written = await writeDiagnosticsOutputs(options.out, diagnostics);
    if (!options.quiet) process.stderr.write(`diagnose: wrote ${written.join(', ')}\n`);
  }
  if (options.json) {
    if (!options.quiet) process.stderr.write(summary);
    printJsonResult(diagnostics as unknown as Record<string, unknown>);
  } else {
    process.stdout.write(summary);
  }
}

export function registerDiagnoseCommand(program: Command): void {
  program
    .command('diagnose')
    .description(
      'gradient norms per layer (step), Jacobian singular spectrum and theory bounds, at initialisation or for a checkpoint',
    )
    .option('--model <kind>', `model at initialisation: ${MODEL_KINDS.join(', ')}`)
    .option(
      '--task <name>',
      `task whose test data to use: ${TASKS.join(', ')} (default mnist; adding for recurrent models)`,
    )
    .addOption(numberOption('--depth <L>', 'feed-forward depth'))
    .addOption(numberOption('--width <N>', 'feed-forward width'))
    .addOption(numberOption('--hidden <N>', 'recurrent units'))
    .addOption(numberOption('--layers <k>', 'stacked recurrent layers, 1..64 (default 1)'))
    .addOption(numberOption('--seq-len <T>', 'adding: sequence length T; copy: blanks L'))
    .addOption(numberOption('--alpha <a>', "weight of the filtered input (default: the model's default at this depth)"))
    .addOption(
      numberOption('--beta <b>', "weight of the nonlinear branch (default: the model's default at this depth)"),
    )
    .option('--filter <kind>', `orthogonal filter: ${FILTER_KINDS.join(', ')} (default ${DEFAULT_FILTER})`)
    .option('--shared-filter', 'one filter shared by all layers')
    .addOption(numberOption('--input-scale <s>', 'recurrent input weights U ~ N(0, s²/D)'))
    .addOption(numberOption('--seed <n>', 'seed of the model at initialisation').default(0))
    .option('--dtype <type>', 'float32 or float64 (the spectrum is always computed in float64)', 'float32')
    .option('--checkpoint <dir>', 'diagnose a saved model (RUN/checkpoint) on its own task')
    .option('--data-dir <dir>', 'directory of the IDX files (image tasks)')
    .addOption(numberOption('--batch <B>', 'test samples in the batch (the first B)').default(32))
    .addOption(
      numberOption('--samples <S>', 'samples whose Jacobian spectrum is computed (mean log-spectrum)').default(1),
    )
    .option('--no-spectrum', 'skip the Jacobian spectrum (gradient norms and bounds only)')
    .addOption(tableOption(OPTIONS.memory))
    .option('--backend <name>', 'auto, native or reference', 'auto')
    .addOption(numberOption('--threads <n>', 'native backend threads'))
    .option('--out <dir>', 'write diagnose.json and the plots (SVG and PNG) here')
    .option('--json', 'print one JSON object with the curves, the spectrum and the bound check', false)
    .option('--quiet', 'no progress output', false)
    .action(diagnoseCommand);
}
