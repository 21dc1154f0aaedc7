// The tensors a checkpoint's model.safetensors holds, as the model's kind lists them: shared by the
// checkpoint files (checkpoint.ts) and the browser entry's in-memory checkpoints. No Node built-ins.

import { modelKindOf } from '../models/kinds.js';
import type { Model } from '../models/model.js';
import { bindTensors } from '../models/tensors.js';
import type { NamedTensor } from './safetensors-bytes.js';

/**
 * The tensors of a model as safetensors entries, as its kind lists them (parameters under their names,
 * then the filters), each a view of the model's own buffer; and each layer's filter tensor name.
 */
export function modelTensors(model: Model): { tensors: NamedTensor[]; filterNames: string[] } {
  const list = modelKindOf(model).tensors(model.config);
  return { tensors: bindTensors(model, list), filterNames: list.filterNames };
}
