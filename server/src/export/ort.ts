// onnxruntime `MatMulNBitsQuantizer` options (onnxruntime/python/tools/quantization/matmul_nbits_quantizer.py,
// ORT 1.20+): one `bits` / `block_size` / `is_symmetric` for the whole model, `nodes_to_exclude` (node names kept
// in float), and a per-node `customized_weight_config` {node: {"bits": b}} on the algorithm config (RTN / k-quant)
// — per node only the bit width can change, and MatMulNBits takes 2, 4 or 8 bits in blocks of a power of two
// ≥ 16. Written as JSON whose keys are the quantizer's keyword arguments.
//
// Node names come from the ONNX graph (the MatMul/Gemm consuming each weight). For a checkpoint that is not ONNX
// they follow the onnxruntime-genai builder's convention (`/model/layers.3/mlp/down_proj/MatMul`), with a warning.
import { type ExportContext, type ExportTensor, formatSpec, isLinearWeight, listNames, type Unit, warnHighImpact } from './context';
import type { Dialect } from './types';

const BITS = [2, 4, 8];

interface NBits {
  bits: number;
  block_size: number;
  is_symmetric: boolean;
}

function toNBits(id: string): NBits | { error: string } {
  const f = formatSpec(id);
  if (f?.kind !== 'int') return { error: `MatMulNBits stores integer weights only; ${id} has no setting` };
  if (!BITS.includes(f.bits)) return { error: `MatMulNBits takes ${BITS.join(', ')} bits, not ${f.bits} (${id})` };
  if (f.group === 'ch' || f.group < 16 || (f.group & (f.group - 1)) !== 0) return { error: `MatMulNBits needs a block size that is a power of two ≥ 16, not ${f.group === 'ch' ? 'one group per channel' : f.group} (${id})` };
  return { bits: f.bits, block_size: f.group, is_symmetric: f.sym };
}

function nodeOf(t: ExportTensor, onnx: boolean): string | undefined {
  if (onnx) return t.consumers?.find((c) => /(^|\.)(MatMul|Gemm)$/.test(c.op))?.node;
  const m = /^model\.layers\.(\d+)\.(.+)\.weight$/.exec(t.name);
  if (m) return `/model/layers.${m[1]}/${m[2].replace(/\./g, '/')}/MatMul`;
  return t.name === 'lm_head.weight' ? '/lm_head/MatMul' : undefined;
}

export const ortMatMulNBits: Dialect = {
  id: 'ort-matmulnbits',
  describes: 'onnxruntime MatMulNBitsQuantizer keyword arguments (bits, block_size, is_symmetric, nodes_to_exclude, customized_weight_config)',
  export(ctx: ExportContext) {
    warnHighImpact(ctx, 'onnxruntime MatMulNBits');
    const onnx = ctx.modelFormat === 'onnx';
    if (!onnx) {
      ctx.warn(ctx.plan.model?.range, 'the model is not ONNX: node names follow the onnxruntime-genai builder convention (/model/layers.N/…/MatMul); check them against your export');
    }
    const settings = new Map<Unit, NBits>();
    const nodes = new Map<Unit, string[]>();
    for (const u of ctx.units) {
      const linear = u.tensors.filter((t) => (onnx ? t.shape.length === 2 && nodeOf(t, true) !== undefined : isLinearWeight(t)));
      const named = linear.map((t) => nodeOf(t, onnx));
      const missing = linear.filter((_, i) => !named[i]).map((t) => t.name);
      if (missing.length && u.format !== null) ctx.warn(u.range, `no MatMul node found for ${listNames(missing)}: not exported`);
      nodes.set(u, named.filter((n): n is string => !!n));
      if (u.format === null) continue;
      const s = toNBits(u.format);
      if ('error' in s) ctx.warn(u.range, `${s.error}: its nodes are excluded (kept in float)`);
      else settings.set(u, s);
    }
    const defaults = ctx.units.find((u) => u.rule < 0);
    const base = (defaults && settings.get(defaults)) ?? [...settings.values()][0];
    if (!base) return { files: [] };
    const exclude: string[] = [];
    const custom: [string, number][] = [];
    for (const u of ctx.units) {
      const s = settings.get(u);
      const ns = nodes.get(u)!;
      if (!s) {
        exclude.push(...ns);
        continue;
      }
      if (s.block_size !== base.block_size || s.is_symmetric !== base.is_symmetric) {
        ctx.warn(u.range, `MatMulNBits varies only the bit width per node: exported with block_size ${base.block_size}, ${base.is_symmetric ? 'symmetric' : 'asymmetric'} as the defaults`);
      }
      if (s.bits !== base.bits) for (const n of ns) custom.push([n, s.bits]);
    }
    const list = (xs: string[]) => (xs.length ? `[\n${xs.map((x) => `    ${JSON.stringify(x)}`).join(',\n')}\n  ]` : '[]');
    const text = [
      '{',
      `  "bits": ${base.bits},`,
      `  "block_size": ${base.block_size},`,
      `  "is_symmetric": ${base.is_symmetric},`,
      '  "op_types_to_quantize": ["MatMul"],',
      `  "nodes_to_exclude": ${list(exclude)},`,
      `  "customized_weight_config": ${custom.length ? `{\n${custom.map(([n, b]) => `    ${JSON.stringify(n)}: { "bits": ${b} }`).join(',\n')}\n  }` : '{}'}`,
      '}',
      '',
    ].join('\n');
    return { files: [{ suffix: '.ort-matmulnbits.json', text }] };
  },
};
