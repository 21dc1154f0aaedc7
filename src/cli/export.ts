// `roaf export`: writes a saved model in a format other runtimes read (today ONNX). Every option and the
// output path are checked before the checkpoint is read, and the file is written under a temporary name
// and renamed, so a mistake or a failure leaves nothing behind.

import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { referenceBackend } from '../backend/reference.js';
import { psmnistPermutation } from '../data/sequential.js';
import { OPSET_VERSION, formatBytes, saveOnnx } from '../export/onnx.js';
import { createModel } from '../models/factory.js';
import { MODEL_KINDS, findModelKind } from '../models/kinds.js';
import type { Model } from '../models/model.js';
import { loadModelTensors, readCheckpointConfig, resolveCheckpointDir } from '../train/checkpoint.js';
import { UsageError, checkChoice } from '../util/errors.js';
import { printJsonResult } from './options.js';

export const EXPORT_FORMATS = ['onnx'] as const;

interface ExportCliOptions {
  checkpoint: string;
  format: string;
  out: string;
  force: boolean;
  json: boolean;
}

/** Refuses an output path that cannot or must not be written, before any work. */
function checkOutput(out: string, force: boolean): void {
  const dir = dirname(out);
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new UsageError(`--out ${out}: directory ${dir} does not exist`);
  if (!existsSync(out)) return;
  if (statSync(out).isDirectory()) throw new UsageError(`--out ${out}: is a directory`);
  if (!force) throw new UsageError(`--out ${out}: file exists (use --force to overwrite it)`);
}

/**
 * The model of a checkpoint, with its weights and filters, on the reference backend (an export computes
 * nothing). Errors name the checkpoint's file.
 */
function loadCheckpointModel(dir: string): { model: Model; task: string } {
  const saved = readCheckpointConfig(dir);
  const configPath = join(resolveCheckpointDir(dir) ?? dir, 'config.json');
  const kind = findModelKind(saved.model.model);
  if (kind === undefined) {
    throw new UsageError(
      `${configPath}: model kind '${String(saved.model.model)}' cannot be exported ` +
        `(this roaf exports ${MODEL_KINDS.join(', ')})`,
    );
  }
  let model: Model;
  try {
    model = createModel(saved.model, referenceBackend);
  } catch (error) {
    if (error instanceof UsageError) throw new UsageError(`${configPath}: ${error.message}`);
    throw error;
  }
  loadModelTensors(dir, model);
  return { model, task: saved.task.name };
}

function exportCommand(options: ExportCliOptions): void {
  checkChoice('--format', options.format, EXPORT_FORMATS);
  checkOutput(options.out, options.force);
  const { model, task } = loadCheckpointModel(options.checkpoint);
  const metadata: Record<string, string> = { 'roaf.task': task };
  if (task === 'psmnist') {
    // The graph takes permuted sequences: step t carries pixel perm[t] (docs/onnx.md).
    metadata['roaf.input_permutation'] = JSON.stringify([...psmnistPermutation()]);
  }
  const saved = saveOnnx(model, options.out, { force: options.force, metadata });
  const input = model.recurrent ? `(T, B, ${model.config.inputDim}) time-major` : `(B, ${model.config.inputDim})`;
  process.stdout.write(
    `wrote ${saved.path}: ${model.config.model}, ONNX opset ${OPSET_VERSION}, input 'input' ${input} -> 'logits'; ` +
      `${formatBytes(saved.fileBytes)} (graph ${formatBytes(saved.graphBytes)}, weights ${formatBytes(saved.weightBytes)})` +
      (saved.dataPath ? `, external data ${saved.dataPath} ${formatBytes(saved.dataBytes)}` : '') +
      '\n',
  );
  if (task === 'psmnist') {
    process.stderr.write(
      'roaf: note: the model reads psMNIST sequences already permuted: step t is pixel perm[t] of ' +
        "`new Random(20251).permutation(784)` (also in the model's metadata, roaf.input_permutation)\n",
    );
  }
  if (options.json) {
    printJsonResult({
      out: saved.path,
      format: options.format,
      model: model.config.model,
      file_bytes: saved.fileBytes,
      graph_bytes: saved.graphBytes,
      weight_bytes: saved.weightBytes,
      data_path: saved.dataPath,
      data_bytes: saved.dataBytes,
    });
  }
}

export function registerExportCommand(program: Command): void {
  program
    .command('export')
    .description('write a saved model for other runtimes: ONNX (opset 17, float32)')
    .requiredOption('--checkpoint <dir>', 'checkpoint directory (RUN/checkpoint)')
    .requiredOption('--out <file>', 'output file, e.g. model.onnx (weights over 2 GB go to <file>.data next to it)')
    .option('--format <name>', `output format: ${EXPORT_FORMATS.join(', ')}`, 'onnx')
    .option('--force', 'overwrite an existing output file', false)
    .option('--json', 'end stdout with one JSON object describing what was written', false)
    .action(exportCommand);
}
