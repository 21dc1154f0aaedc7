#!/usr/bin/env node
// Writes the entry points of every kernel from the kernel table (src/backend/kernel-table.ts, read from its
// build in dist/), so a kernel is declared once:
// - native/src/addon_kernels.inc, the N-API entry points of the addon: each reads its arguments in table order
//   (which is the C kernel's parameter order) and calls the kernel of the instruction set in use;
// - native/wasm/wasm_kernels.inc, the WebAssembly exports (docs/wasm.md): each takes the same arguments as
//   plain wasm values (sizes and flags as i32, scalars as f32/f64, arrays as pointers into linear memory, a
//   filter as kind, n, data, perm, a filter list as a pointer to an array of roaf_filter) and calls the
//   simd128 kernel.
// The arguments were checked before, by the same table, in TypeScript (src/backend/kernel-checks.ts).
//
//   npm run build && node scripts/generate-kernel-glue.mjs           # rewrite the files
//   npm run build && node scripts/generate-kernel-glue.mjs --check   # exit 1 if one is stale
//
// The output is committed: `npm install` builds the addon before the TypeScript. test/kernel-table.test.ts
// fails when a committed file differs from what this script writes.

import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const GLUE_PATH = join(root, 'native', 'src', 'addon_kernels.inc');
export const WASM_GLUE_PATH = join(root, 'native', 'wasm', 'wasm_kernels.inc');

/** gemm -> gemm, roafMlpForward -> roaf_mlp_forward: the C kernel's name in roaf_kernels. */
export function snakeCase(name) {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

const ARRAY_TYPES = {
  floats: ['float', 'napi_float32_array'],
  float64s: ['double', 'napi_float64_array'],
  int32s: ['int32_t', 'napi_int32_array'],
  uint8s: ['uint8_t', 'napi_uint8_array'],
};

/** The C lines that read one argument starting at argv[at]; returns the lines and the argv slots it takes. */
function readArgument(arg, at) {
  const q = JSON.stringify(arg.name);
  switch (arg.kind) {
    case 'size':
      return { lines: [`idx ${arg.name} = arg_idx(&in, ${at}, ${q});`], slots: 1, pass: arg.name };
    case 'scalar':
      return { lines: [`${arg.c} ${arg.name} = (${arg.c})arg_number(&in, ${at}, ${q});`], slots: 1, pass: arg.name };
    case 'bool':
      return { lines: [`int ${arg.name} = arg_bool(&in, ${at}, ${q});`], slots: 1, pass: arg.name };
    case 'filter':
      return { lines: [`roaf_filter ${arg.name} = arg_filter(&in, ${at}, ${q});`], slots: 4, pass: `&${arg.name}` };
    case 'filters':
      return {
        lines: [`const roaf_filter *${arg.name} = arg_filters(&in, ${at}, ${arg.count}, ${q});`],
        slots: 4,
        pass: arg.name,
      };
    default: {
      const [ctype, napiType] = ARRAY_TYPES[arg.kind];
      const nullable = arg.nullable ? 1 : 0;
      return {
        lines: [`${ctype} *${arg.name} = arg_array(&in, ${at}, ${q}, ${napiType}, ${nullable});`],
        slots: 1,
        pass: arg.name,
      };
    }
  }
}

/** The `addRowVector(rows, n, y, bias)` comment line of a kernel. */
function signature(name, spec) {
  const names = spec.args.map((a) =>
    a.kind === 'filter'
      ? `${a.name}: kind, n, data, perm`
      : a.kind === 'filters'
        ? `${a.name}: kinds, n, datas, perms`
        : a.name,
  );
  return `${name}(${names.join(', ')})`;
}

function entryPoint(name, spec) {
  const reads = [];
  const passes = [];
  let at = 0;
  for (const arg of spec.args) {
    const { lines, slots, pass } = readArgument(arg, at);
    reads.push(...lines);
    passes.push(pass);
    at += slots;
  }
  const call = `kernels->${snakeCase(name)}(${passes.join(', ')})`;
  const body = [
    `args_t in;`,
    `if (!get_args(env, info, &in, ${JSON.stringify(name)}, ${at})) return NULL;`,
    ...reads,
    `if (in.failed) return NULL;`,
    ...(spec.returns === 'number' ? [`return number(env, ${call});`] : [`${call};`, `return undefined(env);`]),
  ];
  return [
    `// ${signature(name, spec)}`,
    `static napi_value js_${snakeCase(name)}(napi_env env, napi_callback_info info) {`,
    ...body.map((line) => `  ${line}`),
    `}`,
  ].join('\n');
}

/** The whole generated file, for the table whose kernelTableId() is `id`. */
export function renderKernelGlue(table, id) {
  const names = Object.keys(table).filter((name) => table[name].native !== false);
  return [
    `// The N-API entry points of the kernels, included by addon.c. GENERATED from src/backend/kernel-table.ts by`,
    `// scripts/generate-kernel-glue.mjs: do not edit; change the table and rerun the script.`,
    `//`,
    `// Each reads its arguments in table order (a filter as kind, n, data, perm; a filter list as kinds, n, datas,`,
    `// perms) and calls the kernel of the instruction set in use. The arguments were checked by the same table in`,
    `// TypeScript before the call (lengths, strides, dtypes, filters); here they are only read.`,
    ``,
    `// The table's fingerprint (kernelTableId()): src/backend/native.ts refuses an addon built from another table.`,
    `#define ROAF_KERNEL_TABLE_ID ${JSON.stringify(id)}`,
    ``,
    ...names.map((name) => `${entryPoint(name, table[name])}\n`),
    `#define ROAF_KERNEL_PROPERTIES \\`,
    ...names.map(
      (name, i) =>
        `  {${JSON.stringify(name)}, NULL, js_${snakeCase(name)}, NULL, NULL, NULL, napi_default, NULL}${i + 1 < names.length ? ', \\' : ''}`,
    ),
    ``,
  ].join('\n');
}

// ---- the WebAssembly exports ----

const WASM_ARRAY_TYPES = { floats: 'float', float64s: 'double', int32s: 'int32_t', uint8s: 'uint8_t' };

/** The C parameters of one argument of a wasm export, and what it passes to the kernel. */
function wasmParameter(arg) {
  switch (arg.kind) {
    case 'size':
      return { params: [`idx ${arg.name}`], pass: arg.name };
    case 'scalar':
      return { params: [`${arg.c} ${arg.name}`], pass: arg.name };
    case 'bool':
      return { params: [`int ${arg.name}`], pass: arg.name };
    case 'filter':
      return {
        params: [`int ${arg.name}Kind`, `int ${arg.name}N`, `float *${arg.name}Data`, `int32_t *${arg.name}Perm`],
        pass: `&${arg.name}`,
        setup: `roaf_filter ${arg.name} = wasm_filter(${arg.name}Kind, ${arg.name}N, ${arg.name}Data, ${arg.name}Perm);`,
      };
    case 'filters':
      return { params: [`const roaf_filter *${arg.name}`], pass: arg.name };
    default:
      return { params: [`${WASM_ARRAY_TYPES[arg.kind]} *${arg.name}`], pass: arg.name };
  }
}

function wasmExport(name, spec) {
  const parts = spec.args.map(wasmParameter);
  const params = parts.flatMap((p) => p.params);
  const call = `roaf_kernels_simd128.${snakeCase(name)}(${parts.map((p) => p.pass).join(', ')})`;
  const setups = parts.filter((p) => p.setup !== undefined).map((p) => `  ${p.setup}`);
  const ret = spec.returns === 'number' ? 'double' : 'void';
  const names = spec.args.map((a) =>
    a.kind === 'filter' ? `${a.name}: kind, n, data, perm` : a.kind === 'filters' ? `${a.name}[${a.count}]` : a.name,
  );
  return [
    `// ${name}(${names.join(', ')})`,
    `__attribute__((export_name(${JSON.stringify(name)}))) ${ret} wasm_${snakeCase(name)}(${params.join(', ')}) {`,
    ...setups,
    `  ${spec.returns === 'number' ? 'return ' : ''}${call};`,
    `}`,
  ].join('\n');
}

/** The generated WebAssembly exports, for the table whose kernelTableId() is `id`. */
export function renderWasmGlue(table, id) {
  const names = Object.keys(table).filter((name) => table[name].native !== false);
  return [
    `// The WebAssembly exports of the kernels, included by native/wasm/entry.c. GENERATED from`,
    `// src/backend/kernel-table.ts by scripts/generate-kernel-glue.mjs: do not edit; change the table and rerun.`,
    `//`,
    `// Each export is named after its kernel and takes the table's arguments in order as wasm values: sizes and`,
    `// flags i32, scalars f32 or f64, arrays pointers into linear memory, a filter as kind, n, data (matrix or`,
    `// signs), perm, a filter list as a pointer to an array of roaf_filter. The arguments were checked by the same`,
    `// table in TypeScript before the call (src/backend/wasm.ts).`,
    ``,
    `// The table's fingerprint (kernelTableId()): src/backend/wasm.ts refuses a module built from another table.`,
    `#define ROAF_KERNEL_TABLE_ID ${JSON.stringify(id)}`,
    ``,
    ...names.map((name) => `${wasmExport(name, table[name])}\n`),
  ].join('\n');
}

/** The kernel table module, as built in dist/. */
export async function loadTable() {
  return import(pathToFileURL(join(root, 'dist', 'src', 'backend', 'kernel-table.js')).href);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { KERNEL_TABLE, kernelTableId } = await loadTable();
  const outputs = [
    [GLUE_PATH, renderKernelGlue(KERNEL_TABLE, kernelTableId())],
    [WASM_GLUE_PATH, renderWasmGlue(KERNEL_TABLE, kernelTableId())],
  ];
  for (const [path, text] of outputs) {
    if (process.argv.includes('--check')) {
      let current = '';
      try {
        current = readFileSync(path, 'utf8');
      } catch {
        // missing: stale
      }
      if (current !== text) {
        console.error(`${path} is stale: run npm run build && node scripts/generate-kernel-glue.mjs`);
        process.exitCode = 1;
      }
    } else {
      writeFileSync(path, text);
      console.log(`wrote ${path}`);
    }
  }
}
