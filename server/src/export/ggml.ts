// QuantLens format ids ↔ GGML tensor types (names as ggml_type_name prints them; llama-quantize compares them
// case-insensitively), and Hugging Face LLaMA-family tensor names → GGUF names (llama.cpp convert_hf_to_gguf
// tensor map, gguf-py/gguf/tensor_mapping.py).
//
// GGML block layouts (ggml-common.h) decide which pairs are exact:
//   q8_0  32 weights, fp16 scale, int8 symmetric          ↔ int8_g32_sym
//   q4_0  32 weights, fp16 scale, 4-bit symmetric (−8…7)  ↔ int4_g32_sym
//   q4_1  32 weights, fp16 scale + fp16 min               ↔ int4_g32_asym
//   q5_0 / q5_1  the same at 5 bits                        ↔ int5_g32_sym / int5_g32_asym
//   q2_K  16-weight sub-blocks, 4-bit scale + min          ↔ int2_g16_asym
//   q3_K  16-weight sub-blocks, 6-bit scales, symmetric    ↔ int3_g16_sym
//   q4_K / q5_K  32-weight sub-blocks, 6-bit scale + min   ← int4 / int5 asymmetric at other group sizes
//   q6_K  16-weight sub-blocks, 8-bit scales, symmetric    ↔ int6_g16_sym
//   iq4_nl 32 weights, non-linear 4-bit code book          ↔ nf4_g32 (a different code book: approximate)
//   mxfp4 (OCP MX, E2M1 + E8M0 per 32) ↔ mxfp4;  nvfp4 ↔ nvfp4
// Everything else maps to the nearest type of the same bit width (sub-block scales are 8 bits in K types, fp16 in
// QuantLens), and a format with no GGML type of its width (7-bit ints, fp8, 6-bit floats) to the next wider
// type, with a warning because the size changes.

import type { DType } from '../formats/types';
import { formatSpec } from './context';

export interface GgmlChoice {
  type: string;
  /** Set when the GGML type has a different width than the plan's format. */
  widened?: string;
}

/** QuantLens base format id → GGML type. */
export function toGgml(id: string): GgmlChoice | undefined {
  const f = formatSpec(id);
  if (!f) return undefined;
  switch (f.kind) {
    case 'int': {
      const g32 = f.group === 32;
      switch (f.bits) {
        case 2: return { type: 'q2_K' };
        case 3: return { type: 'q3_K' };
        case 4: return { type: g32 ? (f.sym ? 'q4_0' : 'q4_1') : f.sym ? 'q4_0' : 'q4_K' };
        case 5: return { type: g32 ? (f.sym ? 'q5_0' : 'q5_1') : f.sym ? 'q5_0' : 'q5_K' };
        case 6: return { type: 'q6_K' };
        case 7: return { type: 'q8_0', widened: '7-bit integers have no GGML type' };
        default: return { type: 'q8_0' };
      }
    }
    case 'nf': return f.bits === 4 ? { type: 'iq4_nl' } : { type: 'q3_K' };
    case 'fp':
      if (f.bits === 4) return { type: 'mxfp4' };
      return { type: f.bits === 8 ? 'q8_0' : 'q6_K', widened: f.bits === 8 ? undefined : `${f.bits}-bit floats have no GGML type` };
    case 'mx':
      if (f.id === 'mxfp4') return { type: 'mxfp4' };
      if (f.id.startsWith('mxfp6')) return { type: 'q6_K' };
      return { type: 'q8_0' };
    case 'nvfp4': return { type: 'nvfp4' };
    case 'bfp':
      if (f.bits <= 4) return { type: 'q4_0', ...(f.bits < 4 ? { widened: `${f.bits}-bit block floating point has no GGML type` } : {}) };
      if (f.bits <= 6) return { type: 'q6_K' };
      return { type: 'q8_0' };
  }
}

/** GGML type (any case) → the QuantLens format it is exactly (or, for iq4_nl / K types, most nearly); null = float. */
export const FROM_GGML: Readonly<Record<string, string | null>> = {
  f32: null, f16: null, bf16: null,
  q8_0: 'int8_g32_sym', q4_0: 'int4_g32_sym', q4_1: 'int4_g32_asym', q5_0: 'int5_g32_sym', q5_1: 'int5_g32_asym',
  q2_k: 'int2_g16_asym', q3_k: 'int3_g16_sym', q4_k: 'int4_g32_asym', q5_k: 'int5_g32_asym', q6_k: 'int6_g16_sym',
  iq4_nl: 'nf4_g32', mxfp4: 'mxfp4', nvfp4: 'nvfp4',
};

/** The type that keeps a tensor as it is stored (llama.cpp cannot leave a tensor "unconverted"). */
export function floatType(dtype: DType): string {
  return dtype === 'F32' ? 'f32' : dtype === 'BF16' ? 'bf16' : 'f16';
}

const LAYER: [RegExp, string][] = [
  [/^self_attn\.q_proj$/, 'attn_q'],
  [/^self_attn\.k_proj$/, 'attn_k'],
  [/^self_attn\.v_proj$/, 'attn_v'],
  [/^self_attn\.o_proj$/, 'attn_output'],
  [/^mlp\.gate_proj$/, 'ffn_gate'],
  [/^mlp\.up_proj$/, 'ffn_up'],
  [/^mlp\.down_proj$/, 'ffn_down'],
  [/^mlp\.experts\.\d+\.(gate|up|down)_proj$/, 'ffn_$1_exps'],
  [/^mlp\.shared_experts?\.(gate|up|down)_proj$/, 'ffn_$1_shexp'],
  [/^mlp\.gate$/, 'ffn_gate_inp'],
  [/^input_layernorm$/, 'attn_norm'],
  [/^post_attention_layernorm$/, 'ffn_norm'],
];

const ROOT: Record<string, string> = {
  'model.embed_tokens': 'token_embd',
  lm_head: 'output',
  'model.norm': 'output_norm',
};

/**
 * The GGUF name llama.cpp's converter gives a Hugging Face LLaMA-family tensor, or undefined. Expert tensors map
 * many-to-one: GGUF stores all experts of a projection as one 3-D tensor.
 */
export function ggufName(hfName: string): string | undefined {
  const m = /^(.*)\.(weight|bias)$/.exec(hfName);
  if (!m) return undefined;
  const [, module, kind] = m;
  if (ROOT[module]) return `${ROOT[module]}.${kind}`;
  const b = /^model\.layers\.(\d+)\.(.+)$/.exec(module);
  if (!b) return undefined;
  for (const [re, to] of LAYER) if (re.test(b[2])) return `blk.${b[1]}.${b[2].replace(re, to)}.${kind}`;
  return undefined;
}
