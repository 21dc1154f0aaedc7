// The conformance suite: every kernel of every backend against the float64 reference, on the cases of
// kernel-cases.ts (random inputs with awkward shapes; tolerances explained there). One suite runs on a list of
// backends, each in its configurations:
// - the reference backend in float32 (rounding on store only: far inside every tolerance);
// - the native backend on every instruction-set path this CPU has, with 1 and 2 threads;
// - BackendBase's fused kernels on the native core (CoreOnlyBackend): what a backend with only a fast core
//   computes, in float32 throughout;
// - the wasm backend (the same C kernels as WebAssembly SIMD, one thread), with its arguments in ordinary
//   arrays (copied into its linear memory and back by every call) and in its own linear memory (zero-copy), at
//   WASM_TOL_SCALE times each case's tolerance (no fused multiply-add; the factor is 1: see kernel-cases.ts).
// A new backend joins by adding an entry to `subjects`.
//
// While the native configurations run, the parallel threshold is 0, so even these small shapes take the
// threaded code paths. Native results must also be bit-identical on 1 and 2 threads (training runs are
// reproducible bit for bit), including when the row sweeps of the ROAF MLP and cell re-balance rows between
// threads (whichever thread computes a row, it computes it the same way).
// If the addon is not built the native entries are skipped, saying so.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import type { Backend } from '../src/backend/backend.js';
import { withArgumentChecks } from '../src/backend/kernel-checks.js';
import {
  loadNativeBackend,
  nativeFmaPeak,
  nativeFmaPeakAllThreads,
  nativeInfo,
  nativeLoadError,
  setNativeIsa,
  setNativeParallelThreshold,
  setNativeThreads,
  type NativeIsa,
} from '../src/backend/native.js';
import { referenceBackend } from '../src/backend/reference.js';
import { loadWasmBackendSync, wasmLoadError } from '../src/backend/wasm-node.js';
import { Random } from '../src/util/random.js';
import { CoreOnlyBackend } from './helpers.js';
import { WASM_TOL_SCALE, caseGroups, checkCase, execute, type Case, type Placement } from './kernel-cases.js';
import { nativeSettingsForSuite, nativeVariants, useNativeVariant } from './native-settings.js';

const native = loadNativeBackend();
const info = nativeInfo();
const nativeSkip = native === null ? `native backend not built: ${nativeLoadError() ?? 'unknown reason'}` : false;

const wasm = loadWasmBackendSync();
const wasmSkip = wasm === null ? `wasm backend not loaded: ${wasmLoadError() ?? 'unknown reason'}` : false;
/** Inputs in the wasm backend's linear memory: what a model's buffers are. */
const inLinearMemory: Placement = (x) => {
  const y = wasm!.allocate('float32', x.length);
  y.set(x);
  return y;
};

/**
 * A backend under test and the configurations it runs in, each set up before its cases run (`place`: where
 * its float inputs are; `tolScale`: a factor on every case's tolerance).
 */
interface Subject {
  name: string;
  backend: Backend | null;
  configurations: { label: string; setup?: () => void; place?: Placement }[];
  tolScale?: number;
  skip: string | false;
}

const nativeConfigurations = (info === null ? [] : nativeVariants()).map((variant) => ({
  label: variant.label,
  setup: () => useNativeVariant(variant),
}));

const subjects: Subject[] = [
  { name: 'reference', backend: referenceBackend, configurations: [{ label: 'float32' }], skip: false },
  { name: 'native', backend: native, configurations: nativeConfigurations, skip: nativeSkip },
  {
    name: 'native core + defaults',
    backend: native === null ? null : withArgumentChecks(new CoreOnlyBackend(native)),
    configurations: nativeConfigurations.filter((c) => c.label === `${info?.isa}, 2 threads`),
    skip: nativeSkip,
  },
  {
    name: 'wasm',
    backend: wasm,
    configurations: [
      { label: 'simd128, arguments in ordinary arrays' },
      { label: 'simd128, arguments in linear memory', place: inLinearMemory },
    ],
    tolScale: WASM_TOL_SCALE,
    skip: wasmSkip,
  },
  {
    name: 'wasm core + defaults',
    backend: wasm === null ? null : withArgumentChecks(new CoreOnlyBackend(wasm)),
    configurations: [{ label: 'simd128, arguments in linear memory', place: inLinearMemory }],
    tolScale: WASM_TOL_SCALE,
    skip: wasmSkip,
  },
];

describe('every backend matches the float64 reference', () => {
  const groups = caseGroups(new Random(20251127));
  // The float64 reference result of every case, computed once and shared by every backend and configuration.
  const wanted = new Map<Case, Record<string, ArrayLike<number> | number>>();
  const want = (c: Case): Record<string, ArrayLike<number> | number> => {
    let w = wanted.get(c);
    if (w === undefined) {
      w = execute(c, referenceBackend, true);
      wanted.set(c, w);
    }
    return w;
  };

  nativeSettingsForSuite();

  for (const subject of subjects) {
    describe(subject.name, { skip: subject.skip }, () => {
      for (const configuration of subject.configurations) {
        describe(configuration.label, () => {
          for (const [group, cases] of groups) {
            it(`${group} (${cases.length} cases)`, () => {
              configuration.setup?.();
              for (const c of cases)
                checkCase(
                  c,
                  execute(c, subject.backend!, false, configuration.place),
                  want(c),
                  `[${subject.name}, ${configuration.label}]`,
                  subject.tolScale,
                );
            });
          }
        });
      }
    });
  }
});

describe('native backend', { skip: nativeSkip }, () => {
  after(() => {
    if (native === null) return;
    setNativeIsa(info!.isa);
    setNativeThreads(info!.threads);
  });

  it('gives bit-identical results on 1 and 2 threads (reductions do not depend on the thread count)', () => {
    const old = setNativeParallelThreshold(0);
    try {
      const cases = caseGroups(new Random(20251127))
        .flatMap(([, c]) => c)
        .filter((c) => /^(gemm 40x24x1500|gemm 7x1x2000|roafMlp|roafCell|lstm|gru)/.test(c.name));
      assert.ok(cases.length >= 10);
      setNativeIsa(info!.isa);
      for (const c of cases) {
        setNativeThreads(1);
        const one = execute(c, native!, false);
        setNativeThreads(2);
        const two = execute(c, native!, false);
        for (const name of c.outputs)
          assert.deepEqual(two[name], one[name], `${c.name}: ${name} differs between 1 and 2 threads`);
      }
    } finally {
      setNativeParallelThreshold(old);
    }
  });

  it('describes itself and supports float32 only', () => {
    assert.equal(native!.name, 'native');
    assert.match(native!.describe(), /^native \((avx512|avx2|portable), \d+ threads?\)$/);
    assert.equal(native!.supports('float32'), true);
    assert.equal(native!.supports('float64'), false);
  });

  it('measures the FMA peak of every instruction set (wider vectors are not slower) and checks its duration', () => {
    // The best of five rounds, interleaved: on a shared machine one 20 ms window can lose the core to
    // another process, which would make that instruction set look slow (a peak is the best measured).
    const peaks = new Map<NativeIsa, number>();
    for (let round = 0; round < 5; round++) {
      for (const isa of info!.available) {
        setNativeIsa(isa);
        const flops = nativeFmaPeak(0.02);
        assert.ok(Number.isFinite(flops) && flops > 1e8, `${isa}: ${flops} FLOPS`);
        peaks.set(isa, Math.max(peaks.get(isa) ?? 0, flops));
      }
    }
    setNativeIsa(info!.isa);
    // The portable path's vectors are whatever the compiler makes of 4 floats: it cannot beat AVX2's 8.
    if (peaks.has('avx2')) assert.ok(peaks.get('portable')! < 1.5 * peaks.get('avx2')!);
    assert.throws(() => nativeFmaPeak(0), /seconds must be a number >= 0.01 and <= 10, got 0/);
    assert.throws(() => nativeFmaPeak(Number.NaN), /seconds/);
  });

  it('measures the FMA peak of all threads at once: every thread of the pool takes part', () => {
    setNativeThreads(2);
    // Each thread that ran adds its own figure: two threads sum to more than one thread alone measures, even
    // on one shared physical core (two loops of 12 chains each keep it at least as busy as one).
    const one = nativeFmaPeak(0.05);
    const all = nativeFmaPeakAllThreads(0.05);
    assert.ok(Number.isFinite(all) && all > 0.5 * one, `all threads ${all} vs one ${one}`);
    assert.throws(() => nativeFmaPeakAllThreads(20), /seconds must be a number >= 0.01 and <= 10, got 20/);
    setNativeThreads(info!.threads);
  });

  it('refuses an unknown instruction set', () => {
    assert.throws(() => setNativeIsa('sse9' as NativeIsa), /not available/);
  });

  it('obeys ROAF_ISA and ROAF_THREADS in a fresh process, and refuses an unknown ROAF_ISA', () => {
    const module = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'backend', 'native.js');
    const script = `import(${JSON.stringify(module)}).then((m) => { const b = m.loadNativeBackend(); console.log(b === null ? 'null' : b.describe()); })`;
    const run = (env: Record<string, string>) =>
      spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, ...env } });
    const portable = run({ ROAF_ISA: 'portable', ROAF_THREADS: '1' });
    assert.equal(portable.stdout.trim(), 'native (portable, 1 thread)', portable.stderr);
    const bad = run({ ROAF_ISA: 'sse9' });
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /ROAF_ISA must be one of avx512, avx2, portable, got 'sse9'/);
  });
});
