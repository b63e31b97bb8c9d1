// Code lenses on an llm-compressor recipe (YAML with a QuantizationModifier): per config group (or the modifier's
// `scheme` preset), which Linear modules of the model it quantizes, the QuantLens format its `weights` mean, their
// size and predicted error. compressed-tensors semantics: a target is `Linear` (every linear module), `re:<regex>`
// (re.match on the module name) or an exact module name; `ignore` (same forms) excludes modules; a module takes the
// first group whose targets match it (the lens says when a later group loses modules to an earlier one).
import { isMap, isScalar, parseDocument, type Node, type YAMLMap } from 'yaml';
import type { CodeLens } from 'vscode-languageserver';
import { indexFor } from '../plan/match';
import type { ModelInfo } from '../plan/service';
import { entrySummary } from './entrySummary';

/** Preset schemes of llm-compressor → the QuantLens weight format they use. */
const SCHEMES: Record<string, string> = { W4A16: 'int4_g128_sym', W4A16_ASYM: 'int4_g128_asym', W8A16: 'int8_ch_sym', W8A8: 'int8_ch_sym', FP8: 'fp8_e4m3_ch', FP8_DYNAMIC: 'fp8_e4m3_ch', NVFP4: 'nvfp4', NVFP4A16: 'nvfp4', MXFP4: 'mxfp4' };

/** The `weights` args of a group as a format id, or a reason it has none. */
function formatOf(w: Record<string, unknown> | undefined): string | { why: string } {
  if (!w) return { why: 'no weights quantization' };
  const bits = Number(w.num_bits ?? 8);
  const type = String(w.type ?? 'int');
  const strategy = String(w.strategy ?? 'tensor');
  if (type === 'float') {
    if (bits === 8) return strategy === 'channel' ? 'fp8_e4m3_ch' : 'fp8_e4m3';
    if (bits === 4 && strategy === 'tensor_group' && Number(w.group_size) === 16) return 'nvfp4';
    return { why: `float ${bits}-bit ${strategy} weights have no QuantLens format` };
  }
  const sym = w.symmetric !== false ? 'sym' : 'asym';
  if (strategy === 'channel') return `int${bits}_ch_${sym}`;
  if (strategy === 'group') return `int${bits}_g${Number(w.group_size)}_${sym}`;
  return { why: `int ${strategy} weights have no QuantLens format (per-channel and grouped do)` };
}

type Matcher = (module: string) => boolean;

function matcher(targets: unknown): Matcher {
  const list = (Array.isArray(targets) ? targets : targets === undefined ? [] : [targets]).map(String);
  const tests = list.map((t): Matcher => {
    if (t === 'Linear') return () => true;
    if (t.startsWith('re:')) {
      try {
        const re = new RegExp(`^(?:${t.slice(3)})`);
        return (m) => re.test(m);
      } catch {
        return () => false;
      }
    }
    return (m) => m === t;
  });
  return (m) => tests.some((f) => f(m));
}

interface Group {
  node: Node;
  label: string;
  format: string | { why: string };
  targets: Matcher;
}

/** The QuantizationModifier map anywhere in the document, or undefined. */
function findModifier(node: unknown, depth = 0): YAMLMap | undefined {
  if (depth > 8 || !isMap(node)) return undefined;
  for (const pair of node.items) {
    if (isScalar(pair.key) && pair.key.value === 'QuantizationModifier' && isMap(pair.value)) return pair.value;
    const found = findModifier(pair.value, depth + 1);
    if (found) return found;
  }
  return undefined;
}

export function isRecipe(text: string): boolean {
  return text.includes('QuantizationModifier');
}

export function recipeLenses(text: string, model: ModelInfo | undefined): CodeLens[] {
  const doc = parseDocument(text, { uniqueKeys: false });
  const mod = findModifier(doc.contents);
  if (!mod) return [];
  const json = mod.toJSON() as Record<string, unknown>;
  const groups: Group[] = [];
  const cg = mod.get('config_groups', true);
  if (isMap(cg)) {
    for (const pair of cg.items) {
      const value = (isMap(pair.value) ? pair.value.toJSON() : {}) as Record<string, unknown>;
      groups.push({ node: pair.key as Node, label: String((pair.key as { value?: unknown }).value), format: formatOf(value.weights as Record<string, unknown> | undefined), targets: matcher(value.targets) });
    }
  } else if (typeof json.scheme === 'string') {
    const key = mod.items.find((p) => isScalar(p.key) && p.key.value === 'scheme')!.key as Node;
    groups.push({ node: key, label: json.scheme, format: SCHEMES[json.scheme.toUpperCase()] ?? { why: `scheme ${json.scheme} has no QuantLens format` }, targets: matcher(json.targets ?? 'Linear') });
  }
  const lens = (node: Node, title: string): CodeLens => {
    const at = node.range?.[0] ?? 0;
    const line = text.slice(0, at).split('\n').length - 1;
    const character = at - (text.lastIndexOf('\n', at - 1) + 1);
    return { range: { start: { line, character }, end: { line, character } }, command: { title, command: '' } };
  };
  if (!model?.tensors?.length) return groups.slice(0, 1).map((g) => lens(g.node, 'no checkpoint found beside this recipe: matches unknown'));
  const index = indexFor(model.tensors);
  const ignore = matcher(json.ignore);
  const taken = new Set<number>();
  return groups.map((g) => {
    if (typeof g.format !== 'string') return lens(g.node, g.format.why);
    const ids: number[] = [];
    let lost = 0;
    index.tensors.forEach((t, id) => {
      // Linear weights: 2-D tensors named <module>.weight.
      if (!t.name.endsWith('.weight') || (t.shape?.length ?? 2) !== 2) return;
      const m = t.name.slice(0, -'.weight'.length);
      if (ignore(m) || !g.targets(m)) return;
      if (taken.has(id)) return void lost++;
      taken.add(id);
      ids.push(id);
    });
    if (ids.length === 0) return lens(g.node, lost ? `never applies: earlier groups take its ${lost} modules` : 'matches no Linear module');
    const n = ids.length;
    const first = index.tensors[ids[0]].name.slice(0, -'.weight'.length);
    return lens(g.node, `${g.label}: ${n} module${n === 1 ? '' : 's'} (${first}${n > 1 ? ', …' : ''}) · ${g.format} · ${entrySummary(index, model.report, ids, g.format)}${lost ? ` · ${lost} more taken by earlier groups` : ''}`);
  });
}
