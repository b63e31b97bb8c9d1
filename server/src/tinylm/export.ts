// Exports of the tiny LM into one folder, so QuantLens (and other tools) treat it like a downloaded checkpoint:
//   model.safetensors  fp16, Hugging Face Llama names and layouts, metadata {format: "pt"} (+ held-out perplexity)
//   config.json        the LlamaForCausalLM config
//   model.onnx         input_ids int64 [batch, seq] → logits [batch, seq, vocab], float32 initializers
//   model.gguf         llama.cpp `llama` architecture, F16 matrices, F32 norms, byte vocabulary (gguf-llama.ts)
// Every file is written to a temp file and renamed (output.ts); re-running the export replaces the folder's files.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { writeOutputFile } from '../output';
import { writeGgufFile } from '../formats/write-gguf';
import { encodeFloats, writeSafetensorsFile } from '../formats/write-safetensors';
import { hfConfigJson, tensorShapes, type TinyLlamaConfig, type TinyWeights } from './config';
import { llamaGgufSpec } from './gguf-llama';
import { buildForwardModel } from './graph';

export const EXPORT_FILES = { safetensors: 'model.safetensors', config: 'config.json', onnx: 'model.onnx', gguf: 'model.gguf' } as const;

export interface ExportInfo {
  heldoutPerplexity?: number;
  note?: string;
  /** Replace existing files (default true: the folder is the exporter's own output). */
  overwrite?: boolean;
}

export async function exportTinyLlama(dir: string, c: TinyLlamaConfig, w: TinyWeights, info: ExportInfo = {}): Promise<string[]> {
  const opts = { overwrite: info.overwrite ?? true };
  const file = (name: string) => path.join(dir, name);
  const described: Record<string, string> = {};
  if (info.heldoutPerplexity !== undefined) described.heldout_perplexity = info.heldoutPerplexity.toFixed(4);
  if (info.note) described.note = info.note;

  // Build (and so validate) everything before the first write: bad weights leave the folder untouched.
  const description = Object.entries(described).map(([k, v]) => `${k}: ${v}`).join('; ');
  const gguf = llamaGgufSpec(c, w, 'QuantLens tiny LLaMA', description || undefined);
  const onnx = buildForwardModel(c, w);
  const tensors = tensorShapes(c).map(([name, dims]) => ({ name, dtype: 'F16', shape: dims, bytes: encodeFloats(w.get(name)!.data, 'F16') }));
  await fsp.mkdir(dir, { recursive: true });
  await writeSafetensorsFile(file(EXPORT_FILES.safetensors), tensors, { format: 'pt', ...described }, opts);
  await writeOutputFile(file(EXPORT_FILES.config), `${JSON.stringify(hfConfigJson(c), null, 2)}\n`, opts);
  await writeOutputFile(file(EXPORT_FILES.onnx), onnx, opts);
  await writeGgufFile(file(EXPORT_FILES.gguf), gguf, opts);
  return Object.values(EXPORT_FILES).map(file);
}
