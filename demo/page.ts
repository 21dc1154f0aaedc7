// The demo page's script (served as dist/demo/page.js): starts the training workers, draws their
// progress with the report's own Vega-Lite specs (rendered by Vega in the page, as `roaf report`
// renders them in Node), reads the drawing pad, and saves and loads checkpoints. Form fields can be
// preset from the query string (?width=32&batch=32&seconds=60&autostart=1), which the browser test uses.
// `window.roafDemo` exposes what the page received, for that test.

import {
  downloadBytes,
  gradientNormSpec,
  learningCurveSpec,
  loadStoredBytes,
  mnistDigit,
  readFileBytes,
  spectrumSpec,
  startTrainingWorker,
  storeBytes,
  type CurvePoint,
  type FromWorker,
  type ToWorker,
  type WorkerRun,
} from '../src/browser/index.js';

/** Vega and Vega-Lite, loaded by the page's classic script tags from their npm packages. */
declare const vega: {
  View: new (runtime: unknown, options: { renderer: 'none' }) => { toSVG(): Promise<string>; finalize(): void };
  parse(spec: unknown): unknown;
};
declare const vegaLite: { compile(spec: unknown): { spec: unknown } };

interface Evaluation {
  step: number;
  seconds: number;
  loss: number;
  accuracy: number;
}
/** What one model's worker reported. */
interface ModelState {
  label: string;
  worker: Worker | null;
  losses: CurvePoint[];
  evaluations: Evaluation[];
  gradients: { index: 'layer' | 'step'; log10Norms: Array<number | null> } | null;
  spectrum: Array<number | null> | null;
  hidden: number[] | null;
  steps: number;
  firstStepMs: number | null;
  done: { step: number; seconds: number; stepsPerSecond: number } | null;
  ready: { backend: string; parameters: number; config: Record<string, unknown> } | null;
  prediction: { digit: number; probability: number } | null;
  errors: string[];
}

const newState = (label: string): ModelState => ({
  label,
  worker: null,
  losses: [],
  evaluations: [],
  gradients: null,
  spectrum: null,
  hidden: null,
  steps: 0,
  firstStepMs: null,
  done: null,
  ready: null,
  prediction: null,
  errors: [],
});

const models: Record<'roaf' | 'mlp' | 'rnn', ModelState> = {
  roaf: newState('ROAF MLP'),
  mlp: newState('plain MLP'),
  rnn: newState('ROAF RNN'),
};
(globalThis as unknown as { roafDemo: unknown }).roafDemo = { models, pageStartMs: performance.now() };

const element = <T extends HTMLElement>(id: string): T => {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`demo page: no element #${id}`);
  return found as T;
};

// ---- plots: the report's specs, rendered to SVG by Vega as the report does -------------------------

const pending = new Map<string, unknown>();
let drawing = false;

/** Draws `spec` into #id; redraws are coalesced so a fast worker never queues up renders. */
function plot(id: string, spec: unknown): void {
  pending.set(id, spec);
  if (!drawing) void drawPending();
}

async function drawPending(): Promise<void> {
  drawing = true;
  while (pending.size > 0) {
    const [id, spec] = pending.entries().next().value as [string, unknown];
    pending.delete(id);
    const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
    try {
      element(id).innerHTML = await view.toSVG();
    } finally {
      view.finalize();
    }
  }
  drawing = false;
}

function drawMlpPlots(): void {
  const pair = [models.roaf, models.mlp];
  const runs = pair.map((m) => m.label);
  plot(
    'plot-loss',
    learningCurveSpec(
      pair.flatMap((m) => m.losses),
      { title: 'Training loss', x: 'step', y: 'cross-entropy', logY: true, runs },
    ),
  );
  plot(
    'plot-accuracy',
    learningCurveSpec(
      pair.flatMap((m) =>
        m.evaluations.map((e) => ({ run: m.label, x: e.seconds, value: e.accuracy, series: 'test' })),
      ),
      { title: 'Test accuracy', x: 'seconds of training', y: 'accuracy', runs },
    ),
  );
  const curves = pair.filter((m) => m.gradients !== null);
  if (curves.length > 0) {
    plot(
      'plot-gradients',
      gradientNormSpec(
        curves.map((m) => ({
          label: m.label,
          index: m.gradients!.index,
          positions: m.gradients!.log10Norms.map((_, i) => i),
          log10Norms: m.gradients!.log10Norms,
        })),
        'Gradient norm at every layer',
        runs,
      ),
    );
  }
  const spectra = pair.filter((m) => m.spectrum !== null);
  if (spectra.length > 0) {
    plot(
      'plot-spectrum',
      spectrumSpec(
        spectra.map((m) => ({ label: m.label, log10SingularValues: m.spectrum! })),
        'Singular values of the input-output Jacobian',
        runs,
      ),
    );
  }
}

function drawRnnPlots(): void {
  const m = models.rnn;
  const runs = [m.label];
  plot(
    'plot-rnn-loss',
    learningCurveSpec(m.losses, { title: 'Training loss', x: 'step', y: 'cross-entropy', logY: true, runs }),
  );
  plot(
    'plot-rnn-accuracy',
    learningCurveSpec(
      m.evaluations.map((e) => ({ run: m.label, x: e.seconds, value: e.accuracy, series: 'test' })),
      { title: 'Test accuracy', x: 'seconds of training', y: 'accuracy', runs },
    ),
  );
  if (m.hidden !== null) {
    plot(
      'plot-rnn-hidden',
      learningCurveSpec(
        m.hidden.map((value, t) => ({ run: m.label, x: t, value, series: '‖h_t‖' })),
        { title: 'Hidden-state norm over time (mean over 16 test digits)', x: 'step t', y: '‖h_t‖', runs },
      ),
    );
  }
  if (m.gradients !== null) {
    plot(
      'plot-rnn-gradients',
      gradientNormSpec(
        [
          {
            label: m.label,
            index: 'step',
            positions: m.gradients.log10Norms.map((_, i) => i + 1),
            log10Norms: m.gradients.log10Norms,
          },
        ],
        'Gradient norm at every step',
        runs,
      ),
    );
  }
}

// ---- workers ---------------------------------------------------------------------------------------

/** At most this many loss points per model in the plot (every k-th step beyond). */
const MAX_LOSS_POINTS = 400;

function receive(state: ModelState, message: FromWorker, redraw: () => void, status: () => void): void {
  switch (message.type) {
    case 'ready':
      state.ready = message;
      break;
    case 'step': {
      state.steps = message.step;
      state.firstStepMs ??= performance.now();
      const every = Math.max(1, Math.ceil(message.step / MAX_LOSS_POINTS));
      if (message.step % every === 0)
        state.losses.push({ run: state.label, x: message.step, value: message.loss, series: 'train' });
      if (state.losses.length > MAX_LOSS_POINTS * 2) state.losses = state.losses.filter((_, i) => i % 2 === 0);
      status();
      return;
    }
    case 'evaluation':
      state.evaluations.push(message);
      break;
    case 'gradients':
      state.gradients = message;
      break;
    case 'spectrum':
      state.spectrum = message.log10SingularValues;
      break;
    case 'hidden':
      state.hidden = message.norms;
      break;
    case 'prediction': {
      const digit = message.probabilities.indexOf(Math.max(...message.probabilities));
      state.prediction = { digit, probability: message.probabilities[digit]! };
      showPredictions();
      return;
    }
    case 'checkpoint':
      onCheckpoint(message.bytes);
      return;
    case 'done':
      state.done = message;
      break;
    case 'error':
      state.errors.push(message.message);
      console.warn(`${state.label}: ${message.message}`);
      break;
  }
  status();
  redraw();
}

function startWorker(state: ModelState, run: WorkerRun, redraw: () => void, status: () => void): void {
  state.worker?.terminate();
  Object.assign(state, newState(state.label));
  const worker = startTrainingWorker();
  state.worker = worker;
  worker.onmessage = (event: MessageEvent<FromWorker>) => receive(state, event.data, redraw, status);
  worker.onerror = (event) => {
    state.errors.push(event.message);
    status();
  };
  send(state, { type: 'start', run });
}

function send(state: ModelState, message: ToWorker, transfer: Transferable[] = []): void {
  state.worker?.postMessage(message, transfer);
}

const dataUrl = new URL('/data/mnist/', location.href).href;
const query = new URLSearchParams(location.search);
/** ?backend=reference trains on the plain-TypeScript backend instead of WebAssembly. */
const backend: 'wasm' | 'reference' = query.get('backend') === 'reference' ? 'reference' : 'wasm';

/** The form's values, preset from the query string; empty numeric fields are left to the model's defaults. */
function formValues(form: HTMLFormElement): Record<string, string> {
  const values: Record<string, string> = {};
  for (const field of Array.from(form.elements) as HTMLInputElement[]) {
    if (field.name) values[field.name] = field.value.trim();
  }
  return values;
}

function presetForm(form: HTMLFormElement): void {
  for (const field of Array.from(form.elements) as HTMLInputElement[]) {
    const value = field.name ? query.get(field.name) : null;
    if (value !== null) field.value = value;
  }
}

const optional = (text: string | undefined): number | undefined =>
  text === undefined || text === '' ? undefined : Number(text);

function describe(state: ModelState): string {
  const last = state.evaluations[state.evaluations.length - 1];
  const accuracy = last ? `${(100 * last.accuracy).toFixed(1)} %` : '–';
  const fate = state.errors.length > 0 ? ` error: ${state.errors[0]}` : state.done ? ' (done)' : '';
  return `${state.label}: step ${state.steps}, test accuracy ${accuracy}${fate}`;
}

function startMlp(): void {
  const v = formValues(element('mlp-controls'));
  const seconds = Number(v.seconds);
  const common = {
    task: 'mnist' as const,
    backend,
    depth: optional(v.depth),
    width: optional(v.width),
    filter: v.filter as WorkerRun['filter'],
    dataUrl,
    testLimit: Number(v.testLimit),
    batch: Number(v.batch),
    lr: Number(v.lr),
    evalSeconds: 3,
    gradientSeconds: 10,
    maxSteps: Number.MAX_SAFE_INTEGER,
    maxSeconds: seconds,
    spectrum: true,
    hiddenNorms: false,
  };
  const status = () => {
    element('mlp-status').textContent = `${describe(models.roaf)}\n${describe(models.mlp)}`;
  };
  startWorker(
    models.roaf,
    { ...common, model: 'roaf-mlp', alpha: optional(v.alpha), beta: optional(v.beta) },
    drawMlpPlots,
    status,
  );
  startWorker(models.mlp, { ...common, model: 'mlp' }, drawMlpPlots, status);
}

function startRnn(): void {
  const v = formValues(element('rnn-controls'));
  const status = () => {
    element('rnn-status').textContent = describe(models.rnn);
  };
  startWorker(
    models.rnn,
    {
      model: 'roaf-rnn',
      task: 'smnist',
      backend,
      hidden: optional(v.hidden),
      alpha: optional(v.alpha),
      beta: optional(v.beta),
      dataUrl,
      testLimit: Number(v.testLimit),
      batch: Number(v.batch),
      lr: Number(v.lr),
      evalSeconds: 10,
      gradientSeconds: 10,
      maxSteps: Number.MAX_SAFE_INTEGER,
      maxSeconds: Number(v.seconds),
      spectrum: false,
      hiddenNorms: true,
    },
    drawRnnPlots,
    status,
  );
}

// ---- the drawing pad ---------------------------------------------------------------------------------

const pad = element<HTMLCanvasElement>('pad');
const pen = pad.getContext('2d', { willReadFrequently: true })!;
let predictionId = 0;

function predictDrawing(): void {
  const { data, width, height } = pen.getImageData(0, 0, pad.width, pad.height);
  const ink = new Float32Array(width * height);
  for (let i = 0; i < ink.length; i++) ink[i] = data[4 * i + 3]! / 255; // the pen draws opaque on transparent
  const pixels = mnistDigit(ink, width, height);
  if (pixels === null) return;
  const preview = element<HTMLCanvasElement>('pad-mnist').getContext('2d')!;
  const image = preview.createImageData(28, 28);
  pixels.forEach((p, i) => image.data.set([255 * p, 255 * p, 255 * p, 255], 4 * i));
  preview.putImageData(image, 0, 0);
  predictionId += 1;
  for (const state of [models.roaf, models.mlp]) send(state, { type: 'predict', id: predictionId, pixels });
}

function showPredictions(): void {
  for (const [key, state] of [
    ['roaf', models.roaf],
    ['mlp', models.mlp],
  ] as const) {
    const cells = element(`prediction-${key}`).querySelectorAll('td');
    if (state.prediction === null || cells.length < 3) continue;
    cells[1]!.textContent = String(state.prediction.digit);
    cells[2]!.textContent = `${(100 * state.prediction.probability).toFixed(1)} %`;
  }
}

let lastPoint: { x: number; y: number } | null = null;
pad.addEventListener('pointerdown', (event) => {
  pad.setPointerCapture(event.pointerId);
  lastPoint = { x: event.offsetX, y: event.offsetY };
});
pad.addEventListener('pointermove', (event) => {
  if (lastPoint === null) return;
  pen.strokeStyle = 'black';
  pen.lineWidth = 22;
  pen.lineCap = 'round';
  pen.lineJoin = 'round';
  pen.beginPath();
  pen.moveTo(lastPoint.x, lastPoint.y);
  pen.lineTo(event.offsetX, event.offsetY);
  pen.stroke();
  lastPoint = { x: event.offsetX, y: event.offsetY };
});
pad.addEventListener('pointerup', () => {
  lastPoint = null;
  predictDrawing();
});
element('pad-clear').addEventListener('click', () => pen.clearRect(0, 0, pad.width, pad.height));

// ---- checkpoints -------------------------------------------------------------------------------------

let checkpointTarget: 'download' | 'store' = 'download';
const CHECKPOINT_KEY = 'roaf-mlp.safetensors';

function onCheckpoint(bytes: Uint8Array): void {
  if (checkpointTarget === 'download') downloadBytes(bytes, CHECKPOINT_KEY);
  else
    storeBytes(CHECKPOINT_KEY, bytes).then(
      () => (element('mlp-status').textContent = `kept ${bytes.length} bytes in this browser (IndexedDB)`),
      (error: unknown) => console.warn(error),
    );
}

element('ckpt-download').addEventListener('click', () => {
  checkpointTarget = 'download';
  send(models.roaf, { type: 'save' });
});
element('ckpt-store').addEventListener('click', () => {
  checkpointTarget = 'store';
  send(models.roaf, { type: 'save' });
});

function loadInto(bytes: Uint8Array, source: string): void {
  if (models.roaf.worker === null) {
    models.roaf.worker = startTrainingWorker();
    models.roaf.worker.onmessage = (event: MessageEvent<FromWorker>) =>
      receive(models.roaf, event.data, drawMlpPlots, () => {});
  }
  send(models.roaf, { type: 'load', bytes, source }, [bytes.buffer]);
}

element('ckpt-restore').addEventListener('click', () => {
  loadStoredBytes(CHECKPOINT_KEY).then(
    (bytes) => (bytes === null ? undefined : loadInto(bytes, `IndexedDB ${CHECKPOINT_KEY}`)),
    (error: unknown) => console.warn(error),
  );
});
element<HTMLInputElement>('ckpt-file').addEventListener('change', (event) => {
  const file = (event.target as HTMLInputElement).files?.[0];
  if (file)
    readFileBytes(file).then(
      (bytes) => loadInto(bytes, file.name),
      (error: unknown) => console.warn(error),
    );
});

// ---- tabs and forms ----------------------------------------------------------------------------------

for (const button of Array.from(document.querySelectorAll<HTMLButtonElement>('nav button'))) {
  button.addEventListener('click', () => {
    for (const other of Array.from(document.querySelectorAll<HTMLButtonElement>('nav button'))) {
      other.classList.toggle('active', other === button);
      element(`tab-${other.dataset.tab}`).hidden = other !== button;
    }
  });
}

const mlpForm = element<HTMLFormElement>('mlp-controls');
const rnnForm = element<HTMLFormElement>('rnn-controls');
presetForm(mlpForm);
presetForm(rnnForm);
mlpForm.addEventListener('submit', (event) => {
  event.preventDefault();
  startMlp();
});
rnnForm.addEventListener('submit', (event) => {
  event.preventDefault();
  startRnn();
});
element('mlp-stop').addEventListener('click', () =>
  [models.roaf, models.mlp].forEach((m) => send(m, { type: 'stop' })),
);
element('rnn-stop').addEventListener('click', () => send(models.rnn, { type: 'stop' }));
if (query.get('autostart') === '1') startMlp();
if (query.get('autostart') === 'rnn') startRnn();
