// Shared by the ONNX tests: running an exported model with onnxruntime-web (its WebAssembly build, loaded
// from node_modules, one thread) and comparing its logits with roaf's forward pass.

import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-web';
import type { FloatArray } from '../src/backend/backend.js';
import type { Model } from '../src/models/model.js';

ort.env.wasm.numThreads = 1;

/** An onnxruntime session of a model given as bytes, or as a file path with its external data file. */
export async function onnxSession(
  model: Uint8Array | string,
  externalData?: { path: string; data: Uint8Array },
): Promise<ort.InferenceSession> {
  const options: ort.InferenceSession.SessionOptions = externalData ? { externalData: [externalData] } : {};
  return typeof model === 'string'
    ? ort.InferenceSession.create(model, options)
    : ort.InferenceSession.create(model, options);
}

/** Runs `session` on `inputs`, (B, D) for a feed-forward model or (T, B, D) for a recurrent one; returns its logits. */
export async function onnxLogits(
  session: ort.InferenceSession,
  inputs: FloatArray,
  dims: number[],
): Promise<{ data: Float32Array; dims: readonly number[] }> {
  const data = inputs instanceof Float32Array ? inputs : Float32Array.from(inputs);
  const out = await session.run({ input: new ort.Tensor('float32', data, dims) });
  const logits = out.logits;
  assert.ok(logits !== undefined, 'the model has an output named logits');
  return { data: logits.data as Float32Array, dims: logits.dims };
}

export interface LogitsComparison {
  /** max over rows of max_k |onnx - roaf| / max_k |roaf| (the row's largest logit sets the scale). */
  maxRelative: number;
  /** Share of rows whose largest logit is the same class. */
  sameClass: number;
  rows: number;
}

/** Compares two (rows, K) logit arrays row by row. */
export function compareLogits(roaf: ArrayLike<number>, onnx: ArrayLike<number>, K: number): LogitsComparison {
  assert.equal(onnx.length, roaf.length, 'ONNX and roaf give the same number of logits');
  const rows = roaf.length / K;
  let maxRelative = 0;
  let same = 0;
  for (let r = 0; r < rows; r++) {
    let scale = 0,
      diff = 0,
      bestRoaf = 0,
      bestOnnx = 0;
    for (let k = 0; k < K; k++) {
      const a = roaf[r * K + k]!,
        b = onnx[r * K + k]!;
      scale = Math.max(scale, Math.abs(a));
      diff = Math.max(diff, Math.abs(a - b));
      if (a > roaf[r * K + bestRoaf]!) bestRoaf = k;
      if (b > onnx[r * K + bestOnnx]!) bestOnnx = k;
    }
    maxRelative = Math.max(maxRelative, diff / Math.max(scale, 1e-30));
    if (bestRoaf === bestOnnx) same++;
  }
  return { maxRelative, sameClass: same / rows, rows };
}

/** roaf's logits (a copy) and ONNX's for the same inputs, and their comparison. */
export async function parity(
  model: Model,
  session: ort.InferenceSession,
  B: number,
  T: number,
  inputs: FloatArray,
): Promise<LogitsComparison & { dims: readonly number[] }> {
  const { inputDim: D, outputs: K } = model.config;
  const roaf = Float64Array.from(model.forward(B, T, inputs));
  const onnx = await onnxLogits(session, inputs, model.recurrent ? [T, B, D] : [B, D]);
  return { ...compareLogits(roaf, onnx.data, K), dims: onnx.dims };
}
