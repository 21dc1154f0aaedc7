// TensorFlow.js peer of `roaf bench` (wasm backend, the fastest TensorFlow.js backend that runs in
// Node without a native binary): the ROAF RNN and the ROAF MLP written with tfjs ops, one training step =
// forward + softmax cross-entropy + tape gradients (optimizer.minimize) + Adam (lr 1e-3), on random data
// in the shapes of `roaf bench`. Same coefficients and initialisation scales as roaf.
//
// The steps are slow here (seconds per batch for the RNN at T = 784), so a configuration may give
// `timed_seq_len` < `seq_len` (or `timed_depth` < `depth`): the step is timed at that T (depth) and scaled
// linearly to the full one. Per-step (per-layer) work dominates; the readout and the input projection,
// which do not grow with T (depth), are scaled too, so the estimate errs slightly high.
//
// The ROAF RNN is written in several formulations (RNN_FORMULATIONS), all from the same weights and data; each
// is checked against `literal` (loss to a relative 1e-4, every gradient to 1e-4 of its largest element) before
// it is timed, and the fastest is reported (`formulation`; every one's median in `formulations`).
//
// Usage: node dist/bench/peers/tfjs-bench.js --configs JSON [--warmup w] [--repeats r] [--forward] [--info]
//        [--formulations a,b]
// Prints one JSON object per configuration (one line each), or {"error": ...} when tfjs is not installed.

import { parseArgs } from 'node:util';
import { Random, orthogonalFromQr } from '../../src/index.js';

type Tf = typeof import('@tensorflow/tfjs');
type Tensor = import('@tensorflow/tfjs').Tensor;
type Tensor2D = import('@tensorflow/tfjs').Tensor2D;
type Scalar = import('@tensorflow/tfjs').Scalar;
type Variable = import('@tensorflow/tfjs').Variable;

/** A configuration, as the harness passes it (the fields `roaf bench` takes). */
interface PeerConfig {
  model: 'roaf-rnn' | 'roaf-mlp';
  batch: number;
  hidden?: number;
  seq_len?: number;
  /** Time at this T and scale linearly to seq_len. */
  timed_seq_len?: number;
  depth?: number;
  /** Time at this depth and scale linearly to depth. */
  timed_depth?: number;
  width?: number;
  seed?: number;
}

const K = 10;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Float32 (rows, cols) from a seeded normal generator, times `scale`. */
function normal(rng: Random, rows: number, cols: number, scale: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < out.length; i++) out[i] = rng.normal() * scale;
  return out;
}

/** A Haar-distributed orthogonal N x N matrix (QR with sign fix), as roaf draws it. */
function haar(rng: Random, n: number): Float32Array {
  const a = new Float64Array(n * n);
  for (let i = 0; i < a.length; i++) a[i] = rng.normal();
  return Float32Array.from(orthogonalFromQr(a, n, true));
}

/**
 * Formulations of the ROAF RNN step h <- alpha h Oᵀ + beta tanh(x_t Uᵀ + h Wᵀ + b):
 * - literal: the formula, one op per term (the input term a product (B, 1) x (1, N));
 * - broadcast-input: the input term as a broadcast multiply (D = 1), no product;
 * - concat-wo: one product per step, h [Wᵀ | alpha Oᵀ] (N x 2N), split; the input term broadcast.
 */
const RNN_FORMULATIONS = ['literal', 'broadcast-input', 'concat-wo'] as const;
type RnnFormulation = (typeof RNN_FORMULATIONS)[number];

/** Builds the loss closure of one configuration and the variables it trains. */
function buildModel(
  tf: Tf,
  config: PeerConfig,
  T: number,
  L: number,
  formulation: RnnFormulation = 'literal',
): { loss: () => Scalar; variables: Variable[]; dispose: () => void } {
  const rng = new Random(config.seed ?? 0);
  const B = config.batch;
  const labels = new Int32Array(B);
  const onehot = tf.tidy(() => {
    for (let i = 0; i < B; i++) labels[i] = rng.int(K);
    return tf.oneHot(tf.tensor1d(labels, 'int32'), K);
  });
  const kept: Tensor[] = [onehot];
  const variable = (values: Float32Array, shape: [number, number] | [number]): Variable =>
    tf.variable(tf.tensor(values, shape));

  // Weights are stored as (inputs, outputs), as tfjs-layers' Dense kernels are, so every product is
  // matMul(x, W) without a transpose (the wasm backend's transposed matMul is several times slower).
  if (config.model === 'roaf-rnn') {
    const N = config.hidden ?? 128;
    const D = 1;
    const [alpha, beta, inputScale] = [1, 0.1, 3];
    const W = variable(normal(rng, N, N, 1 / Math.sqrt(N)), [N, N]); // Wᵀ
    const U = variable(normal(rng, D, N, inputScale / Math.sqrt(D)), [D, N]); // Uᵀ
    const b = variable(new Float32Array(N), [N]);
    const V = variable(normal(rng, N, K, 1 / Math.sqrt(N)), [N, K]);
    const c = variable(new Float32Array(K), [K]);
    const O = tf.tensor2d(haar(rng, N), [N, N]); // Oᵀ (another Haar draw: same distribution)
    // One (B, D) input tensor per step, made once: slicing a (T, B, N) tensor per step costs ms here.
    const xs = Array.from({ length: T }, () => {
      const x = new Float32Array(B * D);
      for (let i = 0; i < x.length; i++) x[i] = rng.uniform();
      return tf.tensor2d(x, [B, D]);
    });
    kept.push(O, ...xs);
    const loss = (): Scalar => {
      let h: Tensor2D = tf.zeros([B, N]);
      if (formulation === 'concat-wo') {
        const WO = tf.concat([W, alpha === 1 ? O : tf.mul(O, alpha)], 1); // (N, 2N), W's gradient flows through
        for (let t = 0; t < T; t++) {
          const [pre, filtered] = tf.split(tf.matMul(h, WO), 2, 1) as [Tensor2D, Tensor2D];
          const a = tf.tanh(tf.add(tf.add(pre, tf.mul(xs[t]!, U)), b));
          h = tf.add(filtered, tf.mul(a, beta));
        }
      } else {
        for (let t = 0; t < T; t++) {
          const drive = formulation === 'literal' ? tf.matMul(xs[t]!, U) : tf.mul(xs[t]!, U);
          const a = tf.tanh(tf.add(tf.add(tf.matMul(h, W), drive), b));
          const filtered = tf.matMul(h, O);
          h = tf.add(alpha === 1 ? filtered : tf.mul(filtered, alpha), tf.mul(a, beta));
        }
      }
      return tf.losses.softmaxCrossEntropy<Tensor, Scalar>(onehot, tf.add(tf.matMul(h, V), c));
    };
    return { loss, variables: [W, U, b, V, c], dispose: () => [...kept, W, U, b, V, c].forEach((x) => x.dispose()) };
  }

  const N = config.width ?? 64;
  const D = 784;
  const [alpha, beta] = [1, Math.min(0.5, 1 / Math.sqrt(config.depth ?? L))]; // roaf's default beta at the full depth
  const P = variable(normal(rng, D, N, 1 / Math.sqrt(D)), [D, N]);
  const p = variable(new Float32Array(N), [N]);
  const Ws = Array.from({ length: L }, () => variable(normal(rng, N, N, 1 / Math.sqrt(N)), [N, N]));
  const bs = Array.from({ length: L }, () => variable(new Float32Array(N), [N]));
  const Os = Array.from({ length: L }, () => tf.tensor2d(haar(rng, N), [N, N]));
  const V = variable(normal(rng, N, K, 1 / Math.sqrt(N)), [N, K]);
  const c = variable(new Float32Array(K), [K]);
  const uData = new Float32Array(B * D);
  for (let i = 0; i < uData.length; i++) uData[i] = rng.uniform();
  const u = tf.tensor2d(uData, [B, D]);
  kept.push(...Os, u);
  const loss = (): Scalar => {
    let x: Tensor2D = tf.add(tf.matMul(u, P), p);
    for (let l = 0; l < L; l++) {
      const a = tf.tanh(tf.add(tf.matMul(x, Ws[l]!), bs[l]!));
      const filtered = tf.matMul(x, Os[l]!);
      x = tf.add(alpha === 1 ? filtered : tf.mul(filtered, alpha), tf.mul(a, beta));
    }
    return tf.losses.softmaxCrossEntropy<Tensor, Scalar>(onehot, tf.add(tf.matMul(x, V), c));
  };
  const variables = [P, p, ...Ws, ...bs, V, c];
  return { loss, variables, dispose: () => [...kept, ...variables].forEach((x) => x.dispose()) };
}

/** The loss and every variable's gradient of a formulation at its initial weights. */
function lossAndGradients(tf: Tf, model: ReturnType<typeof buildModel>): { loss: number; grads: Float32Array[] } {
  const { value, grads } = tf.variableGrads(model.loss, model.variables);
  const result = {
    loss: value.dataSync()[0]!,
    grads: model.variables.map((v) => grads[v.name]!.dataSync() as Float32Array),
  };
  value.dispose();
  Object.values(grads).forEach((g) => g.dispose());
  return result;
}

/** Why `got` differs from the reference formulation's loss and gradients, or null when it agrees. */
function checkAgainst(
  want: { loss: number; grads: Float32Array[] },
  got: { loss: number; grads: Float32Array[] },
): { loss_error: number; max_gradient_error: number; failed: string | null } {
  const lossError = Math.abs(got.loss - want.loss) / Math.abs(want.loss);
  let worst = 0;
  want.grads.forEach((w, i) => {
    const g = got.grads[i]!;
    let scale = 0;
    let diff = 0;
    for (let j = 0; j < w.length; j++) {
      scale = Math.max(scale, Math.abs(w[j]!));
      diff = Math.max(diff, Math.abs(g[j]! - w[j]!));
    }
    worst = Math.max(worst, scale === 0 ? diff : diff / scale);
  });
  const failed =
    !(lossError <= 1e-4) || !(worst <= 1e-4)
      ? `loss error ${lossError.toExponential(2)}, gradient error ${worst.toExponential(2)} (tolerance 1e-4)`
      : null;
  return { loss_error: lossError, max_gradient_error: worst, failed };
}

function bench(
  tf: Tf,
  config: PeerConfig,
  warmup: number,
  repeats: number,
  forward: boolean,
  formulations: readonly RnnFormulation[],
): Record<string, unknown> {
  if (config.model !== 'roaf-rnn') return benchOne(tf, config, warmup, repeats, forward, 'literal');
  // Every formulation is checked against literal's loss and gradients on the same weights, then timed.
  const T = Math.min(config.timed_seq_len ?? config.seq_len ?? 784, config.seq_len ?? 784);
  const reference = buildModel(tf, config, T, 0, 'literal');
  const want = lossAndGradients(tf, reference);
  reference.dispose();
  const results: Record<string, unknown>[] = [];
  for (const formulation of formulations) {
    const model = buildModel(tf, config, T, 0, formulation);
    const check = checkAgainst(want, lossAndGradients(tf, model));
    model.dispose();
    if (check.failed !== null) {
      process.stderr.write(`tfjs-bench: formulation ${formulation} FAILED its check: ${check.failed}\n`);
      results.push({ formulation, check, failed: check.failed });
      continue;
    }
    results.push({ ...benchOne(tf, config, warmup, repeats, forward, formulation), formulation, check });
  }
  const timed = results.filter((r) => typeof r.ms_per_batch === 'number');
  if (timed.length === 0) throw new Error('tfjs-bench: every formulation failed its check');
  const fastest = timed.reduce((a, b) => ((b.ms_per_batch as number) < (a.ms_per_batch as number) ? b : a));
  return {
    ...fastest,
    formulations: results.map((r) => ({
      formulation: r.formulation,
      ms_per_batch: r.ms_per_batch ?? null,
      check: r.check,
      failed: r.failed ?? null,
    })),
  };
}

function benchOne(
  tf: Tf,
  config: PeerConfig,
  warmup: number,
  repeats: number,
  forward: boolean,
  formulation: RnnFormulation,
): Record<string, unknown> {
  const recurrent = config.model === 'roaf-rnn';
  const fullT = config.seq_len ?? 784;
  const fullL = config.depth ?? 1000;
  const T = recurrent ? Math.min(config.timed_seq_len ?? fullT, fullT) : 1;
  const L = recurrent ? 0 : Math.min(config.timed_depth ?? fullL, fullL);
  const scale = recurrent ? fullT / T : fullL / L;
  const model = buildModel(tf, config, T, L, formulation);
  const optimizer = tf.train.adam(1e-3);
  const trainStep = (): number => {
    const cost = optimizer.minimize(model.loss, true, model.variables);
    const value = cost!.dataSync()[0]!;
    cost!.dispose();
    return value;
  };
  let firstLoss = NaN;
  for (let i = 0; i < warmup; i++) {
    const loss = trainStep();
    if (i === 0) firstLoss = loss;
    if (!Number.isFinite(loss)) throw new Error(`tfjs ${config.model}: loss ${loss} at warm-up step ${i + 1}`);
  }
  const samples: number[] = [];
  let lastLoss = NaN;
  for (let i = 0; i < repeats; i++) {
    const start = performance.now();
    lastLoss = trainStep();
    samples.push(performance.now() - start);
  }
  let forwardMs: number | null = null;
  if (forward) {
    const times: number[] = [];
    for (let i = 0; i <= repeats; i++) {
      const start = performance.now();
      tf.tidy(() => model.loss().dataSync());
      if (i > 0) times.push(performance.now() - start);
    }
    forwardMs = median(times) * scale;
  }
  optimizer.dispose();
  model.dispose();
  const timedMs = median(samples);
  return {
    config,
    timed_seq_len: recurrent ? T : null,
    timed_depth: recurrent ? null : L,
    scale,
    measured_ms_per_batch: timedMs,
    ms_per_batch: timedMs * scale,
    min_ms: Math.min(...samples) * scale,
    samples_ms: samples.map((s) => Number(s.toFixed(3))),
    forward_ms_per_batch: forwardMs,
    first_loss: firstLoss,
    last_loss: lastLoss,
  };
}

async function loadTf(): Promise<{ tf: Tf; info: Record<string, unknown> } | { error: string }> {
  let tf: Tf;
  let wasm: typeof import('@tensorflow/tfjs-backend-wasm');
  try {
    tf = await import('@tensorflow/tfjs');
    wasm = await import('@tensorflow/tfjs-backend-wasm');
  } catch (error) {
    return { error: `TensorFlow.js is not installed (${(error as Error).message.split('\n')[0]})` };
  }
  if (!(await tf.setBackend('wasm'))) return { error: 'the TensorFlow.js wasm backend did not initialise' };
  await tf.ready();
  return {
    tf,
    info: {
      peer: 'tfjs',
      tfjs: tf.version_core,
      backend: tf.getBackend(),
      simd: await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'),
      multithread: await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'),
      threads: wasm.getThreadsCount(),
    },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      configs: { type: 'string' },
      warmup: { type: 'string', default: '1' },
      repeats: { type: 'string', default: '3' },
      forward: { type: 'boolean', default: false },
      info: { type: 'boolean', default: false },
      formulations: { type: 'string', default: RNN_FORMULATIONS.join(',') },
    },
  });
  const formulations = (values.formulations ?? '').split(',').filter((f) => f !== '') as RnnFormulation[];
  const unknown = formulations.filter((f) => !(RNN_FORMULATIONS as readonly string[]).includes(f));
  if (unknown.length > 0 || formulations.length === 0)
    throw new Error(
      `tfjs-bench: --formulations must be some of ${RNN_FORMULATIONS.join(', ')}, got '${values.formulations ?? ''}'`,
    );
  const loaded = await loadTf();
  if ('error' in loaded) {
    process.stdout.write(JSON.stringify({ peer: 'tfjs', error: loaded.error }) + '\n');
    return;
  }
  const { tf, info } = loaded;
  if (values.info) {
    process.stdout.write(JSON.stringify(info) + '\n');
    return;
  }
  if (values.configs === undefined) throw new Error('tfjs-bench: --configs JSON is required (or --info)');
  const configs = JSON.parse(values.configs) as PeerConfig[];
  for (const config of configs) {
    const result = bench(
      tf,
      config,
      Number(values.warmup),
      Number(values.repeats),
      values.forward ?? false,
      formulations,
    );
    process.stdout.write(JSON.stringify({ ...info, ...result }) + '\n');
  }
}

await main();
