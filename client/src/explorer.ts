// The Sensitivity Explorer: models in the workspace → blocks → layers, from the server's `quantlens/inspect`.
import * as vscode from 'vscode';
import type { InspectResult } from '../../server/src/protocol';
import type { LayerSummary } from '../../server/src/formats/layers';
import { cell, formatCount } from './format';
import { findModels, type ModelEntry } from './models';

export interface ModelNode {
  kind: 'model';
  entry: ModelEntry;
}
export interface BlockNode {
  kind: 'block';
  model: ModelNode;
  block: InspectResult['blocks'][number];
}
export interface LayerNode {
  kind: 'layer';
  model: ModelNode;
  parent: ModelNode | BlockNode;
  layer: LayerSummary;
}
interface MessageNode {
  kind: 'message';
  parent: ModelNode;
  text: string;
}
export type ExplorerNode = ModelNode | BlockNode | LayerNode | MessageNode;

type Inspection = { result: InspectResult } | { error: string };
export type Inspector = (entry: ModelEntry) => Promise<InspectResult>;

/** Background inspections after discovery: header reads only, but a model zoo should not flood the server. */
const EAGER_LIMIT = 50;

export type ExplorerState = 'searching' | 'none' | 'found';

export class SensitivityExplorer implements vscode.TreeDataProvider<ExplorerNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<ExplorerNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly stateChanged = new vscode.EventEmitter<ExplorerState>();
  readonly onDidChangeState = this.stateChanged.event;
  private nodes: ModelNode[] = [];
  private readonly inspections = new Map<string, Promise<Inspection>>();
  private readonly settled = new Map<string, Inspection>();
  private generation = 0;
  state: ExplorerState = 'searching';

  constructor(private readonly inspector: Inspector) {}

  get models(): readonly ModelEntry[] {
    return this.nodes.map((n) => n.entry);
  }

  /** Re-discover models and forget every inspection (files may have changed). */
  async refresh(): Promise<void> {
    const gen = ++this.generation;
    this.setState('searching');
    const models = await findModels();
    if (gen !== this.generation) return;
    this.inspections.clear();
    this.settled.clear();
    this.nodes = models.map((entry) => ({ kind: 'model', entry }));
    this.setState(models.length ? 'found' : 'none');
    this.changed.fire(undefined);
    for (const node of this.nodes.slice(0, EAGER_LIMIT)) void this.inspect(node);
  }

  /** Cached per refresh; failures are kept as messages, never thrown into the tree. */
  inspect(node: ModelNode): Promise<Inspection> {
    const key = node.entry.uri.toString();
    let p = this.inspections.get(key);
    if (!p) {
      p = this.inspector(node.entry).then(
        (result): Inspection => ({ result }),
        (e: unknown): Inspection => ({ error: e instanceof Error ? e.message : String(e) }),
      );
      this.inspections.set(key, p);
      void p.then((i) => {
        if (this.inspections.get(key) !== p) return;
        this.settled.set(key, i);
        this.changed.fire(node);
      });
    }
    return p;
  }

  nodeFor(uri: vscode.Uri): ModelNode | undefined {
    return this.nodes.find((n) => n.entry.uri.toString() === uri.toString());
  }

  async getChildren(node?: ExplorerNode): Promise<ExplorerNode[]> {
    if (!node) return this.nodes;
    if (node.kind === 'layer' || node.kind === 'message') return [];
    const model = node.kind === 'model' ? node : node.model;
    const i = await this.inspect(model);
    if ('error' in i) return [{ kind: 'message', parent: model, text: i.error }];
    const { result } = i;
    if (node.kind === 'block') {
      return result.layers.filter((l) => l.block === node.block.block).map((layer) => ({ kind: 'layer', model, parent: node, layer }));
    }
    if (result.tensorCount === 0) return [{ kind: 'message', parent: model, text: configOnlyText(result) }];
    // One block (small CNNs, single-block graphs): the extra level would only add a click.
    if (result.blocks.length === 1) return result.layers.map((layer) => ({ kind: 'layer', model, parent: node, layer }));
    return result.blocks.map((block) => ({ kind: 'block', model, block }));
  }

  getParent(node: ExplorerNode): ExplorerNode | undefined {
    return node.kind === 'model' ? undefined : node.kind === 'block' ? node.model : node.parent;
  }

  getTreeItem(node: ExplorerNode): vscode.TreeItem {
    switch (node.kind) {
      case 'model':
        return this.modelItem(node);
      case 'block': {
        const item = new vscode.TreeItem(node.block.block, vscode.TreeItemCollapsibleState.Collapsed);
        item.id = `${node.model.entry.uri}#block:${node.block.block}`;
        item.description = `${node.block.layers} layers · ${formatCount(node.block.params)}`;
        item.iconPath = new vscode.ThemeIcon('symbol-namespace');
        item.contextValue = 'quantlens.block';
        return item;
      }
      case 'layer':
        return this.layerItem(node);
      case 'message': {
        const item = new vscode.TreeItem(node.text, vscode.TreeItemCollapsibleState.None);
        item.tooltip = node.text;
        item.iconPath = new vscode.ThemeIcon('info');
        return item;
      }
    }
  }

  private modelItem(node: ModelNode): vscode.TreeItem {
    const { entry } = node;
    const item = new vscode.TreeItem(entry.label, vscode.TreeItemCollapsibleState.Collapsed);
    item.id = entry.uri.toString();
    item.resourceUri = entry.uri;
    item.contextValue = 'quantlens.model';
    item.iconPath = new vscode.ThemeIcon(entry.kind === 'config' ? 'settings' : entry.kind === 'folder' ? 'folder-library' : 'file-binary');
    const i = this.settled.get(entry.uri.toString());
    if (!i) {
      item.description = 'reading…';
    } else if ('error' in i) {
      item.description = 'unreadable';
      item.iconPath = new vscode.ThemeIcon('error', new vscode.ThemeColor('problemsForeground'));
      item.tooltip = i.error;
    } else {
      const r = i.result;
      item.description = r.tensorCount
        ? `${r.format} · ${formatCount(r.params)} params · ${r.layers.length} layers`
        : `${r.format} · ${r.config?.numLayers ?? '?'} layers (config only)`;
      item.tooltip = new vscode.MarkdownString(
        [`**${cell(entry.label)}** — ${r.format}`, '', `${r.tensorCount} tensors, ${r.params.toLocaleString('en-US')} parameters`, '', `Not analyzed yet.`].join('\n'),
      );
    }
    return item;
  }

  private layerItem(node: LayerNode): vscode.TreeItem {
    const { layer } = node;
    const item = new vscode.TreeItem(layer.layer, vscode.TreeItemCollapsibleState.None);
    item.id = `${node.model.entry.uri}#layer:${layer.block}/${layer.layer}`;
    const i = this.settled.get(node.model.entry.uri.toString());
    const byName = i && 'result' in i ? tensorIndex(i.result) : undefined;
    const tensors = byName ? layer.tensors.map((n) => byName.get(n)).filter((t) => t !== undefined) : [];
    const dtypes = [...new Set(tensors.map((t) => t.dtype))].join('/');
    // The fused group within its block (`self_attn.qkv`): the block is already the parent node.
    const group = layer.fusedGroup?.startsWith(`${layer.block}.`) ? layer.fusedGroup.slice(layer.block.length + 1) : layer.fusedGroup;
    item.description = [formatCount(layer.params), dtypes, group ? `⊂ ${group}` : ''].filter(Boolean).join(' · ');
    item.tooltip = new vscode.MarkdownString(
      [`**${cell(layerName(node))}**`, '', ...tensors.map((t) => `- \`${t.name}\` ${t.dtype} [${t.shape.join('×')}]`)].join('\n'),
    );
    item.iconPath = new vscode.ThemeIcon('symbol-field');
    item.contextValue = 'quantlens.layer';
    return item;
  }

  private setState(state: ExplorerState): void {
    this.state = state;
    this.stateChanged.fire(state);
  }

  dispose(): void {
    this.changed.dispose();
    this.stateChanged.dispose();
  }
}

const indexes = new WeakMap<InspectResult, Map<string, InspectResult['tensors'][number]>>();
/** Tensor lookup by name, built once per result (layers × tensors would be quadratic on big graphs). */
function tensorIndex(r: InspectResult): Map<string, InspectResult['tensors'][number]> {
  let m = indexes.get(r);
  if (!m) indexes.set(r, (m = new Map(r.tensors.map((t) => [t.name, t]))));
  return m;
}

/** The full layer name as plans and tools spell it (`model.layers.3` + `self_attn.q_proj`). */
export function layerName(node: LayerNode): string {
  return node.layer.block === '(root)' ? node.layer.layer : `${node.layer.block}.${node.layer.layer}`;
}

function configOnlyText(r: InspectResult): string {
  const c = r.config;
  const est = c?.estimatedParams ? `, ~${formatCount(c.estimatedParams)} params (estimated)` : '';
  return `config only: ${c?.architectures.join(', ') || c?.modelType || 'unknown architecture'}, ${c?.numLayers ?? '?'} layers${est} — no weights beside it`;
}
