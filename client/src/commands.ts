// Command handlers. Engines that land later (analysis, jobs, reports, exporters) say so plainly: never fake success.
import * as vscode from 'vscode';
import { WorkDoneProgress, type LanguageClient } from 'vscode-languageclient/node';
import { Requests, type AnalyzeResponse, type InspectResult } from '../../server/src/protocol';
import { layerName, type ExplorerNode, type LayerNode, type SensitivityExplorer, type SortOrder } from './explorer';
import { describeError, isCancelled, sendRequest } from './languageClient';
import { entryFor, modelFor, type ModelEntry } from './models';
import { ReportPanel, type PanelHost } from './panel';
import { analysisMarkdown, inspectMarkdown } from './report';
import { analysisSettings } from './settings';
import { lensArgs, resolveLayer, resolveModel } from './targets';

export interface CommandContext {
  client: LanguageClient;
  explorer: SensitivityExplorer;
  view: vscode.TreeView<ExplorerNode>;
  log: vscode.LogOutputChannel;
  extensionUri: vscode.Uri;
}

export function inspectModel(client: LanguageClient, model: ModelEntry): Promise<InspectResult> {
  if (model.uri.scheme !== 'file') return Promise.reject(new Error(`${model.label}: only files on disk can be read (got ${model.uri.scheme}:)`));
  return sendRequest(client, Requests.inspect, { path: model.uri.fsPath });
}


/**
 * Data-free analysis of a model on the server, shown as a cancellable notification fed by the server's `$/progress`.
 * Resolves undefined when the user cancels.
 */
export async function analyzeModel(client: LanguageClient, model: ModelEntry): Promise<AnalyzeResponse | undefined> {
  if (model.uri.scheme !== 'file') throw new Error(`${model.label}: only files on disk can be read (got ${model.uri.scheme}:)`);
  const { formats, cacheDir } = analysisSettings();
  return withRequestProgress(client, `QuantLens: analyzing ${model.label}`, (workDoneToken, cancel) =>
    sendRequest(client, Requests.analyze, { path: model.uri.fsPath, formats, cacheDir, workDoneToken }, cancel),
  );
}

let progressTokens = 0;

/**
 * A long server request behind a cancellable notification fed by the server's `$/progress` on a fresh token.
 * Resolves undefined when the user cancels (the server answers RequestCancelled and writes nothing).
 */
async function withRequestProgress<R>(
  client: LanguageClient,
  title: string,
  send: (workDoneToken: string, cancel: vscode.CancellationToken) => Promise<R>,
): Promise<R | undefined> {
  return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, async (progress, cancel) => {
    const workDoneToken = `quantlens-${++progressTokens}`;
    let shown = 0;
    const sub = client.onProgress(WorkDoneProgress.type, workDoneToken, (v) => {
      if (v.kind !== 'report') return;
      const pct = v.percentage ?? shown;
      progress.report({ increment: pct - shown, message: v.message });
      shown = pct;
    });
    try {
      return await send(workDoneToken, cancel);
    } catch (e) {
      if (isCancelled(e)) return undefined;
      throw e;
    } finally {
      sub.dispose();
    }
  });
}

/** Failures surface as notifications with a way to the log, which holds the details. */
export async function showError(log: vscode.LogOutputChannel, message: string): Promise<void> {
  log.error(message);
  if ((await vscode.window.showErrorMessage(message, 'Show Log')) === 'Show Log') log.show(true);
}

const NOT_YET = 'not available in this build yet';


const isLayerNode = (arg: unknown): arg is LayerNode => typeof arg === 'object' && arg !== null && (arg as ExplorerNode).kind === 'layer';

/** Selects a tensor's layer in the Sensitivity Explorer (of `modelUri`'s model, else of the first model that has it). */
async function showInExplorer(ctx: CommandContext, tensor: string, modelUri?: vscode.Uri): Promise<boolean> {
  const node = await ctx.explorer.layerNodeFor(tensor, modelUri);
  if (!node) return false;
  await vscode.commands.executeCommand('quantlens.explorer.focus');
  await ctx.view.reveal(node, { select: true, focus: false, expand: true });
  return true;
}

export function registerCommands(ctx: CommandContext): vscode.Disposable[] {
  const { client, explorer, log } = ctx;
  const inspect = (m: ModelEntry) => inspectModel(client, m);
  /** Analysis for the panel and the explorer: every finished analysis scores the explorer's layers. */
  const analyze = async (model: ModelEntry): Promise<AnalyzeResponse | undefined> => {
    const result = await analyzeModel(client, model);
    if (result) explorer.setAnalysis(model.uri, result.report);
    return result;
  };
  const modelEntry = (path: string) => {
    const uri = vscode.Uri.file(path);
    return explorer.nodeFor(uri)?.entry ?? modelFor(explorer.models, uri) ?? entryFor(uri);
  };
  const panelHost: PanelHost = {
    extensionUri: ctx.extensionUri,
    client,
    log,
    analyze: async (m) => (await analyze(modelEntry(m.path)))?.report,
    reveal: async (modelPath, tensor) => void (await showInExplorer(ctx, tensor, vscode.Uri.file(modelPath))),
  };
  /** Shows an information message, logs it, and returns its text (command results make the handlers testable). */
  const tell = (message: string): string => {
    log.info(message);
    void vscode.window.showInformationMessage(message);
    return message;
  };
  const guarded =
    (title: string, run: (...args: unknown[]) => Promise<unknown>) =>
    async (...args: unknown[]): Promise<unknown> => {
      try {
        return await run(...args);
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
  const register = (id: string, title: string, run: (...args: unknown[]) => Promise<unknown>) =>
    vscode.commands.registerCommand(id, guarded(title, run));
  const sortBy = (order: SortOrder) => async () => {
    explorer.setSort(order);
    await vscode.commands.executeCommand('setContext', 'quantlens.sort', order);
  };

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
    // Lens arguments (language server): [modelUri] for Analyze and Open Report.
    register('quantlens.analyzeSensitivity', 'Analyze Sensitivity', async (arg) => {
      const model = await resolveModel(explorer, lensArgs(arg).uri ?? arg, 'Analyze Sensitivity');
      if (!model) return;
      const result = await analyze(model);
      if (!result) return tell(`Analyze Sensitivity: ${model.label} — cancelled.`);
      if (model.uri.scheme === 'file') ReportPanel.show(panelHost, { path: model.uri.fsPath, label: model.label }, result.report);
      const how = result.cache === 'hit' ? 'from the analysis cache' : `in ${(result.ms / 1000).toFixed(1)} s`;
      void vscode.window.showInformationMessage(`Analyzed ${model.label}: ${result.report.layers.length} layers ${how}.`, 'Show Table').then(async (pick) => {
        if (pick !== 'Show Table') return;
        const doc = await vscode.workspace.openTextDocument({ language: 'markdown', content: analysisMarkdown(model.label, result) });
        await vscode.window.showTextDocument(doc, { preview: false });
      });
      return result;
    }),
    // Lens arguments: [planUri, tensorNames[]].
    // Lens arguments: [planUri, tensorNames]; otherwise the layer under the cursor, an explorer layer, or a pick.
    register('quantlens.quantizeLayer', 'Quantize Layer', async (arg, names) => {
      if (needsTrust('Quantize Layer')) return;
      const lens = lensArgs(arg, names);
      const target = lens.tensors?.length ? { layer: lens.tensors[0], model: lens.uri && modelFor(explorer.models, lens.uri) } : await resolveLayer(explorer, arg, inspect);
      if (!target?.layer) return;
      const model = target.model;
      if (!model || model.uri.scheme !== 'file' || !/\.onnx$/i.test(model.uri.fsPath)) {
        const why = model ? `; ${model.label} is not an ONNX model (Export Plan writes configs for llama.cpp, GPTQModel and others)` : '';
        return tell(`Quantize Layer: ${target.layer} — quantize-and-evaluate jobs run ONNX models through onnxruntime${why}.`);
      }
      const format = await vscode.window.showQuickPick(analysisSettings().formats ?? [], { title: `Quantize ${target.layer} to…`, placeHolder: 'Number format' });
      if (!format) return;
      const result = await withRequestProgress(client, `QuantLens: quantizing ${target.layer} to ${format}`, (workDoneToken, cancel) =>
        sendRequest(client, Requests.quantizeLayer, { model: model.uri.fsPath, layer: target.layer!, format, workDoneToken }, cancel),
      );
      if (!result) return tell(`Quantize Layer: ${target.layer} — cancelled; no file was written.`);
      const d = result.delta;
      const sqnr = Number.isFinite(d.sqnrDb) ? `${d.sqnrDb.toFixed(1)} dB` : 'exact';
      return tell(
        `Quantize Layer: ${result.layer} → ${result.format}${result.simulated ? ' (simulated)' : ''} on ${result.executionProvider}: ` +
          `KL +${d.kl.toExponential(2)}, top-1 ${(d.top1 * 100).toFixed(2)} %, output SQNR ${sqnr} · ${vscode.workspace.asRelativePath(result.output)}`,
      );
    }),
    // Lens arguments: [modelUri, planUri].
    register('quantlens.quantizeModel', 'Quantize Model', async (arg, planArg) => {
      if (needsTrust('Quantize Model')) return;
      const model = await resolveModel(explorer, lensArgs(arg).uri ?? arg, 'Quantize Model');
      const plan = lensArgs(planArg).uri;
      const with_ = plan ? ` with ${vscode.workspace.asRelativePath(plan)}` : '';
      if (model) return tell(`Quantize Model: ${model.label}${with_} — quantization jobs are ${NOT_YET}.`);
    }),
    register('quantlens.openReport', 'Open Report', async (arg) => {
      const model = await resolveModel(explorer, lensArgs(arg).uri ?? arg, 'Open Report');
      if (!model) return;
      if (model.uri.scheme !== 'file') throw new Error(`${model.label}: only files on disk can be read (got ${model.uri.scheme}:)`);
      ReportPanel.show(panelHost, { path: model.uri.fsPath, label: model.label });
    }),
    // Lens arguments: [planUri, tensorNames[]]; from the tree or the editor: the layer at hand.
    register('quantlens.showInExplorer', 'Show in Explorer', async (arg, names) => {
      const lens = lensArgs(arg, names);
      const tensor = lens.tensors?.[0] ?? (await resolveLayer(explorer, arg, inspect))?.layer;
      if (!tensor) return;
      if (!(await showInExplorer(ctx, tensor))) return tell(`Show in Explorer: no model in the Sensitivity Explorer has ${tensor}.`);
    }),
    register('quantlens.showHeatmap', 'Show Heatmap', async (arg) => {
      if (!isLayerNode(arg)) return;
      const model = arg.model.entry;
      if (model.uri.scheme !== 'file') throw new Error(`${model.label}: only files on disk can be read (got ${model.uri.scheme}:)`);
      // The layer's weight (its largest tensor) is what the analysis scored.
      const tensor = [...arg.layer.tensors].sort((a, b) => Number(b.endsWith('weight')) - Number(a.endsWith('weight')))[0];
      ReportPanel.show(panelHost, { path: model.uri.fsPath, label: model.label }, undefined, tensor);
    }),
    register('quantlens.copyLayerName', 'Copy Name', async (arg) => {
      if (!isLayerNode(arg)) return;
      await vscode.env.clipboard.writeText(layerName(arg));
      return layerName(arg);
    }),
    register('quantlens.sortByName', 'Sort by Name', sortBy('name')),
    register('quantlens.sortBySensitivity', 'Sort by Sensitivity', sortBy('sensitivity')),
    register('quantlens.sortBySize', 'Sort by Size', sortBy('size')),
    register('quantlens.exportPlan', 'Export Plan', async () => {
      const doc = vscode.window.activeTextEditor?.document;
      if (doc?.languageId !== 'quantplan') {
        return tell('Export Plan: open a *.quant.yaml plan in the editor first.');
      }
      const rel = vscode.workspace.asRelativePath(doc.uri);
      return tell(`Export Plan: ${rel} — run \`quantlens export --to <llama.cpp|gptqmodel|hqq|ort-matmulnbits|llm-compressor|modelopt> ${rel}\`; the editor command is ${NOT_YET}.`);
    }),
    register('quantlens.refreshExplorer', 'Refresh', () => explorer.refresh()),
    register('quantlens.showLog', 'Show Log', async () => log.show(true)),
    ReportPanel.registerSerializer(panelHost),
  ];
}
