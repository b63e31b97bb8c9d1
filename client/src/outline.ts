// The model outline: a binary checkpoint opened in the editor shows as read-only text (blocks → layers, from the
// server's quantlens/inspect), with code lenses carrying each layer's sensitivity and bits and the layer under the
// cursor available to Quantize Layer and Reveal in Plan. Binary files open here through a custom editor that hands
// over to the text document.
import * as vscode from 'vscode';
import type { InspectResult } from '../../server/src/protocol';
import { modelOutline, type OutlineLayer } from '../../server/src/lsp/outline';
import type { SensitivityExplorer } from './explorer';
import { entryFor, modelFor, type ModelEntry } from './models';

export const OUTLINE_SCHEME = 'quantlens-outline';
export const OUTLINE_EDITOR = 'quantlens.outline';

const BAND_WORDS = ['most sensitive quarter', 'second quarter', 'third quarter', 'least sensitive quarter'];

/** `quantlens-outline:/…/model.safetensors.outline?<file URI>`: the title names the file; the query is the file. */
export function outlineUri(file: vscode.Uri): vscode.Uri {
  return vscode.Uri.from({ scheme: OUTLINE_SCHEME, path: `${file.path}.outline`, query: file.toString() });
}

export class OutlineProvider implements vscode.TextDocumentContentProvider, vscode.CodeLensProvider, vscode.Disposable {
  private readonly outlines = new Map<string, { model: ModelEntry; byLine: Map<number, OutlineLayer> }>();
  private readonly lensesChanged = new vscode.EventEmitter<void>();
  readonly onDidChangeCodeLenses = this.lensesChanged.event;
  private readonly sub: vscode.Disposable;

  constructor(
    private readonly explorer: SensitivityExplorer,
    private readonly inspect: (m: ModelEntry) => Promise<InspectResult>,
  ) {
    // New scores (an analysis finished, a restart recovered one) change the lenses.
    this.sub = explorer.onDidChangeTreeData(() => this.lensesChanged.fire());
  }

  /** The model an outline document shows: the explorer's entry when listed (folders of shards), else the file's own. */
  modelOf(uri: vscode.Uri): ModelEntry {
    const file = vscode.Uri.parse(uri.query, true);
    return modelFor(this.explorer.models, file) ?? entryFor(file);
  }

  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    const model = this.modelOf(uri);
    try {
      const outline = modelOutline(await this.inspect(model));
      this.outlines.set(uri.toString(), { model, byLine: new Map(outline.layers.map((l) => [l.line, l])) });
      return outline.text;
    } catch (e) {
      this.outlines.delete(uri.toString());
      return `QuantLens could not read ${model.label}:\n\n${e instanceof Error ? e.message : String(e)}\n`;
    }
  }

  /** The layer on a line of an outline document (undefined for headers, totals and other documents). */
  layerAt(uri: vscode.Uri, line: number): { model: ModelEntry; layer: OutlineLayer } | undefined {
    const o = this.outlines.get(uri.toString());
    const layer = o?.byLine.get(line);
    return o && layer && { model: o.model, layer };
  }

  provideCodeLenses(doc: vscode.TextDocument): vscode.CodeLens[] {
    const o = this.outlines.get(doc.uri.toString());
    if (!o) return [];
    const modelArg = o.model.uri.toString();
    const top = new vscode.Range(0, 0, 0, 0);
    const lenses: vscode.CodeLens[] = [];
    let scored = 0;
    for (const l of o.byLine.values()) {
      const at = new vscode.Range(l.line, 0, l.line, 0);
      const s = this.explorer.layerScore(o.model.uri, l.block, l.layer);
      if (s) {
        scored++;
        const sqnr = s.score.sqnrDb === null ? 'exact' : `SQNR ${s.score.sqnrDb.toFixed(1)} dB`;
        const title = `${sqnr} at ${s.format} · ${s.score.bits.toFixed(2)} bits/w · ${BAND_WORDS[s.score.band]}`;
        lenses.push(new vscode.CodeLens(at, { title, command: 'quantlens.showInExplorer', arguments: [modelArg, l.tensors] }));
      }
      lenses.push(new vscode.CodeLens(at, { title: 'Quantize Layer', command: 'quantlens.quantizeLayer', arguments: [modelArg, l.tensors] }));
      lenses.push(new vscode.CodeLens(at, { title: 'Reveal in Plan', command: 'quantlens.revealInPlan', arguments: [modelArg, l.tensors, l.path] }));
    }
    if (scored === 0) lenses.unshift(new vscode.CodeLens(top, { title: 'Not analyzed — Analyze Sensitivity', command: 'quantlens.analyzeSensitivity', arguments: [modelArg] }));
    return lenses;
  }

  dispose(): void {
    this.sub.dispose();
    this.lensesChanged.dispose();
  }
}

/**
 * Binary checkpoints open as their outline: the custom editor VS Code picks for them opens the text document in
 * its place and closes itself (its webview never shows anything).
 */
export class OutlineEditor implements vscode.CustomReadonlyEditorProvider {
  openCustomDocument(uri: vscode.Uri): vscode.CustomDocument {
    return { uri, dispose: () => undefined };
  }

  async resolveCustomEditor(doc: vscode.CustomDocument, panel: vscode.WebviewPanel): Promise<void> {
    const column = panel.viewColumn;
    panel.dispose();
    await vscode.window.showTextDocument(outlineUri(doc.uri), { viewColumn: column, preview: false });
  }
}

export function registerOutline(provider: OutlineProvider): vscode.Disposable[] {
  return [
    provider,
    vscode.workspace.registerTextDocumentContentProvider(OUTLINE_SCHEME, provider),
    vscode.languages.registerCodeLensProvider({ scheme: OUTLINE_SCHEME }, provider),
    vscode.window.registerCustomEditorProvider(OUTLINE_EDITOR, new OutlineEditor(), { supportsMultipleEditorsPerDocument: true }),
  ];
}
