// Command handlers. Engines that land later (analysis, jobs, reports, exporters) say so plainly: never fake success.
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import { Requests, type AnalyzeResponse, type InspectResult } from '../../server/src/protocol';
import { layerName, type ExplorerNode, type LayerNode, type SensitivityExplorer, type SortOrder } from './explorer';
import { describeError, restarts, sendRequest, withRequestProgress } from './languageClient';
import { entryFor, modelFor, type ModelEntry } from './models';
import { outlineUri, type OutlineProvider } from './outline';
import { ReportPanel, type PanelHost } from './panel';
import { exportActivePlan, planFor, quantizeWithPlan, reportQuantized, revealInPlan } from './planCommands';
import { analysisMarkdown, inspectMarkdown } from './report';
import { analysisSettings } from './settings';
import { lensArgs, resolveLayer, resolveModel } from './targets';

export interface CommandContext {
  client: LanguageClient;
  outline: OutlineProvider;
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

/** Failures surface as notifications with a way to the log, which holds the details. */
export async function showError(log: vscode.LogOutputChannel, message: string): Promise<void> {
  log.error(message);
  if ((await vscode.window.showErrorMessage(message, 'Show Log')) === 'Show Log') log.show(true);
}

const isPlanUri = (uri: vscode.Uri) => /\.quant\.ya?ml$/i.test(uri.path);

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
  const outlineAt = (uri: vscode.Uri, line: number) => ctx.outline.layerAt(uri, line);
  /** The model a lens is about: a plan lens's plan names it; other lenses pass the model itself. */
  const lensModel = async (uri: vscode.Uri): Promise<ModelEntry | undefined> => {
    if (!isPlanUri(uri)) return modelFor(explorer.models, uri) ?? entryFor(uri);
    const plan = await planFor(client, undefined, uri);
    return plan && modelEntry(plan.modelPath);
  };
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
    reveal: async (modelPath, tensor) => {
      const uri = vscode.Uri.file(modelPath);
      await showInExplorer(ctx, tensor, uri);
      // The rule deciding it, in a plan already on screen (a click never opens files).
      await revealInPlan(client, { model: modelEntry(modelPath), tensors: [tensor], path: tensor }, { visibleOnly: true });
    },
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
      const target = lens.tensors?.length ? { layer: lens.tensors[0], model: lens.uri && (await lensModel(lens.uri)) } : await resolveLayer(explorer, arg, inspect, outlineAt);
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
      ReportPanel.refreshJobs(model.uri.fsPath);
      const d = result.delta;
      const sqnr = Number.isFinite(d.sqnrDb) ? `${d.sqnrDb.toFixed(1)} dB` : 'exact';
      return tell(
        `Quantize Layer: ${result.layer} → ${result.format}${result.simulated ? ' (simulated)' : ''} on ${result.executionProvider}: ` +
          `KL +${d.kl.toExponential(2)}, top-1 ${(d.top1 * 100).toFixed(2)} %, output SQNR ${sqnr} · ${vscode.workspace.asRelativePath(result.output)}`,
      );
    }),
    // The plan at hand names its model: a lens's [modelUri, planUri], a plan file from a menu, the plan in the
    // editor; otherwise the model is chosen first (explorer, pick), then a plan naming it.
    register('quantlens.quantizeModel', 'Quantize Model', async (arg, planArg) => {
      if (needsTrust('Quantize Model')) return;
      const active = vscode.window.activeTextEditor?.document;
      const given = lensArgs(planArg).uri ?? (arg instanceof vscode.Uri && isPlanUri(arg) ? arg : arg === undefined && active?.languageId === 'quantplan' ? active.uri : undefined);
      const model = given ? undefined : await resolveModel(explorer, lensArgs(arg).uri ?? arg, 'Quantize Model');
      if (!given && !model) return;
      const plan = await planFor(client, model, given);
      if (!plan) return tell(`Quantize Model: no plan that resolves against ${model?.label ?? 'its model'} — write a *.quant.yaml with \`model:\` pointing at it.`);
      if (!/\.onnx$/i.test(plan.modelPath)) {
        return tell(`Quantize Model: ${path.basename(plan.modelPath)} is not an ONNX model; quantize-and-evaluate jobs run ONNX models (Export Plan writes configs for llama.cpp, GPTQModel and others).`);
      }
      const result = await quantizeWithPlan(client, plan.modelPath, plan.doc);
      if (!result) return tell(`Quantize Model: ${path.basename(plan.modelPath)} — cancelled; no file was written.`);
      ReportPanel.refreshJobs(plan.modelPath);
      void reportQuantized(result, log);
      return result;
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
      const tensor = await explorer.layerMatrix(arg);
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
    register('quantlens.exportPlan', 'Export Plan', async (arg) => {
      if (needsTrust('Export Plan')) return;
      const planArg = arg instanceof vscode.Uri ? arg : lensArgs(arg).uri;
      return exportActivePlan(client, log, planArg);
    }),
    // From an explorer layer, an outline layer line or lens ([modelUri, tensors, layerPath]), or the cursor.
    register('quantlens.revealInPlan', 'Reveal in Plan', async (arg, names, layerPath) => {
      const lens = lensArgs(arg, names);
      const model = lens.uri && (await lensModel(lens.uri));
      const target = lens.tensors?.length && model
        ? { model, tensors: lens.tensors, path: typeof layerPath === 'string' ? layerPath : lens.tensors[0] }
        : await resolveLayer(explorer, arg, inspect, outlineAt);
      if (!target?.model) return;
      const tensors = target.tensors ?? (target.layer ? [target.layer] : []);
      if (!tensors.length) return;
      const message = await revealInPlan(client, { model: target.model, tensors, path: target.path ?? tensors[0] });
      if (message) log.info(message);
      return message;
    }),
    register('quantlens.openOutline', 'Open Model Outline', async (arg) => {
      const model = await resolveModel(explorer, arg, 'Open Model Outline');
      if (!model) return;
      // A folder of shards opens as its first weight file's outline (the outline reads the whole folder).
      const file = model.kind === 'folder' ? (await vscode.workspace.findFiles(new vscode.RelativePattern(model.uri, '*.{safetensors,bin}'), null, 1))[0] : model.uri;
      if (!file) return tell(`Open Model Outline: ${model.label} holds no weight file.`);
      await vscode.window.showTextDocument(outlineUri(file), { preview: false });
    }),
    register('quantlens.restartServer', 'Restart Language Server', async () => {
      restarts.reset();
      await (client.isRunning() ? client.restart() : client.start());
    }),
    register('quantlens.refreshExplorer', 'Refresh', () => explorer.refresh()),
    register('quantlens.showLog', 'Show Log', async () => log.show(true)),
    ReportPanel.registerSerializer(panelHost),
  ];
}
