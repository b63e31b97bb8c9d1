// Finds the models in the workspace: which files and folders the Sensitivity Explorer lists.
import * as path from 'node:path';
import * as vscode from 'vscode';

/** Weight files a checkpoint can live in (the server sniffs the bytes; the extension is only a hint). */
export const WEIGHT_GLOB = '**/*.{safetensors,onnx,gguf,bin,pt,pth}';
export const CONFIG_GLOB = '**/config.json';
export const EXCLUDE = '**/{node_modules,.git,.venv,venv,__pycache__,.cache}/**';
/** Per workspace: enough for real model zoos, bounded so a huge tree cannot stall the window. */
const MAX_FILES = 5000;
/** An HF config.json is a few KiB; anything far larger is some other JSON. */
const MAX_CONFIG_BYTES = 1 << 20;

export interface ModelEntry {
  /** What the server opens: a model folder (safetensors/bin shards + config) or a single file. */
  uri: vscode.Uri;
  label: string;
  kind: 'folder' | 'file' | 'config';
}

/** Shards of one checkpoint share a folder; ONNX, GGUF and PyTorch files are models on their own. */
const FOLDER_FORMATS = /\.(safetensors|bin)$/;

export async function findModels(token?: vscode.CancellationToken): Promise<ModelEntry[]> {
  const [weights, configs] = await Promise.all([
    vscode.workspace.findFiles(WEIGHT_GLOB, EXCLUDE, MAX_FILES, token),
    vscode.workspace.findFiles(CONFIG_GLOB, EXCLUDE, MAX_FILES, token),
  ]);
  const models = new Map<string, ModelEntry>();
  const folders = new Set<string>();
  for (const uri of weights) {
    const entry = entryFor(uri);
    if (entry.kind === 'folder') folders.add(entry.uri.toString());
    models.set(entry.uri.toString(), entry);
  }
  // A config.json is a model of its own only without weights beside it (the folder entry attaches it).
  for (const uri of configs) {
    if (folders.has(vscode.Uri.joinPath(uri, '..').toString())) continue;
    if (await looksLikeHfConfig(uri)) models.set(uri.toString(), { uri, label: labelOf(uri), kind: 'config' });
  }
  return [...models.values()].sort((a, b) => a.label.localeCompare(b.label));
}

function labelOf(uri: vscode.Uri): string {
  const rel = vscode.workspace.asRelativePath(uri, vscode.workspace.workspaceFolders !== undefined && vscode.workspace.workspaceFolders.length > 1);
  return rel === uri.fsPath ? path.basename(uri.fsPath) : rel;
}

/** Same keys the server's config reader looks for; other config.json files (tools, apps) are skipped. */
async function looksLikeHfConfig(uri: vscode.Uri): Promise<boolean> {
  try {
    if ((await vscode.workspace.fs.stat(uri)).size > MAX_CONFIG_BYTES) return false;
    const text = new TextDecoder().decode(await vscode.workspace.fs.readFile(uri));
    return /"(architectures|model_type|hidden_size|num_hidden_layers)"\s*:/.test(text);
  } catch {
    return false;
  }
}

/** The model a file belongs to: its own entry, or the folder entry holding it. */
export function modelFor(models: readonly ModelEntry[], uri: vscode.Uri): ModelEntry | undefined {
  const key = uri.toString();
  const dir = vscode.Uri.joinPath(uri, '..').toString();
  return models.find((m) => m.uri.toString() === key) ?? models.find((m) => m.kind === 'folder' && m.uri.toString() === dir);
}

/** The entry discovery would make for a file it has not listed (yet): shards open as their folder. */
export function entryFor(uri: vscode.Uri): ModelEntry {
  if (FOLDER_FORMATS.test(uri.path)) {
    const dir = vscode.Uri.joinPath(uri, '..');
    return { uri: dir, label: labelOf(dir), kind: 'folder' };
  }
  return { uri, label: labelOf(uri), kind: /(^|\/)config\.json$/.test(uri.path) ? 'config' : 'file' };
}
