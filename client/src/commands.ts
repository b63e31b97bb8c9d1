// Command handlers. Engines that land later (analysis, jobs, reports, exporters) say so plainly: never fake success.
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import { Requests, type InspectResult } from '../../server/src/protocol';
import type { ExplorerNode, SensitivityExplorer } from './explorer';
import { describeError, sendRequest } from './languageClient';
import type { ModelEntry } from './models';
import { inspectMarkdown } from './report';
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
      if (model) return tell(`Analyze Sensitivity: ${model.label} — sensitivity analysis is ${NOT_YET}.`);
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
