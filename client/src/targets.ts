// What a command acts on: a tree item, a file from a menu, the token under the cursor, or a quick pick.
import * as vscode from 'vscode';
import type { InspectResult } from '../../server/src/protocol';
import { layerPath } from '../../server/src/formats/layers';
import { layerName, type ExplorerNode, type SensitivityExplorer } from './explorer';
import { entryFor, modelFor, type ModelEntry } from './models';

/** Tensor/layer names and plan patterns: `model.layers.3.self_attn.q_proj`, `blk.*.ffn_up`, `/conv1/Conv`. */
const NAME_AT_CURSOR = /[A-Za-z0-9_.*\-/:]+/;
const PARAM_SUFFIX = /\.(weight|bias|qweight|scales|qzeros)$/;

/** `layer`: what a job quantizes (a tensor or node name, or a plan pattern); `tensors`/`path`: the layer's tensors and name, when known. */
export type Target = { model?: ModelEntry; layer?: string; tensors?: string[]; path?: string };

/** The layer on the cursor's line of a model outline (see outline.ts). */
export type OutlineLookup = (uri: vscode.Uri, line: number) => { model: ModelEntry; layer: { path: string; tensors: string[] } } | undefined;

/**
 * Arguments of the language server's code lenses: URIs arrive as strings (`file:///…`), tensor names as a string
 * array. Anything else (tree nodes, Uri objects from menus) yields nothing here and is resolved as before.
 */
export function lensArgs(first: unknown, second?: unknown): { uri?: vscode.Uri; tensors?: string[] } {
  const uri = typeof first === 'string' && /^[a-z][a-z0-9+.-]*:/i.test(first) ? vscode.Uri.parse(first, true) : undefined;
  const tensors = Array.isArray(second) && second.every((t) => typeof t === 'string') ? (second as string[]) : undefined;
  return { uri, tensors };
}

function isNode(arg: unknown): arg is ExplorerNode {
  return typeof arg === 'object' && arg !== null && 'kind' in arg && typeof (arg as ExplorerNode).kind === 'string' && !(arg instanceof vscode.Uri);
}

/** The model a command argument (tree node, URI from a menu) or the active editor points at; asks when ambiguous. */
export async function resolveModel(explorer: SensitivityExplorer, arg: unknown, verb: string): Promise<ModelEntry | undefined> {
  if (isNode(arg)) return arg.kind === 'model' ? arg.entry : arg.kind === 'message' ? arg.parent.entry : arg.model.entry;
  const uri = arg instanceof vscode.Uri ? arg : vscode.window.activeTextEditor?.document.uri;
  if (uri) {
    const known = modelFor(explorer.models, uri);
    if (known) return known;
    // A file the explorer did not list (outside the globs, or found before it was written): still try it.
    if (arg instanceof vscode.Uri && uri.scheme === 'file') return entryFor(uri);
  }
  const models = explorer.models;
  if (models.length === 1) return models[0];
  if (models.length === 0) {
    // Nothing discovered: let the user point at a checkpoint anywhere on disk.
    const picked = await vscode.window.showOpenDialog({
      title: `${verb}: choose a checkpoint file or model folder`,
      canSelectFiles: true,
      canSelectFolders: true,
      canSelectMany: false,
      filters: { Checkpoints: ['safetensors', 'onnx', 'gguf', 'bin', 'pt', 'pth', 'json'] },
    });
    return picked?.[0] && entryFor(picked[0]);
  }
  const pick = await vscode.window.showQuickPick(
    models.map((m) => ({ label: m.label, model: m })),
    { title: verb, placeHolder: 'Which model?' },
  );
  return pick?.model;
}

/** The layer a command acts on: a layer tree item, or the name under the cursor, or a pick from the model's layers. */
export async function resolveLayer(
  explorer: SensitivityExplorer,
  arg: unknown,
  inspect: (m: ModelEntry) => Promise<InspectResult>,
  outlineAt?: OutlineLookup,
): Promise<Target | undefined> {
  if (isNode(arg) && arg.kind === 'layer') return { model: arg.model.entry, layer: layerName(arg), tensors: arg.layer.tensors, path: layerName(arg) };
  const editor = vscode.window.activeTextEditor;
  const outlined = editor && outlineAt?.(editor.document.uri, editor.selection.active.line);
  if (outlined) return { model: outlined.model, layer: outlined.layer.tensors[0], tensors: outlined.layer.tensors, path: outlined.layer.path };
  const uri = arg instanceof vscode.Uri ? arg : editor?.document.uri;
  const model = uri ? modelFor(explorer.models, uri) : undefined;
  if (editor && uri && editor.document.uri.toString() === uri.toString()) {
    const name = nameAtCursor(editor);
    if (name && (editor.document.languageId === 'quantplan' || looksLikeLayer(name))) return { model, layer: name };
  }
  const target = model ?? (await resolveModel(explorer, isNode(arg) ? arg : undefined, 'Quantize Layer'));
  if (!target) return undefined;
  const result = await inspect(target);
  if (!result.layers.length) {
    void vscode.window.showInformationMessage(`Quantize Layer: ${target.label} holds no weights (${result.format}), so it has no layer to quantize.`);
    return undefined;
  }
  const pick = await vscode.window.showQuickPick(
    result.layers.map((l) => {
      return { label: layerPath(l), description: `${l.params.toLocaleString('en-US')} params` };
    }),
    { title: `Quantize Layer — ${target.label}`, placeHolder: 'Which layer?', matchOnDescription: true },
  );
  return pick && { model: target, layer: pick.label };
}

function nameAtCursor(editor: vscode.TextEditor): string | undefined {
  const range = editor.document.getWordRangeAtPosition(editor.selection.active, NAME_AT_CURSOR);
  const text = range ? editor.document.getText(range).replace(/:$/, '') : '';
  return text ? text.replace(PARAM_SUFFIX, '') : undefined;
}

/** Dotted or slashed paths name layers; bare JSON keys like `hidden_size` do not. */
function looksLikeLayer(name: string): boolean {
  return /[./]/.test(name) && /[A-Za-z]/.test(name);
}
