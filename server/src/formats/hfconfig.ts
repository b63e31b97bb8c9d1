// Hugging Face config.json: architecture facts that matter for quantization (no weights).
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { check, LIMITS, QuantLensError } from './errors';
import { parseJsonObject, type JsonObject } from './json';
import type { Checkpoint, CheckpointReader, ModelConfig } from './types';

type Json = JsonObject;

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** First numeric field among aliases (GPT-2 uses n_layer, Llama num_hidden_layers, …). */
function pick(j: Json, keys: string[]): number | undefined {
  for (const k of keys) {
    const v = num(j[k]);
    if (v !== undefined) return v;
  }
  return undefined;
}

export function parseHfConfig(text: string, file: string): ModelConfig {
  const root = parseJsonObject(new TextEncoder().encode(text), file, 0, 'config.json');
  // Multimodal configs nest the language model under text_config.
  const text_config = root.text_config && typeof root.text_config === 'object' ? (root.text_config as Json) : undefined;
  const c: Json = { ...(text_config ?? {}), ...root };
  const archs = Array.isArray(c.architectures) ? c.architectures.filter((a): a is string => typeof a === 'string') : [];
  const cfg: ModelConfig = {
    path: file,
    architectures: archs,
    modelType: typeof c.model_type === 'string' ? c.model_type : undefined,
    numLayers: pick(c, ['num_hidden_layers', 'n_layer', 'num_layers', 'n_layers']),
    hiddenSize: pick(c, ['hidden_size', 'n_embd', 'd_model', 'dim']),
    intermediateSize: pick(c, ['intermediate_size', 'n_inner', 'ffn_dim', 'd_ff']),
    numHeads: pick(c, ['num_attention_heads', 'n_head', 'num_heads', 'n_heads']),
    numKeyValueHeads: pick(c, ['num_key_value_heads', 'n_kv_heads', 'num_kv_heads']),
    vocabSize: pick(c, ['vocab_size']),
    numExperts: pick(c, ['num_local_experts', 'num_experts', 'n_routed_experts', 'moe_num_experts']),
    numExpertsPerToken: pick(c, ['num_experts_per_tok', 'num_experts_per_token', 'moe_top_k']),
    torchDtype: typeof c.torch_dtype === 'string' ? c.torch_dtype : typeof c.dtype === 'string' ? c.dtype : undefined,
    tieWordEmbeddings: typeof c.tie_word_embeddings === 'boolean' ? c.tie_word_embeddings : undefined,
  };
  const q = c.quantization_config;
  if (q && typeof q === 'object' && !Array.isArray(q)) cfg.quantizationConfig = q as Json;
  cfg.estimatedParams = estimateParams(cfg);
  return cfg;
}

/**
 * Decoder-only transformer estimate: embeddings (+ untied head) + per layer attention
 * (q, o: h²; k, v: h·kv_dim) + gated MLP (3·h·i, times experts) + norms. Undefined when fields are missing.
 */
export function estimateParams(c: ModelConfig): number | undefined {
  const { numLayers: L, hiddenSize: h, intermediateSize: i, vocabSize: v, numHeads: nh } = c;
  if (!L || !h || !i || !v || !nh) return undefined;
  const kvDim = (h / nh) * (c.numKeyValueHeads ?? nh);
  const attn = 2 * h * h + 2 * h * kvDim;
  const mlp = 3 * h * i * (c.numExperts ?? 1) + (c.numExperts ? h * c.numExperts : 0);
  const perLayer = attn + mlp + 2 * h;
  const embed = v * h * (c.tieWordEmbeddings === false || c.tieWordEmbeddings === undefined ? 2 : 1);
  return L * perLayer + embed + h;
}

export async function readHfConfig(file: string): Promise<ModelConfig> {
  const st = await fsp.stat(file);
  check(st.size <= LIMITS.maxHeaderBytes, 'too-large', `config.json of ${st.size} bytes is larger than any real config`, { file });
  return parseHfConfig(await fsp.readFile(file, 'utf8'), file);
}

export const hfConfigReader: CheckpointReader = {
  format: 'hf-config',
  match(p) {
    if (path.basename(p.path) !== 'config.json' && !p.path.endsWith('.json')) return false;
    const head = new TextDecoder().decode(p.head.subarray(0, 4096));
    // A config, not a sharded index (that belongs to the weight readers).
    return /^\s*\{/.test(head) && !/"weight_map"\s*:/.test(head) && /"(architectures|model_type|hidden_size|num_hidden_layers)"/.test(head);
  },
  async open(file): Promise<Checkpoint> {
    const config = await readHfConfig(file);
    return {
      format: 'hf-config',
      path: file,
      files: [file],
      tensors: [],
      metadata: {},
      config,
      read: async (name) => {
        throw new QuantLensError('no-weights', 'config.json holds no weights', { file, tensor: name });
      },
      close: async () => {},
    };
  },
};
