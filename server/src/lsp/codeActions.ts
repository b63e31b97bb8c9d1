// Quick fixes for plan diagnostics: remove a dead or shadowed rule, align a fused group split across formats,
// apply a did-you-mean suggestion, and Fit budget (re-solve the allocation and rewrite the rules).
import { CodeActionKind, type CodeAction, type Diagnostic, type TextEdit } from 'vscode-languageserver';
import { fitBudget } from '../plan/budget';
import type { Range } from '../plan/schema';
import type { PlanState } from '../plan/service';
import { fmtBits } from '../plan/text';

const sameRange = (a: Range, b: Range) =>
  a.start.line === b.start.line && a.start.character === b.start.character && a.end.line === b.end.line && a.end.character === b.end.character;

export async function planCodeActions(state: PlanState, uri: string, diagnostics: readonly Diagnostic[]): Promise<CodeAction[]> {
  const out: CodeAction[] = [];
  const lines = state.text.split(/\r?\n/);
  const { plan } = state.analysis;
  const edit = (title: string, edits: TextEdit[], diag?: Diagnostic, preferred = false): CodeAction => ({
    title, kind: CodeActionKind.QuickFix, edit: { changes: { [uri]: edits } }, ...(diag ? { diagnostics: [diag] } : {}), ...(preferred ? { isPreferred: true } : {}),
  });
  for (const d of diagnostics) {
    if (d.source !== 'quantlens') continue;
    const k = plan.rules.findIndex((r) => r.match && sameRange(r.match.range, d.range));
    if ((d.code === 'dead-rule' || d.code === 'shadowed-rule') && k >= 0) {
      const e = removeRule(state, lines, k);
      if (e) out.push(edit(d.code === 'dead-rule' ? 'Remove dead rule' : 'Remove shadowed rule', [e], d, true));
    } else if (d.code === 'split-fused-group' && k >= 0) {
      const a = alignGroup(state, lines, k);
      if (a) out.push(edit(`Align fused group: use ${a.format} for rules[${plan.rules[k].index}]`, [a.edit], d, true));
    } else {
      const s = state.diagnostics.find((x) => x.code === d.code && x.suggestion !== undefined && sameRange(x.range, d.range));
      if (s) out.push(edit(`Change to '${s.suggestion}'`, [{ range: s.range, newText: s.suggestion! }], d, true));
    }
  }
  if (plan.budget && state.cost) {
    const fit = await fitBudgetAction(state, uri);
    const over = diagnostics.find((d) => d.code === 'over-budget');
    if (fit) out.push({ ...fit, kind: over ? CodeActionKind.QuickFix : CodeActionKind.Source + '.quantlens.fitBudget', ...(over ? { diagnostics: [over] } : {}) });
  }
  return out;
}

/** Delete rule k's lines (block-style lists only; a flow list is left to the user). */
function removeRule(state: PlanState, lines: string[], k: number): TextEdit | undefined {
  const { plan } = state.analysis;
  const r = plan.rules[k].range;
  if (!/^\s*-\s*$/.test(lines[r.start.line].slice(0, r.start.character))) return undefined;
  if (plan.rules.length === 1 && plan.rulesAt) {
    // The only rule: an empty list keeps `rules:` valid.
    const at = plan.rulesAt;
    return { range: { start: at.keyRange.start, end: at.range.end }, newText: `rules: []${at.range.end.character === 0 ? '\n' : ''}` };
  }
  const end = r.end.character === 0 ? r.end : { line: r.end.line, character: lines[r.end.line]?.length ?? r.end.character };
  return { range: { start: { line: r.start.line, character: 0 }, end }, newText: '' };
}

/**
 * Give rule k the format the other members of its split fused group have (the most common one by
 * parameters), by rewriting its `format:` value or adding one.
 */
function alignGroup(state: PlanState, lines: string[], k: number): { format: string; edit: TextEdit } | undefined {
  const r = state.resolved;
  if (!r) return undefined;
  const { index, owner, decisions } = r;
  const groups = new Set<number>();
  for (let id = 0; id < owner.length; id++) if (owner[id] === k && index.group[id] >= 0) groups.add(index.group[id]);
  const mine = decisions[k + 1].format;
  const weight = new Map<string, number>();
  for (let id = 0; id < owner.length; id++) {
    const f = decisions[owner[id] + 1].format;
    if (owner[id] !== k && groups.has(index.group[id]) && f !== null && f !== mine) weight.set(f, (weight.get(f) ?? 0) + index.params[id]);
  }
  const format = [...weight].sort((a, b) => b[1] - a[1])[0]?.[0];
  if (!format) return undefined;
  const rule = state.analysis.plan.rules[k];
  if (rule.format) return { format, edit: { range: rule.format.range, newText: format } };
  const m = rule.match!;
  const line = lines[m.keyRange.start.line];
  if (!/^\s*(-\s*)?match\s*:/.test(line)) return undefined; // flow mapping: no line to add
  return { format, edit: { range: { start: { line: m.range.end.line + 1, character: 0 }, end: { line: m.range.end.line + 1, character: 0 } }, newText: `${' '.repeat(m.keyRange.start.character)}format: ${format}\n` } };
}

/** Fit budget as a code action (or undefined when there is nothing to solve). */
export async function fitBudgetAction(state: PlanState, uri: string): Promise<CodeAction | undefined> {
  const { plan } = state.analysis;
  if (!state.cost || !state.resolved) return undefined;
  const fit = await fitBudget(plan, state.resolved, state.cost, state.formats, state.model?.report);
  if (!fit?.feasible) return undefined;
  const preserved = plan.rules.filter((r) => r.skip?.value).map((r) => ruleText(state.text, r.range));
  const generated = fit.rules.map((r) => `  - match: "${r.pattern.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"\n    format: ${r.format}\n`);
  const body = [...preserved, ...generated];
  const text = body.length ? `rules:\n${body.join('')}` : 'rules: []\n';
  const at = plan.rulesAt;
  const lines = state.text.split(/\r?\n/);
  const end = { line: lines.length - 1, character: lines[lines.length - 1].length };
  const edit: TextEdit = at
    ? { range: { start: at.keyRange.start, end: at.range.end }, newText: at.range.end.character === 0 ? text : text.replace(/\n$/, '') }
    : { range: { start: end, end }, newText: (state.text.endsWith('\n') || state.text === '' ? '' : '\n') + text };
  const how = fit.analyzed ? 'analysis errors' : 'bits-only proxy, not analyzed';
  return { title: `Fit budget: rewrite rules for ${fmtBits(fit.avgBits!)} bits/weight (${how})`, kind: CodeActionKind.QuickFix, edit: { changes: { [uri]: [edit] } } };
}

/** A skip rule's source as a block list item at two spaces (flow-style items are re-emitted in block style). */
function ruleText(text: string, r: Range): string {
  const lines = text.split(/\r?\n/);
  const first = lines[r.start.line].slice(r.start.character);
  const rest = lines.slice(r.start.line + 1, r.end.character === 0 ? r.end.line : r.end.line + 1);
  if (!/^\s*-\s*$/.test(lines[r.start.line].slice(0, r.start.character))) return `  - ${first.trim()}\n`;
  const pad = ' '.repeat(r.start.character);
  return `  - ${first}\n${rest.map((l) => `    ${l.startsWith(pad) ? l.slice(pad.length) : l.trimStart()}\n`).join('')}`;
}
