// `roaf bench`: the time of one training step (forward + backward + Adam) of one model configuration on
// random data in the model's shapes — recurrent: D = 1 input per step and K = 10 classes read from the last
// state, like psMNIST; feed-forward: D = 784, K = 10, like MNIST. Median of timed repeats after warm-up,
// with the backend, a matrix-product FLOP estimate and the GFLOPS it achieves. The `bench/` harness runs
// this command once per configuration and compares it with PyTorch and TensorFlow.js.

import { totalmem } from 'node:os';
import type { Command } from 'commander';
import { BACKEND_NAMES, requireBackend } from '../backend/index.js';
import { nativeInfo } from '../backend/native.js';
import { benchmarkTrainingStep } from '../bench/training-step.js';
import type { ModelConfig } from '../models/config.js';
import { createModel, resolveBaseline } from '../models/factory.js';
import { defaultSegmentLength, type ActivationMemory } from '../models/kind.js';
import { applyMemoryOption, chooseMemoryMode } from '../models/memory.js';
import { OPTIONS, checkOptionChoice } from '../options/table.js';
import { MODEL_KINDS, kindsWhere, modelKind, type ModelKind } from '../models/kinds.js';
import { DEFAULT_FILTER, FILTER_KINDS } from '../nn/filter.js';
import { UsageError, checkChoice, checkRange } from '../util/errors.js';
import { numberOption, printJsonResult, tableOption } from './options.js';

interface BenchCliOptions {
  memory: string;
  model?: string;
  hidden?: number;
  layers?: number;
  depth?: number;
  width?: number;
  batch: number;
  seqLen?: number;
  inputDim?: number;
  filter: string;
  backend: string;
  threads?: number;
  dtype: string;
  precision: string;
  repeats: number;
  warmup: number;
  forward: boolean;
  seed: number;
  json: boolean;
}

/** The shapes of the issue's benchmarks: psMNIST for recurrent models, MNIST for feed-forward ones. */
const RECURRENT_DEFAULTS = { hidden: 128, seqLen: 784, inputDim: 1, inputScale: 3 };
const FEED_FORWARD_DEFAULTS = { depth: 1000, width: 64, inputDim: 784, inputScale: 1 };
const CLASSES = 10;

/** Rejects an option that the model kind does not use, naming what to use instead. */
function rejectOption(option: string, value: number | undefined, model: ModelKind, instead: string): void {
  if (value !== undefined) throw new UsageError(`${option} does not apply to --model ${model}; ${instead}`);
}

function modelConfigFrom(options: BenchCliOptions, model: ModelKind): { config: ModelConfig; seqLen: number } {
  const seed = checkRange('--seed', options.seed, 0, 2 ** 32 - 1, { integer: true });
  const dtype = checkChoice('--dtype', options.dtype, ['float32', 'float64'] as const);
  const filter = checkChoice('--filter', options.filter, FILTER_KINDS);
  const kind = modelKind(model);
  const recurrent = kind.recurrent;
  const feedForward = `feed-forward models (${kindsWhere((k) => !k.recurrent).join(', ')})`;
  const recurrentModels = `recurrent models (${kindsWhere((k) => k.recurrent).join(', ')})`;
  if (recurrent) {
    rejectOption('--depth', options.depth, model, `it sets the depth of ${feedForward}`);
    rejectOption('--width', options.width, model, `use --hidden for the units of ${recurrentModels}`);
  } else {
    rejectOption('--hidden', options.hidden, model, `use --width (and --depth) for ${feedForward}`);
    rejectOption('--seq-len', options.seqLen, model, `it sets the steps of ${recurrentModels}`);
    rejectOption('--layers', options.layers, model, `it stacks ${recurrentModels}; use --depth`);
  }
  const defaults = recurrent ? RECURRENT_DEFAULTS : FEED_FORWARD_DEFAULTS;
  const depth = checkRange('--depth', options.depth ?? FEED_FORWARD_DEFAULTS.depth, 1, 1_000_000, { integer: true });
  const config: ModelConfig = {
    model,
    inputDim: checkRange('--input-dim', options.inputDim ?? defaults.inputDim, 1, 1_000_000, { integer: true }),
    outputs: CLASSES,
    readout: 'last',
    depth,
    width: checkRange('--width', options.width ?? FEED_FORWARD_DEFAULTS.width, 1, 65_536, { integer: true }),
    hidden: checkRange('--hidden', options.hidden ?? RECURRENT_DEFAULTS.hidden, 1, 65_536, { integer: true }),
    ...(options.layers !== undefined
      ? { layers: checkRange('--layers', options.layers, 1, 64, { integer: true }) }
      : {}),
    ...kind.defaultCoefficients(depth),
    filter,
    sharedFilter: false,
    inputScale: defaults.inputScale,
    seed,
    dtype,
    ...(checkOptionChoice(OPTIONS.precision, options.precision) === 'bf16' ? { precision: 'bf16' as const } : {}),
  };
  const seqLen = recurrent
    ? checkRange('--seq-len', options.seqLen ?? RECURRENT_DEFAULTS.seqLen, 1, 10_000_000, { integer: true })
    : 1;
  return { config, seqLen };
}

/**
 * Bytes a training step needs, to refuse sizes that cannot fit before allocating them: the activations the
 * kind keeps, and every tensor of the model with, for its parameters, their gradients and Adam's two moments.
 */
function trainingBytes(config: ModelConfig, B: number, T: number, memory: ActivationMemory): number {
  const kind = modelKind(config.model);
  let tensorBytes = 0;
  for (const tensor of kind.tensors(config).tensors) {
    const bytes = tensor.dtype === 'F64' ? 8 : 4;
    tensorBytes += bytes * tensor.shape.reduce((a, b) => a * b, 1) * (tensor.source.kind === 'parameter' ? 4 : 1);
  }
  return kind.activationBytes(config, B, T, memory) + tensorBytes;
}

const MAX_BYTES = 16 * 2 ** 30;

function benchCommand(options: BenchCliOptions): void {
  if (options.model === undefined) throw new UsageError(`--model is required: one of ${MODEL_KINDS.join(', ')}`);
  const model = checkChoice('--model', options.model, MODEL_KINDS);
  const backendName = checkChoice('--backend', options.backend, BACKEND_NAMES);
  if (options.threads !== undefined) checkRange('--threads', options.threads, 1, 256, { integer: true });
  const batch = checkRange('--batch', options.batch, 1, 1_000_000, { integer: true });
  const repeats = checkRange('--repeats', options.repeats, 1, 10_000, { integer: true });
  const warmup = checkRange('--warmup', options.warmup, 1, 10_000, { integer: true });
  const { config, seqLen } = modelConfigFrom(options, model);
  const resolved = resolveBaseline(config);
  const mode = modelKind(model).recurrent
    ? 'full'
    : chooseMemoryMode(resolved, batch, checkOptionChoice(OPTIONS.memory, options.memory), totalmem());
  const memory: ActivationMemory = {
    mode,
    segmentLength: mode === 'checkpoint' ? defaultSegmentLength(config.depth) : config.depth,
  };
  if (modelKind(model).recurrent && options.memory === 'checkpoint') {
    throw new UsageError(
      `--memory checkpoint: activation checkpointing is for feed-forward models (roaf-mlp, mlp, resmlp), not ${model}`,
    );
  }
  const bytes = trainingBytes(resolved, batch, seqLen, memory);
  if (bytes > MAX_BYTES) {
    throw new UsageError(
      `this configuration needs about ${(bytes / 2 ** 30).toFixed(1)} GiB of activations, parameters ` +
        `and optimiser state; the limit is ${MAX_BYTES / 2 ** 30} GiB (reduce --batch, --seq-len, --depth, --layers or the width)`,
    );
  }
  const backend = requireBackend(backendName, config.dtype, options.threads);

  const setupStart = performance.now();
  const network = createModel(config, backend);
  applyMemoryOption(network, batch, mode, totalmem());
  const setupSeconds = (performance.now() - setupStart) / 1000;
  const result = benchmarkTrainingStep(network, {
    batch,
    seqLen,
    warmup,
    repeats,
    forward: options.forward,
    seed: config.seed,
  });

  const recurrent = network.recurrent;
  const shape =
    `${modelKind(model).labels.size(network.config, String)} B=${batch}${recurrent ? ` T=${seqLen}` : ''} ` +
    `D=${config.inputDim} K=${CLASSES}`;
  const threads = backend.name === 'native' ? (nativeInfo()?.threads ?? null) : 1;
  const ms = (value: number) => `${value.toFixed(value < 10 ? 3 : 1)} ms`;
  const lines = [
    `${model} ${shape} (alpha ${config.alpha}, beta ${Number(config.beta.toPrecision(4))}, filter ${config.filter}), ` +
      `${network.params.size.toLocaleString('en-US')} parameters, backend ${network.backend.describe()}`,
    `training step (forward + backward + Adam): median ${ms(result.msPerBatch)}, min ${ms(result.minMs)}, ` +
      `max ${ms(result.maxMs)} over ${repeats} repeats after ${warmup} warm-up step(s)`,
    ...(result.forwardMsPerBatch !== null
      ? [`forward pass with loss (evaluation): median ${ms(result.forwardMsPerBatch)}`]
      : []),
    `matrix-product FLOPs per training step: ${(result.flops.train / 1e9).toFixed(2)} G, ` +
      `${result.gflops.toFixed(1)} GFLOPS achieved; loss ${result.firstLoss.toFixed(4)} -> ${result.lastLoss.toFixed(4)}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
  if (!options.json) return;
  printJsonResult({
    model,
    backend: backend.name,
    description: network.backend.describe(),
    threads,
    dtype: config.dtype,
    precision: config.precision ?? 'float32',
    batch,
    ...(recurrent
      ? { hidden: config.hidden, layers: config.layers ?? 1, seq_len: seqLen }
      : { depth: config.depth, width: config.width, memory: mode }),
    input_dim: config.inputDim,
    classes: CLASSES,
    alpha: config.alpha,
    beta: config.beta,
    filter: config.filter,
    params: network.params.size,
    warmup,
    repeats,
    ms_per_batch: round(result.msPerBatch),
    min_ms: round(result.minMs),
    median_ms: round(result.msPerBatch),
    max_ms: round(result.maxMs),
    samples_ms: result.samplesMs.map(round),
    forward_ms_per_batch: result.forwardMsPerBatch === null ? null : round(result.forwardMsPerBatch),
    flops_per_batch: result.flops.train,
    forward_flops_per_batch: result.flops.forward,
    gflops: round(result.gflops),
    first_loss: result.firstLoss,
    last_loss: result.lastLoss,
    setup_seconds: round(setupSeconds),
  });
}

function round(value: number): number {
  return Number(value.toFixed(3));
}

export function registerBenchCommand(program: Command): void {
  program
    .command('bench')
    .description('time one training step (forward + backward + Adam) of a model on random data')
    .option('--model <kind>', `model: ${MODEL_KINDS.join(', ')} (required)`)
    .addOption(numberOption('--hidden <N>', `recurrent units (default ${RECURRENT_DEFAULTS.hidden})`))
    .addOption(numberOption('--layers <k>', 'stacked recurrent layers, 1..64 (default 1)'))
    .addOption(numberOption('--depth <L>', `feed-forward depth (default ${FEED_FORWARD_DEFAULTS.depth})`))
    .addOption(numberOption('--width <N>', `feed-forward width (default ${FEED_FORWARD_DEFAULTS.width})`))
    .addOption(numberOption('--batch <B>', 'batch size').default(128))
    .addOption(numberOption('--seq-len <T>', `recurrent steps (default ${RECURRENT_DEFAULTS.seqLen}, like psMNIST)`))
    .addOption(numberOption('--input-dim <D>', 'inputs per sample or step (default 1 recurrent, 784 feed-forward)'))
    .option('--filter <kind>', `orthogonal filter: ${FILTER_KINDS.join(', ')}`, DEFAULT_FILTER)
    .addOption(tableOption(OPTIONS.memory))
    .option('--backend <name>', 'auto, native, wasm or reference', 'auto')
    .addOption(numberOption('--threads <k>', 'native backend threads (default: all cores)'))
    .option('--dtype <type>', 'float32 or float64 (float64: reference backend)', 'float32')
    .addOption(tableOption(OPTIONS.precision))
    .addOption(numberOption('--repeats <r>', 'timed training steps; the median is reported').default(5))
    .addOption(numberOption('--warmup <w>', 'untimed steps first').default(2))
    .option('--forward', 'also time the forward pass alone (with the loss, as in evaluation)', false)
    .addOption(numberOption('--seed <n>', 'seed of the weights and the random data').default(0))
    .option('--json', 'end stdout with one JSON object of the results', false)
    .action(benchCommand);
}
