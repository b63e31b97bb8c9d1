// The shared layer model: tensor names → block / layer / fused group, and a layout guess for
// name-only formats (safetensors, PyTorch, GGUF). ONNX refines both from the graph.
import type { LayerRef, TensorInfo, WeightLayout } from './types';

/** A layer's path as users see it: `block.layer`, or just the layer for tensors outside repeated blocks. */
export function layerPath(ref: Pick<LayerRef, 'block' | 'layer'>): string {
  return ref.block === '(root)' ? ref.layer : `${ref.block}.${ref.layer}`;
}

/** Final name components that name a parameter of a layer rather than the layer itself. */
const PARAM_SUFFIX =
  /\.(weight|bias|w_\d+|b_\d+|w|b|scale|scales|qweight|qzeros|g_idx|zeros|weight_scale|weight_zero_point|input_scale|running_mean|running_var|num_batches_tracked|gamma|beta|embedding|kernel)$/;

/** Sibling layers quantized together by deployment kernels: [member pattern, group suffix]. */
const FUSED: [RegExp, string][] = [
  [/^(.*?)(?:^|\.)(q_proj|k_proj|v_proj)$/, 'qkv'],
  [/^(.*?)(?:^|\.)(query|key|value)$/, 'qkv'],
  [/^(.*?)(?:^|\.)(attn_q|attn_k|attn_v)$/, 'attn_qkv'],
  [/^(.*?)(?:^|\.)(gate_proj|up_proj)$/, 'gate_up'],
  [/^(.*?)(?:^|\.)(ffn_gate|ffn_up)$/, 'ffn_gate_up'],
  [/^(.*?)(?:^|\.)(w1|w3)$/, 'w1_w3'],
];

/** `model.layers.3.self_attn.q_proj.weight` → block `model.layers.3`, layer `self_attn.q_proj`, group `model.layers.3.self_attn.qkv`. */
export function layerOf(tensorName: string): LayerRef {
  const base = tensorName.replace(PARAM_SUFFIX, '');
  const parts = base.split('.');
  // The first numeric component marks a repeated block (layers.N, h.N, blk.N, encoder.layer.N).
  const i = parts.findIndex((p) => /^\d+$/.test(p));
  let block: string;
  let layer: string;
  if (i > 0 && i < parts.length - 1) {
    block = parts.slice(0, i + 1).join('.');
    layer = parts.slice(i + 1).join('.');
  } else {
    block = '(root)';
    layer = base;
  }
  const ref: LayerRef = { block, layer };
  const fused = fusedGroupOf(layer);
  if (fused && base !== tensorName) ref.fusedGroup = block === '(root)' ? fused : `${block}.${fused}`;
  return ref;
}

function fusedGroupOf(layer: string): string | undefined {
  // MoE: every expert of one projection shares a format (`mlp.experts.7.down_proj` → `mlp.experts.*.down_proj`).
  const moe = /^(.*\bexperts)\.\d+\.(.+)$/.exec(layer);
  if (moe) {
    const inner = fusedGroupOf(moe[2]);
    return `${moe[1]}.*.${inner ?? moe[2]}`;
  }
  for (const [re, suffix] of FUSED) {
    const m = re.exec(layer);
    if (m) return m[1] ? `${m[1]}.${suffix}` : suffix;
  }
  return undefined;
}

/** Layout for formats without a graph: HF/PyTorch conventions. */
export function guessLayout(name: string, shape: readonly number[]): WeightLayout {
  if (shape.length <= 1) return 'vector';
  if (/(embed|wte|wpe|tok_embeddings|token_embd|word_embeddings|position_embeddings)/.test(name)) return 'embedding';
  if (shape.length === 2) return 'out_in';
  if (shape.length >= 3 && shape.length <= 5) return 'conv';
  return 'other';
}

export interface LayerSummary {
  block: string;
  layer: string;
  fusedGroup?: string;
  tensors: string[];
  params: number;
}

/** Group tensors into layers in file order (blocks keep their first-seen order). */
export function summarizeLayers(tensors: readonly TensorInfo[]): LayerSummary[] {
  const byKey = new Map<string, LayerSummary>();
  for (const t of tensors) {
    const key = `${t.layer.block}\u0000${t.layer.layer}`;
    let s = byKey.get(key);
    if (!s) {
      s = { block: t.layer.block, layer: t.layer.layer, tensors: [], params: 0 };
      if (t.layer.fusedGroup) s.fusedGroup = t.layer.fusedGroup;
      byKey.set(key, s);
    }
    s.tensors.push(t.name);
    s.params += t.params;
  }
  return [...byKey.values()];
}
