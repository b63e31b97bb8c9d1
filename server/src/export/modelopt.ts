// NVIDIA ModelOpt quantization config (modelopt.torch.quantization, nvidia-modelopt 0.2x docs "Quantization
// formats" and config.py presets INT8_DEFAULT_CFG, INT4_BLOCKWISE_WEIGHT_ONLY_CFG, FP8_DEFAULT_CFG,
// NVFP4_DEFAULT_CFG, MXFP4_DEFAULT_CFG): `quant_cfg` maps fnmatch wildcards over quantizer names
// (`model.layers.3.mlp.down_proj.weight_quantizer`) to attributes {num_bits, axis, block_sizes, enable}; entries
// apply in order and later ones override earlier ones. Written as a Python module (num_bits of float formats are
// (exponent, mantissa) tuples; block_sizes keys are axes). Integer quantizers are symmetric.
import { type ExportContext, formatSpec, isLinearWeight, listNames, moduleOf, planName, warnHighImpact } from './context';
import { escapeRegex, fnmatch, pieces, selectsExactly } from './patterns';
import type { Dialect } from './types';

function attrsOf(id: string): { attrs: string; note?: string } | { error: string } {
  const f = formatSpec(id);
  if (f?.kind === 'int') {
    if (f.bits !== 4 && f.bits !== 8) return { error: `ModelOpt integer weights are 4 or 8 bits, not ${f.bits} (${id})` };
    const attrs = f.group === 'ch' ? `"num_bits": ${f.bits}, "axis": 0` : `"num_bits": ${f.bits}, "block_sizes": {-1: ${f.group}}`;
    return f.sym ? { attrs } : { attrs, note: `ModelOpt integer quantizers are symmetric: ${id} is exported as symmetric` };
  }
  if (f?.kind === 'fp' && f.bits === 8 && (f.scaling === 'tensor' || f.scaling === 'ch')) {
    const nb = f.element === 'e4m3' ? '(4, 3)' : '(5, 2)';
    return { attrs: `"num_bits": ${nb}, "axis": ${f.scaling === 'ch' ? 0 : 'None'}` };
  }
  if (f?.kind === 'nvfp4') return { attrs: '"num_bits": (2, 1), "block_sizes": {-1: 16, "type": "dynamic", "scale_bits": (4, 3)}, "axis": None' };
  if (f?.kind === 'mx' && f.id === 'mxfp4') return { attrs: '"num_bits": (2, 1), "block_sizes": {-1: 32, "type": "dynamic", "scale_bits": (8, 0)}' };
  if (f?.kind === 'mx' && f.id === 'mxfp8_e4m3') return { attrs: '"num_bits": (4, 3), "block_sizes": {-1: 32, "type": "dynamic", "scale_bits": (8, 0)}' };
  return { error: `ModelOpt has no weight quantizer for ${id}` };
}

const Q = '.weight_quantizer';

/** fnmatch wildcards selecting exactly `chosen` among `universe` (quantizer names): `*` for whole block ranges. */
function wildcards(chosen: string[], universe: string[]): string[] {
  const out: string[] = [];
  for (const p of pieces(chosen, universe)) {
    if ('name' in p) {
      out.push(p.name);
      continue;
    }
    for (const post of p.posts) {
      const re = new RegExp(`^${escapeRegex(p.pre)}\\.\\d+\\.${escapeRegex(post)}$`);
      const names = chosen.filter((n) => re.test(n));
      const star = `${p.pre}.*.${post}`;
      if (p.blocks === 'all' && selectsExactly(star, names, universe, fnmatch)) out.push(star);
      else out.push(...names);
    }
  }
  return out;
}

export const modelOpt: Dialect = {
  id: 'modelopt',
  describes: 'NVIDIA ModelOpt quant_cfg (fnmatch "*weight_quantizer" patterns, num_bits / block_sizes / axis / enable)',
  export(ctx: ExportContext) {
    warnHighImpact(ctx, 'ModelOpt');
    const universe = ctx.tensors.filter(isLinearWeight).map((t) => moduleOf(t.name) + Q);
    const entries: [string, string][] = [];
    for (const u of ctx.units) {
      if (u.format === null) continue;
      const qs = u.tensors.filter(isLinearWeight).map((t) => moduleOf(t.name) + Q);
      const other = u.tensors.filter((t) => t.shape.length >= 2 && !isLinearWeight(t)).map((t) => t.name);
      if (other.length) ctx.warn(u.range, `ModelOpt quantizes Linear layers only: ${listNames(other)} stay in original precision`);
      if (qs.length === 0) continue;
      const a = attrsOf(u.format);
      if ('error' in a) {
        ctx.warn(u.range, `${a.error}: ${listNames(qs.map((q) => q.slice(0, -Q.length)))} stay in original precision`);
        continue;
      }
      if (a.note) ctx.warn(u.range, a.note);
      for (const w of wildcards(qs, universe)) entries.push([w, a.attrs]);
    }
    if (entries.length === 0) return { files: [] };
    const text = [
      `# NVIDIA ModelOpt quantization config exported by QuantLens from ${planName(ctx)}`,
      '# import modelopt.torch.quantization as mtq; mtq.quantize(model, QUANT_CFG, forward_loop)',
      'QUANT_CFG = {',
      '    "quant_cfg": {',
      '        "*weight_quantizer": {"enable": False},',
      '        "*input_quantizer": {"enable": False},',
      ...entries.map(([w, attrs]) => `        ${JSON.stringify(w)}: {${attrs}, "enable": True},`),
      '        "default": {"enable": False},',
      '    },',
      '    "algorithm": "max",',
      '}',
      '',
    ].join('\n');
    return { files: [{ suffix: '.modelopt.py', text }] };
  },
};
