// BackendBase's fused kernels are built on the backend core through `this`: a backend that implements only
// the core (CoreOnlyBackend, here over the reference's own core) computes every fused kernel bit for bit as
// the reference backend does, in float32 and float64, and every fused kernel reaches that backend's gemm. So
// a backend gains speed in every fused kernel from a faster gemm alone, and the reference backend is exactly
// its plain-TypeScript core plus these defaults.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { BackendBase } from '../src/backend/backend-base.js';
import { withArgumentChecks } from '../src/backend/kernel-checks.js';
import { KERNEL_NAMES } from '../src/backend/kernel-table.js';
import { ReferenceBackend, referenceBackend } from '../src/backend/reference.js';
import { Random } from '../src/util/random.js';
import { CoreOnlyBackend } from './helpers.js';
import { caseGroups, execute } from './kernel-cases.js';

/**
 * The fused kernels: those BackendBase has a default for, except the QR that draws the dense filters and the
 * Jacobian product spectrum's step, which compute no product of the core (their defaults are plain float64
 * TypeScript; test/qr.test.ts and test/spectrum-kernel.test.ts check them), and the bf16 cell,
 * whose default is the cell's on this.gemmBf16 (test/bf16-fused.test.ts checks it).
 */
const FUSED = KERNEL_NAMES.filter(
  (name) =>
    typeof (BackendBase.prototype as unknown as Record<string, unknown>)[name] === 'function' &&
    name !== 'orthogonalFromQr' &&
    name !== 'productSpectrumPush' &&
    !name.endsWith('Bf16'),
);

/** The cases of the conformance suite that call fused kernels. */
function fusedCases() {
  return caseGroups(new Random(7))
    .filter(([group]) => /ROAF layer|ROAF MLP|ROAF cell|LSTM/.test(group))
    .flatMap(([, cases]) => cases);
}

/** A CoreOnlyBackend over the reference core whose fused kernels record how many gemm calls each made. */
function instrumented(): { core: CoreOnlyBackend; gemmsBy: Map<string, number> } {
  const core = new CoreOnlyBackend(new ReferenceBackend(), 'float64'); // float64 intermediates, as the reference
  const gemmsBy = new Map<string, number>();
  for (const name of FUSED) {
    const kernel = (BackendBase.prototype as unknown as Record<string, (args: unknown) => void>)[name]!;
    Object.defineProperty(core, name, {
      value: (args: unknown): void => {
        const before = core.calls.get('gemm') ?? 0;
        kernel.call(core, args);
        gemmsBy.set(name, (gemmsBy.get(name) ?? 0) + (core.calls.get('gemm') ?? 0) - before);
      },
    });
  }
  return { core, gemmsBy };
}

describe('fused kernels on the core through `this`', () => {
  it('the reference backend is its core plus BackendBase: it defines no fused kernel of its own', () => {
    assert.equal(FUSED.length, 10);
    for (const name of FUSED)
      assert.ok(!Object.hasOwn(ReferenceBackend.prototype, name), `ReferenceBackend overrides ${name}`);
  });

  for (const dtype of ['float32', 'float64'] as const) {
    it(`a backend with only the reference's core computes every fused kernel bit for bit as the reference (${dtype})`, () => {
      const { core, gemmsBy } = instrumented();
      const backend = withArgumentChecks(core);
      const cases = fusedCases();
      assert.ok(cases.length > 100);
      for (const c of cases) {
        const want = execute(c, referenceBackend, dtype === 'float64');
        const got = execute(c, backend, dtype === 'float64');
        for (const name of c.outputs) assert.deepStrictEqual(got[name], want[name], `${c.name}: ${name}`);
      }
      // Every fused kernel ran, and reached this backend's own gemm (not a private one).
      for (const name of FUSED) assert.ok((gemmsBy.get(name) ?? 0) > 0, `${name} made no call of this.gemm`);
      for (const kernel of ['addRowVector', 'sumRows', 'tanh', 'applyFilter', 'sumSquares']) {
        assert.ok((core.calls.get(kernel) ?? 0) > 0, `no fused kernel called this.${kernel}`);
      }
    });
  }

  it('keeps its work buffers from call to call (a backend that owns its memory does not leak it)', () => {
    const core = new CoreOnlyBackend(new ReferenceBackend()); // the default: work buffers cached, via allocate
    const backend = withArgumentChecks(core);
    const cases = fusedCases().filter((c) => /^(gru|lstm|roafMlp)/.test(c.name));
    const first = cases.map((c) => execute(c, backend, false));
    const allocations = core.calls.get('allocate') ?? 0;
    assert.ok(allocations > 0, 'the defaults allocate their work buffers through this.allocate');
    const second = cases.map((c) => execute(c, backend, false));
    assert.equal(core.calls.get('allocate'), allocations, 'a second run of the same cases allocated again');
    // Whatever a reused buffer held before, the results do not depend on it.
    cases.forEach((c, i) => {
      for (const name of c.outputs) assert.deepStrictEqual(second[i]![name], first[i]![name], `${c.name}: ${name}`);
    });
  });
});
