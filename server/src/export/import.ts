// Imports (issue 7, point 5): a llama.cpp tensor-type file or a GPTQModel `dynamic` config becomes a plan. The
// dialect's entries are applied to the model's tensors with the dialect's own semantics (llama.cpp: regex
// searched in GGUF names, first match wins as in current llama-quant.cpp; GPTQModel: re.match on module names,
// first key wins, `-:` skips), then each entry becomes one rule, in order, whose pattern selects exactly the
// tensors it decided. Tensors the tool never quantizes get a final `skip: true` rule so the plan means the same.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { QuantLensError } from '../formats/errors';
import { openCheckpoint } from '../formats/registry';
import type { TensorInfo } from '../formats/types';
import { compilePattern, indexFor, type PlanTensor } from '../plan/index';
import { getFormat } from '../quant/registry';
import { isLinearWeight, moduleOf, type ExportTensor } from './context';
import { FROM_GGML, ggufName } from './ggml';
import { GPTQ_BITS } from './gptqmodel';
import { escapeRegex, pieces, piecesRegex } from './patterns';

export const IMPORT_DIALECTS = ['llama.cpp', 'gptqmodel'] as const;

export interface ImportOptions {
  /** The checkpoint the imported config is for (file or folder). */
  model: string;
  /** Where the plan will be written: `model:` is made relative to its folder (default: the working directory). */
  planPath?: string;
  /** llama.cpp: the type given to llama-quantize (a GGML type or QuantLens format id) for tensors no line matches. */
  defaultType?: string;
}

/** One entry of the imported config: a matcher over the dialect's names and the format it assigns (null: keep). */
interface Entry {
  label: string;
  test(name: string): boolean;
  format: string | null;
}

interface Parsed {
  entries: Entry[];
  defaults?: string | null;
  /** Dialect name of a tensor, or undefined when the tool never quantizes it. */
  nameOf(t: ExportTensor, modelFormat: string): string | undefined;
  source: string;
}

const MAX_BYTES = 16 * 1024 * 1024;
/** Entries × tensors bounds the matching work: a plausible config has a few hundred entries. */
const MAX_ENTRIES = 10_000;
const MAX_PATTERN = 4096;
/** A quantified group that itself holds a quantifier, e.g. `(a+)+`: exponential backtracking on hostile patterns. */
const NESTED_QUANTIFIER = /\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)[+*{]/;

/** Compile an imported pattern, refusing what could hang the matcher; `why` is the reason it is not compiled. */
function compileImported(source: string, where: () => object, file: string): RegExp {
  let why: string | undefined;
  if (source.length > MAX_PATTERN) why = `pattern of ${source.length} characters (limit ${MAX_PATTERN})`;
  else if (NESTED_QUANTIFIER.test(source)) why = `nested quantifiers in '${source.slice(0, 80)}' (they can backtrack exponentially)`;
  if (why) throw new QuantLensError('bad-pattern', `refusing ${why}`, { file, ...where() });
  try {
    return new RegExp(source);
  } catch (e) {
    throw new QuantLensError('bad-pattern', `invalid regex '${source.slice(0, 80)}': ${(e as Error).message}`, { file, ...where() });
  }
}

function checkCount(n: number, file: string): void {
  if (n > MAX_ENTRIES) throw new QuantLensError('too-many-entries', `more than ${MAX_ENTRIES} entries`, { file });
}

function isFormat(id: string): boolean {
  try {
    getFormat(id);
    return true;
  } catch {
    return false;
  }
}

/** Read `file` (a `dialect` config) and write the plan for `opts.model` that means the same. Returns YAML text. */
export async function importPlan(file: string, dialect: string, opts: ImportOptions): Promise<string> {
  return (await importPlanDetailed(file, dialect, opts)).text;
}

/** importPlan, also naming the files read (the config and the model's files), which an output must not replace. */
export async function importPlanDetailed(file: string, dialect: string, opts: ImportOptions): Promise<{ text: string; inputs: string[] }> {
  const abs = path.resolve(file);
  const st = await fsp.stat(abs).catch(() => {
    throw new QuantLensError('not-found', 'no such file', { file: abs });
  });
  if (st.size > MAX_BYTES) throw new QuantLensError('too-large', `a ${dialect} config of ${st.size} bytes is not plausible (limit ${MAX_BYTES})`, { file: abs, offset: 0 });
  const text = await fsp.readFile(abs, 'utf8');
  let parsed: Parsed;
  if (dialect === 'llama.cpp') parsed = parseTensorTypes(text, abs, opts.defaultType);
  else if (dialect === 'gptqmodel') parsed = parseGptq(text, abs);
  else throw new QuantLensError('unknown-dialect', `cannot import '${dialect}' (expected one of: ${IMPORT_DIALECTS.join(', ')})`, { file: '--from' });
  const ck = await openCheckpoint(opts.model);
  await ck.close();
  return { text: planText(parsed, ck.format, ck.path, ck.tensors, opts), inputs: [abs, ck.path, ...ck.files] };
}

/** 1-based line/column of offsets in `text` (line starts found once). */
function positions(text: string): (offset: number) => { line: number; column: number } {
  const starts = [0];
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
  return (offset) => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (starts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: offset - starts[lo] + 1 };
  };
}

const lineCol = (text: string, offset: number) => positions(text)(offset);

function ggmlFormat(type: string, where: () => { file: string; line?: number; column?: number }): string | null {
  const f = FROM_GGML[type.toLowerCase()];
  if (f === undefined) {
    throw new QuantLensError('unknown-type', `GGML type '${type}' has no QuantLens format (expected one of: ${Object.keys(FROM_GGML).join(', ')})`, where());
  }
  return f;
}

/** `pattern=type` tokens separated by whitespace (as llama-quantize reads the file); `#` starts a comment line. */
export function parseTensorTypes(text: string, file: string, defaultType?: string): Parsed {
  const entries: Entry[] = [];
  const tokens = /[^\s]+/g;
  let m: RegExpExecArray | null;
  let commentLine = -1;
  const pos = positions(text);
  while ((m = tokens.exec(text))) {
    const at = pos(m.index);
    if (at.line === commentLine) continue;
    if (m[0].startsWith('#') && at.column === 1) {
      commentLine = at.line;
      continue;
    }
    const where = () => ({ file, ...at });
    const eq = m[0].indexOf('=');
    if (eq <= 0 || eq === m[0].length - 1) throw new QuantLensError('bad-entry', `expected pattern=type, found '${m[0].slice(0, 80)}'`, where());
    const re = compileImported(m[0].slice(0, eq).toLowerCase(), () => at, file); // llama-quantize lower-cases patterns
    checkCount(entries.length + 1, file);
    entries.push({ label: `${m[0]} (line ${at.line})`, test: (n) => re.test(n), format: ggmlFormat(m[0].slice(eq + 1), where) });
  }
  let defaults: string | null | undefined;
  if (defaultType !== undefined) {
    const id = defaultType.toLowerCase();
    defaults = id in FROM_GGML ? FROM_GGML[id] : isFormat(defaultType) ? defaultType : ggmlFormat(defaultType, () => ({ file: '--default' }));
  }
  return {
    entries, source: `llama.cpp tensor-type file ${path.basename(file)}`, ...(defaults !== undefined ? { defaults } : {}),
    nameOf: (t, fmt) => (t.shape.length < 2 ? undefined : fmt === 'gguf' ? t.name : ggufName(t.name)),
  };
}

/** GPTQModel quantize_config.json (base bits/group_size/sym + `dynamic`), or a bare `dynamic` object. */
export function parseGptq(text: string, file: string): Parsed {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    const pos = /position (\d+)/.exec((e as Error).message);
    throw new QuantLensError('bad-json', `not valid JSON: ${(e as Error).message}`, { file, ...(pos ? lineCol(text, +pos[1]) : {}) });
  }
  const obj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!obj(json)) throw new QuantLensError('bad-config', 'expected a JSON object (quantize_config.json or its `dynamic` mapping)', { file, line: 1, column: 1 });
  const full = 'dynamic' in json || 'bits' in json;
  const dynamic = full ? (json.dynamic ?? {}) : json;
  if (!obj(dynamic)) throw new QuantLensError('bad-config', '`dynamic` must be an object of regex keys', { file, ...keyAt(text, 'dynamic') });
  // GPTQModel QuantizeConfig defaults: 4 bits, groups of 128, symmetric, lm_head not quantized.
  const base = { bits: 4, group_size: 128, sym: true };
  const fmt = (s: typeof base, where: () => object) => {
    if (!GPTQ_BITS.includes(s.bits)) throw new QuantLensError('bad-config', `bits must be one of ${GPTQ_BITS.join(', ')}, found ${s.bits}`, { file, ...where() });
    if (!Number.isInteger(s.group_size) || !(s.group_size === -1 || (s.group_size >= 2 && s.group_size <= 65536))) {
      throw new QuantLensError('bad-config', `group_size must be -1 or an integer in 2…65536, found ${s.group_size}`, { file, ...where() });
    }
    return `int${s.bits}_${s.group_size === -1 ? 'ch' : `g${s.group_size}`}_${s.sym ? 'sym' : 'asym'}`;
  };
  const merge = (into: typeof base, from: Record<string, unknown>, where: () => object) => {
    const out = { ...into };
    for (const k of ['bits', 'group_size'] as const) {
      if (from[k] === undefined) continue;
      if (typeof from[k] !== 'number') throw new QuantLensError('bad-config', `${k} must be a number, found ${JSON.stringify(from[k])}`, { file, ...where() });
      out[k] = from[k] as number;
    }
    if (from.sym !== undefined) {
      if (typeof from.sym !== 'boolean') throw new QuantLensError('bad-config', `sym must be true or false, found ${JSON.stringify(from.sym)}`, { file, ...where() });
      out.sym = from.sym;
    }
    return out;
  };
  const top = full ? merge(base, json, () => ({ line: 1, column: 1 })) : base;
  const entries: Entry[] = [];
  for (const [key, value] of Object.entries(dynamic)) {
    const where = () => keyAt(text, key);
    const skip = key.startsWith('-:');
    const source = key.replace(/^[-+]:/, '');
    checkCount(entries.length + 1, file);
    // re.match anchors at the start; Python's named-group syntax becomes JavaScript's.
    const re = compileImported(`^(?:${source.replace(/\(\?P</g, '(?<').replace(/\(\?P=(\w+)\)/g, '\\k<$1>')})`, where, file);
    if (!obj(value)) throw new QuantLensError('bad-config', `the value of '${key.slice(0, 80)}' must be an object of overrides`, { file, ...where() });
    entries.push({ label: key, test: (n) => re.test(n), format: skip ? null : fmt(merge(top, value, where), where) });
  }
  const lmHead = full && json.lm_head === true;
  const defaults = fmt(top, () => ({ line: 1, column: 1 }));
  return {
    entries, defaults, source: `GPTQModel config ${path.basename(file)}`,
    nameOf: (t) => {
      if (!isLinearWeight(t)) return undefined;
      const m = moduleOf(t.name);
      return /\.\d+\./.test(m) || (lmHead && m === 'lm_head') ? m : undefined;
    },
  };
}

/** 1-based position of a JSON key in the text (its first occurrence). */
function keyAt(text: string, key: string): { line?: number; column?: number } {
  const i = text.indexOf(JSON.stringify(key));
  return i < 0 ? {} : lineCol(text, i);
}

function planText(p: Parsed, modelFormat: string, modelPath: string, all: readonly TensorInfo[], opts: ImportOptions): string {
  const infos = all.filter((t) => t.analyzable);
  const planTensors: PlanTensor[] = infos.map((t) => ({ name: t.name, layer: t.layer, params: t.params, analyzable: true }));
  const names = infos.map((t) => t.name);
  const decided = p.entries.map(() => [] as string[]);
  const untouched: string[] = [];
  for (const t of infos) {
    const n = p.nameOf(t, modelFormat);
    if (n === undefined) {
      untouched.push(t.name);
      continue;
    }
    const k = p.entries.findIndex((e) => e.test(n));
    if (k >= 0) decided[k].push(t.name);
  }
  const planDir = path.dirname(path.resolve(opts.planPath ?? 'plan.quant.yaml'));
  let rel = path.relative(planDir, path.resolve(opts.model)).split(path.sep).join('/');
  if (!rel.startsWith('.') && !rel.startsWith('/')) rel = `./${rel}`;
  const out = [`# Imported by QuantLens from ${p.source}`, `model: ${yamlQuote(rel)}`];
  if (p.defaults === undefined) out.push("# defaults: tensors no line matches get llama-quantize's type argument (import with --default <type>)");
  else if (p.defaults !== null) out.push(`defaults: { format: ${p.defaults} }`);
  const rules: string[] = [];
  const rule = (chosen: string[], body: string) => rules.push(`  - match: ${yamlQuote(planPattern(chosen, names, planTensors))}`, `    ${body}`);
  p.entries.forEach((e, k) => {
    if (decided[k].length === 0) rules.push(`  # ${e.label.replace(/\n/g, ' ')}: matches no tensor of the model`);
    else rule(decided[k], e.format === null ? 'skip: true' : `format: ${e.format}`);
  });
  if (untouched.length && p.defaults !== null && p.defaults !== undefined) {
    rules.push('  # tensors the tool does not quantize');
    rule(untouched, 'skip: true');
  }
  if (rules.length) out.push('rules:', ...rules);
  return `${out.join('\n')}\n`;
}

/** YAML single-quoted scalar: backslashes stay literal, so regexes read as written. */
const yamlQuote = (s: string) => `'${s.replace(/'/g, "''")}'`;

const escapeGlob = (s: string) => s.replace(/[*?[\]\\]/g, '\\$&');

/** A plan pattern selecting exactly `chosen` among the model's tensors (glob when one glob says it, else a regex). */
function planPattern(chosen: string[], universe: string[], tensors: PlanTensor[]): string {
  const index = indexFor(tensors);
  const want = new Set(chosen);
  const exact = (text: string) => {
    const c = compilePattern(text);
    if ('error' in c) return false;
    const ids = index.matches(c);
    return ids.length === want.size && [...ids].every((i) => want.has(index.tensors[i].name));
  };
  const ps = pieces(chosen, universe);
  const p = ps[0];
  if (ps.length === 1 && !('name' in p) && p.blocks === 'all' && p.posts.length === 1) {
    const glob = `${escapeGlob(p.pre)}.*.${escapeGlob(p.posts[0])}`;
    if (exact(glob)) return glob;
  }
  if (ps.length === 1 && 'name' in p && exact(escapeGlob(p.name))) return escapeGlob(p.name);
  const re = `/^${piecesRegex(ps)}$/`;
  if (exact(re)) return re;
  return `/^(?:${chosen.map(escapeRegex).join('|')})$/`;
}
