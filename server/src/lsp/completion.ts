// Completion in a plan, decided by the text before the cursor on its line: a `match:` value gets layer-kind
// patterns, layer paths and tensor names; `format:` / `hi:` / `lo:` get format ids; `method:` and targets their
// enums; a key position gets the keys allowed at that level (found from indentation).
import { CompletionItemKind, type CompletionItem, type CompletionList, type Position } from 'vscode-languageserver';
import { kindOf } from '../plan/budget';
import { layerPath, type TensorIndex } from '../plan/match';
import { METHODS, PLAN_SCHEMA, TARGETS } from '../plan/schema';
import type { PlanState } from '../plan/service';
import { formatIds, getFormat } from '../quant/registry';
import { fmtBits } from '../plan/text';

/** Name items returned at most; the list is marked incomplete so the editor asks again as the user types. */
export const MAX_NAME_ITEMS = 200;

const KEYS: Record<string, readonly string[]> = {
  '': Object.keys(PLAN_SCHEMA.properties),
  budget: Object.keys(PLAN_SCHEMA.properties.budget.properties),
  defaults: Object.keys(PLAN_SCHEMA.properties.defaults.properties),
  high_impact: Object.keys(PLAN_SCHEMA.properties.high_impact.properties),
  rules: Object.keys(PLAN_SCHEMA.definitions.rule.properties),
};

export function planCompletion(state: PlanState, pos: Position): CompletionList {
  const lines = state.text.split(/\r?\n/);
  const prefix = (lines[pos.line] ?? '').slice(0, pos.character);
  let m: RegExpExecArray | null;
  if ((m = /\bmatch\s*:\s*(["']?)([^"']*)$/.exec(prefix))) return names(state.resolved?.index, m[2], m[1]);
  if ((m = /\b(format|hi|lo)\s*:\s*["']?([\w+.-]*)$/.exec(prefix))) return formats(m[2]);
  if (/\bmethod\s*:\s*\w*$/.test(prefix)) return enumItems(METHODS);
  if (/\btargets\s*:\s*\[[^\]]*$/.test(prefix) || (/^\s*-\s*[\w.-]*$/.test(prefix) && parentKey(lines, pos.line) === 'targets')) return enumItems(TARGETS);
  // `{ a: 1, b` inside a flow mapping: the key of the line's own section.
  if ((m = /^\s*(\w+)\s*:\s*\{[^}]*?(?:^|[{,]\s*)([\w]*)$/.exec(prefix))) return keys(KEYS[m[1]] ?? [], m[2]);
  if ((m = /^(\s*)(-\s+)?(\w*)$/.exec(prefix))) {
    const parent = m[1].length === 0 && !m[2] ? '' : parentKey(lines, pos.line);
    return keys(KEYS[parent] ?? [], m[3]);
  }
  return { isIncomplete: false, items: [] };
}

/** The key of the block mapping enclosing `line` (by indentation; list items are looked through), '' at top level. */
function parentKey(lines: string[], line: number): string {
  const indent = (s: string) => s.length - s.trimStart().length;
  let limit = indent(lines[line]);
  for (let l = line - 1; l >= 0 && limit > 0; l--) {
    const s = lines[l];
    if (s.trim() === '' || s.trimStart().startsWith('#') || indent(s) >= limit) continue;
    limit = indent(s);
    if (/^\s*-/.test(s)) continue;
    return /^\s*([\w]+)\s*:/.exec(s)?.[1] ?? '';
  }
  return '';
}

function keys(list: readonly string[], typed: string): CompletionList {
  return {
    isIncomplete: false,
    items: list.filter((k) => k.startsWith(typed)).map((k) => ({ label: k, kind: CompletionItemKind.Property, insertText: `${k}: ` })),
  };
}

function enumItems(list: readonly string[]): CompletionList {
  return { isIncomplete: false, items: list.map((v) => ({ label: v, kind: CompletionItemKind.EnumMember })) };
}

function formats(typed: string): CompletionList {
  const items: CompletionItem[] = [];
  for (const id of formatIds()) {
    if (!id.startsWith(typed)) continue;
    const f = getFormat(id);
    items.push({ label: id, kind: CompletionItemKind.Value, detail: `${fmtBits(f.bitsPerWeight([4096, 4096], 'out_in'))} bits/weight`, documentation: f.description });
  }
  return { isIncomplete: false, items };
}

const KINDS = new WeakMap<TensorIndex, string[]>();

/** Layer kinds (numeric parts as `*`) of the model, in model order. */
function kindsOf(index: TensorIndex): string[] {
  let k = KINDS.get(index);
  if (!k) {
    const set = new Set<string>();
    for (const t of index.tensors) set.add(kindOf(layerPath(t.layer)));
    KINDS.set(index, (k = [...set]));
  }
  return k;
}

/** Patterns first (`model.layers.*.mlp.down_proj`), then layer paths, then tensor names, all starting with `typed`. */
function names(index: TensorIndex | undefined, typed: string, quote: string): CompletionList {
  if (!index) return { isIncomplete: false, items: [] };
  const items: CompletionItem[] = [];
  const seen = new Set<string>();
  const add = (label: string, kind: CompletionItemKind, detail: string) => {
    if (seen.has(label) || !label.startsWith(typed) || items.length >= MAX_NAME_ITEMS) return;
    seen.add(label);
    // Unquoted values starting with * would be YAML aliases: quote them.
    const insertText = !quote && /^[*&!%@`[{]/.test(label) ? `"${label}"` : label;
    items.push({ label, kind, detail, sortText: `${kind}:${items.length.toString().padStart(6, '0')}`, ...(insertText !== label ? { insertText } : {}) });
  };
  for (const k of kindsOf(index)) if (k.includes('*')) add(k, CompletionItemKind.Folder, 'every layer of this kind');
  for (const t of index.tensors) {
    if (items.length >= MAX_NAME_ITEMS) break;
    add(layerPath(t.layer), CompletionItemKind.Module, 'layer');
    add(t.name, CompletionItemKind.Field, `tensor${t.shape ? ` [${t.shape.join('×')}]` : ''}`);
  }
  return { isIncomplete: items.length >= MAX_NAME_ITEMS, items };
}
