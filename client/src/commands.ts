// Command handlers. Engines that land later (analysis, jobs, reports, exporters) say so plainly: never fake success.
import * as vscode from 'vscode';
import { WorkDoneProgress, type LanguageClient } from 'vscode-languageclient/node';
import { Requests, type AnalyzeResponse, type InspectResult } from '../../server/src/protocol';
import type { ExplorerNode, SensitivityExplorer } from './explorer';
import { describeError, isCancelled, sendRequest } from './languageClient';
import type { ModelEntry } from './models';
import { analysisMarkdown, inspectMarkdown } from './report';
import { resolveLayer, resolveModel } from './targets';

export interface CommandContext {
  client: LanguageClient;
  explorer: SensitivityExplorer;
  view: vscode.TreeView<ExplorerNode>;
  log: vscode.LogOutputChannel;
}

export function inspectModel(client: LanguageClient, model: ModelEntry): Promise<InspectResult> {
  if (model.uri.scheme !== 'file') return Promise.reject(new Error(`${model.label}: only files on disk can be read (got ${model.uri.scheme}:)`));
  return sendRequest(client, Requests.inspect, { path: model.uri.fsPath });
}

let progressTokens = 0;

/**
 * Data-free analysis of a model on the server, shown as a cancellable notification fed by the server's `$/progress`.
 * Resolves undefined when the user cancels.
 */
export async function analyzeModel(client: LanguageClient, model: ModelEntry): Promise<AnalyzeResponse | undefined> {
  if (model.uri.scheme !== 'file') throw new Error(`${model.label}: only files on disk can be read (got ${model.uri.scheme}:)`);
  const cfg = vscode.workspace.getConfiguration('quantlens');
  const formats = cfg.get<string[]>('defaultFormats');
  // Restricted mode writes nothing, not even the analysis cache ('' = no cache).
  const cacheDir = vscode.workspace.isTrusted ? cfg.get<string>('cacheFolder') || undefined : '';
  return vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `QuantLens: analyzing ${model.label}`, cancellable: true },
    async (progress, cancel) => {
      const workDoneToken = `quantlens-analyze-${++progressTokens}`;
      let shown = 0;
      const sub = client.onProgress(WorkDoneProgress.type, workDoneToken, (v) => {
        if (v.kind !== 'report' || v.percentage === undefined) return;
        progress.report({ increment: v.percentage - shown, message: v.message });
        shown = v.percentage;
      });
      try {
        return await sendRequest(client, Requests.analyze, { path: model.uri.fsPath, formats, cacheDir, workDoneToken }, cancel);
      } catch (e) {
        if (isCancelled(e)) return undefined;
        throw e;
      } finally {
        sub.dispose();
      }
    },
  );
}

/** Failures surface as notifications with a way to the log, which holds the details. */
export async function showError(log: vscode.LogOutputChannel, message: string): Promise<void> {
  log.error(message);
  if ((await vscode.window.showErrorMessage(message, 'Show Log')) === 'Show Log') log.show(true);
}

const NOT_YET = 'not available in this build yet';


export function registerCommands(ctx: CommandContext): vscode.Disposable[] {
  const { client, explorer, log } = ctx;
  const inspect = (m: ModelEntry) => inspectModel(client, m);
  /** Shows an information message, logs it, and returns its text (command results make the handlers testable). */
  const tell = (message: string): string => {
    log.info(message);
    void vscode.window.showInformationMessage(message);
    return message;
  };
  const guarded =
    (title: string, run: (arg: unknown) => Promise<unknown>) =>
    async (arg: unknown): Promise<unknown> => {
      try {
        return await run(arg);
      } catch (e) {
        await showError(log, `${title}: ${describeError(e)}`);
        return undefined;
      }
    };
  const needsTrust = (title: string): boolean => {
    if (vscode.workspace.isTrusted) return false;
    void vscode.window.showWarningMessage(`${title} writes new model files, which needs a trusted workspace. Inspection works in restricted mode.`);
    return true;
  };
  const register = (id: string, title: string, run: (arg: unknown) => Promise<unknown>) =>
    vscode.commands.registerCommand(id, guarded(title, run));

  return [
    register('quantlens.inspectModel', 'Inspect Model', async (arg) => {
      const model = await resolveModel(explorer, arg, 'Inspect Model');
      if (!model) return;
      const result = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Window, title: `QuantLens: reading ${model.label}` },
        () => inspect(model),
      );
      const doc = await vscode.workspace.openTextDocument({ language: 'markdown', content: inspectMarkdown(model.label, result) });
      await vscode.window.showTextDocument(doc, { preview: false });
      const node = explorer.nodeFor(model.uri);
      if (node && ctx.view.visible) await ctx.view.reveal(node, { select: true, focus: false, expand: true });
    }),
    register('quantlens.analyzeSensitivity', 'Analyze Sensitivity', async (arg) => {
      const model = await resolveModel(explorer, arg, 'Analyze Sensitivity');
      if (!model) return;
      const result = await analyzeModel(client, model);
      if (!result) return tell(`Analyze Sensitivity: ${model.label} — cancelled.`);
      const doc = await vscode.workspace.openTextDocument({ language: 'markdown', content: analysisMarkdown(model.label, result) });
      await vscode.window.showTextDocument(doc, { preview: false });
      return result;
    }),
    register('quantlens.quantizeLayer', 'Quantize Layer', async (arg) => {
      if (needsTrust('Quantize Layer')) return;
      const target = await resolveLayer(explorer, arg, inspect);
      if (target?.layer) return tell(`Quantize Layer: ${target.layer} — quantization jobs are ${NOT_YET}.`);
    }),
    register('quantlens.quantizeModel', 'Quantize Model', async (arg) => {
      if (needsTrust('Quantize Model')) return;
      const model = await resolveModel(explorer, arg, 'Quantize Model');
      if (model) return tell(`Quantize Model: ${model.label} — quantization jobs are ${NOT_YET}.`);
    }),
    register('quantlens.openReport', 'Open Report', async (arg) => {
      const model = await resolveModel(explorer, arg, 'Open Report');
      if (model) return tell(`Open Report: no report for ${model.label} — reports come from Analyze Sensitivity, which is ${NOT_YET}.`);
    }),
    register('quantlens.exportPlan', 'Export Plan', async () => {
      const doc = vscode.window.activeTextEditor?.document;
      if (doc?.languageId !== 'quantplan') {
        return tell('Export Plan: open a *.quant.yaml plan in the editor first.');
      }
      return tell(`Export Plan: ${vscode.workspace.asRelativePath(doc.uri)} — plan exporters are ${NOT_YET}.`);
    }),
    register('quantlens.refreshExplorer', 'Refresh', () => explorer.refresh()),
    register('quantlens.showLog', 'Show Log', async () => log.show(true)),
  ];
}
