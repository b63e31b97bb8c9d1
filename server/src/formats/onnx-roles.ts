// What the graph says about a weight: its layout (from the op that consumes it), whether it is already
// in a quantized form, and which block/layer it belongs to.
//
// Layout: MatMul B → in_out; Gemm B → out_in when transB=1, else in_out; Conv/ConvTranspose W → conv;
// Gather data → embedding; 1-D → vector; a Transpose on the way flips in_out ↔ out_in. Recurrent
// weights (LSTM/GRU/RNN W and R: [directions, gates·hidden, in]) are 'other': their gate blocks do
// not map onto one output axis. Anything else is 'other'.
//
// Layer: when a consumer's node name is a path (torch exports: `/model/layers.0/self_attn/q_proj/MatMul`)
// the path minus its last (op) component names the layer; otherwise the tensor name goes through
// layerOf (`model.layers.0.mlp.up_proj.weight`, Paddle `conv2d_12.w_0` → (root)/conv2d_12).
import { layerOf } from './layers';
import { intAttr, isPassThrough, type GraphNode, type Use } from './onnx-graph';
import type { LayerRef, WeightLayout } from './types';

/** Layout-bearing inputs, keyed by `op:slot`. */
const LAYOUT_ROLES: Record<string, WeightLayout | 'gemm'> = {
  'MatMul:1': 'in_out',
  'Gemm:1': 'gemm',
  'Conv:1': 'conv',
  'ConvTranspose:1': 'conv',
  'Gather:0': 'embedding',
  'LSTM:1': 'other', 'LSTM:2': 'other', 'GRU:1': 'other', 'GRU:2': 'other', 'RNN:1': 'other', 'RNN:2': 'other',
  'MatMulInteger:1': 'in_out',
  'ConvInteger:1': 'conv',
  'QLinearMatMul:3': 'in_out',
  'QLinearConv:3': 'conv',
  'com.microsoft.MatMulNBits:1': 'out_in', // B is [N, K/block, block bytes]: output rows
  'com.microsoft.DynamicQuantizeMatMul:1': 'in_out',
  'com.microsoft.GatherBlockQuantized:0': 'embedding',
};

/**
 * Does a consumer use the tensor as a weight (a layout-bearing slot of a linear/conv/embedding/recurrent op, or
 * the packed input of a quantized form)? Constant tables a graph only slices, adds or multiplies (rotary
 * cos/sin, causal masks) are not weights.
 */
export function isWeightUse(c: { op: string; input: number }): boolean {
  return `${c.op}:${c.input}` in LAYOUT_ROLES || QUANT_ROLES[c.op]?.packed === c.input;
}

export function layoutOf(rank: number, uses: readonly Use[]): WeightLayout {
  if (rank <= 1) return 'vector';
  for (const u of uses) {
    const role = LAYOUT_ROLES[`${u.node.op}:${u.slot}`];
    if (!role) continue;
    const layout = role === 'gemm' ? (intAttr(u.node, 'transB', 0) === 1 ? 'out_in' : 'in_out') : role;
    if (!u.transposed) return layout;
    return layout === 'in_out' ? 'out_in' : layout === 'out_in' ? 'in_out' : layout;
  }
  return 'other';
}

/** Already-quantized forms: the input holding packed integers, and the inputs holding its scales/zero points. */
export const QUANT_ROLES: Record<string, { packed: number; aux: number[] }> = {
  DequantizeLinear: { packed: 0, aux: [1, 2] },
  'com.microsoft.DequantizeLinear': { packed: 0, aux: [1, 2] },
  'com.microsoft.MatMulNBits': { packed: 1, aux: [2, 3, 4] },
  MatMulInteger: { packed: 1, aux: [3] },
  ConvInteger: { packed: 1, aux: [3] },
  QLinearMatMul: { packed: 3, aux: [4, 5] },
  QLinearConv: { packed: 3, aux: [4, 5] },
  'com.microsoft.DynamicQuantizeMatMul': { packed: 1, aux: [2, 3] },
  'com.microsoft.GatherBlockQuantized': { packed: 0, aux: [2, 3] },
};

export interface QuantRole {
  /** Op type without domain (DequantizeLinear, MatMulNBits, …). */
  form: string;
  packed: boolean;
  node: GraphNode;
}

/** The quantized form a tensor takes part in, from its direct consumers. */
export function quantRoleOf(uses: readonly Use[]): QuantRole | undefined {
  for (const u of uses) {
    const q = u.direct ? QUANT_ROLES[u.node.op] : undefined;
    if (q && (q.packed === u.slot || q.aux.includes(u.slot))) return { form: u.node.opType, packed: q.packed === u.slot, node: u.node };
  }
  return undefined;
}

/** `/model/layers.0/self_attn/q_proj/MatMul` → `model.layers.0.self_attn.q_proj`; undefined when not a path. */
export function nodePath(nodeName: string): string | undefined {
  if (!nodeName.includes('/')) return undefined;
  const parts = nodeName.split('/').filter((p) => p !== '');
  parts.pop();
  return parts.length > 0 ? parts.join('.') : undefined;
}

/** Layer from the first path-like consumer (the op that really uses the weight before pass-through ops), else from the name. */
export function layerFor(name: string, uses: readonly Use[]): LayerRef {
  const ordered = [...uses.filter((u) => !isPassThrough(u)), ...uses.filter(isPassThrough)];
  for (const u of ordered) {
    const p = nodePath(u.node.name);
    // The `.weight` suffix lets layerOf recognise fused groups (q/k/v, gate/up) as it does for names.
    if (p) return layerOf(`${p}.weight`);
  }
  return layerOf(name);
}
