// QuantLens extension entry: starts the language server, the Sensitivity Explorer, commands and status.
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import { inspectModel, registerCommands, showError } from './commands';
import { SensitivityExplorer } from './explorer';
import { createLanguageClient, describeError } from './languageClient';
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
    ...registerCommands({ client: lc, explorer, view, log, extensionUri: context.extensionUri }),
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

export async function deactivate(): Promise<void> {
  await client?.stop();
  client = undefined;
}
