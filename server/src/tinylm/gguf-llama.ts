// The tiny LM as a llama.cpp GGUF (`llama` architecture) and back, following llama.cpp's Hugging Face converter
// (convert_hf_to_gguf.py, gguf-py constants): GGUF tensor names (token_embd, blk.N.attn_q …, output_norm, output),
// ne = the Hugging Face shape reversed with the same bytes, 2-D weights in F16 and norms in F32 (file type 1,
// "mostly F16"), the `llama.*` hyper-parameters, and a byte-level SentencePiece-style vocabulary.
//
// Rotary layout: Hugging Face's Llama rotates the two halves of each head (rotate_half: element i pairs with
// i + d/2), llama.cpp's `llama` rope rotates adjacent pairs (2i, 2i + 1). The converter therefore permutes the rows
// of q_proj and k_proj within each head — row i + j·d/2 (j ∈ {0, 1}) moves to row 2i + j — and this module does the
// same (and its inverse when reading a GGUF back).
//
// Token ids stay the model's own: id b is byte b ("<0xBB>", type BYTE), then the specials (`<s>` = bosId,
// `</s>` = eosId, `<pad>` = padId, any other id `<unused_N>`), so logits row k means the same token in every
// export. There is no `<unk>`: every input byte has a token (SentencePiece byte fallback), so llama.cpp never
// needs one. No BOS, EOS or leading space is added (the model was trained on raw byte windows).
import { ggufName } from '../export/ggml';
import { check } from '../formats/errors';
import type { Checkpoint } from '../formats/types';
import { kv, type GgufSpec, type GgufTensor, type GgufValue } from '../formats/write-gguf';
import { encodeFloats } from '../formats/write-safetensors';
import { BYTE_VOCAB, headDim, tensorShapes, validateConfig, type TinyLlamaConfig, type TinyWeights } from './config';

/** ggml types and SentencePiece token types (ggml.h, gguf-py constants). */
const GGML_F32 = 0;
const GGML_F16 = 1;
const FILE_TYPE_MOSTLY_F16 = 1;
export const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, unused: 5, byte: 6 } as const;

const ROPE_PERMUTED = /\.self_attn\.[qk]_proj\.weight$/;

/**
 * Reorders the rows of a [heads·d, cols] projection (row-major) so each head's rotate_half pairs (i, i + d/2)
 * become adjacent pairs (2i, 2i + 1): Hugging Face → llama.cpp. `inverse` undoes it.
 */
export function permuteRope(data: Float32Array, rows: number, cols: number, heads: number, inverse = false): Float32Array {
  const d = rows / heads;
  check(Number.isInteger(d) && d % 2 === 0 && data.length === rows * cols, 'bad-shape', `expected [heads·d, cols] with an even head size d, found ${rows}×${cols} over ${heads} heads`, { file: '<rope permutation>' });
  const out = new Float32Array(data.length);
  const half = d / 2;
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const hf = h * d + j * half + i;
        const gg = h * d + 2 * i + j;
        const [from, to] = inverse ? [gg, hf] : [hf, gg];
        out.set(data.subarray(from * cols, (from + 1) * cols), to * cols);
      }
    }
  }
  return out;
}

/** Tokens, their types and scores, indexed by the model's token ids. */
export function byteVocabulary(c: TinyLlamaConfig): { tokens: string[]; types: number[]; scores: number[] } {
  const tokens: string[] = [];
  const types: number[] = [];
  for (let id = 0; id < c.vocabSize; id++) {
    if (id < BYTE_VOCAB) {
      tokens.push(`<0x${id.toString(16).toUpperCase().padStart(2, '0')}>`);
      types.push(TOKEN_TYPE.byte);
    } else {
      const special = id === c.bosId ? '<s>' : id === c.eosId ? '</s>' : id === c.padId ? '<pad>' : undefined;
      tokens.push(special ?? `<unused_${id}>`);
      types.push(special ? TOKEN_TYPE.control : TOKEN_TYPE.unused);
    }
  }
  return { tokens, types, scores: new Array<number>(c.vocabSize).fill(0) };
}

/** The GGUF (metadata, tensors in checkpoint order) of the model; `description` goes to general.description. */
export function llamaGgufSpec(c: TinyLlamaConfig, w: TinyWeights, name: string, description?: string): GgufSpec {
  validateConfig(c);
  const vocab = byteVocabulary(c);
  const meta: [string, GgufValue][] = [
    ['general.architecture', kv.str('llama')],
    ['general.name', kv.str(name)],
    ...(description ? [['general.description', kv.str(description)] as [string, GgufValue]] : []),
    ['general.alignment', kv.u32(32)],
    ['general.file_type', kv.u32(FILE_TYPE_MOSTLY_F16)],
    ['llama.vocab_size', kv.u32(c.vocabSize)],
    ['llama.context_length', kv.u32(c.maxPositions)],
    ['llama.embedding_length', kv.u32(c.hiddenSize)],
    ['llama.block_count', kv.u32(c.numLayers)],
    ['llama.feed_forward_length', kv.u32(c.intermediateSize)],
    ['llama.rope.dimension_count', kv.u32(headDim(c))],
    ['llama.attention.head_count', kv.u32(c.numHeads)],
    ['llama.attention.head_count_kv', kv.u32(c.numHeads)],
    ['llama.attention.layer_norm_rms_epsilon', kv.f32(c.rmsEps)],
    ['llama.rope.freq_base', kv.f32(c.ropeTheta)],
    ['tokenizer.ggml.model', kv.str('llama')],
    ['tokenizer.ggml.tokens', kv.strings(vocab.tokens)],
    ['tokenizer.ggml.scores', kv.f32s(vocab.scores)],
    ['tokenizer.ggml.token_type', kv.i32s(vocab.types)],
    ['tokenizer.ggml.bos_token_id', kv.u32(c.bosId)],
    ['tokenizer.ggml.eos_token_id', kv.u32(c.eosId)],
    ...(c.padId !== undefined ? [['tokenizer.ggml.padding_token_id', kv.u32(c.padId)] as [string, GgufValue]] : []),
    ['tokenizer.ggml.add_bos_token', kv.bool(false)],
    ['tokenizer.ggml.add_eos_token', kv.bool(false)],
    ['tokenizer.ggml.add_space_prefix', kv.bool(false)],
  ];
  const tensors: GgufTensor[] = tensorShapes(c).map(([hf, dims]) => {
    const t = w.get(hf);
    check(t && t.dims.join() === dims.join(), 'bad-weights', `expected [${dims.join(', ')}], found ${t ? `[${t.dims.join(', ')}]` : 'nothing'}`, { file: '<tiny LM weights>', tensor: hf });
    const data = ROPE_PERMUTED.test(hf) ? permuteRope(t.data, dims[0], dims[1], c.numHeads) : t.data;
    const matrix = dims.length === 2;
    return {
      name: ggufName(hf)!, // every tensorShapes name is a LLaMA name the converter maps
      ne: [...dims].reverse(),
      type: matrix ? GGML_F16 : GGML_F32,
      data: encodeFloats(data, matrix ? 'F16' : 'F32'),
    };
  });
  return { version: 3, kv: meta, tensors };
}

/** Reads a GGUF checkpoint of this model back into Hugging Face names and layouts (q/k rows un-permuted). */
export async function weightsFromGguf(ck: Checkpoint, c: TinyLlamaConfig): Promise<TinyWeights> {
  const out: TinyWeights = new Map();
  for (const [hf, dims] of tensorShapes(c)) {
    const name = ggufName(hf)!;
    const t = ck.tensors.find((x) => x.name === name);
    check(t && t.shape.join() === dims.join(), 'bad-weights', `expected ${name} of shape [${dims.join(', ')}], found ${t ? `[${t.shape.join(', ')}]` : 'nothing'}`, { file: ck.path, tensor: name });
    const data = await ck.read(name);
    out.set(hf, { dims, data: ROPE_PERMUTED.test(hf) ? permuteRope(data, dims[0], dims[1], c.numHeads, true) : data });
  }
  return out;
}
