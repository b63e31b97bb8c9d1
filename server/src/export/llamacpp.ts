// llama.cpp `llama-quantize --tensor-type-file FILE` (tools/quantize/quantize.cpp, option added in PR #18572,
// 2026-01): the file is read as whitespace-separated `pattern=type` tokens — no comments, no spaces; each pattern
// is lower-cased, compiled as a std::regex (ECMAScript) and searched in GGUF tensor names (src/llama-quant.cpp);
// the type is a ggml_type_name, compared case-insensitively. Older builds let the last matching pattern win,
// newer ones the first: the patterns written here are disjoint, so both read the file the same way.
//
// Every tensor llama-quantize may convert gets a line (defaults included), so none is left to the built-in
// mixture of the positional type; that type must still be a quantized one for the lines to apply at all.
import { type ExportContext, type ExportTensor, listNames, warnHighImpact } from './context';
import { floatType, ggufName, toGgml } from './ggml';
import { exactRegex, type Matcher } from './patterns';
import type { Dialect } from './types';

/** Positional type argument (an ftype name) for a GGML type; unlisted types use Q8_0. */
const FTYPE: Record<string, string> = {
  q8_0: 'Q8_0', q4_0: 'Q4_0', q4_1: 'Q4_1', q5_0: 'Q5_0', q5_1: 'Q5_1', q2_K: 'Q2_K', q3_K: 'Q3_K_M',
  q4_K: 'Q4_K_M', q5_K: 'Q5_K_M', q6_K: 'Q6_K', iq4_nl: 'IQ4_NL', mxfp4: 'MXFP4_MOE',
};

const searchLowered: Matcher = (pattern) => {
  const re = new RegExp(pattern.toLowerCase());
  return (name) => re.test(name);
};

export const llamaCpp: Dialect = {
  id: 'llama.cpp',
  describes: 'llama.cpp llama-quantize --tensor-type-file (pattern=type per token, regex searched in GGUF names)',
  export(ctx: ExportContext) {
    warnHighImpact(ctx, 'llama.cpp');
    const gguf = ctx.modelFormat === 'gguf';
    const nameOf = (t: ExportTensor) => (gguf ? t.name : ggufName(t.name));
    const universe = [...new Set(ctx.tensors.filter((t) => t.shape.length >= 2).map(nameOf).filter((n): n is string => !!n))];

    // GGUF name → the first unit deciding it (expert tensors merge several HF tensors into one).
    const owner = new Map<string, { unit: number; type: string }>();
    const lines: { unit: number; names: string[]; type: string }[] = [];
    let defaultType: string | undefined;
    ctx.units.forEach((u, k) => {
      const inScope = u.tensors.filter((t) => t.shape.length >= 2);
      const unnamed = inScope.filter((t) => !nameOf(t)).map((t) => t.name);
      if (unnamed.length && u.format !== null) ctx.warn(u.range, `no GGUF name is known for ${listNames(unnamed)}: not exported to llama.cpp`);
      const names: string[] = [];
      for (const t of inScope) {
        const n = nameOf(t);
        if (!n) continue;
        let type: string;
        if (u.format === null) type = floatType(t.dtype);
        else {
          const g = toGgml(u.format);
          if (!g) {
            ctx.warn(u.range, `format ${u.format} has no llama.cpp (GGML) type: ${listNames([n])} left to llama-quantize's own choice`);
            continue;
          }
          if (g.widened) ctx.warn(u.range, `${u.format} is exported as ${g.type}: ${g.widened}`);
          type = g.type;
        }
        const prev = owner.get(n);
        if (prev) {
          if (prev.type !== type) ctx.warn(u.range, `GGUF stores ${n} as one tensor (all experts together): it gets ${prev.type} from an earlier rule, not ${type}`);
          continue;
        }
        owner.set(n, { unit: k, type });
        names.push(n);
      }
      // One line per unit and type (a skip unit may keep tensors of different float dtypes).
      const byType = new Map<string, string[]>();
      for (const n of names) {
        const type = owner.get(n)!.type;
        if (!byType.has(type)) byType.set(type, []);
        byType.get(type)!.push(n);
      }
      for (const [type, ns] of byType) lines.push({ unit: k, names: ns, type });
      if (u.rule < 0 && u.format !== null) defaultType = toGgml(u.format)?.type;
    });
    if (lines.length === 0) return { files: [] };
    const text = lines.map((l) => `${exactRegex(l.names, universe, searchLowered)}=${l.type}`).join('\n');
    const ftype = FTYPE[defaultType ?? lines.find((l) => FTYPE[l.type])?.type ?? 'q8_0'] ?? 'Q8_0';
    const input = gguf ? ctx.modelPath : 'model-f16.gguf';
    return {
      files: [{ suffix: '.tensor-types.txt', text: `${text}\n` }],
      commandLine: `llama-quantize --tensor-type-file {file} ${quoteArg(input)} ${quoteArg(outputName(input))} ${ftype}`,
    };
  },
};

const outputName = (input: string) => `${input.replace(/\.gguf$/i, '').replace(/-f16$/, '')}-quantlens.gguf`;

/** POSIX shell quoting when needed. */
export const quoteArg = (s: string): string => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
