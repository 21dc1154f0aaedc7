#!/usr/bin/env node
// Builds the WebAssembly backend's module, native/wasm/roaf.wasm, from the same C kernel sources as the native
// addon (the kernel files of binding.gyp, pool.c and parallel.c, and the entry layer native/wasm/entry.c with
// its generated exports), compiled once for wasm32 with 128-bit SIMD, one thread. docs/wasm.md describes it.
//
//   node scripts/build-wasm.mjs             # build it
//   node scripts/build-wasm.mjs --if-stale  # build it only when the sources or flags changed (`npm run prepare`)
//   node scripts/build-wasm.mjs --check     # exit 1 when the committed module is stale (CI)
//
// The module is committed, with native/wasm/roaf.wasm.json beside it: the SHA-256 of the sources and flags it
// was built from. So a user without a clang that targets wasm32 (and the browser bundle) gets it as it is,
// and a test (test/backend-wasm.test.ts) fails when a C source changed but the module was not rebuilt.
// Byte-for-byte reproducible compiler output is not needed: the hash is of the inputs.
//
// The toolchain is Debian's: clang and wasm-ld (lld), wasi-libc (the C library: malloc, libm) and
// libclang-rt-dev-wasm32 (compiler builtins). CLANG overrides the compiler.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const WASM_PATH = join(root, 'native', 'wasm', 'roaf.wasm');
export const WASM_STAMP_PATH = join(root, 'native', 'wasm', 'roaf.wasm.json');

/** The kernel files, as binding.gyp lists them (one list for both builds). */
function kernelSources() {
  const gyp = readFileSync(join(root, 'binding.gyp'), 'utf8');
  const list = /"kernel_sources":\s*\[([^\]]*)\]/.exec(gyp);
  if (list === null) throw new Error('binding.gyp: no "kernel_sources" list');
  return [...list[1].matchAll(/"([^"]+\.c)"/g)].map((m) => m[1]);
}

export const SOURCES = [...kernelSources(), 'native/src/pool.c', 'native/src/parallel.c', 'native/wasm/entry.c'];

export const CFLAGS = [
  '--target=wasm32-wasi',
  '-msimd128',
  '-O3',
  '-std=gnu11',
  '-fno-math-errno',
  '-DROAF_ISA_SIMD128',
  '-DROAF_SINGLE_THREAD',
  '-Inative/include',
  '-Inative/src',
  '-Wall',
  '-Wextra',
  '-Wshadow',
  '-Wconversion',
  '-Werror',
];

// A reactor (a library, no main: _initialize sets up the C library), its memory imported from JavaScript so
// the loader chooses its size (src/backend/wasm.ts), a 1 MiB stack, malloc and free exported for buffers.
export const LDFLAGS = [
  '-mexec-model=reactor',
  '-Wl,--import-memory',
  '-Wl,--max-memory=4294967296',
  '-Wl,-z,stack-size=1048576',
  '-Wl,--export=malloc',
  '-Wl,--export=free',
  '-Wl,--strip-all',
];

/** Every file the module depends on: its sources, the headers and the generated exports. */
function inputs() {
  const headers = [];
  for (const dir of ['native/src', 'native/include', 'native/wasm']) {
    for (const name of readdirSync(join(root, dir)).sort()) {
      if (/\.(h|inc)$/.test(name) && name !== 'addon_kernels.inc') headers.push(`${dir}/${name}`);
    }
  }
  return [...SOURCES, ...headers];
}

/** The SHA-256 of the inputs (path and text of each) and the flags: what the stamp records. */
export function sourceHash() {
  const hash = createHash('sha256');
  for (const file of inputs()) {
    hash.update(`${file}\n`);
    hash.update(readFileSync(join(root, file)));
    hash.update('\n');
  }
  hash.update(JSON.stringify([CFLAGS, LDFLAGS]));
  return hash.digest('hex');
}

/** The recorded stamp, or null when there is none. */
export function readStamp() {
  try {
    return JSON.parse(readFileSync(WASM_STAMP_PATH, 'utf8'));
  } catch {
    return null;
  }
}

export function isFresh() {
  return existsSync(WASM_PATH) && readStamp()?.sourceHash === sourceHash();
}

function build() {
  const clang = process.env.CLANG ?? 'clang';
  const version = spawnSync(clang, ['--version'], { encoding: 'utf8' });
  if (version.status !== 0) return `${clang} was not found`;
  const tmp = `${WASM_PATH}.tmp`;
  const args = [...CFLAGS, ...LDFLAGS, ...SOURCES, '-o', relative(root, tmp)];
  const run = spawnSync(clang, args, { cwd: root, encoding: 'utf8' });
  if (run.status !== 0) return `${clang} failed:\n${run.stderr}`;
  renameSync(tmp, WASM_PATH);
  const stamp = {
    sourceHash: sourceHash(),
    compiler: version.stdout.split('\n')[0],
    command: `${clang} ${[...CFLAGS, ...LDFLAGS, ...SOURCES].join(' ')}`,
  };
  writeFileSync(WASM_STAMP_PATH, `${JSON.stringify(stamp, null, 2)}\n`);
  return null;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--check')) {
    if (!isFresh()) {
      console.error(`${WASM_PATH} is stale (its sources or flags changed): run node scripts/build-wasm.mjs`);
      process.exit(1);
    }
  } else if (process.argv.includes('--if-stale') && isFresh()) {
    // nothing to do: the committed module was built from these sources
  } else {
    const error = build();
    if (error !== null) {
      if (process.argv.includes('--if-stale')) {
        // prepare must not fail where clang cannot target wasm32: the committed module stays (stale).
        console.warn(`roaf: the wasm module was not rebuilt (${error}); the committed one may be stale`);
      } else {
        console.error(`roaf: wasm build failed: ${error}`);
        process.exit(1);
      }
    } else {
      console.log(`wrote ${WASM_PATH}`);
    }
  }
}
