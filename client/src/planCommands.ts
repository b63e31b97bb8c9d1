// Commands around plan files: Reveal in Plan (the rule deciding a layer, or a new one), Quantize Model (the whole
// plan as a server job) and Export Plan (a tool's dialect, written by the server).
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import { Requests, type QuantizeModelResult, type RuleForResult } from '../../server/src/protocol';
import { existingOutput, sendRequest, withRequestProgress } from './languageClient';
import { EXCLUDE, type ModelEntry } from './models';
import { namesModel } from './modelPaths';
import { analysisSettings } from './settings';

const PLAN_GLOB = '**/*.quant.{yaml,yml}';
/** Plans opened to look for the one naming a model: enough for real repositories, bounded for huge ones. */
const MAX_PLANS = 50;

const isPlanDoc = (d: vscode.TextDocument) => d.languageId === 'quantplan' && d.uri.scheme === 'file';

/** Open plan documents first, then the workspace's plan files (opened, not shown: the server then knows them). */
async function planDocuments(): Promise<vscode.TextDocument[]> {
  const open = vscode.workspace.textDocuments.filter(isPlanDoc);
  const seen = new Set(open.map((d) => d.uri.toString()));
  const files = (await vscode.workspace.findFiles(PLAN_GLOB, EXCLUDE, MAX_PLANS)).filter((u) => !seen.has(u.toString()));
  const more = await Promise.all(files.map((u) => Promise.resolve(vscode.workspace.openTextDocument(u)).catch(() => undefined)));
  return [...open, ...more.filter((d): d is vscode.TextDocument => d !== undefined && isPlanDoc(d))];
}

async function pickOne<T extends { doc: vscode.TextDocument }>(items: T[], title: string): Promise<T | undefined> {
  if (items.length <= 1) return items[0];
  const visible = new Set(vscode.window.visibleTextEditors.map((e) => e.document.uri.toString()));
  const shown = items.filter((i) => visible.has(i.doc.uri.toString()));
  if (shown.length === 1) return shown[0];
  const pick = await vscode.window.showQuickPick(
    items.map((i) => ({ label: vscode.workspace.asRelativePath(i.doc.uri), item: i })),
    { title, placeHolder: 'Which plan?' },
  );
  return pick?.item;
}

export interface RevealTarget {
  model: ModelEntry;
  /** The layer's tensors (the first the plan assigns decides). */
  tensors: string[];
  /** The layer's name, written into a new rule. */
  path: string;
}

/**
 * Opens the plan that names the model and selects the rule deciding the layer; offers to append a rule when only
 * `defaults` decides it. `visibleOnly`: look only at plans already shown (webview clicks must not open files).
 * Returns what happened, for the caller's message.
 */
export async function revealInPlan(client: LanguageClient, t: RevealTarget, opts: { visibleOnly?: boolean } = {}): Promise<string> {
  const docs = opts.visibleOnly ? vscode.window.visibleTextEditors.map((e) => e.document).filter(isPlanDoc) : await planDocuments();
  const found: { doc: vscode.TextDocument; r: RuleForResult }[] = [];
  for (const doc of docs) {
    const r = await sendRequest(client, Requests.ruleFor, { uri: doc.uri.toString(), tensors: t.tensors, layer: t.path }).catch(() => undefined);
    if (r?.modelPath && namesModel(r.modelPath, { path: t.model.uri.fsPath, kind: t.model.kind })) found.push({ doc, r });
  }
  if (!found.length) {
    if (opts.visibleOnly) return '';
    const message = `Reveal in Plan: no plan in the workspace names ${t.model.label} (a *.quant.yaml with \`model:\` pointing at it).`;
    void vscode.window.showInformationMessage(message);
    return message;
  }
  const hit = await pickOne(found, `Reveal ${t.path} in plan`);
  if (!hit) return '';
  const { doc, r } = hit;
  const editor = await vscode.window.showTextDocument(doc, { preview: false, preserveFocus: opts.visibleOnly });
  const select = (range: { start: vscode.Position | { line: number; character: number }; end: { line: number; character: number } }) => {
    const sel = new vscode.Selection(range.start.line, range.start.character, range.end.line, range.end.character);
    editor.selection = sel;
    editor.revealRange(sel, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
  };
  if (r.rule >= 0) {
    if (r.range) select(r.range);
    return `${t.path}: rules[${r.rule}] (${r.pattern ?? '?'}) decides it → ${r.format ?? 'original precision'}.`;
  }
  if (r.range) select(r.range);
  const decided = r.tensor === undefined ? 'no rule or default assigns it (not quantizable here)' : `only defaults decide it (${r.format ?? 'original precision'})`;
  if (!r.newRule || opts.visibleOnly) return `${t.path}: ${decided}.`;
  const add = await vscode.window.showInformationMessage(`${t.path}: ${decided}. Add a rule for it?`, 'Add Rule');
  if (add !== 'Add Rule') return `${t.path}: ${decided}.`;
  const formats = [...new Set([r.format, ...(analysisSettings().formats ?? [])].filter((f): f is string => !!f))];
  const format = await vscode.window.showQuickPick(formats, { title: `New rule for ${t.path}`, placeHolder: 'Format' });
  if (!format) return `${t.path}: ${decided}.`;
  const nr = r.newRule;
  const edit = new vscode.WorkspaceEdit();
  const range = new vscode.Range(nr.range.start.line, nr.range.start.character, nr.range.end.line, nr.range.end.character);
  edit.replace(doc.uri, range, `${nr.before}${format}${nr.after}`);
  await vscode.workspace.applyEdit(edit);
  // The new rule's `match:` line: the first line of the inserted text that holds it.
  const line = nr.range.start.line + nr.before.split('\n').findIndex((l) => l.includes('- match:'));
  const text = doc.lineAt(line).text;
  select({ start: new vscode.Position(line, text.indexOf('match:') + 7), end: { line, character: text.length } });
  return `${t.path}: added a rule (${format}).`;
}

/** The plan to quantize with: the one given (when it names `model`, if any), or one of the plans naming `model`. */
export async function planFor(client: LanguageClient, model: ModelEntry | undefined, planUri?: vscode.Uri): Promise<{ doc: vscode.TextDocument; modelPath: string } | undefined> {
  const candidates = planUri ? [await vscode.workspace.openTextDocument(planUri)] : await planDocuments();
  const found: { doc: vscode.TextDocument; modelPath: string }[] = [];
  for (const doc of candidates) {
    const s = await sendRequest(client, Requests.planSummary, { uri: doc.uri.toString() }).catch(() => null);
    if (s && (!model || namesModel(s.modelPath, { path: model.uri.fsPath, kind: model.kind }))) found.push({ doc, modelPath: s.modelPath });
  }
  return pickOne(found, 'Quantize Model');
}

/** Quantize a model with a plan on the server (cancellable progress); asks before replacing an earlier output. */
export async function quantizeWithPlan(client: LanguageClient, modelPath: string, plan: vscode.TextDocument): Promise<QuantizeModelResult | undefined> {
  const params = { model: modelPath, plan: plan.uri.fsPath, planText: plan.isDirty ? plan.getText() : undefined };
  const run = (force: boolean) =>
    withRequestProgress(client, `QuantLens: quantizing ${path.basename(modelPath)} with ${path.basename(plan.uri.fsPath)}`, (workDoneToken, cancel) =>
      sendRequest(client, Requests.quantizeModel, { ...params, force, workDoneToken }, cancel),
    );
  try {
    return await run(false);
  } catch (e) {
    const file = existingOutput(e);
    if (!file) throw e;
    const ok = await vscode.window.showWarningMessage(`${vscode.workspace.asRelativePath(file)} exists. Replace it with the new quantized model?`, { modal: true }, 'Replace');
    return ok === 'Replace' ? run(true) : undefined;
  }
}

/** The notification at the end of Quantize Model: measured deltas, size, and where the files are. */
export async function reportQuantized(r: QuantizeModelResult, log: vscode.LogOutputChannel): Promise<void> {
  const q = r.report;
  const m = q.metrics;
  const measured = m
    ? `KL ${m.kl.toExponential(2)}, top-1 ${(m.top1 * 100).toFixed(2)} %, output SQNR ${Number.isFinite(m.sqnrDb) ? `${m.sqnrDb.toFixed(1)} dB` : 'exact'}`
    : 'not evaluated';
  const size = `${(q.sizeBytes.original / 2 ** 20).toFixed(2)} → ${(q.sizeBytes.quantized / 2 ** 20).toFixed(2)} MiB`;
  const text =
    `Quantized ${path.basename(q.model)}: ${q.weights.length} weights${q.simulated ? ' (some simulated)' : ''} on ${q.executionProvider}${r.cached ? ' (from an identical earlier job)' : ''} — ` +
    `${measured}; predicted relative error ${q.predicted.relMse.toExponential(2)}; ${size} · ${vscode.workspace.asRelativePath(q.output)}`;
  log.info(text);
  const pick = await vscode.window.showInformationMessage(text, 'Open Report', 'Reveal Output');
  if (pick === 'Open Report' && q.report) await vscode.window.showTextDocument(vscode.Uri.file(q.report), { preview: false });
  if (pick === 'Reveal Output') await vscode.commands.executeCommand('revealFileInOS', vscode.Uri.file(q.output));
}

/** Export the active plan: pick a dialect, the server writes the files beside the plan (asks before replacing). */
export async function exportActivePlan(client: LanguageClient, log: vscode.LogOutputChannel, planArg?: vscode.Uri): Promise<string> {
  const doc = planArg ? await vscode.workspace.openTextDocument(planArg) : vscode.window.activeTextEditor?.document;
  if (!doc || !isPlanDoc(doc)) {
    const message = 'Export Plan: open a *.quant.yaml plan in the editor first.';
    void vscode.window.showInformationMessage(message);
    return message;
  }
  const dialects = await sendRequest(client, Requests.exportDialects, {});
  const pick = await vscode.window.showQuickPick(
    dialects.map((d) => ({ label: d.id, detail: d.describes })),
    { title: `Export ${vscode.workspace.asRelativePath(doc.uri)}`, placeHolder: 'Dialect of the tool you deploy with' },
  );
  if (!pick) return '';
  const send = (force: boolean) => sendRequest(client, Requests.exportPlan, { uri: doc.uri.toString(), dialect: pick.label, force });
  let result;
  try {
    result = await send(false);
  } catch (e) {
    const file = existingOutput(e);
    if (!file) throw e;
    const ok = await vscode.window.showWarningMessage(`${vscode.workspace.asRelativePath(file)} exists. Replace the exported files?`, { modal: true }, 'Replace');
    if (ok !== 'Replace') return '';
    result = await send(true);
  }
  for (const w of result.warnings) log.warn(`Export ${pick.label}: ${doc.uri.fsPath}${w.line !== undefined ? `:${w.line + 1}` : ''}: ${w.message}`);
  if (result.commandLine) log.info(`Export ${pick.label}: ${result.commandLine}`);
  const names = result.files.map((f) => vscode.workspace.asRelativePath(f)).join(', ');
  const warned = result.warnings.length ? ` — ${result.warnings.length} warning(s) in the log` : '';
  void vscode.window.showInformationMessage(`Exported to ${pick.label}: ${names}${warned}`, 'Open', ...(result.warnings.length ? ['Show Log'] : [])).then(async (a) => {
    if (a === 'Open') await vscode.window.showTextDocument(vscode.Uri.file(result.files[0]), { preview: false });
    if (a === 'Show Log') log.show(true);
  });
  return `Exported ${pick.label}: ${names}`;
}
