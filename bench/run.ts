// `npm run bench`: roaf against PyTorch (CPU) and TensorFlow.js (wasm) on the configurations of issue 3,
// side by side in one run, with the ratios peer / roaf (how many times faster roaf is).
//
// Every measurement is one training step: forward + softmax cross-entropy + backward + Adam update, on
// random data in psMNIST's shapes (recurrent: B = 128, T = 784, D = 1, K = 10) or MNIST's (feed-forward:
// D = 784, K = 10); the median of timed repeats after warm-up. Each engine runs in its own process, one
// configuration at a time and interleaved (roaf, PyTorch, TF.js), so that the load of a shared machine
// hits all of them alike:
//   roaf     `roaf bench ... --json` (this package's CLI; the native backend when it is built). It
//            checks that the loss is finite before it times anything.
//   PyTorch  bench/peers/torch_bench.py with Debian's python3-torch, OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE
//            unset (they would force slower OpenBLAS kernels), ATen's AVX-512 kernels where the CPU has
//            them. A ROAF model is timed in every formulation the script knows (Python loops with and
//            without a precomputed input term, in-place ops, concatenated products, torch.jit.script, a
//            hand-written backward), each checked against the reference formulation's loss and gradients
//            first; the peer is the fastest formulation at its best of torch.set_num_threads(1) and (2).
//   TF.js    dist/bench/peers/tfjs-bench.js (wasm backend); the RNN is timed at T = 98 and the MLP at
//            100 layers and scaled linearly (a full step takes many seconds).
// A peer that is not installed is skipped with the command that installs it. The harness never fails on
// time: it exits 1 only when roaf itself fails (a crash or a non-finite loss).

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { TORCH_INSTALL, torchEnv } from './torch-env.js';

const HERE = dirname(fileURLToPath(import.meta.url)); // dist/bench
const ROOT = join(HERE, '..', '..');
const ROAF_CLI = join(HERE, '..', 'src', 'cli', 'main.js');
const TORCH_SCRIPT = join(ROOT, 'bench', 'peers', 'torch_bench.py');
const TFJS_SCRIPT = join(HERE, 'peers', 'tfjs-bench.js');
const GEMM_SCRIPT = join(HERE, 'gemm.js');
const WASM_SCRIPT = join(HERE, 'wasm.js');
const TFJS_INSTALL = 'npm install --save-dev @tensorflow/tfjs @tensorflow/tfjs-backend-wasm';

/** psMNIST: 60,000 training and 10,000 test sequences. */
const PSMNIST_TRAIN = 60_000;
const PSMNIST_TEST = 10_000;

type Peer = 'roaf' | 'pytorch' | 'tfjs';
const PEERS: readonly Peer[] = ['roaf', 'pytorch', 'tfjs'];
/** The columns of results: the peers, and roaf with `--precision bf16` when asked for. */
type Column = Peer | 'roaf-bf16';

/** One configuration, in the fields `roaf bench` and the peers take. */
interface BenchConfig {
  name: string;
  label: string;
  model: 'roaf-rnn' | 'rnn' | 'lstm' | 'gru' | 'roaf-mlp';
  batch: number;
  hidden?: number;
  seq_len?: number;
  depth?: number;
  width?: number;
  /** The ROAF models' filter, the same in roaf and PyTorch (TF.js times Haar only). */
  filter?: 'haar' | 'permutation';
  tfjs: boolean;
  /** Also time the forward pass alone (the psMNIST epoch estimate needs it). */
  forward: boolean;
  /** Issue 3's figure: the least factor peer / roaf. */
  targets: Partial<Record<Exclude<Peer, 'roaf'>, number>>;
}

function configurations(T: number, L: number): BenchConfig[] {
  const rnn = (
    name: string,
    model: BenchConfig['model'],
    N: number,
    label: string,
    extra: Partial<BenchConfig>,
  ): BenchConfig => ({
    name,
    label: `${label} N=${N} B=128 T=${T}`,
    model,
    batch: 128,
    hidden: N,
    seq_len: T,
    tfjs: false,
    forward: false,
    targets: {},
    ...extra,
  });
  const mlp = (N: number): BenchConfig => ({
    name: `roaf-mlp-${N}`,
    label: `ROAF MLP L=${L} N=${N} B=128`,
    model: 'roaf-mlp',
    batch: 128,
    depth: L,
    width: N,
    tfjs: true,
    forward: false,
    targets: { pytorch: 4 },
  });
  return [
    rnn('roaf-rnn-128', 'roaf-rnn', 128, 'ROAF RNN', { tfjs: true, targets: { pytorch: 3, tfjs: 50 } }),
    rnn('roaf-rnn-256', 'roaf-rnn', 256, 'ROAF RNN', { tfjs: true, forward: true, targets: { pytorch: 3, tfjs: 50 } }),
    // roaf's default filter, a signed permutation, against PyTorch's gather formulations of it.
    rnn('roaf-rnn-256-perm', 'roaf-rnn', 256, 'ROAF RNN (permutation filter)', {
      filter: 'permutation',
      targets: { pytorch: 3 },
    }),
    mlp(64),
    mlp(128),
    rnn('lstm-128', 'lstm', 128, 'LSTM', { targets: { pytorch: 1 } }),
    rnn('rnn-128', 'rnn', 128, 'Elman RNN', {}),
    rnn('gru-128', 'gru', 128, 'GRU', {}),
  ];
}

interface Measurement {
  ms: number;
  forwardMs: number | null;
  detail: string;
  /** Further lines of detail, printed under the configuration's line (PyTorch: every formulation's time). */
  more?: string[];
  raw: Record<string, unknown>;
}

type Outcome = Measurement | { skipped: string } | { failed: string };

interface HarnessOptions {
  peers: Peer[];
  only: string[] | null;
  repeats: number;
  warmup: number;
  /** Rounds over all configurations (roaf and PyTorch each round, TF.js in the first); medians of rounds. */
  rounds: number;
  roafThreads: number[] | null;
  torchThreads: string;
  backend: string;
  python: string;
  seqLen: number;
  depth: number;
  tfjsSeqLen: number;
  tfjsDepth: number;
  psmnistEpoch: boolean;
  /** Also time roaf with `--precision bf16` (a column of its own, with its ratios to float32 and PyTorch). */
  bf16: boolean;
  gemm: boolean;
  /** Run dist/bench/wasm.js (the wasm backend's figures). */
  wasm: boolean;
  quick: boolean;
  json: string | null;
}

function log(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

/** The JSON objects a command printed, one per line (other lines are ignored). */
function jsonLines(stdout: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

function run(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): { status: number | null; stdout: string; stderr: string; error?: Error } {
  const result = spawnSync(command, args, {
    encoding: 'utf8',
    env,
    maxBuffer: 256 * 2 ** 20,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return { status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '', error: result.error };
}

function lastLines(text: string, n = 3): string {
  return text.trim().split('\n').slice(-n).join(' | ');
}

/** The line of a failed command's stderr that says what went wrong (an error or roaf's one-line message). */
/** A scalar from a child's JSON line as text, as a template would print it; anything else as JSON. */
function show(value: unknown): string {
  if (value === null || value === undefined || ['string', 'number', 'boolean'].includes(typeof value))
    return String(value);
  return JSON.stringify(value);
}

function errorLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  return lines.find((line) => /^(\w*Error\b|roaf:)/.test(line.trim())) ?? lastLines(stderr);
}

// ---- roaf ----

function roafArgs(
  config: BenchConfig,
  options: HarnessOptions,
  threads: number | null,
  precision: 'float32' | 'bf16',
): string[] {
  const args = [
    ROAF_CLI,
    'bench',
    '--model',
    config.model,
    '--batch',
    String(config.batch),
    '--repeats',
    String(options.repeats),
    '--warmup',
    String(options.warmup),
    '--backend',
    options.backend,
    '--json',
  ];
  if (config.hidden !== undefined) args.push('--hidden', String(config.hidden), '--seq-len', String(config.seq_len));
  if (config.depth !== undefined) args.push('--depth', String(config.depth), '--width', String(config.width));
  // roaf runs the peers' filter, named: its default is a signed permutation, O(N) a row, and timing that
  // against the peers' dense Haar product (O(N²)) once made the ROAF rows look faster than they are.
  if (config.model === 'roaf-rnn' || config.model === 'roaf-mlp') args.push('--filter', config.filter ?? 'haar');
  if (config.forward) args.push('--forward');
  if (threads !== null) args.push('--threads', String(threads));
  if (precision === 'bf16') args.push('--precision', 'bf16');
  return args;
}

function runRoaf(config: BenchConfig, options: HarnessOptions, precision: 'float32' | 'bf16' = 'float32'): Outcome {
  const runs: Record<string, unknown>[] = [];
  for (const threads of options.roafThreads ?? [null]) {
    const result = run(process.execPath, roafArgs(config, options, threads, precision));
    const json = jsonLines(result.stdout).at(-1);
    if (result.status !== 0 || json === undefined) {
      return { failed: `roaf bench exited ${result.status}: ${errorLine(result.stderr || result.stdout)}` };
    }
    runs.push(json);
  }
  const best = runs.reduce((a, b) => ((b.ms_per_batch as number) < (a.ms_per_batch as number) ? b : a));
  const byThreads =
    runs.length > 1
      ? ` (${runs.map((r) => `${show(r.threads)} thr ${fmtMs(r.ms_per_batch as number)}`).join(', ')})`
      : '';
  return {
    ms: best.ms_per_batch as number,
    forwardMs: (best.forward_ms_per_batch as number | null) ?? null,
    detail: `${show(best.threads ?? '?')} thr, ${Number(best.gflops).toFixed(0)} GFLOPS${byThreads}`,
    raw: { best, runs },
  };
}

// ---- PyTorch ----

function torchInfo(options: HarnessOptions): Record<string, unknown> {
  const result = run(options.python, [TORCH_SCRIPT, '--info'], torchEnv());
  const info = jsonLines(result.stdout).at(-1);
  if (result.status !== 0 || info === undefined) {
    const why = result.error ? result.error.message : lastLines(result.stderr, 1);
    return { skipped: `PyTorch is not importable by ${options.python} (${why}); install it with: ${TORCH_INSTALL}` };
  }
  return info;
}

function torchConfig(config: BenchConfig): Record<string, unknown> {
  const { model, batch, hidden, seq_len, depth, width, filter } = config;
  const shape = config.hidden !== undefined ? { model, batch, hidden, seq_len } : { model, batch, depth, width };
  return filter === undefined ? shape : { ...shape, filter };
}

/** One thread count's timing of a PyTorch formulation (torch_bench.py's `runs`). */
interface TorchRun {
  threads: number;
  ms_per_batch?: number;
  forward_ms_per_batch?: number;
  abandoned?: boolean;
  warmup_ms?: number[];
}

/** One formulation's entry in torch_bench.py's `formulations`: timed (`best`, `runs`) or `failed`. */
interface TorchFormulation {
  name: string;
  failed?: string;
  best?: TorchRun;
  runs?: TorchRun[];
}

function describeTorchRuns(runs: TorchRun[]): string {
  return runs
    .map(
      (r) =>
        `${r.threads} thr ${r.ms_per_batch === undefined ? `abandoned (last warm-up ${fmtMs(r.warmup_ms?.at(-1) ?? NaN)})` : fmtMs(r.ms_per_batch)}`,
    )
    .join(', ');
}

function runTorch(config: BenchConfig, options: HarnessOptions): Outcome {
  const args = [
    TORCH_SCRIPT,
    '--configs',
    JSON.stringify([torchConfig(config)]),
    '--threads',
    options.torchThreads,
    '--repeats',
    String(options.repeats),
    '--warmup',
    String(options.warmup),
  ];
  if (config.forward) args.push('--forward');
  const result = run(options.python, args, torchEnv());
  const json = jsonLines(result.stdout).at(-1);
  if (result.status !== 0 || json === undefined)
    return { failed: `torch_bench.py exited ${result.status}: ${errorLine(result.stderr)}` };
  const best = json.best as TorchRun & { ms_per_batch: number; formulation: string; forward_formulation?: string };
  const formulations = json.formulations as TorchFormulation[];
  // A formulation that disagrees with the reference (or crashes) is not timed; say so loudly, the others stand.
  for (const f of formulations.filter((f) => f.failed !== undefined))
    log(`pytorch ${config.name}: formulation ${f.name} FAILED: ${f.failed}`);
  const timed = formulations
    .filter((f) => f.best?.ms_per_batch !== undefined)
    .sort((a, b) => a.best!.ms_per_batch! - b.best!.ms_per_batch!);
  const forward =
    best.forward_formulation !== undefined && best.forward_formulation !== best.formulation
      ? `; fastest forward ${best.forward_formulation} ${fmtMs(best.forward_ms_per_batch ?? NaN)}`
      : '';
  const more =
    formulations.length > 1
      ? [
          `PyTorch formulations, fastest first (ms, best thread count): ${[
            ...timed.map((f) => `${f.name} ${fmtMs(f.best!.ms_per_batch!)} (${f.best!.threads} thr)`),
            ...formulations.filter((f) => f.failed !== undefined).map((f) => `${f.name} FAILED the check`),
          ].join(', ')}`,
        ]
      : [];
  return {
    ms: best.ms_per_batch,
    forwardMs: best.forward_ms_per_batch ?? null,
    detail: `${best.formulation}${formulations.length > 1 ? ` (fastest of ${timed.length} formulations)` : ''}, best of ${describeTorchRuns(json.runs as TorchRun[])}${forward}`,
    more,
    raw: json,
  };
}

// ---- TensorFlow.js ----

function tfjsInfo(): Record<string, unknown> {
  const result = run(process.execPath, [TFJS_SCRIPT, '--info']);
  const info = jsonLines(result.stdout).at(-1);
  if (result.status !== 0 || info === undefined)
    return { skipped: `the TF.js peer did not start: ${lastLines(result.stderr)}` };
  if (typeof info.error === 'string') return { skipped: `${info.error}; install it with: ${TFJS_INSTALL}` };
  return info;
}

function runTfjs(config: BenchConfig, options: HarnessOptions): Outcome {
  const peerConfig =
    config.hidden !== undefined
      ? { ...torchConfig(config), timed_seq_len: options.tfjsSeqLen }
      : { ...torchConfig(config), timed_depth: options.tfjsDepth };
  // TF.js steps take seconds: fewer repeats, one warm-up.
  const args = [
    TFJS_SCRIPT,
    '--configs',
    JSON.stringify([peerConfig]),
    '--repeats',
    String(Math.min(3, options.repeats)),
    '--warmup',
    '1',
  ];
  if (config.forward) args.push('--forward');
  const result = run(process.execPath, args);
  const json = jsonLines(result.stdout).at(-1);
  if (result.status !== 0 || json === undefined || typeof json.error === 'string') {
    return { failed: `tfjs-bench exited ${result.status}: ${show(json?.error ?? errorLine(result.stderr))}` };
  }
  const scale = json.scale as number;
  const timed = json.timed_seq_len !== null ? `T=${show(json.timed_seq_len)}` : `L=${show(json.timed_depth)}`;
  return {
    ms: json.ms_per_batch as number,
    forwardMs: (json.forward_ms_per_batch as number | null) ?? null,
    detail: scale === 1 ? '1 thr' : `1 thr, timed at ${timed}, x${Number(scale.toFixed(2))}`,
    raw: json,
  };
}

/**
 * One outcome from a peer's rounds: the round with the median time (the lower middle for an even count), whole,
 * so its forward time and details stay together; a failure or skip in any round stands for them all.
 */
function medianRound(outcomes: Outcome[]): Outcome {
  const bad = outcomes.find((o) => !isMeasurement(o));
  if (bad !== undefined || outcomes.length === 1) return bad ?? outcomes[0]!;
  const measured = outcomes as Measurement[];
  const sorted = [...measured].sort((a, b) => a.ms - b.ms);
  const pick = sorted[(sorted.length - 1) >> 1]!; // outcomes is never empty: one per round
  return {
    ...pick,
    detail: `${pick.detail}; rounds ${measured.map((m) => fmtMs(m.ms)).join(', ')}, median ${fmtMs(pick.ms)}`,
    raw: { ...pick.raw, rounds: measured.map((m) => m.raw) },
  };
}

// ---- psMNIST epoch ----

/** Seconds of one psMNIST epoch (training + test pass) from per-batch times at B. */
function epochEstimate(trainMs: number, forwardMs: number, B: number): number {
  return ((PSMNIST_TRAIN / B) * trainMs + (PSMNIST_TEST / B) * forwardMs) / 1000;
}

function runPsmnistEpoch(
  options: HarnessOptions,
): { seconds: number; accuracy: number | null; backend: string } | { failed: string } {
  const out = mkdtempSync(join(tmpdir(), 'roaf-bench-psmnist-'));
  try {
    const args = [
      ROAF_CLI,
      'train',
      '--task',
      'psmnist',
      '--epochs',
      '1',
      '--hidden',
      '256',
      '--batch',
      '128',
      '--backend',
      options.backend,
      '--out',
      out,
      '--quiet',
      '--json',
    ];
    log(`roaf ${args.slice(1).join(' ')} (the real measure; several minutes)`);
    const result = run(process.execPath, args);
    const json = jsonLines(result.stdout).at(-1);
    if (result.status !== 0 || json === undefined)
      return { failed: `roaf train exited ${result.status}: ${errorLine(result.stderr)}` };
    return {
      seconds: json.seconds as number,
      accuracy: (json.test_accuracy as number | undefined) ?? null,
      backend: String(json.backend),
    };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

// ---- report ----

/** Why a peer is skipped, or null when it is there. */
function skipReason(info: Record<string, unknown>): string | null {
  return typeof info.skipped === 'string' ? info.skipped : null;
}

function fmtMs(ms: number): string {
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2);
}

function isMeasurement(outcome: Outcome | undefined): outcome is Measurement {
  return outcome !== undefined && 'ms' in outcome;
}

function describeOutcome(outcome: Outcome | undefined): string {
  if (outcome === undefined) return '-';
  if ('skipped' in outcome) return 'skipped';
  if ('failed' in outcome) return 'FAILED';
  return fmtMs(outcome.ms);
}

function ratio(peer: Outcome | undefined, roaf: Outcome | undefined): number | null {
  return isMeasurement(peer) && isMeasurement(roaf) ? peer.ms / roaf.ms : null;
}

function fmtRatio(value: number | null, target: number | undefined): string {
  if (value === null) return '-';
  const text = `${value >= 10 ? value.toFixed(0) : value.toFixed(2)}x`;
  if (target === undefined) return text;
  return `${text} (${value >= target ? 'meets' : 'misses'} >=${target}x)`;
}

/** Rows of cells (the first row the header, all rows as long) as aligned columns. */
function table(rows: string[][]): string {
  const [header = [], ...body] = rows;
  const widths = header.map((_, c) => Math.max(...rows.map((row) => row[c]?.length ?? 0)));
  const line = (row: string[]) =>
    row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c] ?? 0) : cell.padStart(widths[c] ?? 0))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

function parseOptions(): HarnessOptions {
  const { values } = parseArgs({
    options: {
      peers: { type: 'string', default: PEERS.join(',') },
      only: { type: 'string' },
      repeats: { type: 'string', default: '5' },
      rounds: { type: 'string', default: '1' },
      warmup: { type: 'string', default: '2' },
      threads: { type: 'string' },
      'torch-threads': { type: 'string', default: '1,2' },
      backend: { type: 'string', default: 'auto' },
      python: { type: 'string', default: '/usr/bin/python3' },
      'seq-len': { type: 'string', default: '784' },
      depth: { type: 'string', default: '1000' },
      'tfjs-seq-len': { type: 'string', default: '98' },
      'tfjs-depth': { type: 'string', default: '100' },
      quick: { type: 'boolean', default: false },
      'psmnist-epoch': { type: 'boolean', default: false },
      'skip-gemm': { type: 'boolean', default: false },
      precision: { type: 'string', default: 'float32' },
      'skip-wasm': { type: 'boolean', default: false },
      json: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`usage: npm run bench -- [options]
  --peers LIST         engines to run: ${PEERS.join(',')} (default all)
  --only NAMES         configurations, comma-separated (default all; see the table's first column)
  --repeats R          timed steps per measurement, median reported (default 5)
  --rounds K           run roaf and PyTorch K times over all configurations, interleaved, and report the
                       round with the median time for each (TF.js runs in the first round only; default 1)
  --warmup W           untimed steps first (default 2)
  --threads LIST       roaf threads, e.g. 1,2 for the best of both (default: roaf's own default)
  --torch-threads LIST PyTorch thread counts, best reported (default 1,2)
  --backend NAME       roaf backend: auto, native, wasm or reference (default auto)
  --python PATH        the Python with torch (default /usr/bin/python3, Debian's python3-torch)
  --seq-len T          recurrent steps (default 784);  --depth L  MLP layers (default 1000)
  --tfjs-seq-len T     TF.js RNN timed at this T and scaled (default 98); --tfjs-depth L likewise (100)
  --quick              small sizes for a smoke test (T=28, L=50, 2 repeats, 1 warm-up)
  --psmnist-epoch      also run a real psMNIST epoch: roaf train --task psmnist --epochs 1 --hidden 256
  --skip-gemm          do not run the native matrix-product benchmark (dist/bench/gemm.js)
  --precision P        float32 (default), or bf16: also time roaf with --precision bf16 (needs AVX512_BF16),
                       with its speed-up over float32 and its ratio to PyTorch
  --skip-wasm          do not run the wasm backend's figures (dist/bench/wasm.js: gemm 256^3, ROAF RNN
                       step vs TF.js wasm, ROAF MLP 1,000 x 64 steps/s)
  --json FILE          also write every measurement to FILE
`);
    process.exit(0);
  }
  const integer = (name: string, value: string, min: number): number => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < min) {
      process.stderr.write(`bench: --${name} must be an integer >= ${min}, got '${value}'\n`);
      process.exit(2);
    }
    return parsed;
  };
  const list = (name: string, value: string, allowed?: readonly string[]): string[] => {
    const items = value
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    const bad = allowed ? items.filter((item) => !allowed.includes(item)) : [];
    if (items.length === 0 || bad.length > 0) {
      process.stderr.write(
        `bench: --${name} must be a comma-separated list${allowed ? ` of ${allowed.join(', ')}` : ''}, got '${value}'\n`,
      );
      process.exit(2);
    }
    return items;
  };
  const quick = values.quick ?? false;
  const torchThreads = list('torch-threads', values['torch-threads']);
  torchThreads.forEach((k) => integer('torch-threads', k, 1));
  const names = configurations(1, 1).map((c) => c.name);
  return {
    peers: list('peers', values.peers, PEERS) as Peer[],
    only: values.only === undefined ? null : list('only', values.only, names),
    repeats: quick ? 2 : integer('repeats', values.repeats, 1),
    warmup: quick ? 1 : integer('warmup', values.warmup, 1),
    rounds: quick ? 1 : integer('rounds', values.rounds, 1),
    roafThreads:
      values.threads === undefined ? null : list('threads', values.threads).map((k) => integer('threads', k, 1)),
    torchThreads: torchThreads.join(','),
    backend: list('backend', values.backend, ['auto', 'native', 'wasm', 'reference'])[0]!,
    python: values.python,
    seqLen: quick ? 28 : integer('seq-len', values['seq-len'], 1),
    depth: quick ? 50 : integer('depth', values.depth, 1),
    tfjsSeqLen: quick ? 14 : integer('tfjs-seq-len', values['tfjs-seq-len'], 1),
    tfjsDepth: quick ? 10 : integer('tfjs-depth', values['tfjs-depth'], 1),
    psmnistEpoch: values['psmnist-epoch'] ?? false,
    bf16: list('precision', values.precision, ['float32', 'bf16'])[0] === 'bf16',
    gemm: !(values['skip-gemm'] ?? false) && !quick,
    wasm: !(values['skip-wasm'] ?? false),
    quick,
    json: values.json ?? null,
  };
}

function main(): number {
  const options = parseOptions();
  if (!existsSync(ROAF_CLI)) {
    process.stderr.write(`bench: ${ROAF_CLI} is missing: run 'npm run build' first\n`);
    return 2;
  }
  const started = new Date();
  const load = loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
  const info = run(process.execPath, [ROAF_CLI, 'info', '--json']);
  const roafInfo = jsonLines(info.stdout).at(-1) ?? {};
  const torch: Record<string, unknown> = options.peers.includes('pytorch')
    ? torchInfo(options)
    : { skipped: 'not requested (--peers)' };
  const tfjs: Record<string, unknown> = options.peers.includes('tfjs')
    ? tfjsInfo()
    : { skipped: 'not requested (--peers)' };
  const header = [
    `machine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, load average ${load} at start; node ${process.version}`,
    `roaf: ${show(roafInfo.description ?? 'unknown backend')} (roaf info)${options.backend !== 'auto' ? `, run with --backend ${options.backend}` : ''}`,
    skipReason(torch) !== null
      ? `PyTorch: skipped: ${skipReason(torch)}`
      : `PyTorch: ${String(torch.torch)} (${options.python}), ${String(torch.blas)}, kernel ${String(torch.blas_kernel)}, ` +
        `ATen ${String(torch.aten_capability)}, threads ${options.torchThreads}, every formulation (the fastest reported)`,
    skipReason(tfjs) !== null
      ? `TF.js: skipped: ${skipReason(tfjs)}`
      : `TF.js: ${String(tfjs.tfjs)}, ${String(tfjs.backend)} backend, SIMD ${String(tfjs.simd)}, threads ${String(tfjs.threads)}`,
  ];
  // A peer on an unoptimised BLAS makes every ratio against it false: say so in the header and the notes.
  const torchWarning = typeof torch.blas_warning === 'string' ? `WARNING: ${torch.blas_warning}` : null;
  if (torchWarning !== null) header.push(`PyTorch: ${torchWarning}`);
  header.forEach((line) => log(line));
  if (roafInfo.backend === 'reference' || options.backend === 'reference') {
    log('roaf runs on the reference backend (plain TypeScript): full sizes take many minutes; try --quick');
  }

  // The native matrix product on its own (bench/gemm.ts: its own checks and format), passed through.
  let gemmLines: string[] = [];
  if (options.gemm && options.peers.includes('roaf') && existsSync(GEMM_SCRIPT)) {
    log('roaf    matrix product (dist/bench/gemm.js)');
    const result = run(process.execPath, [GEMM_SCRIPT]);
    gemmLines = (result.status === 0 ? result.stdout : `gemm.js exited ${result.status}: ${lastLines(result.stderr)}`)
      .trim()
      .split('\n');
  }

  // The wasm backend's figures (bench/wasm.ts: its own checks and format), passed through.
  let wasmLines: string[] = [];
  if (options.wasm && options.peers.includes('roaf') && existsSync(WASM_SCRIPT)) {
    log('roaf    wasm backend (dist/bench/wasm.js)');
    const result = run(process.execPath, [WASM_SCRIPT, ...(options.quick ? ['--quick'] : [])]);
    wasmLines = (result.status === 0 ? result.stdout : `wasm.js exited ${result.status}: ${lastLines(result.stderr)}`)
      .trim()
      .split('\n');
  }

  const selected = configurations(options.seqLen, options.depth).filter(
    (c) => options.only === null || options.only.includes(c.name),
  );
  // Every round runs every configuration in roaf then PyTorch, so a shared machine's load falls on both alike.
  const rounds = new Map<string, Partial<Record<Column, Outcome[]>>>(selected.map((c) => [c.name, {}]));
  const record = (config: BenchConfig, peer: Column, outcome: Outcome) =>
    (rounds.get(config.name)![peer] ??= []).push(outcome);
  let roafFailed = false;
  for (let round = 1; round <= options.rounds && !roafFailed; round++) {
    const tag = options.rounds > 1 ? ` (round ${round} of ${options.rounds})` : '';
    for (const config of selected) {
      if (options.peers.includes('roaf')) {
        log(`roaf    ${config.label}${tag}`);
        const outcome = runRoaf(config, options);
        record(config, 'roaf', outcome);
        if ('failed' in outcome) {
          roafFailed = true;
          log(`roaf FAILED: ${outcome.failed}`);
          break;
        }
        if (options.bf16) {
          log(`roaf    ${config.label}, --precision bf16${tag}`);
          const bf16 = runRoaf(config, options, 'bf16');
          record(config, 'roaf-bf16', bf16);
          if ('failed' in bf16) log(`roaf bf16 failed: ${bf16.failed}`);
        }
      }
      if (options.peers.includes('pytorch')) {
        const outcome =
          skipReason(torch) !== null
            ? { skipped: skipReason(torch)! }
            : (log(`pytorch ${config.label}${tag}`), runTorch(config, options));
        if ('failed' in outcome) log(`pytorch failed: ${outcome.failed}`);
        record(config, 'pytorch', outcome);
      }
      if (options.peers.includes('tfjs') && config.tfjs && round === 1) {
        const outcome =
          skipReason(tfjs) !== null
            ? { skipped: skipReason(tfjs)! }
            : (log(`tfjs    ${config.label}`), runTfjs(config, options));
        if ('failed' in outcome) log(`tfjs failed: ${outcome.failed}`);
        record(config, 'tfjs', outcome);
      }
    }
  }
  const results = new Map<string, Partial<Record<Column, Outcome>>>(
    [...rounds].map(([name, byPeer]) => [
      name,
      Object.fromEntries(Object.entries(byPeer).map(([peer, list]) => [peer, medianRound(list)])),
    ]),
  );

  // With --precision bf16: roaf bf16's time, its speed-up over roaf float32, and PyTorch's time over it.
  const bf16Header = options.bf16 ? ['roaf bf16 ms', 'float32/bf16', 'PyTorch/roaf bf16'] : [];
  const bf16Cells = (o: Partial<Record<Column, Outcome>>, recurrent: boolean): string[] =>
    options.bf16
      ? [
          describeOutcome(o['roaf-bf16']),
          fmtRatio(ratio(o.roaf, o['roaf-bf16']), recurrent ? 1.6 : undefined),
          fmtRatio(ratio(o.pytorch, o['roaf-bf16']), recurrent ? 4 : undefined),
        ]
      : [];
  const rows: string[][] = [
    [
      'configuration (train step, Adam)',
      'roaf ms',
      'PyTorch ms',
      'PyTorch/roaf',
      'TF.js ms',
      'TF.js/roaf',
      ...bf16Header,
    ],
  ];
  const details: string[] = [];
  for (const config of selected) {
    const o = results.get(config.name)!;
    rows.push([
      `${config.name}: ${config.label}`,
      describeOutcome(o.roaf),
      describeOutcome(o.pytorch),
      fmtRatio(ratio(o.pytorch, o.roaf), config.targets.pytorch),
      config.tfjs ? describeOutcome(o.tfjs) : '-',
      config.tfjs ? fmtRatio(ratio(o.tfjs, o.roaf), config.targets.tfjs) : '-',
      ...bf16Cells(o, config.name.startsWith('roaf-rnn-256')),
    ]);
    // The peers compute the same products as roaf, so roaf's FLOP count gives their GFLOPS too.
    const flops = isMeasurement(o.roaf)
      ? ((o.roaf.raw.best as Record<string, unknown>).flops_per_batch as number)
      : null;
    const peerGflops = (m: Measurement, name: string) =>
      name === 'roaf' || flops === null ? '' : `, ${(flops / m.ms / 1e6).toFixed(1)} GFLOPS`;
    const measured: [string, Measurement][] = [];
    for (const [name, outcome] of [
      ['roaf', o.roaf],
      ['roaf bf16', o['roaf-bf16']],
      ['PyTorch', o.pytorch],
      ['TF.js', o.tfjs],
    ] as const) {
      if (isMeasurement(outcome)) measured.push([name, outcome]);
    }
    details.push(
      `  ${config.name}: ${measured.map(([name, m]) => `${name}: ${m.detail}${peerGflops(m, name)}`).join('; ')}`,
    );
    measured.forEach(([, m]) => m.more?.forEach((line) => details.push(`    ${line}`)));
  }

  // psMNIST epoch (60,000 train + 10,000 test sequences, N = 256, B = 128) from the N = 256 timings.
  const epochSource = selected.find((c) => c.name === 'roaf-rnn-256');
  const epochs: Partial<Record<Peer, number>> = {};
  if (epochSource !== undefined && options.seqLen === 784) {
    const o = results.get(epochSource.name)!;
    for (const peer of PEERS) {
      const m = o[peer];
      if (isMeasurement(m) && m.forwardMs !== null) epochs[peer] = epochEstimate(m.ms, m.forwardMs, epochSource.batch);
    }
    const s = (peer: Peer) => (epochs[peer] === undefined ? '-' : `${epochs[peer].toFixed(0)} s`);
    const r = (peer: Peer) =>
      epochs[peer] === undefined || epochs.roaf === undefined ? null : epochs[peer] / epochs.roaf;
    rows.push([
      'psMNIST epoch N=256 (estimate: 469 train + 79 test batches)',
      epochs.roaf === undefined ? '-' : `${s('roaf')} (${epochs.roaf <= 100 ? 'meets' : 'misses'} <=100 s)`,
      s('pytorch'),
      fmtRatio(r('pytorch'), undefined),
      s('tfjs'),
      fmtRatio(r('tfjs'), undefined),
    ]);
  }
  // The least time the epoch's products could take: gemm.js measured one thread's FMA peak.
  const peakMatch = /FMA peak, one thread, \S+: ([\d.]+) GFLOPS/.exec(gemmLines.join('\n'));
  let epochFloor: string | null = null;
  if (epochSource !== undefined && options.seqLen === 784 && peakMatch !== null) {
    const m = results.get(epochSource.name)!.roaf;
    if (isMeasurement(m)) {
      const best = m.raw.best as Record<string, unknown>;
      const B = epochSource.batch;
      const flops =
        (PSMNIST_TRAIN / B) * (best.flops_per_batch as number) +
        (PSMNIST_TEST / B) * (best.forward_flops_per_batch as number);
      const peak = Number(peakMatch[1]) * 1e9;
      const cores = cpus().length;
      epochFloor =
        `psMNIST epoch N=256: ${(flops / 1e12).toFixed(1)} TFLOP of matrix products, so at least ` +
        `${(flops / (cores * peak)).toFixed(0)} s at ${cores} x the measured FMA peak (${(peak / 1e9).toFixed(1)} GFLOPS per thread).`;
    }
  }
  let realEpoch: ReturnType<typeof runPsmnistEpoch> | null = null;
  if (options.psmnistEpoch && options.peers.includes('roaf')) {
    realEpoch = runPsmnistEpoch(options);
    if ('failed' in realEpoch) {
      roafFailed = true;
      log(`psMNIST epoch FAILED: ${realEpoch.failed}`);
    } else {
      rows.push([
        'psMNIST epoch N=256, measured (roaf train --epochs 1)',
        `${realEpoch.seconds.toFixed(0)} s (${realEpoch.seconds <= 100 ? 'meets' : 'misses'} <=100 s)`,
        '-',
        '-',
        '-',
        '-',
      ]);
    }
  }

  const out = process.stdout;
  out.write(
    `\nroaf benchmarks, ${started.toISOString()}: ms per training step (forward + backward + Adam), median of ` +
      `${options.repeats} after ${options.warmup} warm-up${options.rounds > 1 ? `, the median of ${options.rounds} rounds` : ''}; ` +
      'ratio = peer ms / roaf ms (> 1: roaf is faster)\n',
  );
  const ranOn = [...results.values()].map((o) => o.roaf).find(isMeasurement);
  if (ranOn !== undefined) {
    const description = String((ranOn.raw.best as Record<string, unknown>).description);
    header[1] =
      options.roafThreads === null
        ? `roaf: ${description}`
        : `roaf: ${description.replace(/,? \d+ threads?\)/, ')')}, threads ${options.roafThreads.join(',')} (best reported)`;
  }
  header.forEach((line) => out.write(`  ${line}\n`));
  out.write('\n' + table(rows) + '\n\n');
  out.write('details (thr = threads; GFLOPS = matrix-product FLOPs / time):\n' + details.join('\n') + '\n');
  if (gemmLines.length > 0) {
    out.write(
      'matrix product, native backend (dist/bench/gemm.js; issue 3: >= 200 GFLOPS at 256^3 on one thread, which the FMA peak bounds):\n',
    );
    gemmLines.forEach((line) => out.write(`  ${line}\n`));
  }
  if (wasmLines.length > 0) {
    out.write(
      'wasm backend, one thread (dist/bench/wasm.js; issue 11: gemm 256^3 >= 35 % of the FMA peak, ROAF RNN step >= 5x TF.js wasm):\n',
    );
    wasmLines.forEach((line) => out.write(`  ${line}\n`));
  }
  if (realEpoch !== null && !('failed' in realEpoch)) {
    out.write(
      `  psMNIST epoch: ${realEpoch.seconds.toFixed(1)} s, test accuracy ${realEpoch.accuracy === null ? '-' : (realEpoch.accuracy * 100).toFixed(2) + ' %'}, backend ${realEpoch.backend}\n`,
    );
  }
  const notes = [
    ...(torchWarning !== null && selected.length > 0 ? [`PyTorch ${torchWarning}.`] : []),
    'PyTorch has no fused ROAF kernel: each ROAF configuration is timed in every formulation bench/peers/torch_bench.py knows, each checked' +
      " against the reference formulation's loss and gradients first, and compared at its fastest (named in the details); LSTM/RNN/GRU are its fused nn modules.",
    ...(selected.some((c) => c.tfjs) && skipReason(tfjs) === null
      ? [
          `TF.js ROAF RNN is timed at T=${options.tfjsSeqLen}, its MLP at L=${options.tfjsDepth}, and scaled linearly to the full size.`,
        ]
      : []),
    'The psMNIST estimate is 60,000/B training steps + 10,000/B forward passes at the measured medians (data loading excluded);' +
      ' `npm run bench -- --psmnist-epoch --only roaf-rnn-256` measures a real epoch.',
    ...(epochFloor !== null ? [epochFloor] : []),
    'The machine is shared and timings are noisy: compare medians, rerun a configuration with --only to check one.',
    // One disturbed measurement moves a ratio by more than the margins the verdicts test (a one-round run once
    // printed float32/bf16 2.19x where three rounds gave 1.55x).
    ...(options.rounds === 1 && !options.quick
      ? [
          'One round: each meets/misses above rests on one measurement per engine; --rounds 3 reports the median of three.',
        ]
      : []),
  ];
  out.write('notes:\n' + notes.map((n) => `  - ${n}\n`).join(''));

  if (options.json !== null) {
    const record = {
      started: started.toISOString(),
      load_average_at_start: loadavg(),
      options,
      roaf: roafInfo,
      pytorch: torch,
      tfjs,
      results: Object.fromEntries(
        [...results].map(([name, o]) => [
          name,
          Object.fromEntries(
            Object.entries(o).map(([peer, outcome]) => [
              peer,
              isMeasurement(outcome)
                ? { ms_per_batch: outcome.ms, forward_ms_per_batch: outcome.forwardMs, ...outcome.raw }
                : outcome,
            ]),
          ),
        ]),
      ),
      psmnist_epoch_estimate_seconds: epochs,
      psmnist_epoch_measured: realEpoch,
      psmnist_epoch_floor: epochFloor,
      gemm: gemmLines,
      wasm: wasmLines,
    };
    writeFileSync(options.json, JSON.stringify(record, null, 2) + '\n');
    log(`wrote ${options.json}`);
  }
  return roafFailed ? 1 : 0;
}

process.exitCode = main();
