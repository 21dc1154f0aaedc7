// Checkpoints in the browser, as safetensors bytes in memory: the same tensors, names and shapes as a
// checkpoint's model.safetensors (docs/checkpoint-format.md), with the model's configuration in the
// header's metadata (`config`, JSON) so the bytes alone rebuild the model. Saved as a download or into
// IndexedDB; loaded from a file input, a fetch or IndexedDB. A model.safetensors written by `roaf train`
// loads too when its config.json's `model` object is passed alongside.

import type { Backend } from '../backend/backend.js';
import { buildModel } from '../models/build.js';
import type { ModelConfig } from '../models/config.js';
import type { Model } from '../models/model.js';
import { modelTensors } from '../train/model-tensors.js';
import { SafetensorsBytes, encodeSafetensors } from '../train/safetensors-bytes.js';
import { UsageError } from '../util/errors.js';

/** The model's tensors (parameters and filters) as safetensors bytes, its config in the metadata. */
export function saveModelBytes(model: Model): Uint8Array {
  const { tensors } = modelTensors(model);
  return encodeSafetensors(tensors, {
    format: 'roaf',
    model: model.config.model,
    config: JSON.stringify(model.config),
  });
}

/**
 * Rebuilds a model on `backend` from safetensors bytes: its configuration from `config` or else from the
 * bytes' metadata; every tensor is checked against the shape the configuration implies.
 */
export function loadModelBytes(
  bytes: Uint8Array,
  backend: Backend,
  { config, source = 'model.safetensors' }: { config?: ModelConfig; source?: string } = {},
): Model {
  const file = new SafetensorsBytes(bytes, source);
  let modelConfig = config;
  if (modelConfig === undefined) {
    const text = file.metadata.config;
    if (text === undefined) {
      throw new UsageError(`${source}: no 'config' in the metadata; pass the model object of its config.json`);
    }
    try {
      modelConfig = JSON.parse(text) as ModelConfig;
    } catch {
      throw new UsageError(`${source}: metadata 'config' is not valid JSON`);
    }
  }
  const model = buildModel(modelConfig, () => backend);
  for (const tensor of modelTensors(model).tensors) file.readInto(tensor.name, tensor.data, tensor.shape);
  return model;
}

/** Offers `bytes` to the user as a file download named `fileName` (page only, not in a worker). */
export function downloadBytes(bytes: Uint8Array, fileName: string): void {
  const url = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: 'application/octet-stream' }));
  const link = document.createElement('a');
  link.href = url;
  link.download = fileName;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** The bytes of a file the user picked (an `<input type="file">`'s `files[0]`). */
export async function readFileBytes(file: Blob): Promise<Uint8Array> {
  return new Uint8Array(await file.arrayBuffer());
}

const DB_NAME = 'roaf';
const STORE = 'checkpoints';

function openDatabase(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error('IndexedDB: cannot open the roaf database'));
  });
}

function transaction<T>(mode: IDBTransactionMode, run: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  return openDatabase().then(
    (db) =>
      new Promise<T>((resolve, reject) => {
        const request = run(db.transaction(STORE, mode).objectStore(STORE));
        request.onsuccess = () => {
          resolve(request.result);
          db.close();
        };
        request.onerror = () => {
          reject(request.error ?? new Error(`IndexedDB: ${mode} in ${STORE} failed`));
          db.close();
        };
      }),
  );
}

/** Stores `bytes` under `key` in IndexedDB (database 'roaf', store 'checkpoints'), replacing what was there. */
export async function storeBytes(key: string, bytes: Uint8Array): Promise<void> {
  await transaction('readwrite', (store) => store.put(bytes, key));
}

/** The bytes stored under `key`, or null. */
export async function loadStoredBytes(key: string): Promise<Uint8Array | null> {
  const value = await transaction('readonly', (store) => store.get(key) as IDBRequest<Uint8Array | undefined>);
  return value instanceof Uint8Array ? value : null;
}
