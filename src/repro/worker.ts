// One run of a claim, in its own process (started by src/repro/runs.ts with the job as JSON in argv[2]):
// train it, or continue it from its last checkpoint, with the early-stop rule for baselines; write its
// learning curves, diagnose it after training and at initialisation, and write result.json. Prints one
// JSON line (WorkerReport) on stdout; progress goes to stderr.
//
// Why a process per run: peak resident memory is a process-wide high-water mark, so each run's figure
// must come from its own process; and a 50,000-layer model's memory is returned to the system before
// the next run starts. Ctrl-C or SIGTERM while it trains: the step under way finishes, a checkpoint is
// saved at it, and the process exits 130/143 (SIGKILL ends it at once: the trainer writes checkpoints
// atomically, so the last one is always whole); the next session continues from it exactly.
//
// Test hooks: ROAF_REPRO_KILL_AT_STEP=k makes the process kill itself (SIGKILL) right after step k, like a
// session ended mid-run; ROAF_REPRO_SIGNAL_AT_STEP=k makes it send SIGTERM to its parent (`roaf repro`)
// after step k, like a user stopping the command.

import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { requireBackend, type BackendName } from '../backend/index.js';
import type { Backend } from '../backend/backend.js';
import { createProgress } from '../cli/progress.js';
import { taskShape } from '../cli/train.js';
import type { Dataset, TaskData } from '../data/dataset.js';
import { COPY_SYMBOLS } from '../data/copy.js';
import { loadTask } from '../data/tasks.js';
import { diagnose, type Diagnostics } from '../diagnostics/diagnose.js';
import type { ModelConfig } from '../models/config.js';
import { totalmem } from 'node:os';
import { createModel } from '../models/factory.js';
import { applyMemoryOption } from '../models/memory.js';
import type { Model } from '../models/model.js';
import { lossPoints, qualityPoints, writeDiagnosticsOutputs } from '../report/figures.js';
import { learningCurveSpec, writeFigure } from '../report/plots.js';
import {
  loadModelTensors,
  loadOptimizerState,
  readCheckpointConfig,
  resolveCheckpointDir,
  type CheckpointConfig,
  type Progress,
} from '../train/checkpoint.js';
import { readMetrics, type MetricsRecord } from '../train/metrics.js';
import { Optimizer } from '../train/optimizer.js';
import { BatchBuffers, DivergedError, peakRssBytes, runTrainingAsync } from '../train/trainer.js';
import { UsageError } from '../util/errors.js';
import type { Goal } from './claims.js';
import { stuckAtChance, type ChanceRule } from './early-stop.js';
import { MachineRecord, gitCommit, machineInfo } from './machine.js';
import type { ExpectedConfig } from './resolve.js';
import {
  PROGRESS_FILE,
  RESULT_FILE,
  RESULT_FORMAT,
  RESULT_VERSION,
  firstReaching,
  readDiagnosticsFile,
  largestPeakRss,
  perEpochFigures,
  readResult,
  summarizeDiagnostics,
  toFigures,
  writeResult,
  type DiagnosticsSummary,
  type ReproResult,
  type StoppedEarly,
} from './result.js';

export interface WorkerJob {
  claim: string;
  run: string;
  /** The run directory. */
  dir: string;
  quick: boolean;
  baseline: boolean;
  expected: ExpectedConfig;
  stopAtChance: boolean;
  goal: Goal | null;
  backend: BackendName;
  threads: number | null;
  quiet: boolean;
  command: string;
  trainCommand: string;
  /** Diagnostics: the first `batch` test samples; the Jacobian spectrum of the first `samples`. */
  diagnose: { batch: number; samples: number };
  /** `roaf train --memory` of the run (default auto). */
  memory?: 'full' | 'checkpoint';
  /** `roaf repro --rediagnose`: diagnose the finished run again from its checkpoint; train nothing. */
  rediagnose?: boolean;
}

export interface WorkerReport {
  result: ReproResult;
}

/** The environment variable of the test hook (see the file header). */
export const KILL_AT_STEP_ENV = 'ROAF_REPRO_KILL_AT_STEP';
/** Test hook: after this step the worker sends SIGTERM to `roaf repro`, which passes it back. */
export const SIGNAL_AT_STEP_ENV = 'ROAF_REPRO_SIGNAL_AT_STEP';

/** Exit code of a worker stopped by a signal after saving its checkpoint: 128 + the signal's number. */
const SIGNAL_EXIT_CODE = { SIGINT: 130, SIGTERM: 143 } as const;

/**
 * SIGINT and SIGTERM while a run trains: the first asks the trainer to stop after the current step (it saves
 * a checkpoint there); later ones are ignored until then. Ctrl-C reaches this process twice at once (from
 * the terminal, to the whole process group, and passed on by `roaf repro`), so a second signal cannot mean
 * "quit now" here; SIGKILL does (the previous checkpoint is whole).
 */
function stopOnSignal(): { signal: () => 'SIGINT' | 'SIGTERM' | null; dispose: () => void } {
  let received: 'SIGINT' | 'SIGTERM' | null = null;
  const handler = (signal: NodeJS.Signals) => {
    received ??= signal === 'SIGTERM' ? 'SIGTERM' : 'SIGINT';
  };
  const dispose = () => {
    process.removeListener('SIGINT', handler);
    process.removeListener('SIGTERM', handler);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return { signal: () => received, dispose };
}

/** A run stopped by a signal after saving its checkpoint at `step`. */
class RunInterrupted extends Error {
  constructor(
    readonly signal: 'SIGINT' | 'SIGTERM',
    readonly step: number,
  ) {
    super(`${signal}: stopped at step ${step}, checkpoint saved there`);
  }
}

/** Accuracy on the ten recalled symbols of the copy task: the last ten steps of every test sequence. */
export function copyRecallAccuracy(model: Model, dataset: Dataset, batch: number): number {
  const buffers = new BatchBuffers(dataset, model, Math.min(batch, dataset.count));
  const indices = new Int32Array(buffers.capacity);
  const T = dataset.steps;
  const K = model.config.outputs;
  let correct = 0;
  for (let start = 0; start < dataset.count; start += buffers.capacity) {
    const B = Math.min(buffers.capacity, dataset.count - start);
    for (let i = 0; i < B; i++) indices[i] = start + i;
    const { inputs, targets } = buffers.fill(indices.subarray(0, B));
    const outputs = model.forward(B, T, inputs); // (T·B, K), row t·B + b
    const labels = targets.labels as Int32Array; // (T, B)
    for (let t = T - COPY_SYMBOLS; t < T; t++) {
      for (let b = 0; b < B; b++) {
        const row = (t * B + b) * K;
        let best = 0;
        for (let k = 1; k < K; k++) if (outputs[row + k]! > outputs[row + best]!) best = k;
        if (best === labels[t * B + b]) correct += 1;
      }
    }
  }
  return correct / (dataset.count * COPY_SYMBOLS);
}

interface TrainingOutcome {
  stopped: StoppedEarly | null;
  sessionPeak: number | null;
  params: number;
  recall?: number;
  finalDiagnostics: DiagnosticsSummary | null;
}

function checkpointProgress(saved: CheckpointConfig): Progress {
  return { epoch: saved.epoch, batchInEpoch: saved.batch_in_epoch, step: saved.step, seconds: saved.seconds };
}

function say(job: WorkerJob, line: string): void {
  if (!job.quiet) process.stderr.write(`${job.claim}/${job.run}: ${line}\n`);
}

/** Applies the run's activation-memory mode to `model` for batches of B (the diagnostics' models too). */
function withMemory<M extends Model>(job: WorkerJob, model: M, B: number): M {
  applyMemoryOption(model, B, job.memory ?? 'auto', totalmem());
  return model;
}

async function diagnoseInto(job: WorkerJob, model: Model, data: TaskData, dir: string): Promise<Diagnostics> {
  const d = diagnose(model, data.test, { batch: job.diagnose.batch, samples: job.diagnose.samples });
  await writeDiagnosticsOutputs(dir, d);
  return d;
}

/** Trains (or continues) the run, then writes its learning curves and diagnoses the trained model. */
async function trainRun(
  job: WorkerJob,
  backend: Backend,
  data: TaskData,
  config: ModelConfig,
): Promise<TrainingOutcome> {
  const { expected, dir } = job;
  const { training } = expected;
  const checkpointDir = join(dir, 'checkpoint');
  const saved = resolveCheckpointDir(checkpointDir) !== null ? readCheckpointConfig(checkpointDir) : null;
  const model = createModel(config, backend);
  withMemory(job, model, training.batch);
  const optimizer = new Optimizer(training.optimizer, model.params, backend);
  if (saved) {
    loadModelTensors(checkpointDir, model);
    loadOptimizerState(checkpointDir, optimizer);
  }
  const metricsPath = join(dir, 'metrics.jsonl');
  const history: MetricsRecord[] =
    saved && existsSync(metricsPath) ? readMetrics(metricsPath).records.filter((r) => r.step <= saved.step) : [];
  const batch = Math.min(training.batch, data.train.count);
  const batchesPerEpoch = Math.ceil(data.train.count / batch);
  const budget = batchesPerEpoch * training.epochs;
  const target = data.train.target;
  const chanceRule: ChanceRule | null =
    job.baseline && job.stopAtChance && target.kind === 'class'
      ? { budgetSteps: budget, classes: target.classes }
      : null;
  const fromStep = saved?.step ?? 0;
  const done = (saved?.epoch ?? 0) >= training.epochs;
  // A baseline the rule ended in an earlier session stays ended: the rule reads only the records.
  let stopped: StoppedEarly | null = chanceRule && !done ? stuckAtChance(history, chanceRule) : null;
  const trained = !done && stopped === null;
  let sessionPeak: number | null = null;
  if (trained) {
    say(
      job,
      `${config.model} on ${expected.task.name}, ${model.params.size.toLocaleString('en-US')} parameters, backend ${backend.describe()}, ` +
        `${saved ? `continuing at step ${fromStep} of ${budget}` : `${budget} steps`} in ${dir}`,
    );
    const killAt = Number(process.env[KILL_AT_STEP_ENV] ?? NaN);
    const signalAt = Number(process.env[SIGNAL_AT_STEP_ENV] ?? NaN);
    const interrupt = stopOnSignal();
    const bar = createProgress(budget, `${job.claim}/${job.run}`, { quiet: job.quiet, startStep: fromStep });
    bar.update(fromStep, { loss: NaN, rate: 0, epoch: saved?.epoch ?? 0 });
    let ruling: StoppedEarly | null = null;
    try {
      const result = await runTrainingAsync({
        model,
        train: data.train,
        test: data.test,
        task: expected.task,
        training,
        outDir: dir,
        optimizer,
        progress: saved ? checkpointProgress(saved) : undefined,
        stopRequested: () => interrupt.signal() !== null,
        callbacks: {
          onStep: (event) => {
            bar.update(event.step, { loss: event.loss, rate: event.samplesPerSecond, epoch: event.epoch });
            if (event.step === killAt) process.kill(process.pid, 'SIGKILL');
            if (event.step === signalAt) process.kill(process.ppid, 'SIGTERM');
          },
          onEvaluation: (record) => {
            history.push(record);
            writeResult(
              dir,
              buildResult(job, {
                status: 'in-progress',
                config: { model: config, task: expected.task, training },
                params: model.params.size,
                epochsDone: Math.floor(record.epoch),
                steps: record.step,
                stepsBudget: budget,
                records: history,
                wallSeconds: record.seconds,
                peakRssBytes: largestPeakRss(history),
                stopped: null,
                diagnostics: { init: null, final: null },
                backend,
              }),
              PROGRESS_FILE,
            );
            const figure =
              record.test_accuracy !== undefined
                ? `test accuracy ${(record.test_accuracy * 100).toFixed(2)} %`
                : `test MSE ${record.test_mse?.toExponential(3)}`;
            bar.log(
              `${job.claim}/${job.run}: epoch ${record.epoch} step ${record.step}: ${figure}, test loss ${record.test_loss.toFixed(4)} (${record.seconds.toFixed(1)} s)`,
            );
            ruling = chanceRule ? stuckAtChance(history, chanceRule) : null;
            return ruling ? 'stop' : 'continue';
          },
        },
      });
      const signal = interrupt.signal();
      if (result.interrupted && signal !== null) {
        bar.stop();
        throw new RunInterrupted(signal, result.progress.step);
      }
      // The rule firing at the very last evaluation stops nothing: the run is complete.
      stopped = result.stopped ? ruling : null;
    } catch (error) {
      interrupt.dispose();
      if (!(error instanceof DivergedError)) throw error;
      stopped = {
        reason: 'diverged',
        step: error.step,
        epoch: Number((error.step / batchesPerEpoch).toFixed(4)),
        detail: error.message,
      };
      // The parameters now hold non-finite values: diagnose the last checkpoint's instead.
      // A checkpoint written before the divergence was noticed may hold non-finite weights itself, which
      // loading refuses: then the parameters stay as they are, as before loads were checked.
      try {
        if (resolveCheckpointDir(checkpointDir) !== null) loadModelTensors(checkpointDir, model);
      } catch (reloadError) {
        if (!(reloadError instanceof UsageError)) throw reloadError;
      }
    }
    interrupt.dispose();
    bar.stop();
    sessionPeak = peakRssBytes();
  }
  if (stopped) say(job, `stopped early at step ${stopped.step}: ${stopped.detail}`);

  const records = existsSync(metricsPath) ? readMetrics(metricsPath).records : [];
  await writeLearningCurves(job, records);
  const usable = resolveCheckpointDir(checkpointDir) !== null;
  const recall =
    expected.task.name === 'copy' && usable ? copyRecallAccuracy(model, data.test, training.batch) : undefined;
  let finalDiagnostics: DiagnosticsSummary | null = null;
  if (usable) {
    say(job, 'diagnosing the trained model');
    finalDiagnostics = summarizeDiagnostics(await diagnoseInto(job, model, data, join(dir, 'diagnose-final')));
  }
  return {
    stopped,
    sessionPeak,
    params: model.params.size,
    finalDiagnostics,
    ...(recall !== undefined ? { recall } : {}),
  };
}

async function writeLearningCurves(job: WorkerJob, records: MetricsRecord[]): Promise<void> {
  if (records.length === 0) return;
  const quality = qualityPoints(job.run, records);
  await writeFigure(
    job.dir,
    quality.metric === 'accuracy' ? 'test-accuracy' : 'test-mse',
    learningCurveSpec(quality.points, {
      title: `${job.claim}/${job.run}: test ${quality.metric === 'accuracy' ? 'accuracy' : 'MSE'}`,
      x: 'epoch',
      y: quality.metric === 'accuracy' ? 'test accuracy' : 'test MSE',
      logY: quality.metric === 'mse',
    }),
  );
  await writeFigure(
    job.dir,
    'loss',
    learningCurveSpec(lossPoints(job.run, records), {
      title: `${job.claim}/${job.run}: training and test loss`,
      x: 'step',
      y: 'loss',
      logY: true,
    }),
  );
}

/** What result.json and progress.json are made of (see ReproResult for each field). */
interface ResultParts {
  status: ReproResult['status'];
  config: ReproResult['config'];
  params: number;
  epochsDone: number;
  steps: number;
  stepsBudget: number;
  records: readonly MetricsRecord[];
  wallSeconds: number;
  peakRssBytes: number | null;
  stopped: StoppedEarly | null;
  diagnostics: ReproResult['diagnostics'];
  backend: Backend;
  recall?: number;
}

// The machine this process runs on: measured when the run starts, then again at most once a minute as
// progress.json is written at the evaluations, the best FMA peak kept (MachineRecord).
let machine: MachineRecord | null = null;

function buildResult(job: WorkerJob, parts: ResultParts): ReproResult {
  const { records } = parts;
  const last = records.length > 0 ? records[records.length - 1]! : null;
  machine ??= new MachineRecord(() => machineInfo(parts.backend));
  return {
    format: RESULT_FORMAT,
    version: RESULT_VERSION,
    claim: job.claim,
    run: job.run,
    quick: job.quick,
    baseline: job.baseline,
    status: parts.status,
    model: parts.config.model.model,
    task: job.expected.task.name,
    config: parts.config,
    params: parts.params,
    epochs: job.expected.training.epochs,
    epochs_done: parts.epochsDone,
    steps: parts.steps,
    steps_budget: parts.stepsBudget,
    per_epoch: perEpochFigures(records),
    final: last ? toFigures(last) : null,
    evaluations: records.length,
    goal:
      job.goal && records.some((r) => typeof r[job.goal!.metric] === 'number')
        ? { ...job.goal, reached: firstReaching(records, job.goal) }
        : null,
    ...(parts.recall !== undefined ? { recall_accuracy: parts.recall } : {}),
    wall_seconds: Number(parts.wallSeconds.toFixed(3)),
    peak_rss_bytes: parts.peakRssBytes,
    stopped_early: parts.stopped,
    diagnostics: parts.diagnostics,
    backend: parts.backend.describe(),
    machine: machine.current(),
    git_commit: gitCommit(),
    command: job.command,
    train_command: job.trainCommand,
    finished_at: new Date().toISOString(),
  };
}

async function runJob(job: WorkerJob): Promise<WorkerReport> {
  const { expected, dir } = job;
  const backend = requireBackend(job.backend, expected.model.dtype, job.threads ?? undefined);
  machine = new MachineRecord(() => machineInfo(backend));
  machine.current(); // before training: the cores are most likely idle now
  const data = loadTask(expected.task.name, { ...expected.task, seed: expected.training.seed });
  const config: ModelConfig = { ...expected.model, ...taskShape(data) };
  mkdirSync(dir, { recursive: true });
  if (job.rediagnose) return rediagnoseRun(job, backend, data, config);
  const outcome = await trainRun(job, backend, data, config);

  // At initialisation: the same seed builds the same model, so this can come after training (the
  // trained model is gone by now) and is computed once.
  const initDir = join(dir, 'diagnose-init');
  let init = readDiagnosticsFile(join(initDir, 'diagnose.json'));
  if (init === null) {
    say(job, 'diagnosing the model at initialisation');
    init = await diagnoseInto(job, withMemory(job, createModel(config, backend), job.diagnose.batch), data, initDir);
  }
  const initDiagnostics = summarizeDiagnostics(init);

  const checkpointDir = join(dir, 'checkpoint');
  const saved = resolveCheckpointDir(checkpointDir) !== null ? readCheckpointConfig(checkpointDir) : null;
  const metricsPath = join(dir, 'metrics.jsonl');
  const records = existsSync(metricsPath) ? readMetrics(metricsPath).records : [];
  const batch = Math.min(expected.training.batch, data.train.count);
  const stepsBudget = Math.ceil(data.train.count / batch) * expected.training.epochs;
  const result = buildResult(job, {
    status: outcome.stopped ? 'stopped-early' : 'finished',
    config: saved
      ? { model: saved.model, task: saved.task, training: saved.training }
      : { model: config, task: expected.task, training: expected.training },
    params: outcome.params,
    epochsDone: saved?.epoch ?? 0,
    steps: saved?.step ?? 0,
    stepsBudget,
    records,
    wallSeconds: saved?.seconds ?? 0,
    peakRssBytes: largestPeakRss(records, outcome.sessionPeak),
    stopped: outcome.stopped,
    diagnostics: { init: initDiagnostics, final: outcome.finalDiagnostics },
    backend,
    ...(outcome.recall !== undefined ? { recall: outcome.recall } : {}),
  });
  writeResult(dir, result);
  rmSync(join(dir, PROGRESS_FILE), { force: true });
  return { result };
}

/**
 * `roaf repro --rediagnose`: a finished run's two diagnoses measured again by this version of roaf, after
 * training from its checkpoint and at initialisation from its seed. Its metrics, curves and figures stay
 * as they were; result.json gets the new summaries and a `rediagnosed` record of when and how.
 */
async function rediagnoseRun(
  job: WorkerJob,
  backend: Backend,
  data: TaskData,
  config: ModelConfig,
): Promise<WorkerReport> {
  const { dir } = job;
  const checkpointDir = join(dir, 'checkpoint');
  const previous = readResult(dir);
  if (previous === null || resolveCheckpointDir(checkpointDir) === null)
    throw new UsageError(`${dir}: --rediagnose needs a finished run (${RESULT_FILE}) with its checkpoint`);
  const B = job.diagnose.batch;
  const trained = withMemory(job, createModel(config, backend), B);
  loadModelTensors(checkpointDir, trained);
  say(job, 'diagnosing the trained model again');
  const final = summarizeDiagnostics(await diagnoseInto(job, trained, data, join(dir, 'diagnose-final')));
  say(job, 'diagnosing the model at initialisation again');
  const initial = withMemory(job, createModel(config, backend), B);
  const init = summarizeDiagnostics(await diagnoseInto(job, initial, data, join(dir, 'diagnose-init')));
  machine ??= new MachineRecord(() => machineInfo(backend));
  const result: ReproResult = {
    ...previous,
    diagnostics: { init, final },
    rediagnosed: {
      git_commit: gitCommit(),
      backend: backend.describe(),
      machine: machine.current(),
      at: new Date().toISOString(),
    },
  };
  writeResult(dir, result);
  return { result };
}

async function main(): Promise<number> {
  const job = JSON.parse(process.argv[2] ?? 'null') as WorkerJob | null;
  if (job === null) {
    process.stderr.write(
      'roaf repro worker: expects the job as JSON in its first argument (it is started by roaf repro)\n',
    );
    return 2;
  }
  try {
    process.stdout.write(JSON.stringify(await runJob(job)) + '\n');
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`roaf: ${job.claim}/${job.run}: ${error.message}\n`);
      return 2;
    }
    if (error instanceof RunInterrupted) {
      process.stderr.write(`roaf: ${job.claim}/${job.run}: ${error.message}\n`);
      return SIGNAL_EXIT_CODE[error.signal];
    }
    throw error;
  }
}

process.exitCode = await main();
