// GPTQModel `quantize_config.json` with `dynamic` (GPTQModel README "Dynamic quantization"; gptqmodel/quantization/
// config.py `dynamic_get`, v1.5+; the same reading in vLLM's GPTQConfig): keys are Python regexes tried in order
// with `re.match` (anchored at the start) against module names such as `model.layers.3.mlp.down_proj`; a `-:`
// prefix skips the module (left unquantized), `+:` or no prefix overrides the base bits / group_size / sym /
// desc_act. The first matching key decides. GPTQ stores integer weights of 2, 3, 4 or 8 bits, symmetric or
// not, in groups (`group_size`, -1 = one group per output channel); it quantizes the decoder's Linear layers and,
// with `lm_head: true`, the output head — never embeddings.
import { type ExportContext, formatSpec, isLinearWeight, listNames, moduleOf, type Unit, warnHighImpact } from './context';
import { exactRegex, pythonMatch } from './patterns';
import type { Dialect } from './types';

export interface GptqSetting {
  bits: number;
  group_size: number;
  sym: boolean;
}

export const GPTQ_BITS = [2, 3, 4, 8];

/** A format as GPTQ bits/group_size/sym, or why it cannot be. */
export function toGptq(id: string): GptqSetting | { error: string } {
  const f = formatSpec(id);
  if (f?.kind !== 'int') return { error: `GPTQ stores integer weights only; ${id} has no GPTQModel setting` };
  if (!GPTQ_BITS.includes(f.bits)) return { error: `GPTQ supports ${GPTQ_BITS.join(', ')} bits, not ${f.bits} (${id})` };
  return { bits: f.bits, group_size: f.group === 'ch' ? -1 : f.group, sym: f.sym };
}

const same = (a: GptqSetting, b: GptqSetting) => a.bits === b.bits && a.group_size === b.group_size && a.sym === b.sym;

export const gptqModel: Dialect = {
  id: 'gptqmodel',
  describes: 'GPTQModel quantize_config.json with per-module `dynamic` overrides (regex keys, +:/-: prefixes, first match wins)',
  export(ctx: ExportContext) {
    warnHighImpact(ctx, 'GPTQModel');
    const inBlock = (name: string) => /\.\d+\./.test(name);
    const quantizable = (name: string) => inBlock(name) || moduleOf(name) === 'lm_head';
    const linear = ctx.tensors.filter((t) => isLinearWeight(t) && quantizable(t.name));
    const universe = linear.map((t) => moduleOf(t.name));
    const scoped = (u: Unit) => u.tensors.filter((t) => isLinearWeight(t) && quantizable(t.name));

    for (const u of ctx.units) {
      if (u.format === null) continue;
      const left = u.tensors.filter((t) => t.shape.length >= 2 && !(isLinearWeight(t) && quantizable(t.name))).map((t) => t.name);
      if (left.length) ctx.warn(u.range, `GPTQModel quantizes only the decoder's Linear layers and lm_head: ${listNames(left)} stay in original precision`);
    }
    const settings = new Map<Unit, GptqSetting>();
    for (const u of ctx.units) {
      if (u.format === null || scoped(u).length === 0) continue;
      const s = toGptq(u.format);
      if ('error' in s) ctx.warn(u.range, `${s.error}: ${listNames(scoped(u).map((t) => moduleOf(t.name)))} get the base config`);
      else settings.set(u, s);
    }
    const defaults = ctx.units.find((u) => u.rule < 0);
    const base = (defaults && settings.get(defaults)) ?? [...settings.values()][0];
    if (!base) return { files: [] };

    const dynamic: [string, GptqSetting | null][] = [];
    let lmHead = false;
    for (const u of ctx.units) {
      const mods = scoped(u).map((t) => moduleOf(t.name));
      if (mods.length === 0) continue;
      const s = settings.get(u);
      if (u.format !== null && !s) continue; // warned: falls back to the base config
      if (u.format !== null && mods.includes('lm_head')) lmHead = true;
      if (s && same(s, base)) continue;
      dynamic.push([exactRegex(mods, universe, pythonMatch).slice(1), s ?? null]); // re.match anchors the start
    }
    const entries = dynamic.map(([key, s]) => (s === null
      ? `    ${JSON.stringify(`-:${key}`)}: {}`
      : `    ${JSON.stringify(`+:${key}`)}: { "bits": ${s.bits}, "group_size": ${s.group_size}, "sym": ${s.sym} }`));
    const text = [
      '{',
      `  "bits": ${base.bits},`,
      `  "group_size": ${base.group_size},`,
      '  "desc_act": false,',
      `  "sym": ${base.sym},`,
      `  "lm_head": ${lmHead},`,
      '  "quant_method": "gptq",',
      '  "checkpoint_format": "gptq",',
      entries.length ? `  "dynamic": {\n${entries.join(',\n')}\n  }` : '  "dynamic": {}',
      '}',
      '',
    ].join('\n');
    return { files: [{ suffix: '.gptqmodel.json', text }] };
  },
};
