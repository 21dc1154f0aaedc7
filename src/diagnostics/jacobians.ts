// The per-layer (per-step) Jacobians of a model for one sample, in float64, as the model's kind declares
// them (models/kinds/): ROAF layers and cells J = alpha O + beta D W; GRU ∂h_t/∂h_{t-1}; LSTM
// ∂(h_t, c_t)/∂(h_{t-1}, c_{t-1}). The visitor receives each Jacobian row-major in a buffer it may
// overwrite (ProductSpectrum.push does).

import { isNotApplicable, type JacobianChain } from '../models/kind.js';
import { modelKindOf } from '../models/kinds.js';
import type { Model } from '../models/model.js';

export type { JacobianChain, JacobianVisitor } from '../models/kind.js';

/**
 * The chain of Jacobians of `model` for one sample. `input` is the sample: (D) for a feed-forward model,
 * (T, D) for a recurrent one (its steps in order). Throws, with the kind's reason, where the kind has none.
 */
export function jacobianChain(model: Model, input: ArrayLike<number>, T: number): JacobianChain {
  const chain = modelKindOf(model).jacobianChain(model, input, T);
  if (isNotApplicable(chain))
    throw new Error(`jacobianChain: no Jacobian spectrum for ${model.config.model}: ${chain.notApplicable}`);
  return chain;
}
