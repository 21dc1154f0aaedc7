// The options table is the one source of option facts: the generated docs and README table match it,
// `roaf train`/`roaf eval` are built from it, and the library's validation enforces exactly its ranges,
// with the same messages as the command line.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Command, type Option } from 'commander';
import { loadTask } from '../src/data/tasks.js';
import { modelConfig } from '../src/models/factory.js';
import { validateModelConfig, type ModelConfig } from '../src/models/config.js';
import { registerTrainCommands } from '../src/cli/train.js';
import { renderOptionsDoc, renderReadmeTable, replaceReadmeTable } from '../src/options/markdown.js';
import {
  OPTIONS,
  checkOption,
  optionsFor,
  type CommandName,
  type NumberOptionSpec,
  type OptionName,
} from '../src/options/table.js';
import { DEFAULT_OPTIMIZER } from '../src/train/optimizer.js';
import type { TrainingConfig } from '../src/train/checkpoint.js';
import { validateTrainingConfig } from '../src/train/validate.js';
import { UsageError } from '../src/util/errors.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('generated documents', () => {
  it('docs/options.md is what the table renders (run npm run docs:options after editing the table)', () => {
    assert.equal(readFileSync(join(root, 'docs', 'options.md'), 'utf8'), renderOptionsDoc());
  });

  it("the README's options table is what the table renders", () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    assert.ok(readme.includes(renderReadmeTable()), 'README.md: options table out of date (npm run docs:options)');
    assert.equal(replaceReadmeTable(readme), readme);
  });

  it('every option of the table appears in docs/options.md under each of its commands', () => {
    const doc = renderOptionsDoc();
    for (const command of ['train', 'eval'] as const) {
      const section = doc.slice(doc.indexOf(`## \`roaf ${command}\``)).split('\n## ')[0]!;
      for (const [, spec] of optionsFor(command))
        assert.ok(section.includes(`\`${spec.flag}`), `${spec.flag} in roaf ${command}`);
    }
  });
});

describe('the command line is built from the table', () => {
  const program = new Command();
  registerTrainCommands(program);
  for (const command of ['train', 'eval'] as const satisfies readonly CommandName[]) {
    it(`roaf ${command}: the same options, in table order, with the table's defaults`, () => {
      const cli = program.commands.find((c) => c.name() === command)!;
      const options: readonly Option[] = cli.options;
      const expected = optionsFor(command);
      assert.deepEqual(
        options.map((o) => o.long),
        expected.map(([, spec]) => spec.flag),
      );
      for (const [name, spec] of expected) {
        const option = options.find((o) => o.long === spec.flag)!;
        assert.equal(option.attributeName(), name, `${spec.flag} parses into options.${name}`);
        assert.equal(option.defaultValue, spec.default, `${spec.flag} default`);
        assert.equal(option.mandatory, spec.required === true, `${spec.flag} required`);
      }
    });
  }
});

/** A valid model config: the fields the table covers are then varied one at a time. */
const baseModel: ModelConfig = modelConfig({ model: 'roaf-mlp', inputDim: 4, outputs: 2 });
const baseTraining: TrainingConfig = {
  epochs: 1,
  batch: 8,
  optimizer: { ...DEFAULT_OPTIMIZER },
  lrSchedule: 'constant',
  clip: 0,
  evalEvery: 0,
  checkpointEvery: 0,
  logGradients: false,
  seed: 0,
};

/** Each number option the library validates, and how to put a value into what it validates. */
const LIBRARY_CHECKS: [OptionName, (value: number) => void][] = [
  ['depth', (v) => validateModelConfig({ ...baseModel, depth: v })],
  ['width', (v) => validateModelConfig({ ...baseModel, width: v })],
  ['hidden', (v) => validateModelConfig({ ...baseModel, hidden: v })],
  ['alpha', (v) => validateModelConfig({ ...baseModel, alpha: v })],
  ['beta', (v) => validateModelConfig({ ...baseModel, beta: v })],
  ['inputScale', (v) => validateModelConfig({ ...baseModel, inputScale: v })],
  ['recurrentScale', (v) => validateModelConfig({ ...baseModel, recurrentScale: v })],
  ['biasInit', (v) => validateModelConfig({ ...baseModel, biasInit: v })],
  ['forgetBias', (v) => validateModelConfig({ ...baseModel, model: 'lstm', forgetBias: v })],
  ['seed', (v) => validateModelConfig({ ...baseModel, seed: v })],
  ['epochs', (v) => validateTrainingConfig({ ...baseTraining, epochs: v })],
  ['batch', (v) => validateTrainingConfig({ ...baseTraining, batch: v })],
  ['lr', (v) => validateTrainingConfig({ ...baseTraining, optimizer: { ...DEFAULT_OPTIMIZER, lr: v } })],
  ['momentum', (v) => validateTrainingConfig({ ...baseTraining, optimizer: { ...DEFAULT_OPTIMIZER, momentum: v } })],
  [
    'weightDecay',
    (v) => validateTrainingConfig({ ...baseTraining, optimizer: { ...DEFAULT_OPTIMIZER, weightDecay: v } }),
  ],
  ['clip', (v) => validateTrainingConfig({ ...baseTraining, clip: v })],
  ['evalEvery', (v) => validateTrainingConfig({ ...baseTraining, evalEvery: v })],
  ['checkpointEvery', (v) => validateTrainingConfig({ ...baseTraining, checkpointEvery: v })],
  ['trainLimit', (v) => loadTask('copy', { seed: 0, seqLen: 1, trainSize: 4, testSize: 4, trainLimit: v })],
  ['testLimit', (v) => loadTask('copy', { seed: 0, seqLen: 1, trainSize: 4, testSize: 4, testLimit: v })],
  ['trainSize', (v) => loadTask('copy', { seed: 0, seqLen: 1, trainSize: v, testSize: 4 })],
  ['testSize', (v) => loadTask('copy', { seed: 0, seqLen: 1, trainSize: 4, testSize: v })],
  ['seqLen', (v) => loadTask('copy', { seed: 0, seqLen: v, trainSize: 4, testSize: 4 })],
];

/** Values just outside a number option's range (and a non-integer for integer options). */
function outside(spec: NumberOptionSpec): number[] {
  const values = [spec.minExclusive ? spec.min : spec.min - (spec.type === 'integer' ? 1 : 1e-9), NaN];
  if (spec.max !== Infinity) values.push(spec.type === 'integer' ? spec.max + 1 : spec.max * (1 + 1e-9) + 1e-12);
  if (spec.type === 'integer') values.push(spec.min + 0.5);
  return values;
}

/** Values at the edges of the range, which must pass. */
function inside(spec: NumberOptionSpec): number[] {
  const low = spec.minExclusive ? spec.min + (spec.type === 'integer' ? 1 : 1e-9) : spec.min;
  // sizes at the top of an unbounded range would allocate: the low edge is enough for those
  return spec.max === Infinity || spec.max > 1e5 ? [low] : [low, spec.max];
}

describe("the library enforces exactly the table's ranges", () => {
  for (const [name, put] of LIBRARY_CHECKS) {
    const spec = OPTIONS[name] as NumberOptionSpec;
    it(`${spec.flag}: rejects values outside its range with the CLI's message, accepts its edges`, () => {
      for (const value of outside(spec)) {
        assert.throws(
          () => put(value),
          (error: unknown) => {
            assert.ok(error instanceof UsageError, `a UsageError for ${spec.flag} ${value}`);
            assert.equal(
              error.message,
              messageOf(() => checkOption(spec, value)),
            );
            assert.ok(error.message.startsWith(`${spec.flag} must be `), error.message);
            return true;
          },
        );
      }
      for (const value of inside(spec)) put(value);
    });
  }

  it('messages are the ones users have always seen', () => {
    assert.equal(
      messageOf(() => validateModelConfig({ ...baseModel, depth: 0 })),
      '--depth must be an integer >= 1 and <= 1000000, got 0',
    );
    assert.equal(
      messageOf(() => validateModelConfig({ ...baseModel, alpha: 1.5 })),
      '--alpha must be a number >= 0 and <= 1, got 1.5',
    );
    assert.equal(
      messageOf(() => validateTrainingConfig({ ...baseTraining, optimizer: { ...DEFAULT_OPTIMIZER, lr: -1 } })),
      '--lr must be a number > 0 and <= 10, got -1',
    );
    assert.equal(
      messageOf(() => loadTask('adding', { seed: 0, seqLen: 1 })),
      '--seq-len must be an integer >= 2 and <= 10000000, got 1',
    );
    assert.equal(
      messageOf(() => validateModelConfig({ ...baseModel, model: 'transformer' as ModelConfig['model'] })),
      "--model must be one of roaf-mlp, mlp, resmlp, roaf-rnn, rnn, lstm, gru, got 'transformer'",
    );
  });

  it('mlp and rnn fix beta themselves, so their configs may carry beta = 0', () => {
    validateModelConfig({ ...baseModel, model: 'mlp', beta: 0 });
    assert.throws(
      () => validateModelConfig({ ...baseModel, model: 'roaf-mlp', beta: 0 }),
      /--beta must be a number > 0/,
    );
  });

  it('choices come from the modules that define them', () => {
    assert.throws(
      () => validateTrainingConfig({ ...baseTraining, optimizer: { ...DEFAULT_OPTIMIZER, kind: 'lbfgs' as 'adam' } }),
      /--optimizer must be one of adam, sgd, got 'lbfgs'/,
    );
    assert.throws(
      () => validateTrainingConfig({ ...baseTraining, lrSchedule: 'step' as 'constant' }),
      /--lr-schedule must be one of constant, cosine, got 'step'/,
    );
    assert.throws(
      () => validateModelConfig({ ...baseModel, filter: 'dct' as 'haar' }),
      /--filter must be one of haar, qr-uniform, permutation, cycle, identity, got 'dct'/,
    );
  });
});

function messageOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('expected an error');
}
