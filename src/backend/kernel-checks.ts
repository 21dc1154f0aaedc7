// The argument checks of every kernel, driven by the kernel table and run once per call at the backend
// boundary, the same for every backend (reference, native, a future WebAssembly one): `withArgumentChecks`
// wraps a backend so that each kernel first checks its arguments, then runs. A wrong call throws a TypeError
// (wrong type, dtype, or null where an array is required) or a RangeError (bad size, array too short, row
// stride below the row length, filter of the wrong width, ...) whose message names the kernel and the
// argument, instead of reading or writing out of bounds. Calls a backend makes to itself (BackendBase's
// defaults calling `this.gemm`) are not checked again: they come from arguments already checked.
//
// Overflow: sizes are untrusted integers and a required length is a product of several. Each size must be an
// integer in [0, MAX_SIZE] (below 2^53), and lengths are evaluated in float64 with + and * only. Below 2^53
// that is exact; an intermediate above 2^53 rounds to a value still at least 2^53 (rounding is monotone and
// 2^53 is representable), and adding or multiplying non-negative values keeps it there, while no typed array
// is that long. So a length is either exact or far beyond any array: a tiny array can never pass the check
// meant for a huge one, and the C kernels, whose index arithmetic stays below the lengths checked here,
// cannot wrap either.
//
// Absurd sizes with a zero factor: a call with B = 0 and N = 2^40 needs arrays of length 0, yet a kernel may
// still loop over N (or over T, L, ...) outside the empty dimension, and hang. So every size is at most
// MAX_SIZE (above any typed array's length), and every array's *nominal* length (its expression with each
// size 0 counted as 1 and a span as rows·cols: the iterations a kernel may make around the empty dimension)
// must be at most twice the array's length (a `T+1` term doubles the nominal length of a T = 0 call) or
// EMPTY_CALL_WORK, whichever is larger. An empty call with sane sizes
// (T = 0 steps of a batch of 3) passes; one that implies billions of empty iterations is a RangeError.

import { dtypeOf, type Backend, type DType, type KernelName } from './backend.js';
import { KERNEL_NAMES, KERNEL_TABLE, type KernelSpec } from './kernel-table.js';

/** The largest filter width: the C kernels keep it in an int. */
const MAX_FILTER_WIDTH = 2 ** 31 - 1;

/** The largest size argument: 2^32 - 1, above the length of any typed array a kernel can be given. */
export const MAX_SIZE = 2 ** 32 - 1;

/** The most iterations an empty call (a size 0 among its sizes) may imply: 2^24, a few ms even in JavaScript. */
export const EMPTY_CALL_WORK = 2 ** 24;

// ---- length expressions ----

/** The values a length expression reads: the kernel's sizes, and its flags (for `flag ? a : b`). */
export interface LengthScope {
  sizes: Map<string, number>;
  flags: Map<string, boolean>;
  /** Evaluate the nominal length: each size 0 counts as 1, a span as rows·cols (see the header). */
  nominal?: boolean;
}

/** A compiled length expression: its text, and its value in a scope. */
export interface LengthExpression {
  readonly text: string;
  /** The length; throws a RangeError (without the kernel's name, which the caller adds) on a row stride < row length. */
  evaluate(scope: LengthScope): number;
  /** "T*B*N = 24 (T = 2, B = 3, N = 4)": the value with the sizes it came from (of the branch taken). */
  explain(scope: LengthScope, value: number): string;
}

type Node = (scope: LengthScope) => number;

/**
 * Parses the small language of the table's lengths: integers, size names, +, *, parentheses,
 * span(rows, cols, ld), and one leading `flag ? a : b`.
 */
export function compileLength(text: string): LengthExpression {
  const ternary = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\?([^:]*):(.*)$/.exec(text);
  if (ternary !== null) {
    const [, flag, whenTrue, whenFalse] = ternary as unknown as [string, string, string, string];
    const branches = [compileLength(whenTrue), compileLength(whenFalse)] as const;
    const pick = (scope: LengthScope): LengthExpression => branches[scope.flags.get(flag) === true ? 0 : 1];
    return {
      text,
      evaluate: (scope) => pick(scope).evaluate(scope),
      explain: (scope, value) => `${pick(scope).explain(scope, value)}, as ${flag} = ${String(scope.flags.get(flag))}`,
    };
  }
  const tokens = text.match(/\s*([A-Za-z_][A-Za-z0-9_]*|\d+|\S)/g)?.map((t) => t.trim()) ?? [];
  let at = 0;
  const names = new Set<string>();
  const peek = (): string | undefined => tokens[at];
  const expect = (token: string): void => {
    if (tokens[at] !== token)
      throw new SyntaxError(`length '${text}': expected '${token}', got '${tokens[at] ?? 'end'}'`);
    at++;
  };
  const identifier = (): string => {
    const token = tokens[at++];
    if (token === undefined || !/^[A-Za-z_]/.test(token))
      throw new SyntaxError(`length '${text}': expected a name, got '${token ?? 'end'}'`);
    return token;
  };
  const sizeRef = (name: string): Node => {
    names.add(name);
    return (s) => {
      const v = s.sizes.get(name);
      if (v === undefined) throw new Error(`length '${text}' reads '${name}', which is not a size of the kernel`);
      return s.nominal === true && v === 0 ? 1 : v;
    };
  };
  const atom = (): Node => {
    const token = peek();
    if (token === '(') {
      at++;
      const inner = sum();
      expect(')');
      return inner;
    }
    if (token !== undefined && /^\d+$/.test(token)) {
      at++;
      const value = Number(token);
      return () => value;
    }
    const name = identifier();
    if (name !== 'span') return sizeRef(name);
    expect('(');
    const rows = sum();
    expect(',');
    const cols = sum();
    expect(',');
    const ldName = identifier();
    const ld = sizeRef(ldName);
    expect(')');
    return (s) => {
      const r = rows(s),
        c = cols(s),
        stride = ld(s);
      if (s.nominal === true) return r * c;
      if (r === 0 || c === 0) return 0;
      if (stride < c) throw new RangeError(`row stride ${ldName} = ${stride} is smaller than its row length ${c}`);
      return (r - 1) * stride + c; // r >= 1: the subtraction is exact
    };
  };
  const product = (): Node => {
    let node = atom();
    while (peek() === '*') {
      at++;
      const left = node,
        right = atom();
      node = (s) => left(s) * right(s);
    }
    return node;
  };
  const sum = (): Node => {
    let node = product();
    while (peek() === '+') {
      at++;
      const left = node,
        right = product();
      node = (s) => left(s) + right(s);
    }
    return node;
  };
  const root = sum();
  if (at !== tokens.length) throw new SyntaxError(`length '${text}': unexpected '${tokens[at]}'`);
  const used = [...names];
  return {
    text,
    evaluate: root,
    explain: (scope, value) => {
      const trimmed = text.trim();
      if (used.length === 0 || trimmed === String(value)) return String(value);
      if (used.length === 1 && trimmed === used[0]) return `${trimmed} = ${value}`;
      return `${trimmed} = ${value} (${used.map((name) => `${name} = ${scope.sizes.get(name)}`).join(', ')})`;
    },
  };
}

// ---- checks of one kernel's arguments ----

type TypedArrayName = 'Float32Array' | 'Float64Array' | 'Int32Array' | 'Uint8Array';

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (ArrayBuffer.isView(value)) return value.constructor.name;
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}

function isSize(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= MAX_SIZE;
}

const FIXED_TYPES: Record<'float64s' | 'int32s' | 'uint8s', { name: TypedArrayName; is: (v: unknown) => boolean }> = {
  float64s: { name: 'Float64Array', is: (v) => v instanceof Float64Array },
  int32s: { name: 'Int32Array', is: (v) => v instanceof Int32Array },
  uint8s: { name: 'Uint8Array', is: (v) => v instanceof Uint8Array },
};

/** Checks one call's arguments for one backend; throws a TypeError or RangeError naming kernel and argument. */
type ArgumentCheck = (backend: Backend, params: readonly unknown[]) => void;

/** The check of one kernel, compiled once from its table entry. */
function compileCheck(kernel: string, spec: KernelSpec): ArgumentCheck {
  const lengths = new Map<string, LengthExpression>();
  for (const arg of spec.args) if ('length' in arg) lengths.set(arg.name, compileLength(arg.length));
  const sizeArgs = spec.args.filter((a) => a.kind === 'size');
  // Declared with its type, so that the compiler knows code after a call of it does not run.
  const fail: (Kind: typeof TypeError | typeof RangeError, message: string) => never = (Kind, message) => {
    throw new Kind(`${kernel}: ${message}`);
  };

  return (backend, params) => {
    let values: Readonly<Record<string, unknown>>;
    if (spec.object) {
      const object = params[0];
      if (typeof object !== 'object' || object === null)
        fail(TypeError, `expects one argument object, got ${typeName(object)}`);
      values = object as Record<string, unknown>;
    } else {
      const byName: Record<string, unknown> = {};
      spec.args.forEach((arg, i) => (byName[arg.name] = params[i]));
      values = byName;
    }
    const scope: LengthScope = { sizes: new Map(), flags: new Map() };

    // Sizes, scalars and flags first: the lengths of the arrays are expressions of them.
    for (const arg of sizeArgs) {
      const v = values[arg.name];
      if (!isSize(v))
        fail(
          typeof v === 'number' ? RangeError : TypeError,
          `${arg.name} must be an integer in [0, 2^32 - 1], got ${String(v)}`,
        );
      scope.sizes.set(arg.name, v);
    }
    for (const arg of spec.args) {
      const v = values[arg.name];
      if (arg.kind === 'scalar' && typeof v !== 'number')
        fail(TypeError, `${arg.name} must be a number, got ${typeName(v)}`);
      if (arg.kind === 'bool') {
        if (typeof v !== 'boolean') fail(TypeError, `${arg.name} must be a boolean, got ${typeName(v)}`);
        scope.flags.set(arg.name, v);
      }
    }

    // Filters, which also fix the width N where the kernel has no size argument for it.
    let dtype: DType | null = null;
    let dtypeSource = '';
    const tooShort = (name: string, length: number, required: number, expression?: LengthExpression): never => {
      const need = expression === undefined ? String(required) : expression.explain(scope, required);
      return fail(RangeError, `${name} has ${length} elements, needs at least ${need}`);
    };
    const floatArray = (name: string, v: unknown, required: number, expression?: LengthExpression): void => {
      if (!(v instanceof Float32Array || v instanceof Float64Array))
        fail(TypeError, `${name} must be a Float32Array or Float64Array, got ${typeName(v)}`);
      const d = dtypeOf(v);
      if (dtype === null) {
        if (!backend.supports(d))
          fail(TypeError, `${name} is a ${typeName(v)}, but the ${backend.name} backend does not support ${d}`);
        dtype = d;
        dtypeSource = name;
      } else if (d !== dtype) {
        fail(
          TypeError,
          `${name} is a ${typeName(v)}, but ${dtypeSource} is a ${dtype === 'float32' ? 'Float32Array' : 'Float64Array'} (one dtype per call)`,
        );
      }
      const length = v.length;
      if (!(length >= required)) tooShort(name, length, required, expression);
      if (expression !== undefined) checkEmptyWork(name, length, required, expression);
    };
    const checkEmptyWork = (name: string, length: number, required: number, expression: LengthExpression): void => {
      const nominal = expression.evaluate({ ...scope, nominal: true });
      if (nominal !== required && nominal > Math.max(2 * length, EMPTY_CALL_WORK))
        fail(
          RangeError,
          `${name} is empty as ${expression.explain(scope, required)}, but its other sizes imply ${nominal} iterations (at most 2^24 or twice its length ${length})`,
        );
    };
    const checkFilter = (label: string, f: unknown, width: string): void => {
      if (typeof f !== 'object' || f === null) fail(TypeError, `${label} must be a filter, got ${typeName(f)}`);
      const { kind, n, matrix, perm, signs } = f as Partial<
        Record<'kind' | 'n' | 'matrix' | 'perm' | 'signs', unknown>
      >;
      if (!isSize(n) || n > MAX_FILTER_WIDTH)
        fail(RangeError, `${label}.n must be an integer in [0, 2^31), got ${String(n)}`);
      const bound = scope.sizes.get(width);
      if (bound === undefined) scope.sizes.set(width, n);
      else if (n !== bound) fail(RangeError, `${label} is ${n} wide, but ${width} = ${bound}`);
      if (kind === 'dense') {
        floatArray(`${label}.matrix`, matrix, n * n);
      } else if (kind === 'permutation') {
        floatArray(`${label}.signs`, signs, n);
        if (!(perm instanceof Int32Array))
          fail(TypeError, `${label}.perm must be an Int32Array, got ${typeName(perm)}`);
        if (!(perm.length >= n)) tooShort(`${label}.perm`, perm.length, n);
        for (let i = 0; i < n; i++) {
          const j = perm[i]!;
          if (j < 0 || j >= n) fail(RangeError, `${label}.perm[${i}] = ${j} is outside [0, ${n})`);
        }
      } else if (kind !== 'identity') {
        fail(TypeError, `${label}.kind must be 'dense', 'permutation' or 'identity', got ${String(kind)}`);
      }
    };
    for (const arg of spec.args) {
      if (arg.kind === 'filter') {
        checkFilter(arg.name, values[arg.name], arg.width);
      } else if (arg.kind === 'filters') {
        const list = values[arg.name];
        if (!Array.isArray(list)) fail(TypeError, `${arg.name} must be an array of filters, got ${typeName(list)}`);
        const count = scope.sizes.get(arg.count)!;
        const filters: readonly unknown[] = list;
        if (filters.length !== count)
          fail(RangeError, `${arg.name} has ${filters.length} filters, needs ${arg.count} = ${count}`);
        const seen = new Set<unknown>(); // a shared filter is checked once
        filters.forEach((f, l) => {
          if (seen.has(f)) return;
          seen.add(f);
          checkFilter(`${arg.name}[${l}]`, f, arg.width);
        });
      }
    }

    // Arrays: type, dtype, nullability, length.
    for (const arg of spec.args) {
      if (!('length' in arg)) continue;
      const v = values[arg.name];
      if (v === null && arg.nullable) continue;
      const expression = lengths.get(arg.name)!;
      let required: number;
      try {
        required = expression.evaluate(scope);
      } catch (error) {
        return fail(RangeError, `${arg.name}: ${(error as Error).message}`);
      }
      if (arg.kind === 'floats') {
        floatArray(arg.name, v, required, expression);
      } else {
        const type = FIXED_TYPES[arg.kind];
        if (!type.is(v))
          fail(
            TypeError,
            `${arg.name} must be ${arg.nullable ? `a ${type.name} or null` : `a ${type.name}`}, got ${typeName(v)}`,
          );
        const length = (v as ArrayLike<number>).length;
        if (!(length >= required)) tooShort(arg.name, length, required, expression);
        checkEmptyWork(arg.name, length, required, expression);
      }
    }

    if (spec.rule !== undefined) {
      const named: Record<string, unknown> = { ...values };
      for (const [name, value] of scope.sizes) named[name] = value;
      const problem = spec.rule(named);
      if (problem !== null) fail(RangeError, problem);
    }
  };
}

/** The compiled check of every kernel. */
const ARGUMENT_CHECKS = Object.fromEntries(
  KERNEL_NAMES.map((name) => [name, compileCheck(name, KERNEL_TABLE[name])]),
) as Record<KernelName, ArgumentCheck>;

/** Checks an allocation request: a dtype the backend supports, a length that is a non-negative safe integer. */
function checkAllocation(backend: Backend, dtype: unknown, length: unknown): void {
  if (dtype !== 'float32' && dtype !== 'float64')
    throw new TypeError(`allocate: dtype must be 'float32' or 'float64', got ${String(dtype)}`);
  if (!backend.supports(dtype)) throw new TypeError(`allocate: the ${backend.name} backend does not support ${dtype}`);
  if (!isSize(length))
    throw new RangeError(`allocate: length must be an integer in [0, 2^32 - 1], got ${String(length)}`);
}

/**
 * The backend behind the table's argument checks: every kernel checks its arguments (for this backend's
 * dtypes), then runs on `backend` itself, so the backend's calls to its own kernels are not checked twice.
 */
export function withArgumentChecks(backend: Backend): Backend {
  const checked: Record<string, unknown> = {
    name: backend.name,
    describe: () => backend.describe(),
    supports: (dtype: DType) => backend.supports(dtype),
    allocate: (dtype: DType, length: number) => {
      checkAllocation(backend, dtype, length);
      return backend.allocate(dtype, length);
    },
  };
  for (const name of KERNEL_NAMES) {
    const check = ARGUMENT_CHECKS[name];
    const kernel = (backend[name] as (...params: unknown[]) => unknown).bind(backend);
    checked[name] = (...params: unknown[]): unknown => {
      check(backend, params);
      return kernel(...params);
    };
  }
  return Object.freeze(checked) as unknown as Backend;
}
