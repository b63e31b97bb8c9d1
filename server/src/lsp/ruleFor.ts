// Reveal in Plan (quantlens/ruleFor): which rule of a plan decides a layer — the first rule whose pattern takes one
// of its tensors — or, when only `defaults` does, the edit that appends a rule for it.
import { globEscape } from '../plan/budget';
import type { Range } from '../plan/schema';
import type { PlanState } from '../plan/service';
import type { RuleForResult } from '../protocol';

export function ruleFor(state: PlanState, tensors: readonly string[], layer = tensors[0]): RuleForResult {
  const { plan, assignment } = state.analysis;
  const modelPath = plan.model?.value.path;
  const tensor = tensors.find((t) => assignment.has(t));
  if (tensor === undefined) return { modelPath, rule: -1 };
  const a = assignment.get(tensor)!;
  if (a.rule >= 0) {
    const r = plan.rules.find((x) => x.index === a.rule);
    return { modelPath, tensor, rule: a.rule, range: r?.match?.range ?? r?.range, pattern: r?.match?.value, format: a.format };
  }
  const newRule = layer === undefined ? undefined : appendRule(state, layer);
  return { modelPath, tensor, rule: -1, range: plan.defaults?.keyRange, format: a.format, ...(newRule ? { newRule } : {}) };
}

/** A glob that matches only `name` (a leading `/` would otherwise start a /regex/). */
const exactPattern = (name: string) => globEscape(name).replace(/^\//, '\\/');

/**
 * The edit appending `- match: <layer>` / `format: …` after the last block-style rule (or as a new `rules:` list);
 * undefined for flow-style lists (`rules: [ … ]` with items), which are edited by hand.
 */
function appendRule(state: PlanState, layer: string): RuleForResult['newRule'] {
  const { plan } = state.analysis;
  const lines = state.text.split(/\r?\n/);
  const match = JSON.stringify(exactPattern(layer));
  const eof = { line: lines.length - 1, character: lines[lines.length - 1].length };
  const item = (dash: string, key: string) => ({ before: `${dash}- match: ${match}\n${key}format: `, after: '\n' });
  const at = plan.rulesAt;
  if (!at) {
    const lead = state.text === '' || state.text.endsWith('\n') ? '' : '\n';
    const it = item('  ', '    ');
    return { range: { start: eof, end: eof }, before: `${lead}rules:\n${it.before}`, after: it.after };
  }
  const last = plan.rules[plan.rules.length - 1];
  if (!last) {
    // `rules: []` or an empty `rules:`: replaced by a block list.
    const it = item('  ', '    ');
    const range: Range = { start: at.keyRange.start, end: at.range.end };
    return { range, before: `rules:\n${it.before}`, after: at.range.end.character === 0 ? it.after : '' };
  }
  const prefix = lines[last.range.start.line].slice(0, last.range.start.character);
  if (!/^\s*-\s*$/.test(prefix)) return undefined;
  const dash = prefix.slice(0, prefix.indexOf('-'));
  const it = item(dash, ' '.repeat(last.range.start.character));
  const end = last.range.end;
  if (end.character === 0) return { range: { start: end, end }, ...it };
  // The rule ends inside its last line: insert at the start of the next line (or after the text's last line).
  if (end.line + 1 < lines.length) {
    const next = { line: end.line + 1, character: 0 };
    return { range: { start: next, end: next }, ...it };
  }
  return { range: { start: eof, end: eof }, before: `\n${it.before}`, after: '' };
}
