// Code lenses of a plan: the plan's totals against its budget on top, what each rule (and defaults) decides.
// Built from a PlanState only (no I/O), so they answer from the state the diagnostics already computed.
import type { CodeLens, Command } from 'vscode-languageserver';
import { pathToFileURL } from 'node:url';
import type { Cost } from '../plan/cost';
import { planState, type ModelInfo, type PlanState } from '../plan/service';
import type { PlanDiagnostic } from '../plan/schema';
import { fmtBits, fmtBytes, fmtError, fmtParams } from '../plan/text';

/** Command ids the lenses use (client commands, plus quantlens.fitBudget which the server executes). */
export const LensCommands = {
  quantizeLayer: 'quantlens.quantizeLayer',
  showInExplorer: 'quantlens.showInExplorer',
  analyze: 'quantlens.analyzeSensitivity',
  fitBudget: 'quantlens.fitBudget',
  quantizeModel: 'quantlens.quantizeModel',
  openReport: 'quantlens.openReport',
} as const;

/** Tensor names passed to a lens command at most (a rule over an MoE model can match tens of thousands). */
export const MAX_LENS_TENSORS = 1000;

const label = (title: string): Command => ({ title, command: '' });

/** `3 tensors · 48 params · 6.333 bits/weight · 38 B · relMSE 1.2e-3 (29.2 dB)` (or "not analyzed"). */
export function describeCost(c: Cost, analyzed: boolean): string {
  const parts = [`${c.tensors} tensor${c.tensors === 1 ? '' : 's'}`, `${fmtParams(c.params)} params`];
  parts.push(`${fmtBits(c.params > 0 ? c.bits / c.params : 0)} bits/weight`, fmtBytes(c.bits / 8));
  if (c.relMse !== undefined) {
    const share = c.analyzedParams < c.params ? ` over ${Math.round((100 * c.analyzedParams) / c.params)}% of params` : '';
    parts.push(`${fmtError(c.relMse)}${share}`);
  } else parts.push(analyzed ? 'no analysis for this format' : 'not analyzed');
  return parts.join(' · ');
}

export function planLenses(state: PlanState, uri: string): CodeLens[] {
  const { plan } = state.analysis;
  const lenses: CodeLens[] = [];
  const top = { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } };
  const modelUri = plan.model ? pathToFileURL(plan.model.value.path).href : undefined;
  const cost = state.cost;

  if (!plan.model) lenses.push({ range: top, command: label('QuantLens: add `model:` to resolve the rules') });
  else if (state.model?.error || !state.model?.tensors) lenses.push({ range: top, command: label('QuantLens: model not readable — see diagnostics') });
  else if (cost) {
    let summary = `Plan: ${fmtBytes(cost.bytes)} · ${fmtBits(cost.avgBits)} bits/weight`;
    summary += cost.total.relMse !== undefined ? ` · predicted ${fmtError(cost.total.relMse)}` : ' · not analyzed';
    const b = plan.budget?.value;
    if (b?.avgBits) summary += ` · budget ${fmtBits(b.avgBits.value)} bits/weight ${cost.avgBits <= b.avgBits.value ? '✓' : '✗ over'}`;
    else if (b?.size) summary += ` · budget ${fmtBytes(b.size.value)} ${cost.bytes <= b.size.value ? '✓' : '✗ over'}`;
    lenses.push({ range: top, command: label(summary) });
  }
  if (modelUri) {
    lenses.push({ range: top, command: { title: 'Analyze', command: LensCommands.analyze, arguments: [modelUri] } });
    if (plan.budget && cost) lenses.push({ range: top, command: { title: 'Fit budget', command: LensCommands.fitBudget, arguments: [uri] } });
    lenses.push({ range: top, command: { title: 'Quantize model', command: LensCommands.quantizeModel, arguments: [modelUri, uri] } });
    lenses.push({ range: top, command: { title: 'Open report', command: LensCommands.openReport, arguments: [modelUri] } });
  }
  if (!cost) return lenses;

  const analyzed = cost.analyzed;
  const d = plan.defaults;
  if (d) lenses.push({ range: d.keyRange, command: label(`defaults: ${describeCost(cost.slots[0], analyzed)}`) });

  plan.rules.forEach((rule, k) => {
    const report = state.analysis.rules[k];
    const range = rule.match?.range ?? rule.range;
    if (!report || !rule.match) return;
    if (report.dead) {
      lenses.push({ range, command: label('matches no tensor') });
      return;
    }
    if (report.tensors.length === 0) {
      lenses.push({ range, command: label(`never applies: taken by ${report.shadowedBy.map((i) => `rules[${i}]`).join(', ')}`) });
      return;
    }
    const c = cost.slots[k + 1];
    const taken = report.matched > report.tensors.length ? ` (${report.matched - report.tensors.length} more matched, taken earlier)` : '';
    lenses.push({ range, command: label(`${describeCost(c, analyzed)}${taken}`) });
    const args = [uri, report.tensors.slice(0, MAX_LENS_TENSORS)];
    lenses.push({ range, command: { title: 'Quantize layer', command: LensCommands.quantizeLayer, arguments: args } });
    lenses.push({ range, command: { title: 'Show in explorer', command: LensCommands.showInExplorer, arguments: args } });
  });
  return lenses;
}

/**
 * What the server computes for a plan after a keystroke — diagnostics (budget included) and lenses — from a
 * loaded model, with no I/O: the unit the LSP benchmark times. `model.tensors` must be the same array on every
 * call (its index and per-format tables are cached with it).
 */
export function planKeystroke(text: string, planPath: string, model: ModelInfo): { diagnostics: PlanDiagnostic[]; lenses: CodeLens[] } {
  const state = planState(text, planPath, model);
  return { diagnostics: state.diagnostics, lenses: planLenses(state, pathToFileURL(planPath).href) };
}
