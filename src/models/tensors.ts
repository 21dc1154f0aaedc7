// The tensors of model.safetensors: helpers the kinds declare their lists with (from the config alone),
// and `bindTensors`, which pairs a declared list with a model's buffers for the checkpoint to write or
// read, checking that the kind and the model agree on every name and shape.

import type { DType, FilterOperand } from '../backend/backend.js';
import type { FilterKind } from '../nn/filter.js';
import type { Parameter } from '../nn/parameters.js';
import type { ModelConfig } from './config.js';
import type { TensorList, TensorSpec } from './kind.js';
import type { Model } from './model.js';

export function dtypeTag(dtype: DType): 'F32' | 'F64' {
  return dtype === 'float64' ? 'F64' : 'F32';
}

/** A trained parameter's entry. */
export function parameterTensor(name: string, shape: number[], dtype: DType): TensorSpec {
  return { name, shape, dtype: dtypeTag(dtype), source: { kind: 'parameter' } };
}

/** Whether a filter kind is stored and applied as a dense (N, N) matrix (as makeFilter draws it). */
export function isDenseFilter(kind: FilterKind): boolean {
  return kind === 'haar' || kind === 'qr-uniform';
}

/** Whether all layers share one filter object (as makeFilters draws them: asked to, or a kind with no randomness). */
function filtersShared(kind: FilterKind, shared: boolean): boolean {
  return shared || kind === 'identity' || kind === 'cycle';
}

/**
 * The filter tensors of `count` layers of width N: `filter` when there is one (shared, or a single
 * layer), else `filters.{l}`; a dense filter is (N, N), a signed permutation `….perm` (I32, N) and
 * `….signs` (N); `identity` stores nothing. With alpha = 0 no filter is drawn at all.
 */
export function filterTensors(
  config: Pick<ModelConfig, 'alpha' | 'filter' | 'sharedFilter' | 'dtype'>,
  N: number,
  count: number,
): TensorList {
  if (config.alpha === 0) return { tensors: [], filterNames: [] };
  const shared = filtersShared(config.filter, config.sharedFilter);
  const tensors: TensorSpec[] = [];
  const filterNames: string[] = [];
  for (let l = 0; l < count; l++) {
    if (shared && l > 0) {
      filterNames.push(filterNames[0]!);
      continue;
    }
    const name = shared || count === 1 ? 'filter' : `filters.${l}`;
    filterNames.push(name);
    if (isDenseFilter(config.filter)) {
      tensors.push({
        name,
        shape: [N, N],
        dtype: dtypeTag(config.dtype),
        source: { kind: 'filter', layer: l, part: 'matrix' },
      });
    } else if (config.filter !== 'identity') {
      tensors.push({
        name: `${name}.perm`,
        shape: [N],
        dtype: 'I32',
        source: { kind: 'filter', layer: l, part: 'perm' },
      });
      tensors.push({
        name: `${name}.signs`,
        shape: [N],
        dtype: dtypeTag(config.dtype),
        source: { kind: 'filter', layer: l, part: 'signs' },
      });
    }
  }
  return { tensors, filterNames };
}

/** A tensor with its data: a view of the model's own buffer, so reading into it loads the model. */
export interface BoundTensor {
  name: string;
  shape: number[];
  data: Float32Array | Float64Array | Int32Array;
}

function filterPart(filter: FilterOperand | undefined, part: 'matrix' | 'perm' | 'signs'): BoundTensor['data'] | null {
  if (filter === undefined) return null;
  if (part === 'matrix') return filter.kind === 'dense' ? filter.matrix : null;
  return filter.kind === 'permutation' ? filter[part] : null;
}

const DTYPE_OF: Record<string, TensorSpec['dtype']> = { Float32Array: 'F32', Float64Array: 'F64', Int32Array: 'I32' };

/**
 * Pairs each declared tensor with the model's buffer. Throws when the kind's list and the model disagree:
 * a name the model does not hold, another shape or dtype, or a trained parameter the list leaves out.
 */
export function bindTensors(model: Model, list: TensorList): BoundTensor[] {
  const parameters = new Map<string, Parameter>(model.params.parameters.map((p) => [p.name, p]));
  const boundParameters = new Set<string>();
  const bound = list.tensors.map((spec): BoundTensor => {
    let data: BoundTensor['data'] | null;
    let heldShape: readonly number[];
    if (spec.source.kind === 'parameter') {
      const parameter = parameters.get(spec.name);
      data = parameter?.value ?? null;
      heldShape = parameter?.shape ?? [];
      boundParameters.add(spec.name);
    } else {
      data = filterPart(model.filters[spec.source.layer], spec.source.part);
      heldShape = spec.shape; // a filter's size is its data's length, checked below
    }
    const size = spec.shape.reduce((a, b) => a * b, 1);
    if (
      data === null ||
      data.length !== size ||
      heldShape.join() !== spec.shape.join() ||
      DTYPE_OF[data.constructor.name] !== spec.dtype
    ) {
      throw new Error(
        `model kind ${model.config.model} declares tensor ${spec.name} ${spec.dtype} [${spec.shape.join()}], ` +
          `which the model does not hold in that shape and dtype`,
      );
    }
    return { name: spec.name, shape: spec.shape, data };
  });
  if (boundParameters.size !== parameters.size) {
    const missing = [...parameters.keys()].filter((name) => !boundParameters.has(name));
    throw new Error(
      `model kind ${model.config.model} does not declare the model's parameters ${missing.slice(0, 5).join(', ')}`,
    );
  }
  return bound;
}
