// The wasm backend beyond the conformance suite (backend-native.test.ts runs every kernel case on it): its
// memory model (views of linear memory, subarrays, host arrays staged per call with their aliasing kept, a
// full memory, buffers freed by the garbage collector), loading (synchronous and asynchronous, the memory size
// and its errors), `--backend auto` falling back to it, and that the committed module is fresh.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { referenceBackend } from '../src/backend/reference.js';
import { createWasmBackend, loadWasmBackend } from '../src/backend/wasm.js';
import { loadWasmBackendSync, wasmLoadError, wasmModulePath } from '../src/backend/wasm-node.js';
import { Random } from '../src/util/random.js';
import { maxAbsDiff } from './helpers.js';
import { randomArray } from './kernel-cases.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const wasm = loadWasmBackendSync();
const skip = wasm === null ? `wasm backend not loaded: ${wasmLoadError() ?? 'unknown reason'}` : false;

/** Runs `script` (an ES module body) in a fresh Node with `env` and `flags`. */
function runNode(script: string, env: Record<string, string> = {}, flags: string[] = []) {
  return spawnSync(process.execPath, [...flags, '--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
}

const moduleUrl = (path: string): string => JSON.stringify(pathToFileURL(join(here, '..', path)).href);

describe('wasm backend', { skip }, () => {
  const b = wasm!;

  it('describes itself and supports float32 only', () => {
    assert.equal(b.name, 'wasm');
    assert.match(b.describe(), /^wasm \(simd128, 1 thread, \d+ MiB memory\)$/);
    assert.equal(b.wasm.isa(), 'simd128');
    assert.equal(b.supports('float32'), true);
    assert.equal(b.supports('float64'), false);
    assert.throws(() => b.allocate('float64', 4), /allocate: the wasm backend does not support float64/);
  });

  it('allocates zeroed views of its linear memory; subarrays are views of it too', () => {
    const x = b.allocate('float32', 1000);
    assert.ok(x instanceof Float32Array);
    assert.ok(b.wasm.inLinearMemory(x));
    assert.equal(x.constructor.name, 'Float32Array'); // what safetensors and the checkpoint tensors read
    assert.ok(x.every((v) => v === 0));
    x.fill(3);
    const y = b.allocate('float32', 1000); // a fresh buffer, not x's
    assert.ok(y.every((v) => v === 0));
    assert.ok(b.wasm.inLinearMemory(x.subarray(10, 20)));
    assert.equal(b.wasm.inLinearMemory(new Float32Array(4)), false);
  });

  it('computes the same with arguments in linear memory, in host arrays, and mixed, keeping aliasing', () => {
    const rng = new Random(7);
    const M = 9,
      N = 13,
      K = 17;
    const A = randomArray(rng, M * K),
      B = randomArray(rng, K * N),
      C0 = randomArray(rng, M * N);
    const run = (backend: typeof b | typeof referenceBackend, place: 'linear' | 'host' | 'one-buffer') => {
      let a: Float32Array, bb: Float32Array, c: Float32Array;
      if (place === 'one-buffer') {
        // A, B and C as views of one host ArrayBuffer, C in the middle: staged as one range.
        const all = new Float32Array(A.length + C0.length + B.length + 8);
        a = all.subarray(0, A.length);
        c = all.subarray(A.length + 3, A.length + 3 + C0.length);
        bb = all.subarray(A.length + C0.length + 5);
      } else {
        const alloc = (n: number) =>
          place === 'linear' ? (backend.allocate('float32', n) as Float32Array) : new Float32Array(n);
        a = alloc(A.length);
        bb = alloc(B.length);
        c = alloc(C0.length);
      }
      a.set(A);
      bb.set(B);
      c.set(C0);
      backend.gemm({
        transA: false,
        transB: false,
        M,
        N,
        K,
        alpha: 0.5,
        A: a,
        lda: K,
        B: bb,
        ldb: N,
        beta: 2,
        C: c,
        ldc: N,
      });
      backend.scale(c.length, c, 3); // in place: x and out are one array
      return Array.from(c);
    };
    const want = run(referenceBackend, 'host');
    for (const place of ['linear', 'host', 'one-buffer'] as const) {
      const got = run(b, place);
      assert.ok(maxAbsDiff(got, want) < 1e-4 * Math.max(...want.map(Math.abs)), place);
    }
    // Mixed: A in linear memory, B and C in host arrays.
    const a = b.allocate('float32', A.length);
    a.set(A);
    const c = Float32Array.from(C0);
    b.gemm({
      transA: false,
      transB: false,
      M,
      N,
      K,
      alpha: 0.5,
      A: a,
      lda: K,
      B: B.slice(),
      ldb: N,
      beta: 2,
      C: c,
      ldc: N,
    });
    b.scale(c.length, c, 3);
    assert.ok(maxAbsDiff(c, want) < 1e-4 * Math.max(...want.map(Math.abs)));
  });

  it('measures its multiply-add peak and checks its duration', () => {
    const flops = b.wasm.fmaPeak(0.02);
    assert.ok(Number.isFinite(flops) && flops > 1e8, `${flops} FLOPS`);
    assert.throws(() => b.wasm.fmaPeak(0), /seconds must be a number >= 0.01 and <= 10, got 0/);
  });

  it('loads asynchronously from bytes, with a chosen memory size, and refuses a size out of range', async () => {
    const bytes = readFileSync(wasmModulePath());
    const small = await loadWasmBackend({ bytes: new Uint8Array(bytes), memoryBytes: 32 * 2 ** 20 });
    assert.match(small.describe(), /32 MiB memory/);
    const x = small.allocate('float32', 8).fill(2);
    assert.equal(small.sumSquares(8, x), 32);
    const module = new WebAssembly.Module(new Uint8Array(bytes));
    assert.throws(() => createWasmBackend(module, { memoryBytes: 2 ** 20 }), /memoryBytes.*>= 16 and <= 4096/);
    assert.throws(() => createWasmBackend(module, { memoryBytes: 20.5 * 2 ** 20 }), /memoryBytes.*integer/);
  });

  it('falls back to host arrays when its memory is full, and names the setting when a call cannot be staged', () => {
    const bytes = new Uint8Array(readFileSync(wasmModulePath()));
    const small = createWasmBackend(new WebAssembly.Module(bytes), { memoryBytes: 16 * 2 ** 20 });
    const errors: string[] = [];
    const log = console.error;
    console.error = (message: string) => errors.push(message);
    let big: Float32Array;
    try {
      big = small.allocate('float32', 5 * 2 ** 20) as Float32Array; // 20 MiB > 16 MiB
    } finally {
      console.error = log;
    }
    assert.equal(small.wasm.inLinearMemory(big), false);
    assert.equal(big.length, 5 * 2 ** 20);
    assert.match(errors.join('\n'), /16 MiB of memory are full.*ROAF_WASM_MEMORY/);
    assert.throws(
      () => small.scale(big.length, big, 2),
      /has no room for 20971520 bytes of arguments.*ROAF_WASM_MEMORY/,
    );
    // The backend still works afterwards.
    const x = small.allocate('float32', 4).fill(1);
    small.scale(4, x, 2);
    assert.deepEqual(Array.from(x), [2, 2, 2, 2]);
  });

  it('frees a buffer once neither it nor a subarray of it is reachable', () => {
    // 40 buffers of 8 MiB in 64 MiB of memory: only possible if the collected ones are freed. A subarray kept
    // alive keeps its buffer: its contents must survive the collections.
    const script = `
      const { readFileSync } = await import('node:fs');
      const { createWasmBackend } = await import(${moduleUrl('src/backend/wasm.js')});
      const { wasmModulePath } = await import(${moduleUrl('src/backend/wasm-node.js')});
      const b = createWasmBackend(new WebAssembly.Module(readFileSync(wasmModulePath())), { memoryBytes: 64 * 2 ** 20 });
      const kept = b.allocate('float32', 2 ** 21).fill(5).subarray(100, 110);
      // The collector decides when finalizers run: a buffer that does not fit is retried after a collection.
      let inMemory = 0;
      for (let i = 0; i < 40; i++) {
        for (let attempt = 0; attempt < 20; attempt++) {
          const x = b.allocate('float32', 2 ** 21);
          x.fill(i);
          if (b.wasm.inLinearMemory(x)) {
            inMemory++;
            break;
          }
          globalThis.gc();
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        globalThis.gc();
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      console.log(JSON.stringify({ inMemory, kept: Array.from(kept) }));`;
    const run = runNode(script, {}, ['--expose-gc']);
    assert.equal(run.status, 0, run.stderr);
    const result = JSON.parse(run.stdout) as { inMemory: number; kept: number[] };
    assert.equal(result.inMemory, 40, run.stderr);
    assert.deepEqual(result.kept, new Array(10).fill(5));
  });
});

describe('choosing the wasm backend', { skip }, () => {
  it('auto falls back to wasm when the native addon does not load, with one warning saying why', () => {
    const script = `
      const { loadBackend } = await import(${moduleUrl('src/backend/index.js')});
      console.log(loadBackend('auto').name, loadBackend('auto').name, loadBackend('auto', { dtype: 'float64' }).name);`;
    const run = runNode(script, { ROAF_NATIVE_PATH: '/nonexistent/roaf_native.node' });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout.trim(), 'wasm wasm reference');
    const warnings = run.stderr.trim().split('\n');
    assert.equal(warnings.length, 1, run.stderr);
    assert.match(warnings[0]!, /^roaf: using the wasm backend \(the addon .*roaf_native\.node is missing/);
  });

  it('auto uses the reference backend when neither loads; --backend wasm names the missing module', () => {
    const script = `
      const { loadBackend, requireBackend } = await import(${moduleUrl('src/backend/index.js')});
      console.log(loadBackend('auto').name);
      try { requireBackend('wasm', 'float32'); } catch (e) { console.log(e.message); }`;
    const run = runNode(script, { ROAF_NATIVE_PATH: '/nonexistent/a.node', ROAF_WASM_PATH: '/nonexistent/roaf.wasm' });
    assert.equal(run.status, 0, run.stderr);
    const [name, message] = run.stdout.trim().split('\n');
    assert.equal(name, 'reference');
    assert.match(message!, /^--backend wasm is not available: the module \/nonexistent\/roaf\.wasm is missing/);
    assert.match(run.stderr, /using the reference backend .*wasm backend unavailable/);
  });

  it('reads ROAF_WASM_MEMORY and refuses a value out of range, naming it', () => {
    const script = `
      const { loadWasmBackendSync } = await import(${moduleUrl('src/backend/wasm-node.js')});
      console.log(loadWasmBackendSync().describe());`;
    const ok = runNode(script, { ROAF_WASM_MEMORY: '64' });
    assert.equal(ok.stdout.trim(), 'wasm (simd128, 1 thread, 64 MiB memory)', ok.stderr);
    const bad = runNode(script, { ROAF_WASM_MEMORY: '8' });
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /ROAF_WASM_MEMORY \(MiB\) must be an integer >= 16 and <= 4096, got 8/);
  });
});

describe('roaf on the wasm backend', { skip }, () => {
  it('trains, checkpoints and evaluates from the command line with --backend wasm', () => {
    const cli = join(here, '..', 'src', 'cli', 'main.js');
    const out = mkdtempSync(join(tmpdir(), 'roaf-wasm-'));
    try {
      const roaf = (args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
      const train = roaf([
        'train',
        '--backend',
        'wasm',
        '--task',
        'mnist',
        '--model',
        'roaf-mlp',
        '--depth',
        '12',
        '--width',
        '16',
        '--train-limit',
        '256',
        '--test-limit',
        '64',
        '--batch',
        '32',
        '--epochs',
        '1',
        '--quiet',
        '--out',
        out,
      ]);
      assert.equal(train.status, 0, train.stderr);
      const evaluate = roaf([
        'eval',
        '--backend',
        'wasm',
        '--checkpoint',
        join(out, 'checkpoint'),
        '--test-limit',
        '64',
        '--json',
      ]);
      assert.equal(evaluate.status, 0, evaluate.stderr);
      assert.match(evaluate.stdout, /test accuracy \d+\.\d+ %/);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

describe('the committed wasm module', () => {
  it('was built from the current C sources and flags (rerun node scripts/build-wasm.mjs if not)', async () => {
    const build = (await import(pathToFileURL(join(root, 'scripts', 'build-wasm.mjs')).href)) as {
      isFresh(): boolean;
      readStamp(): { sourceHash: string } | null;
      sourceHash(): string;
    };
    assert.equal(build.readStamp()?.sourceHash, build.sourceHash());
    assert.ok(build.isFresh());
  });
});
