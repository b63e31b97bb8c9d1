// The Sensitivity Explorer: models in the workspace → blocks → layers, from the server's `quantlens/inspect`.
import * as vscode from 'vscode';
import type { InspectResult } from '../../server/src/protocol';
import type { AnalysisReport } from '../../server/src/analysis/types';
import { layerPath, type LayerSummary } from '../../server/src/formats/layers';
import { lowestBitFormat } from '../../server/src/report/charts';
import { layerScores, type LayerScore } from '../../server/src/report/scores';
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
export type SortOrder = 'name' | 'sensitivity' | 'size';

/** A model's analysis as the tree shows it: the format scored and each layer's score (by layer key). */
interface Scored {
  report: AnalysisReport;
  format: string;
  /** Keyed by `block/layer`; computed once the model's inspection is in. */
  scores?: Map<string, LayerScore>;
}

/** Most sensitive quarter first: the icon colour of each band (theme colours, so every theme keeps contrast). */
const BAND_COLORS = ['charts.red', 'charts.orange', 'charts.yellow', 'charts.green'];
const BAND_WORDS = ['most sensitive quarter', 'second quarter', 'third quarter', 'least sensitive quarter'];
const layerKey = (l: LayerSummary) => `${l.block}/${l.layer}`;

export class SensitivityExplorer implements vscode.TreeDataProvider<ExplorerNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<ExplorerNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly stateChanged = new vscode.EventEmitter<ExplorerState>();
  readonly onDidChangeState = this.stateChanged.event;
  private nodes: ModelNode[] = [];
  private readonly inspections = new Map<string, Promise<Inspection>>();
  private readonly settled = new Map<string, Inspection>();
  private readonly analyses = new Map<string, Scored>();
  private generation = 0;
  state: ExplorerState = 'searching';
  sort: SortOrder = 'name';

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
    for (const a of this.analyses.values()) a.scores = undefined;
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

  /** Show this analysis' scores (SQNR at the lowest-bit format analyzed) on the model's layers. */
  setAnalysis(uri: vscode.Uri, report: AnalysisReport): void {
    const format = lowestBitFormat(report);
    if (!format) return;
    this.analyses.set(uri.toString(), { report, format });
    this.changed.fire(undefined);
  }

  /** Drop every analysis shown (they are asked for again, e.g. from the disk cache after a server restart). */
  forgetAnalyses(): void {
    this.analyses.clear();
    this.changed.fire(undefined);
  }

  get analyzed(): boolean {
    return this.analyses.size > 0;
  }

  setSort(order: SortOrder): void {
    this.sort = order;
    this.changed.fire(undefined);
  }

  /** The tree node of the layer holding `tensor` (first model that has it when `uri` is undefined). */
  async layerNodeFor(tensor: string, uri?: vscode.Uri): Promise<LayerNode | undefined> {
    const models = uri ? [this.nodeFor(uri)].filter((n) => n !== undefined) : this.nodes;
    for (const model of models) {
      const i = await this.inspect(model);
      if ('error' in i) continue;
      const layer = i.result.layers.find((l) => l.tensors.includes(tensor) || layerPath(l) === tensor);
      if (!layer) continue;
      const block = i.result.blocks.find((b) => b.block === layer.block);
      const parent: ModelNode | BlockNode = i.result.blocks.length === 1 || !block ? model : { kind: 'block', model, block };
      return { kind: 'layer', model, parent, layer };
    }
    return undefined;
  }

  /** The layer's weight matrix (the tensor the analysis scores): its largest non-vector tensor. */
  async layerMatrix(node: LayerNode): Promise<string> {
    const i = await this.inspect(node.model);
    const infos = 'error' in i ? [] : i.result.tensors.filter((t) => node.layer.tensors.includes(t.name) && t.layout !== 'vector');
    return infos.sort((a, b) => b.params - a.params)[0]?.name ?? node.layer.tensors[0];
  }

  /** A layer's score and the format it was scored at, once the model is analyzed and inspected. */
  layerScore(uri: vscode.Uri, block: string, layer: string): { score: LayerScore; format: string } | undefined {
    const node = this.nodeFor(uri);
    const s = node && this.scoresOf(node);
    const score = s?.scores.get(`${block}/${layer}`);
    return s && score && { score, format: s.scored.format };
  }

  /** Models with an analysis shown (after a server restart they are scored again from the on-disk cache). */
  get analyzedModels(): ModelEntry[] {
    return this.nodes.filter((n) => this.analyses.has(n.entry.uri.toString())).map((n) => n.entry);
  }

  /** Scores of a model's layers, once both its analysis and its inspection are in. */
  private scoresOf(model: ModelNode): { scored: Scored; scores: Map<string, LayerScore> } | undefined {
    const scored = this.analyses.get(model.entry.uri.toString());
    const i = this.settled.get(model.entry.uri.toString());
    if (!scored || !i || 'error' in i) return undefined;
    scored.scores ??= layerScores(scored.report, scored.format, new Map(i.result.layers.map((l) => [layerKey(l), l.tensors])));
    return { scored, scores: scored.scores };
  }

  /** Children in the chosen order: by name keeps model order (depth); sensitivity puts the worst first. */
  private sorted<T extends LayerNode | BlockNode>(model: ModelNode, nodes: T[]): T[] {
    if (this.sort === 'name') return nodes;
    const scores = this.scoresOf(model)?.scores;
    const relMse = (n: T): number => {
      if (n.kind === 'layer') return scores?.get(layerKey(n.layer))?.relMse ?? -1;
      let worst = -1;
      for (const [k, v] of scores ?? []) if (k.startsWith(`${n.block.block}/`)) worst = Math.max(worst, v.relMse);
      return worst;
    };
    const size = (n: T) => (n.kind === 'layer' ? n.layer.params : n.block.params);
    const key = this.sort === 'size' ? size : relMse;
    return [...nodes].sort((a, b) => key(b) - key(a));
  }

  async getChildren(node?: ExplorerNode): Promise<ExplorerNode[]> {
    if (!node) return this.nodes;
    if (node.kind === 'layer' || node.kind === 'message') return [];
    const model = node.kind === 'model' ? node : node.model;
    const i = await this.inspect(model);
    if ('error' in i) return [{ kind: 'message', parent: model, text: i.error }];
    const { result } = i;
    if (node.kind === 'block') {
      return this.sorted(model, result.layers.filter((l) => l.block === node.block.block).map((layer): LayerNode => ({ kind: 'layer', model, parent: node, layer })));
    }
    if (result.tensorCount === 0) return [{ kind: 'message', parent: model, text: configOnlyText(result) }];
    // One block (small CNNs, single-block graphs): the extra level would only add a click.
    if (result.blocks.length === 1) return this.sorted(model, result.layers.map((layer): LayerNode => ({ kind: 'layer', model, parent: node, layer })));
    return this.sorted(model, result.blocks.map((block): BlockNode => ({ kind: 'block', model, block })));
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
      const scored = this.analyses.get(entry.uri.toString());
      item.description = r.tensorCount
        ? `${r.format} · ${formatCount(r.params)} params · ${r.layers.length} layers${scored ? ` · scored at ${scored.format}` : ''}`
        : `${r.format} · ${r.config?.numLayers ?? '?'} layers (config only)`;
      const analysis = scored
        ? `Analyzed: layers show their SQNR at ${scored.format} (the lowest-bit format analyzed); red marks the most sensitive quarter.`
        : 'Not analyzed yet.';
      item.tooltip = new vscode.MarkdownString(
        [`**${cell(entry.label)}** — ${r.format}`, '', `${r.tensorCount} tensors, ${r.params.toLocaleString('en-US')} parameters`, '', analysis].join('\n'),
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
    const scored = this.scoresOf(node.model);
    const score = scored?.scores.get(layerKey(layer));
    const sqnr = score && (score.sqnrDb === null ? 'exact' : `${score.sqnrDb.toFixed(1)} dB`);
    item.description = [sqnr, formatCount(layer.params), dtypes, group ? `⊂ ${group}` : ''].filter(Boolean).join(' · ');
    const lines = [`**${cell(layerName(node))}**`, ''];
    if (score && scored) {
      lines.push(`SQNR ${sqnr} at \`${scored.scored.format}\` (${score.bits.toFixed(2)} bits/weight), relative MSE ${score.relMse.toExponential(2)} — ${BAND_WORDS[score.band]} of this model's layers`, '');
    }
    item.tooltip = new vscode.MarkdownString([...lines, ...tensors.map((t) => `- \`${t.name}\` ${t.dtype} [${t.shape.join('×')}]`)].join('\n'));
    item.iconPath = score ? new vscode.ThemeIcon('circle-filled', new vscode.ThemeColor(BAND_COLORS[score.band])) : new vscode.ThemeIcon('symbol-field');
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
  return layerPath(node.layer);
}


function configOnlyText(r: InspectResult): string {
  const c = r.config;
  const est = c?.estimatedParams ? `, ~${formatCount(c.estimatedParams)} params (estimated)` : '';
  return `config only: ${c?.architectures.join(', ') || c?.modelType || 'unknown architecture'}, ${c?.numLayers ?? '?'} layers${est} — no weights beside it`;
}
