// Status bar: with a plan in the editor, the plan's size, average bits and budget state (the numbers of its top
// code lens; click opens the report panel of its model); otherwise the language server state and the models found.
import * as vscode from 'vscode';
import { State, type LanguageClient } from 'vscode-languageclient/node';
import { Requests, type PlanSummary } from '../../server/src/protocol';
import type { SensitivityExplorer } from './explorer';
import { formatBytes } from './format';
import { sendRequest } from './languageClient';

/** Plan edits re-cost at most this often (the server debounces diagnostics likewise). */
const PLAN_DEBOUNCE_MS = 300;

export function planStatusText(s: NonNullable<PlanSummary>): { text: string; over: boolean; tooltip: string } {
  const bits = `${s.avgBits.toFixed(2)} bits/w`;
  let budget = '';
  let detail = 'no budget';
  if (s.budget) {
    const target = s.budget.kind === 'avgBits' ? `${s.budget.value} bits/weight` : formatBytes(s.budget.value);
    budget = s.budget.ok ? ' $(pass)' : ' $(warning) over budget';
    detail = `budget ${target}: ${s.budget.ok ? 'met' : 'exceeded'}`;
  }
  const err = s.relMse === undefined ? 'not analyzed' : `predicted relative error ${s.relMse.toExponential(2)}`;
  return {
    text: `$(graph) ${formatBytes(s.bytes)} · ${bits}${budget}`,
    over: s.budget?.ok === false,
    tooltip: `QuantLens plan: ${formatBytes(s.bytes)} in all, ${s.avgBits.toFixed(3)} bits/weight, ${err}; ${detail}. Click to open the report.`,
  };
}

export function createStatus(client: LanguageClient, explorer: SensitivityExplorer): vscode.Disposable {
  const item = vscode.window.createStatusBarItem('quantlens.status', vscode.StatusBarAlignment.Left, 0);
  item.name = 'QuantLens';
  let plan: { doc: vscode.TextDocument; summary: PlanSummary } | undefined;
  const update = () => {
    if (plan?.summary) {
      const p = planStatusText(plan.summary);
      item.text = p.text;
      item.tooltip = p.tooltip;
      item.backgroundColor = p.over ? new vscode.ThemeColor('statusBarItem.warningBackground') : undefined;
      item.command = { title: 'Open Report', command: 'quantlens.openReport', arguments: [vscode.Uri.file(plan.summary.modelPath).toString()] };
      return;
    }
    const server = client.state === State.Running ? 'running' : client.state === State.Starting ? 'starting' : 'stopped';
    const n = explorer.models.length;
    const models = explorer.state === 'searching' ? 'looking for models…' : `${n} model${n === 1 ? '' : 's'}`;
    item.text = `${server === 'stopped' ? '$(warning)' : '$(layers)'} QuantLens: ${models}`;
    item.tooltip = `QuantLens language server: ${server}. Click to show the log.`;
    item.command = 'quantlens.showLog';
    item.backgroundColor = server === 'stopped' && client.state !== State.Starting ? new vscode.ThemeColor('statusBarItem.warningBackground') : undefined;
  };

  let timer: NodeJS.Timeout | undefined;
  let asked = 0;
  const refreshPlan = () => {
    clearTimeout(timer);
    const doc = vscode.window.activeTextEditor?.document;
    if (doc?.languageId !== 'quantplan' || doc.uri.scheme !== 'file') {
      plan = undefined;
      return update();
    }
    timer = setTimeout(async () => {
      if (client.state !== State.Running) return;
      const ticket = ++asked;
      const summary = await sendRequest(client, Requests.planSummary, { uri: doc.uri.toString() }).catch(() => null);
      if (ticket !== asked) return;
      plan = { doc, summary };
      update();
    }, PLAN_DEBOUNCE_MS);
  };

  update();
  refreshPlan();
  item.show();
  return vscode.Disposable.from(
    item,
    client.onDidChangeState(() => (update(), refreshPlan())),
    explorer.onDidChangeState(update),
    vscode.window.onDidChangeActiveTextEditor(refreshPlan),
    vscode.workspace.onDidChangeTextDocument((e) => e.document === vscode.window.activeTextEditor?.document && refreshPlan()),
    { dispose: () => clearTimeout(timer) },
  );
}
