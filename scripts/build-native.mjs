#!/usr/bin/env node
// Builds the native backend (build/Release/roaf_native.node) with node-gyp; run by `npm install`.
//
// A failed build never fails the install: roaf then runs on the reference backend, and this script prints
// one warning saying why (the full compiler log is kept in build/native-build.log). Set ROAF_SKIP_NATIVE=1
// to skip the build.
//
// The C is built with warnings as errors (binding.gyp). A compiler newer than the ones the code is checked
// with may warn where they do not, and that must not cost a user the native backend: when the build fails,
// it is retried once without -Werror (gyp variable werror=0), with a note. ROAF_WERROR=1 is the strict mode
// for development and CI: no retry, and a failed build fails the install (exit code 1).

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const logPath = join(root, 'build', 'native-build.log');

const strict = process.env.ROAF_WERROR === '1';

function warn(reason) {
  console.warn(`roaf: native backend not built (${reason}); using the reference backend`);
  process.exit(0);
}

/** A failed build: a warning, or an error in strict mode. */
function failed(reason) {
  if (!strict) warn(reason);
  console.error(`roaf: native build failed (${reason})`);
  process.exit(1);
}

/** node-gyp's entry script: npm's own (npm passes its path to install scripts), else next to this node. */
function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(
      dirname(process.execPath),
      '..',
      'lib',
      'node_modules',
      'npm',
      'node_modules',
      'node-gyp',
      'bin',
      'node-gyp.js',
    ),
    join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  return candidates.find((p) => p !== undefined && p !== '' && existsSync(p)) ?? null;
}

/** Node's headers installed beside this node (e.g. Debian's nodejs-dev) spare node-gyp a download. */
function localNodeDir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = resolve(dirname(process.execPath), '..');
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : null;
}

if (process.env.ROAF_SKIP_NATIVE === '1') warn('ROAF_SKIP_NATIVE=1');
const nodeGyp = findNodeGyp();
if (nodeGyp === null) failed('node-gyp not found');
const args = [nodeGyp, 'rebuild'];
const nodeDir = localNodeDir();
if (nodeDir !== null) args.push(`--nodedir=${nodeDir}`);

function runNodeGyp(extra) {
  const result = spawnSync(process.execPath, [...args, ...extra], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  return { result, log: `${result.stdout ?? ''}\n${result.stderr ?? ''}` };
}

function firstError(log) {
  return log.split('\n').find((line) => /error/i.test(line) && !/^gyp ERR! (stack|System|command|cwd|node)/.test(line));
}

const started = Date.now();
let { result, log } = runNodeGyp([]);
if (!result.error && result.status !== 0 && !strict) {
  const strictError = firstError(log);
  const retry = runNodeGyp(['--', '-Dwerror=0']);
  log = `${log}\n---- retried without -Werror ----\n${retry.log}`;
  if (!retry.result.error && retry.result.status === 0) {
    console.warn(
      `roaf: the native build failed with warnings as errors${strictError ? ` (${strictError.trim()})` : ''}; built without -Werror`,
    );
  }
  result = retry.result;
}
mkdirSync(dirname(logPath), { recursive: true });
writeFileSync(logPath, log);
if (result.error) failed(`could not run node-gyp: ${result.error.message}`);
if (result.status !== 0) {
  const error = firstError(log);
  failed(`node-gyp exited with code ${result.status}${error ? `: ${error.trim()}` : ''}; see ${logPath}`);
}
if (!existsSync(join(root, 'build', 'Release', 'roaf_native.node'))) failed('node-gyp produced no roaf_native.node');
console.log(`roaf: native backend built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
