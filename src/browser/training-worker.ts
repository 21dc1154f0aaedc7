// The training worker: a module Web Worker that trains one model on MNIST (or sMNIST) and posts its
// progress to the page (loss per step, test accuracy, the gradient-norm curve, the Jacobian spectrum at
// the end, a recurrent model's hidden-state norms), so the page stays responsive. Between steps it
// answers the page's messages: stop, predict a drawn digit, save or load a checkpoint (safetensors bytes).
//
//   const worker = startTrainingWorker(); worker.postMessage({ type: 'start', run });

import type { Backend } from '../backend/backend.js';
import { buildModel } from '../models/build.js';
import type { Model } from '../models/model.js';
import { predict } from '../serve/predict.js';
import { browserBackend } from './backend.js';
import { loadModelBytes, saveModelBytes } from './checkpoint.js';
import { fetchMnist } from './data.js';
import type { FromWorker, ToWorker, WorkerRun } from './protocol.js';
import { StepTrainer, hiddenStateNorms } from './trainer.js';

/** The parts of a dedicated worker's global scope used here (the DOM lib types `self` as a window). */
interface WorkerScope {
  postMessage(message: FromWorker, transfer?: Transferable[]): void;
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
}
const scope = globalThis as unknown as WorkerScope;

/** One backend of each kind per worker (a wasm backend owns its linear memory: never make a second). */
const backends = new Map<'wasm' | 'reference', Promise<Backend>>();
function workerBackend(name: 'wasm' | 'reference' = 'wasm'): Promise<Backend> {
  let backend = backends.get(name);
  if (backend === undefined) {
    backend = browserBackend({ name });
    backends.set(name, backend);
  }
  return backend;
}

let trainer: StepTrainer | null = null;
let model: Model | null = null;
let stopRequested = false;

const post = (message: FromWorker, transfer?: Transferable[]): void => scope.postMessage(message, transfer);
const finite = (x: number): number | null => (Number.isFinite(x) ? x : null);

/** Lets queued messages (stop, predict) run between two training steps, without setTimeout's clamping. */
function yieldToMessages(): Promise<void> {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => resolve();
    channel.port2.postMessage(null);
  });
}

function postCurves(run: WorkerRun, active: StepTrainer): void {
  const curve = active.gradientCurve();
  post({ type: 'gradients', step: active.step, index: curve.index, log10Norms: Array.from(curve.log10Norms, finite) });
  if (run.hiddenNorms)
    post({ type: 'hidden', step: active.step, norms: Array.from(hiddenStateNorms(active.model, active.test)) });
}

async function start(run: WorkerRun): Promise<void> {
  const begin = performance.now();
  const data = await fetchMnist({
    baseUrl: run.dataUrl,
    task: run.task,
    trainLimit: run.trainLimit,
    testLimit: run.testLimit,
  });
  const dataSeconds = (performance.now() - begin) / 1000;
  const backend = await workerBackend(run.backend);
  const { dataUrl: _url, task, batch, lr, ...rest } = run;
  const options = Object.fromEntries(
    (['model', 'depth', 'width', 'hidden', 'alpha', 'beta', 'filter', 'seed'] as const)
      .filter((key) => rest[key] !== undefined)
      .map((key) => [key, rest[key]]),
  );
  model = buildModel({ ...options, task, data }, () => backend);
  trainer = new StepTrainer(model, data.train, data.test, { batch, optimizer: { lr } });
  post({
    type: 'ready',
    backend: backend.name,
    parameters: model.params.size,
    config: { ...model.config },
    dataSeconds,
  });
  postCurves(run, trainer);
  const trainStart = performance.now();
  const seconds = () => (performance.now() - trainStart) / 1000;
  // Evaluations and curves cost time the steps do not get: each waits at least its period and at least
  // four times its own last cost, so they never take more than a fifth of the time on a slow machine.
  let lastEval = 0,
    evalCost = 0;
  let lastCurve = 0,
    curveCost = 0;
  while (!stopRequested && trainer.step < run.maxSteps && seconds() < run.maxSeconds) {
    const loss = trainer.trainStep();
    post({ type: 'step', step: trainer.step, loss, seconds: seconds() });
    if (seconds() - lastEval >= Math.max(run.evalSeconds, 4 * evalCost)) {
      const before = seconds();
      const evaluation = trainer.evaluate();
      lastEval = seconds();
      evalCost = lastEval - before;
      post({
        type: 'evaluation',
        step: trainer.step,
        seconds: lastEval,
        loss: evaluation.loss,
        accuracy: evaluation.accuracy ?? NaN,
      });
    }
    if (run.gradientSeconds > 0 && seconds() - lastCurve >= Math.max(run.gradientSeconds, 4 * curveCost)) {
      const before = seconds();
      postCurves(run, trainer);
      lastCurve = seconds();
      curveCost = lastCurve - before;
    }
    await yieldToMessages();
  }
  const trained = seconds();
  const evaluation = trainer.evaluate();
  post({
    type: 'evaluation',
    step: trainer.step,
    seconds: trained,
    loss: evaluation.loss,
    accuracy: evaluation.accuracy ?? NaN,
  });
  postCurves(run, trainer);
  if (run.spectrum) {
    const diagnostics = trainer.diagnose(16, 1);
    if (diagnostics.spectrum) {
      post({ type: 'spectrum', step: trainer.step, log10SingularValues: diagnostics.spectrum.log10_singular_values });
    }
  }
  post({ type: 'done', step: trainer.step, seconds: trained, stepsPerSecond: trainer.step / Math.max(trained, 1e-9) });
}

function softmax(logits: ArrayLike<number>): number[] {
  const max = Math.max(...Array.from(logits));
  const exps = Array.from(logits, (x) => Math.exp(x - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

async function handle(message: ToWorker): Promise<void> {
  switch (message.type) {
    case 'start':
      stopRequested = false;
      await start(message.run);
      return;
    case 'stop':
      stopRequested = true;
      return;
    case 'predict': {
      if (model === null) return;
      const { logits } = predict(model, [message.pixels]);
      post({ type: 'prediction', id: message.id, probabilities: softmax(logits) });
      return;
    }
    case 'save': {
      if (model === null) return;
      const bytes = saveModelBytes(model);
      post({ type: 'checkpoint', bytes }, [bytes.buffer]);
      return;
    }
    case 'load':
      model = loadModelBytes(message.bytes, model?.backend ?? (await workerBackend()), { source: message.source });
      trainer = null;
      post({
        type: 'ready',
        backend: model.backend.name,
        parameters: model.params.size,
        config: { ...model.config },
        dataSeconds: 0,
      });
      return;
  }
}

scope.onmessage = (event) => {
  handle(event.data).catch((error: unknown) => {
    post({ type: 'error', message: error instanceof Error ? error.message : String(error) });
  });
};
