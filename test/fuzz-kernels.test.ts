// Property test of the kernel argument checks (fast-check): random sizes (0, 1, small, 2^31 - 1, 2^32 - 1,
// 2^32, 2^53, -1, 2.5, NaN, a string), arrays of the exact, one-too-short or a random length, of the right or
// a wrong type, null, and filters of every kind (valid, of the wrong width, with an out-of-range permutation
// entry) thrown at every kernel of the table on every backend. Each call either runs (it was valid, and a
// valid call here touches at most 2^16 elements, or up to 2^24 empty iterations) or throws a TypeError or
// RangeError whose message starts with the kernel's name and names one of its arguments. No call may crash
// the process or hang: the suite has a time limit, and a kernel that looped over an absurd size hidden
// behind a zero factor would exceed it.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import fc from 'fast-check';

import type { Backend, KernelName } from '../src/backend/backend.js';
import { compileLength, type LengthScope } from '../src/backend/kernel-checks.js';
import { KERNEL_NAMES, KERNEL_TABLE, type ArgSpec } from '../src/backend/kernel-table.js';
import { availableBackends } from './helpers.js';

/** Sizes worth trying: small ones that make valid calls, bounds, and values that are not sizes at all. */
const SIZES: readonly unknown[] = [0, 0, 1, 1, 2, 3, 5, 2 ** 20, 2 ** 31 - 1, 2 ** 32 - 1, 2 ** 32, 2 ** 53, -1, 2.5];
const ODD_SIZES: readonly unknown[] = [Number.NaN, Infinity, '3', null, undefined];
/** The largest array a valid generated call may need: bigger requests get a short array (an invalid call). */
const MAX_ELEMENTS = 2 ** 16;

type Gen = fc.GeneratorValue;

/** One entry of `list`, chosen by the generator (so that shrinking works). */
function pick<T>(g: Gen, list: readonly T[]): T {
  return list[g(fc.nat, list.length - 1)]!;
}

function pickSize(g: Gen): unknown {
  return g(fc.nat, 40) < 2 ? pick(g, ODD_SIZES) : pick(g, SIZES);
}

/** An array of `required` elements (or one short, or a random length, or the wrong type, or null). */
function pickArray(g: Gen, arg: Extract<ArgSpec, { length: string }>, required: number, f64: boolean): unknown {
  const mode = g(fc.nat, 19);
  const fits = Number.isSafeInteger(required) && required >= 0 && required <= MAX_ELEMENTS;
  let length = fits ? required : g(fc.nat, 8);
  if (mode === 0) length = Math.max(0, length - 1);
  if (mode === 1) length = g(fc.nat, 8);
  if (mode === 2) return null;
  if (mode === 3) return pick<unknown>(g, [new Int32Array(length), [1, 2], 'x', 3, new Uint8Array(length)]);
  switch (arg.kind) {
    case 'floats':
      // the call's dtype, but now and then a mixed one
      return (mode === 4 ? !f64 : f64) ? new Float64Array(length) : new Float32Array(length);
    case 'float64s':
      return new Float64Array(length);
    case 'int32s':
      return new Int32Array(length); // zeros: valid labels whenever K >= 1
    case 'uint8s':
      return new Uint8Array(length);
  }
}

function pickFilter(g: Gen, width: number | undefined, f64: boolean): unknown {
  const n = width !== undefined && g(fc.nat, 9) > 0 ? width : pick(g, SIZES);
  const kind = pick(g, ['identity', 'dense', 'permutation', 'householder', null]);
  if (kind === null) return null;
  const small = typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 && n <= 256;
  const Floats = f64 ? Float64Array : Float32Array;
  if (kind === 'dense') return { kind, n, matrix: new Floats(small ? n * n : 1) };
  if (kind === 'permutation') {
    const length = small ? n : 1;
    const perm = Int32Array.from({ length }, (_, i) => i);
    if (length > 0 && g(fc.nat, 4) === 0) perm[length - 1] = pick(g, [-1, length, 2 ** 31 - 1]);
    return { kind, n, perm, signs: new Floats(length).fill(1) };
  }
  return { kind, n };
}

/** One random call of `kernel`: its parameters (positional, or one object). */
function randomCall(g: Gen, kernel: KernelName, f64: boolean): unknown[] {
  const spec = KERNEL_TABLE[kernel];
  const values: Record<string, unknown> = {};
  const scope: LengthScope = { sizes: new Map(), flags: new Map() };
  for (const arg of spec.args) {
    if (arg.kind === 'size') {
      const v = pickSize(g);
      values[arg.name] = v;
      if (typeof v === 'number') scope.sizes.set(arg.name, v);
    } else if (arg.kind === 'bool') {
      const v = g(fc.nat, 9) === 0 ? 1 : g(fc.boolean);
      values[arg.name] = v;
      scope.flags.set(arg.name, v === true);
    } else if (arg.kind === 'scalar') {
      values[arg.name] = g(fc.nat, 9) === 0 ? '1' : g(fc.double);
    }
  }
  for (const arg of spec.args) {
    if (arg.kind === 'filter') {
      const f = pickFilter(g, scope.sizes.get(arg.width), f64);
      values[arg.name] = f;
      const n = (f as { n?: unknown } | null)?.n;
      if (!scope.sizes.has(arg.width) && typeof n === 'number') scope.sizes.set(arg.width, n);
    } else if (arg.kind === 'filters') {
      const count = scope.sizes.get(arg.count);
      const length = count !== undefined && count <= 64 && g(fc.nat, 9) > 0 ? count : g(fc.nat, 4);
      const shared = pickFilter(g, scope.sizes.get(arg.width), f64);
      values[arg.name] = Array.from({ length }, () => (g(fc.nat, 9) === 0 ? pickFilter(g, undefined, f64) : shared));
    }
  }
  for (const arg of spec.args) {
    if (!('length' in arg)) continue;
    let required = Number.NaN;
    try {
      required = compileLength(arg.length).evaluate(scope);
    } catch {
      // a size missing or a stride too small: the call is invalid whatever the array
    }
    values[arg.name] = pickArray(g, arg, required, f64);
  }
  return spec.object ? [values] : spec.args.map((a) => values[a.name]);
}

/** Fails unless `error` is the checks' TypeError/RangeError naming the kernel and one of its arguments. */
function assertNamedError(kernel: KernelName, error: unknown): void {
  assert.ok(
    error instanceof TypeError || error instanceof RangeError,
    `${kernel}: ${String(error)} is not a TypeError or RangeError`,
  );
  assert.ok(error.message.startsWith(`${kernel}: `), `${kernel}: message '${error.message}' does not name the kernel`);
  const names = KERNEL_TABLE[kernel].args.flatMap((a) => [a.name, ...('width' in a ? [a.width] : [])]);
  const rest = error.message.slice(kernel.length + 2);
  assert.ok(
    names.some((name) => new RegExp(`\\b${name}\\b`).test(rest)) || rest.startsWith('expects one argument object'),
    `${kernel}: message '${error.message}' names none of its arguments`,
  );
}

const RUNS_PER_KERNEL = 150;

describe('kernel argument checks under random calls', { timeout: 120_000 }, async () => {
  const backends: { name: string; backend: Backend }[] = await availableBackends();
  for (const { name, backend } of backends) {
    it(`${name}: every call runs or throws a named TypeError/RangeError, and the backend survives`, () => {
      const f64 = backend.supports('float64');
      let cases = 0,
        rejected = 0;
      const started = performance.now();
      for (const kernel of KERNEL_NAMES) {
        const run = (backend[kernel] as (...params: unknown[]) => unknown).bind(backend);
        fc.assert(
          fc.property(fc.gen(), (g) => {
            const params = randomCall(g, kernel, f64);
            cases++;
            try {
              run(...params);
            } catch (error) {
              rejected++;
              assertNamedError(kernel, error);
            }
          }),
          { numRuns: RUNS_PER_KERNEL, seed: 13, includeErrorInReport: true },
        );
      }
      const seconds = (performance.now() - started) / 1000;
      process.stdout.write(
        `fuzz kernels (${name}): ${cases} calls, ${rejected} rejected, ${(cases / seconds).toFixed(0)} calls/s\n`,
      );
      assert.ok(rejected > 0 && rejected < cases, 'the generator makes both valid and invalid calls');
      // and the backend still computes
      const y = new Float32Array(2);
      backend.axpy(2, 2, Float32Array.of(1, 2), y);
      assert.deepEqual(Array.from(y), [2, 4]);
    });
  }
});
