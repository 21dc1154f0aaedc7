// The tensors of model.safetensors: helpers the kinds declare their lists with (from the config alone),
// and `bindTensors`, which pairs a declared list with a model's buffers for the checkpoint to write or
// read, checking that the kind and the model agree on every name and shape; and `checkLoadedModel`, which
// refuses a loaded checkpoint with non-finite weights or filters that are not orthogonal.

import type { DType, FilterOperand } from '../backend/backend.js';
import type { FilterKind } from '../nn/filter.js';
import type { Parameter } from '../nn/parameters.js';
import type { ModelConfig } from './config.js';
import type { TensorList, TensorSpec } from './kind.js';
import type { Model } from './model.js';
import { UsageError } from '../util/errors.js';

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

// ---- checks of a loaded model (class "validated checkpoints" of docs/guarantees.md) ----

/**
 * How far from orthogonal a loaded dense filter may be: max |OᵀO − I| over all entries. A float32 filter
 * drawn by roaf is orthogonal to ~1e-6 (rounding of the entries); 1e-4 leaves room for that and for the
 * float32 products, and still refuses any matrix that would grow or shrink signals noticeably.
 */
export const ORTHOGONALITY_TOLERANCE: Readonly<Record<DType, number>> = { float32: 1e-4, float64: 1e-10 };

/** Above this many multiply-adds in total, dense filters are checked by probes instead of by OᵀO. */
const EXACT_CHECK_WORK = 2 ** 28;

/** A tensor name as one printable line, whatever a hostile file called it. */
function quoted(name: string): string {
  return /^[\w.\-/[\]]*$/.test(name) ? name : JSON.stringify(name);
}

/** The first non-finite entry of `values`, or -1. */
function firstNonFinite(values: ArrayLike<number>): number {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i]!)) return i;
  return -1;
}

/** max |OᵀO − I| of a row-major n×n matrix, in float64. */
function orthogonalityError(m: ArrayLike<number>, n: number): number {
  let worst = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let dot = 0;
      for (let k = 0; k < n; k++) dot += m[k * n + i]! * m[k * n + j]!;
      worst = Math.max(worst, Math.abs(dot - (i === j ? 1 : 0)));
    }
  }
  return worst;
}

/**
 * A probe of orthogonality in O(n²): for two vectors v (entries ±1/√n, signs from a fixed hash), the
 * largest entry of OᵀO·v − v. Any OᵀO − I with an entry e contributes about e/√n per probe, so this refuses
 * filters off by more than about tolerance·√n; the exact check covers the common sizes.
 */
function probeOrthogonality(m: ArrayLike<number>, n: number): number {
  let worst = 0;
  const v = new Float64Array(n),
    y = new Float64Array(n);
  for (const salt of [0x9e3779b9, 0x85ebca6b]) {
    for (let i = 0; i < n; i++) v[i] = (Math.imul(i + 1, salt) >>> 31 === 0 ? 1 : -1) / Math.sqrt(n);
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += m[r * n + k]! * v[k]!;
      y[r] = s;
    }
    for (let c = 0; c < n; c++) {
      let s = 0;
      for (let r = 0; r < n; r++) s += m[r * n + c]! * y[r]!;
      worst = Math.max(worst, Math.abs(s - v[c]!) * Math.sqrt(n));
    }
  }
  return worst;
}

/**
 * Checks a model just loaded from `path` (model.safetensors): every parameter finite, every dense filter
 * orthogonal to ORTHOGONALITY_TOLERANCE, every permutation filter a permutation of 0..N-1 with signs ±1.
 * Throws a UsageError naming the file, the tensor and the layer; the caller must not use the model then.
 */
export function checkLoadedModel(model: Model, path: string, filterNames: readonly string[]): void {
  for (const p of model.params.parameters) {
    const at = firstNonFinite(p.value);
    if (at >= 0)
      throw new UsageError(
        `${path}: tensor ${quoted(p.name)} has a non-finite value (${p.value[at]}) at index ${at}; a checkpoint must hold finite weights`,
      );
  }
  const dense = new Set(model.filters.filter((f) => f.kind === 'dense'));
  let work = 0;
  for (const f of dense) work += f.n ** 3 / 2;
  const exact = work <= EXACT_CHECK_WORK;
  const seen = new Set<FilterOperand>();
  model.filters.forEach((filter, layer) => {
    if (seen.has(filter)) return;
    seen.add(filter);
    const name = quoted(filterNames[layer] ?? `filters.${layer}`);
    const where = `${path}: filter tensor ${name} (layer ${layer})`;
    if (filter.kind === 'dense') {
      const at = firstNonFinite(filter.matrix);
      if (at >= 0) throw new UsageError(`${where} has a non-finite value (${filter.matrix[at]}) at index ${at}`);
      const tolerance = ORTHOGONALITY_TOLERANCE[filter.matrix instanceof Float64Array ? 'float64' : 'float32'];
      const error = exact ? orthogonalityError(filter.matrix, filter.n) : probeOrthogonality(filter.matrix, filter.n);
      if (!(error <= tolerance))
        throw new UsageError(
          `${where} is not orthogonal: max |OᵀO - I| ${exact ? '=' : '≈'} ${error.toExponential(2)}, allowed ${tolerance}`,
        );
    } else if (filter.kind === 'permutation') {
      const hit = new Uint8Array(filter.n);
      for (let i = 0; i < filter.n; i++) {
        const j = filter.perm[i]!;
        if (!(j >= 0 && j < filter.n) || hit[j] === 1)
          throw new UsageError(
            `${path}: filter tensor ${name}.perm (layer ${layer}) is not a permutation of 0..${filter.n - 1}: entry ${i} is ${j}${j >= 0 && j < filter.n ? ', a repeat' : ''}`,
          );
        hit[j] = 1;
        const s = filter.signs[i]!;
        if (s !== 1 && s !== -1)
          throw new UsageError(
            `${path}: filter tensor ${name}.signs (layer ${layer}) has ${s} at index ${i}, allowed 1 or -1`,
          );
      }
    }
  });
}
