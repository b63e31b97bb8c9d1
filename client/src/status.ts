// Read-only status bar entry: language server state and how many models the explorer found.
import * as vscode from 'vscode';
import { State, type LanguageClient } from 'vscode-languageclient/node';
import type { SensitivityExplorer } from './explorer';

export function createStatus(client: LanguageClient, explorer: SensitivityExplorer): vscode.Disposable {
  const item = vscode.window.createStatusBarItem('quantlens.status', vscode.StatusBarAlignment.Left, 0);
  item.name = 'QuantLens';
  item.command = 'quantlens.showLog';
  const update = () => {
    const server = client.state === State.Running ? 'running' : client.state === State.Starting ? 'starting' : 'stopped';
    const n = explorer.models.length;
    const models = explorer.state === 'searching' ? 'looking for models…' : `${n} model${n === 1 ? '' : 's'}`;
    item.text = `${server === 'stopped' ? '$(warning)' : '$(layers)'} QuantLens: ${models}`;
    item.tooltip = `QuantLens language server: ${server}. Click to show the log.`;
    item.backgroundColor = server === 'stopped' && client.state !== State.Starting ? new vscode.ThemeColor('statusBarItem.warningBackground') : undefined;
  };
  update();
  item.show();
  return vscode.Disposable.from(item, client.onDidChangeState(update), explorer.onDidChangeState(update));
}
