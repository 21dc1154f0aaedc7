// The model-kind registry: the seven kinds by name, each declaring in one place what depends on it (see
// kind.ts for what a kind declares, docs/model-kinds.md for how to add one). Factory, checkpoint,
// diagnostics, report, bench and CLI ask `modelKind(name)` instead of switching on a name or a class.
//
// The kinds come in families that share a model class: feed-forward (RoafMLP: roaf-mlp and its two
// baselines) and recurrent (RecurrentModel with a cell: ROAF, LSTM, GRU).

import { checkChoice } from '../util/errors.js';
import type { ModelKindSpec } from './kind.js';
import { feedForwardKind, defaultMlpBeta } from './kinds/feed-forward.js';
import { gruCellKind } from './kinds/gru.js';
import { lstmCellKind } from './kinds/lstm.js';
import { recurrentKind } from './kinds/recurrent.js';
import { roafCellKind } from './kinds/roaf-cell.js';
import type { Model } from './model.js';

/** Every model kind's name, in the order help texts list them. */
export const MODEL_KINDS = ['roaf-mlp', 'mlp', 'resmlp', 'roaf-rnn', 'rnn', 'lstm', 'gru'] as const;
export type ModelKind = (typeof MODEL_KINDS)[number];

/** Baselines without a filter: alpha = 0 turns the ROAF map into the plain tanh layer (beta = 1). */
const NO_FILTER = { alpha: 0, beta: 1 };
const noFilter = (): { alpha: number; beta: number } => ({ ...NO_FILTER });

const KINDS: { readonly [K in ModelKind]: ModelKindSpec } = {
  'roaf-mlp': feedForwardKind({
    name: 'roaf-mlp',
    summary: 'deep MLP of ROAF layers x_{l+1} = alpha O_l x_l + beta tanh(W_l x_l + b_l)',
    fixed: {},
    // alpha = 1 with a small beta keeps the gradient norm flat at any depth (docs/defaults.md)
    defaultCoefficients: (depth) => ({ alpha: 1, beta: defaultMlpBeta(depth) }),
    tunable: true,
  }),
  mlp: feedForwardKind({
    name: 'mlp',
    summary: 'the vanilla deep tanh MLP: roaf-mlp with alpha = 0',
    fixed: NO_FILTER,
    defaultCoefficients: noFilter,
    tunable: false,
  }),
  resmlp: feedForwardKind({
    name: 'resmlp',
    summary: 'the un-normalised residual MLP: roaf-mlp with O = I and alpha = beta = 1',
    fixed: { alpha: 1, beta: 1, filter: 'identity', sharedFilter: true },
    defaultCoefficients: noFilter,
    tunable: false,
  }),
  'roaf-rnn': recurrentKind({
    name: 'roaf-rnn',
    summary: 'ROAF RNN, h_t = alpha O h_{t-1} + beta tanh(W h_{t-1} + U x_t + b)',
    fixed: {},
    // alpha = 1, beta = 0.1: 0.01 learns too slowly, 0.3 explodes (docs/defaults.md)
    defaultCoefficients: () => ({ alpha: 1, beta: 0.1 }),
    tunable: true,
    cell: roafCellKind,
  }),
  rnn: recurrentKind({
    name: 'rnn',
    summary: 'the vanilla Elman RNN: roaf-rnn with alpha = 0',
    fixed: NO_FILTER,
    defaultCoefficients: noFilter,
    tunable: false,
    cell: roafCellKind,
  }),
  lstm: recurrentKind({
    name: 'lstm',
    summary: "LSTM (PyTorch's equations and gate order)",
    fixed: {},
    defaultCoefficients: noFilter,
    tunable: false,
    cell: lstmCellKind,
  }),
  gru: recurrentKind({
    name: 'gru',
    summary: "GRU (PyTorch's equations and gate order)",
    fixed: {},
    defaultCoefficients: noFilter,
    tunable: false,
    cell: gruCellKind,
  }),
};

/** The kind named `name`; an unknown name is a UsageError naming --model and the kinds there are. */
export function modelKind(name: string): ModelKindSpec {
  return KINDS[checkChoice('--model', name, MODEL_KINDS)];
}

/** The kind named `name`, or undefined (reports read names from files, which may come from another version). */
export function findModelKind(name: unknown): ModelKindSpec | undefined {
  return (MODEL_KINDS as readonly unknown[]).includes(name) ? KINDS[name as ModelKind] : undefined;
}

/** The kind of a model built by createModel. */
export function modelKindOf(model: Model): ModelKindSpec {
  return modelKind(model.config.model);
}

/** Whether a kind's inputs are sequences. */
export function isRecurrent(name: ModelKind): boolean {
  return KINDS[name].recurrent;
}

/** The kinds with a property, e.g. the recurrent ones, for help texts and error messages. */
export function kindsWhere(test: (kind: ModelKindSpec) => boolean): ModelKind[] {
  return MODEL_KINDS.filter((name) => test(KINDS[name]));
}
