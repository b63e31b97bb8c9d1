// The report panel's host side: one webview per model, strict CSP with a nonce, Plotly bundled in dist/webview/main.js
// (no remote resource), messages typed by protocol.ts, and a serializer so the panel comes back after a reload.
import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import type { AnalysisReport } from '../../server/src/analysis/types';
import { Requests, type HostToWebview, type PanelState, type WebviewToHost } from '../../server/src/protocol';
import { describeError, sendRequest } from './languageClient';
import { PANEL_CSS } from './panelCss';
import { analysisSettings } from './settings';

export const PANEL_VIEW_TYPE = 'quantlens.report';

export interface PanelHost {
  extensionUri: vscode.Uri;
  client: LanguageClient;
  log: vscode.LogOutputChannel;
  /** The model's data-free analysis (with progress; from the cache when it has one); undefined when cancelled. */
  analyze(model: { path: string; label: string }): Promise<AnalysisReport | undefined>;
  /** Select a tensor's layer in the Sensitivity Explorer (and its rule in a plan already shown). */
  reveal(modelPath: string, tensor: string): Promise<void>;
}

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export class ReportPanel {
  private static readonly open = new Map<string, ReportPanel>();
  private readonly disposables: vscode.Disposable[] = [];

  private constructor(
    private readonly panel: vscode.WebviewPanel,
    private state: PanelState,
    private readonly host: PanelHost,
    /** A report the caller already has (right after Analyze Sensitivity): sent without asking the server again. */
    private report?: AnalysisReport,
  ) {
    ReportPanel.open.set(state.path, this);
    panel.webview.options = webviewOptions(host.extensionUri);
    panel.webview.html = panelHtml(panel.webview, host.extensionUri);
    panel.title = `QuantLens: ${state.label}`;
    this.disposables.push(
      panel.webview.onDidReceiveMessage((m: WebviewToHost) => void this.onMessage(m)),
      panel.onDidDispose(() => this.dispose()),
    );
  }

  /** Open (or focus) the panel of a model; `layer`: show that tensor's group-error map. */
  static show(host: PanelHost, model: { path: string; label: string }, report?: AnalysisReport, layer?: string): ReportPanel {
    const existing = ReportPanel.open.get(model.path);
    if (existing) {
      existing.panel.reveal();
      if (report) existing.sendReport(report);
      if (layer) existing.post({ type: 'select', layer });
      return existing;
    }
    const panel = vscode.window.createWebviewPanel(PANEL_VIEW_TYPE, `QuantLens: ${model.label}`, vscode.ViewColumn.Beside, webviewOptions(host.extensionUri));
    return new ReportPanel(panel, { path: model.path, label: model.label, layer }, host, report);
  }

  /** Restores panels after a window reload from the state the webview saved. */
  static registerSerializer(host: PanelHost): vscode.Disposable {
    return vscode.window.registerWebviewPanelSerializer(PANEL_VIEW_TYPE, {
      deserializeWebviewPanel: async (panel, saved: unknown) => {
        const s = saved as Partial<PanelState> | undefined;
        if (typeof s?.path !== 'string' || typeof s.label !== 'string') {
          panel.dispose();
          return;
        }
        ReportPanel.open.get(s.path)?.panel.dispose();
        new ReportPanel(panel, s as PanelState, host);
      },
    });
  }

  /** A job on this model finished: its panel (when open) redraws predicted vs measured. */
  static refreshJobs(modelPath: string): void {
    void ReportPanel.open.get(modelPath)?.sendJobs();
  }

  /** Finished jobs of the model, read by the server from the job reports beside it. */
  private async sendJobs(): Promise<void> {
    try {
      const jobs = await sendRequest(this.host.client, Requests.jobResults, { path: this.state.path });
      this.post({ type: 'jobs', jobs });
    } catch (e) {
      this.host.log.warn(`Report panel (${this.state.label}): job results: ${describeError(e)}`);
    }
  }

  private post(m: HostToWebview): void {
    void this.panel.webview.postMessage(m);
  }

  private sendReport(report: AnalysisReport): void {
    this.report = report;
    this.post({ type: 'report', state: this.state, report });
    // A layer asked for by Show Heatmap applies once; later reloads keep what the user picked since.
    this.state = { ...this.state, layer: undefined };
    void this.sendJobs();
  }

  private async onMessage(m: WebviewToHost): Promise<void> {
    const { client } = this.host;
    const { formats, cacheDir } = analysisSettings();
    try {
      switch (m.type) {
        case 'ready': {
          if (this.report) return this.sendReport(this.report);
          this.post({ type: 'status', text: `Analyzing ${this.state.label}…` });
          const report = await this.host.analyze(this.state);
          if (!report) return this.post({ type: 'status', text: 'Analysis cancelled: run Analyze Sensitivity to fill the charts.', error: true });
          return this.sendReport(report);
        }
        case 'budget': {
          this.state = { ...this.state, budget: m.budget };
          const result = await sendRequest(client, Requests.allocate, { path: this.state.path, formats, cacheDir, budget: m.budget, frontier: m.frontier });
          return this.post({ type: 'allocation', result });
        }
        case 'layerDetail': {
          // One tensor with its group maps: small, and cached on disk like any analysis.
          const r = await sendRequest(client, Requests.analyze, { path: this.state.path, formats, cacheDir, only: `^${escapeRegex(m.layer)}$`, groupMaps: true });
          const detail = r.report.layers.find((l) => l.name === m.layer);
          return this.post({ type: 'layerDetail', layer: m.layer, detail, error: detail ? undefined : `${m.layer} was not analyzed.` });
        }
        case 'reveal':
          return await this.host.reveal(this.state.path, m.layer);
      }
    } catch (e) {
      const text = `${m.type}: ${describeError(e)}`;
      this.host.log.error(`Report panel (${this.state.label}) ${text}`);
      if (m.type === 'layerDetail') return this.post({ type: 'layerDetail', layer: m.layer, error: describeError(e) });
      this.post({ type: 'status', text, error: true });
    }
  }

  private dispose(): void {
    if (ReportPanel.open.get(this.state.path) === this) ReportPanel.open.delete(this.state.path);
    for (const d of this.disposables) d.dispose();
  }
}

function webviewOptions(extensionUri: vscode.Uri): vscode.WebviewOptions & vscode.WebviewPanelOptions {
  return { enableScripts: true, localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'dist', 'webview')] };
}

/**
 * Scripts: only the bundle, by nonce. Plotly (plotly.js-dist-min 4) needs no 'unsafe-eval' for these charts: its one
 * `eval` belongs to the map traces' worker loader and its `new Function` runs only where `globalThis` is missing.
 * Styles: Plotly writes its own <style> rules and inline styles at run time, so style-src allows 'unsafe-inline'
 * (styles cannot run code). Nothing is fetched: default-src 'none', resources only from the extension's dist/webview.
 */
export function panelHtml(webview: vscode.Webview, extensionUri: vscode.Uri): string {
  const nonce = randomBytes(18).toString('base64');
  const script = webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'dist', 'webview', 'main.js'));
  const csp = [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src ${webview.cspSource} 'unsafe-inline'`,
    `img-src ${webview.cspSource} data: blob:`,
    `font-src ${webview.cspSource}`,
  ].join('; ');
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<style>${PANEL_CSS}</style>
</head><body><div id="root"></div>
<script nonce="${nonce}" src="${script}"></script>
</body></html>`;
}
