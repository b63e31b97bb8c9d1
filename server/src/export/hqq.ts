// HQQ per-layer config: `BaseQuantizeConfig(nbits, group_size)` (hqq/core/quantize.py, hqq 0.2: nbits 8, 4, 3, 2
// or 1; group_size None = one group per row) keyed by linear tag, as transformers' HqqConfig(dynamic_config=…,
// skip_modules=…) reads it (transformers/integrations/hqq.py: a module's tag is the last two parts of its name,
// e.g. `self_attn.q_proj`, and tags missing from dynamic_config stay unquantized). HQQ always stores a zero
// point, so symmetric formats become asymmetric. A tag names the layer in every block at once: a plan that
// gives one projection different formats in different blocks cannot be expressed.
import { type ExportContext, formatSpec, isLinearWeight, listNames, moduleOf, planName, type Unit, warnHighImpact } from './context';
import type { Dialect } from './types';

const NBITS = [1, 2, 3, 4, 8];

type Setting = { nbits: number; group_size: number | null } | null;

function toHqq(id: string): { setting: NonNullable<Setting>; note?: string } | { error: string } {
  const f = formatSpec(id);
  if (f?.kind !== 'int') return { error: `HQQ quantizes to integers only; ${id} has no HQQ setting` };
  if (!NBITS.includes(f.bits)) return { error: `HQQ supports ${NBITS.join(', ')} bits, not ${f.bits} (${id})` };
  const setting = { nbits: f.bits, group_size: f.group === 'ch' ? null : f.group };
  return f.sym ? { setting, note: `HQQ stores a zero point per group: ${id} is exported as asymmetric` } : { setting };
}

const tagOf = (module: string) => module.split('.').slice(-2).join('.');
const key = (s: Setting) => (s === null ? 'skip' : `${s.nbits}/${s.group_size}`);

export const hqq: Dialect = {
  id: 'hqq',
  describes: 'HQQ BaseQuantizeConfig per linear tag (transformers HqqConfig dynamic_config / skip_modules)',
  export(ctx: ExportContext) {
    warnHighImpact(ctx, 'HQQ');
    // tag → setting → units deciding modules of that tag with it
    const tags = new Map<string, Map<string, { setting: Setting; units: Unit[]; modules: number }>>();
    for (const u of ctx.units) {
      const linear = u.tensors.filter(isLinearWeight);
      const other = u.tensors.filter((t) => t.shape.length >= 2 && !isLinearWeight(t)).map((t) => t.name);
      if (other.length && u.format !== null) ctx.warn(u.range, `HQQ configures Linear layers only: ${listNames(other)} stay in original precision`);
      if (linear.length === 0) continue;
      let setting: Setting = null;
      if (u.format !== null) {
        const m = toHqq(u.format);
        if ('error' in m) {
          ctx.warn(u.range, `${m.error}: ${listNames(linear.map((t) => moduleOf(t.name)))} stay in original precision`);
          continue;
        }
        if (m.note) ctx.warn(u.range, m.note);
        setting = m.setting;
      }
      for (const t of linear) {
        const tag = tagOf(moduleOf(t.name));
        if (!tags.has(tag)) tags.set(tag, new Map());
        const byKey = tags.get(tag)!;
        const k = key(setting);
        if (!byKey.has(k)) byKey.set(k, { setting, units: [], modules: 0 });
        const e = byKey.get(k)!;
        e.modules++;
        if (!e.units.includes(u)) e.units.push(u);
      }
    }
    const config: [string, NonNullable<Setting>][] = [];
    const skip: string[] = [];
    for (const [tag, byKey] of tags) {
      const options = [...byKey.values()].sort((a, b) => b.modules - a.modules);
      const chosen = options[0];
      for (const o of options.slice(1)) {
        for (const u of o.units) {
          ctx.warn(u.range, `HQQ sets one config per linear tag for all blocks: '${tag}' is exported as ${describe(chosen.setting)}, not ${describe(o.setting)}`);
        }
      }
      if (chosen.setting === null) skip.push(tag);
      else config.push([tag, chosen.setting]);
    }
    if (config.length === 0) return { files: [] };
    const py = (s: NonNullable<Setting>) => `BaseQuantizeConfig(nbits=${s.nbits}, group_size=${s.group_size ?? 'None'})`;
    const text = [
      `# HQQ per-layer config exported by QuantLens from ${planName(ctx)}.`,
      '# Keys are linear tags (the last two parts of a module name); tags left out are not quantized.',
      'from hqq.core.quantize import BaseQuantizeConfig',
      '',
      'quant_config = {',
      ...config.map(([tag, s]) => `    ${JSON.stringify(tag)}: ${py(s)},`),
      '}',
      `skip_modules = [${skip.map((s) => JSON.stringify(s)).join(', ')}]`,
      '',
      '# transformers: HqqConfig(dynamic_config=quant_config, skip_modules=skip_modules)',
      '',
    ].join('\n');
    return { files: [{ suffix: '.hqq.py', text }] };
  },
};

const describe = (s: Setting) => (s === null ? 'unquantized' : `nbits=${s.nbits}, group_size=${s.group_size ?? 'None'}`);
