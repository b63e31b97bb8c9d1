// llm-compressor recipe YAML (llm-compressor docs "Recipes"; QuantizationModifier with compressed-tensors
// QuantizationScheme / QuantizationArgs, compressed-tensors 0.9+): `config_groups` of {targets, weights}, where
// a target `re:<regex>` is re.match-ed against module names and weights are {num_bits, type: int|float,
// symmetric, strategy: tensor|channel|group|tensor_group, group_size}. Modules no target matches stay
// unquantized. A module matching several groups is resolved differently across versions, so every target here
// selects exactly the modules of its group.
import { type ExportContext, formatSpec, isLinearWeight, listNames, moduleOf, planName, warnHighImpact } from './context';
import { exactRegex, pythonMatch } from './patterns';
import type { Dialect } from './types';

/** The weights block of a group, as YAML flow-mapping entries in QuantizationArgs field order. */
function weightsOf(id: string): string | { error: string } {
  const f = formatSpec(id);
  if (f?.kind === 'int') {
    const strategy = f.group === 'ch' ? 'strategy: channel' : `strategy: group, group_size: ${f.group}`;
    return `num_bits: ${f.bits}, type: int, symmetric: ${f.sym}, ${strategy}`;
  }
  if (f?.kind === 'fp' && f.element === 'e4m3' && (f.scaling === 'tensor' || f.scaling === 'ch')) {
    return `num_bits: 8, type: float, symmetric: true, strategy: ${f.scaling === 'ch' ? 'channel' : 'tensor'}`;
  }
  if (f?.kind === 'nvfp4') return 'num_bits: 4, type: float, symmetric: true, strategy: tensor_group, group_size: 16';
  return { error: `compressed-tensors has no weight scheme for ${id} (int, fp8 e4m3 and nvfp4 only)` };
}

/** YAML single-quoted scalar (backslashes are literal inside). */
const sq = (s: string) => `'${s.replace(/'/g, "''")}'`;

export const llmCompressor: Dialect = {
  id: 'llm-compressor',
  describes: 'llm-compressor recipe: QuantizationModifier config_groups with re: targets over module names',
  export(ctx: ExportContext) {
    warnHighImpact(ctx, 'llm-compressor');
    const universe = ctx.tensors.filter(isLinearWeight).map((t) => moduleOf(t.name));
    const groups = new Map<string, string[]>(); // weights → modules, in plan order
    for (const u of ctx.units) {
      if (u.format === null) continue;
      const mods = u.tensors.filter(isLinearWeight).map((t) => moduleOf(t.name));
      const other = u.tensors.filter((t) => t.shape.length >= 2 && !isLinearWeight(t)).map((t) => t.name);
      if (other.length) ctx.warn(u.range, `the recipe targets Linear layers only: ${listNames(other)} stay in original precision`);
      if (mods.length === 0) continue;
      const w = weightsOf(u.format);
      if (typeof w !== 'string') {
        ctx.warn(u.range, `${w.error}: ${listNames(mods)} stay in original precision`);
        continue;
      }
      groups.set(w, [...(groups.get(w) ?? []), ...mods]);
    }
    if (groups.size === 0) return { files: [] };
    const lines = [
      `# llm-compressor recipe exported by QuantLens from ${planName(ctx)}`,
      'quant_stage:',
      '  quant_modifiers:',
      '    QuantizationModifier:',
      '      config_groups:',
    ];
    let g = 0;
    for (const [w, mods] of groups) {
      lines.push(
        `        group_${g++}:`,
        `          targets: [${sq(`re:${exactRegex(mods, universe, pythonMatch).slice(1)}`)}]`,
        `          weights: {${w}}`,
      );
    }
    return { files: [{ suffix: '.recipe.yaml', text: `${lines.join('\n')}\n` }] };
  },
};
