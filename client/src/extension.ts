// QuantLens extension entry: starts the language server, the Sensitivity Explorer, commands and status.
import * as vscode from 'vscode';
import { State, type LanguageClient } from 'vscode-languageclient/node';
import { inspectModel, registerCommands, showError } from './commands';
import { Requests } from '../../server/src/protocol';
import { SensitivityExplorer } from './explorer';
import { createLanguageClient, describeError, sendRequest } from './languageClient';
import { OutlineProvider, registerOutline } from './outline';
import { analysisSettings } from './settings';
import { CONFIG_GLOB, WEIGHT_GLOB } from './models';
import { createStatus } from './status';

let client: LanguageClient | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const log = vscode.window.createOutputChannel('QuantLens', { log: true });
  context.subscriptions.push(log);
  client = createLanguageClient(context, log);
  const lc = client;

  const explorer = new SensitivityExplorer((entry) => inspectModel(lc, entry));
  const view = vscode.window.createTreeView('quantlens.explorer', { treeDataProvider: explorer, showCollapseAll: true });
  const outline = new OutlineProvider(explorer, (entry) => inspectModel(lc, entry));
  const onState = () => {
    void vscode.commands.executeCommand('setContext', 'quantlens.explorerState', explorer.state);
    // viewsWelcome only shows in an empty tree, so "not analyzed yet" rides on the view message.
    view.message = explorer.state === 'found' && !explorer.analyzed ? 'Not analyzed yet — run Analyze Sensitivity to score the layers.' : undefined;
  };
  context.subscriptions.push(
    explorer,
    view,
    explorer.onDidChangeState(onState),
    explorer.onDidChangeTreeData(onState),
    ...registerCommands({ client: lc, explorer, view, log, outline, extensionUri: context.extensionUri }),
    ...registerOutline(outline),
    recoverAfterRestart(lc, explorer, log),
    createStatus(lc, explorer),
  );
  void vscode.commands.executeCommand('setContext', 'quantlens.sort', explorer.sort);

  // Model files come and go (downloads, exports): re-discover, debounced.
  let timer: NodeJS.Timeout | undefined;
  const later = () => {
    clearTimeout(timer);
    timer = setTimeout(() => void explorer.refresh(), 500);
  };
  for (const glob of [WEIGHT_GLOB, CONFIG_GLOB]) {
    const w = vscode.workspace.createFileSystemWatcher(glob);
    context.subscriptions.push(w, w.onDidCreate(later), w.onDidDelete(later), w.onDidChange(later));
  }
  context.subscriptions.push(vscode.workspace.onDidChangeWorkspaceFolders(later), { dispose: () => clearTimeout(timer) });

  onState();
  void explorer.refresh();
  try {
    await lc.start();
  } catch (e) {
    void showError(log, `QuantLens language server failed to start: ${describeError(e)}`);
  }
}

/**
 * After the client restarted a dead server: the explorer lists and reads the models again, and the models it had
 * scored are scored again from the server's on-disk analysis cache (a cache hit: no analysis runs again; with no
 * cache, as in restricted mode, they stay unscored until analyzed).
 */
function recoverAfterRestart(client: LanguageClient, explorer: SensitivityExplorer, log: vscode.LogOutputChannel): vscode.Disposable {
  let ranBefore = false;
  return client.onDidChangeState(async ({ newState }) => {
    if (newState !== State.Running) return;
    if (!ranBefore) {
      ranBefore = true;
      return;
    }
    log.info('QuantLens language server restarted: reading the models again.');
    const scored = explorer.analyzedModels;
    explorer.forgetAnalyses();
    await explorer.refresh();
    const { formats, cacheDir } = analysisSettings();
    if (cacheDir === '') return;
    for (const model of scored) {
      try {
        const r = await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: `QuantLens: restoring the scores of ${model.label}` }, () =>
          sendRequest(client, Requests.analyze, { path: model.uri.fsPath, formats, cacheDir }),
        );
        explorer.setAnalysis(model.uri, r.report);
        log.info(`${model.label}: scores restored (${r.cache === 'hit' ? 'from the analysis cache' : `analyzed again in ${(r.ms / 1000).toFixed(1)} s`}).`);
      } catch (e) {
        log.warn(`${model.label}: scores not restored: ${describeError(e)}`);
      }
    }
  });
}

export async function deactivate(): Promise<void> {
  await client?.stop();
  client = undefined;
}
