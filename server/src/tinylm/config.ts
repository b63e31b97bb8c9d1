// QuantLens's own tiny LLaMA-style language model: its shape, its Hugging Face config.json, its weights under
// Hugging Face Llama tensor names and layouts, a seeded initializer and the byte-level tokenizer.
import { check } from '../formats/errors';
import { seededRandom } from '../sensitivity/gradient';

export interface TinyLlamaConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  maxPositions: number;
  ropeTheta: number;
  rmsEps: number;
  bosId: number;
  eosId: number;
  padId?: number;
}

/** Byte-level vocabulary: ids 0–255 are the bytes, then the specials. */
export const BYTE_VOCAB = 256;
export const BOS_ID = 256;
export const EOS_ID = 257;

export const TINY_LLAMA: TinyLlamaConfig = {
  vocabSize: 258,
  hiddenSize: 256,
  intermediateSize: 688,
  numLayers: 4,
  numHeads: 4,
  maxPositions: 256,
  ropeTheta: 10000,
  rmsEps: 1e-5,
  bosId: BOS_ID,
  eosId: EOS_ID,
};

/** The LlamaForCausalLM config.json fields (transformers' names). */
export function hfConfigJson(c: TinyLlamaConfig): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numHeads,
    num_hidden_layers: c.numLayers,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.maxPositions,
    rms_norm_eps: c.rmsEps,
    rope_theta: c.ropeTheta,
    hidden_act: 'silu',
    tie_word_embeddings: false,
    attention_bias: false,
    mlp_bias: false,
    bos_token_id: c.bosId,
    eos_token_id: c.eosId,
    ...(c.padId !== undefined ? { pad_token_id: c.padId } : {}),
    torch_dtype: 'float16',
  };
}

export interface TinyTensor {
  dims: number[];
  data: Float32Array;
}

/** Weights by Hugging Face Llama name, in Hugging Face layouts: Linear [out, in], embedding [V, H], norms [H]. */
export type TinyWeights = Map<string, TinyTensor>;

export const LAYER_LINEARS = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'] as const;
export const LAYER_NORMS = ['input_layernorm', 'post_attention_layernorm'] as const;

export const layerName = (i: number, part: string): string => `model.layers.${i}.${part}.weight`;

export function headDim(c: TinyLlamaConfig): number {
  return c.hiddenSize / c.numHeads;
}

/** Every tensor's name and Hugging Face shape, in checkpoint order. */
export function tensorShapes(c: TinyLlamaConfig): [string, number[]][] {
  const H = c.hiddenSize;
  const I = c.intermediateSize;
  const out: [string, number[]][] = [['model.embed_tokens.weight', [c.vocabSize, H]]];
  const linear: Record<(typeof LAYER_LINEARS)[number], number[]> = {
    'self_attn.q_proj': [H, H], 'self_attn.k_proj': [H, H], 'self_attn.v_proj': [H, H], 'self_attn.o_proj': [H, H],
    'mlp.gate_proj': [I, H], 'mlp.up_proj': [I, H], 'mlp.down_proj': [H, I],
  };
  for (let i = 0; i < c.numLayers; i++) {
    for (const p of LAYER_LINEARS) out.push([layerName(i, p), linear[p]]);
    for (const n of LAYER_NORMS) out.push([layerName(i, n), [H]]);
  }
  out.push(['model.norm.weight', [H]], ['lm_head.weight', [c.vocabSize, H]]);
  return out;
}

export function validateConfig(c: TinyLlamaConfig): void {
  const where = { file: '<tiny LM config>' };
  const sizes = { vocabSize: c.vocabSize, hiddenSize: c.hiddenSize, intermediateSize: c.intermediateSize, numLayers: c.numLayers, numHeads: c.numHeads, maxPositions: c.maxPositions };
  for (const [k, v] of Object.entries(sizes)) check(Number.isInteger(v) && v > 0, 'bad-config', `${k} must be a positive integer, found ${v}`, where);
  check(c.hiddenSize % (2 * c.numHeads) === 0, 'bad-config', `hiddenSize ${c.hiddenSize} must split into ${c.numHeads} heads of even size`, where);
  check(c.vocabSize > Math.max(c.bosId, c.eosId), 'bad-config', `vocabSize ${c.vocabSize} must exceed the special ids (${c.bosId}, ${c.eosId})`, where);
}

/**
 * Seeded initialization as in Hugging Face Llama (normal, std 0.02; norms at 1), with the residual output
 * projections (o_proj, down_proj) scaled by 1/√(2·layers) so the residual stream starts at unit scale (GPT-2's rule).
 */
export function initWeights(c: TinyLlamaConfig, seed: number): TinyWeights {
  validateConfig(c);
  const rnd = seededRandom(seed);
  const out: TinyWeights = new Map();
  const residualScale = 1 / Math.sqrt(2 * c.numLayers);
  for (const [name, dims] of tensorShapes(c)) {
    const n = dims.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (dims.length === 1) data.fill(1);
    else {
      const std = 0.02 * (name.endsWith('o_proj.weight') || name.endsWith('down_proj.weight') ? residualScale : 1);
      for (let k = 0; k < n; k++) data[k] = std * rnd.normal();
    }
    out.set(name, { dims, data });
  }
  return out;
}

/** Byte tokenizer: the UTF-8 bytes of the text. */
export function encode(text: string): number[] {
  return Array.from(new TextEncoder().encode(text));
}

/** Token ids back to text; special ids are dropped, invalid UTF-8 becomes U+FFFD. */
export function decode(ids: ArrayLike<number>): string {
  const bytes: number[] = [];
  for (let k = 0; k < ids.length; k++) if (ids[k] >= 0 && ids[k] < BYTE_VOCAB) bytes.push(ids[k]);
  return new TextDecoder().decode(Uint8Array.from(bytes));
}
