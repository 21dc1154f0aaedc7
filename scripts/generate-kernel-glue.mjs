#!/usr/bin/env node
// Writes native/src/addon_kernels.inc, the N-API entry point of every kernel, from the kernel table
// (src/backend/kernel-table.ts, read from its build in dist/). Each entry point reads its arguments in table
// order (which is the C kernel's parameter order) and calls the kernel of the instruction set in use; the
// arguments were checked before, by the same table, in TypeScript (src/backend/kernel-checks.ts).
//
//   npm run build && node scripts/generate-kernel-glue.mjs           # rewrite the file
//   npm run build && node scripts/generate-kernel-glue.mjs --check   # exit 1 if it is stale
//
// The output is committed: `npm install` builds the addon before the TypeScript. test/kernel-table.test.ts
// fails when the committed file differs from what this script writes.

import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const GLUE_PATH = join(root, 'native', 'src', 'addon_kernels.inc');

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

/** The kernel table module, as built in dist/. */
export async function loadTable() {
  return import(pathToFileURL(join(root, 'dist', 'src', 'backend', 'kernel-table.js')).href);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { KERNEL_TABLE, kernelTableId } = await loadTable();
  const text = renderKernelGlue(KERNEL_TABLE, kernelTableId());
  if (process.argv.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(GLUE_PATH, 'utf8');
    } catch {
      // missing: stale
    }
    if (current !== text) {
      console.error(`${GLUE_PATH} is stale: run npm run build && node scripts/generate-kernel-glue.mjs`);
      process.exit(1);
    }
  } else {
    writeFileSync(GLUE_PATH, text);
    console.log(`wrote ${GLUE_PATH}`);
  }
}
