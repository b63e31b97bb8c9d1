// The self-contained HTML report: Plotly inlined, chart data as JSON, a CSP that allows only these two scripts
// (by hash) and inline styles, so the file opens offline and can never reach the network.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import type { AnalysisReport } from '../analysis/types';
import { QuantLensError } from '../formats/errors';
import { humanBytes, humanCount } from './table';
import {
  agreementChart,
  bitsChart,
  groupMapChart,
  groupMapLayer,
  heatmapChart,
  JOB_ERROR_UNITS,
  lowestBitFormat,
  paretoChart,
  predictedMeasuredChart,
  reportScores,
  rowLength,
  type Allocation,
  type Chart,
  type PredictedMeasured,
} from './charts';
import type { BudgetSolution } from './allocation';

export interface ReportSection {
  id: string;
  heading: string;
  /** One line under the heading: what the chart shows and where its data came from. */
  caption: string;
  chart?: Chart;
  /** Shown instead of a chart when there is no data for it. */
  note?: string;
}

export interface ReportInputs {
  report: AnalysisReport;
  /** The allocation drawn in the bits chart and marked on the Pareto curve, with where it came from. */
  allocation?: { source: string; allocation: Allocation; avgBits: number; totalError?: number };
  frontier?: { avgBits: number; totalError: number }[];
  /** Finished jobs' predicted vs measured errors. */
  jobs?: PredictedMeasured[];
}

/** The six charts of the report (and of the webview), from the analysis and optional allocation/job data. */
export function reportSections(inp: ReportInputs): ReportSection[] {
  const { report } = inp;
  const low = lowestBitFormat(report);
  const sections: ReportSection[] = [];
  const alloc = inp.allocation;
  sections.push({
    id: 'bits',
    heading: 'Bits per layer',
    caption: alloc ? `${alloc.source}: ${alloc.avgBits.toFixed(3)} bits/weight on average.` : `Every layer at ${low ?? 'no format'} (no plan or budget given).`,
    chart: bitsChart(report, alloc ? { allocation: alloc.allocation } : {}),
  });
  sections.push({ id: 'heatmap', heading: 'Layer × format sensitivity', caption: 'Relative MSE ‖Q(W) − W‖² / ‖W‖² per tensor, log colour scale; brighter is worse.', chart: heatmapChart(report) });
  const worst = low ? groupMapLayer(report.layers.filter((l) => l.groupMaps?.[low]), low) : undefined;
  sections.push(
    worst && low
      ? { id: 'groups', heading: 'Group-level error', caption: `${worst.name}: the most sensitive layer at ${low}${rowLength(worst) >= 512 ? ' with several groups per row' : ''}; ✕ marks super weights.`, chart: groupMapChart(worst, low) }
      : { id: 'groups', heading: 'Group-level error', caption: '', note: 'No group-error maps in this analysis (run it with group maps).' },
  );
  const frontier = inp.frontier ?? [];
  sections.push(
    frontier.length
      ? {
          id: 'pareto',
          heading: 'Size vs error',
          caption: 'Exact one-format-per-layer allocations (multiple-choice knapsack) at every budget.',
          chart: paretoChart(frontier, alloc?.totalError !== undefined ? { avgBits: alloc.avgBits, totalError: alloc.totalError } : undefined),
        }
      : { id: 'pareto', heading: 'Size vs error', caption: '', note: 'No layer to allocate.' },
  );
  if (low) {
    const scores = reportScores(report, low);
    const other = scores.imatrix ? 'imatrix' : 'max/σ';
    sections.push({ id: 'agreement', heading: 'Method agreement', caption: `Layer scores at ${low}: data-free relative MSE vs ${other}.`, chart: agreementChart(scores, 'relMse', other) });
  }
  sections.push(
    inp.jobs?.length
      ? {
          id: 'jobs',
          heading: 'Predicted vs measured',
          caption: `${inp.jobs.length} finished quantize-and-evaluate job(s): predicted ‖ΔW‖²/‖W‖² of the quantized weights vs the measured relative error of the output, 10^(−SQNR/10).`,
          chart: predictedMeasuredChart(inp.jobs, JOB_ERROR_UNITS),
        }
      : { id: 'jobs', heading: 'Predicted vs measured', caption: '', note: 'No finished quantization jobs for this model yet.' },
  );
  return sections;
}

/** The charts' allocation from a budget solution (undefined when infeasible). */
export function solutionInput(s: BudgetSolution, source: string): ReportInputs['allocation'] {
  return s.allocation && s.avgBits !== undefined ? { source, allocation: s.allocation, avgBits: s.avgBits, totalError: s.totalError } : undefined;
}

let plotlyCache: string | undefined;

/**
 * plotly.min.js from the installed plotly.js-dist-min, resolved from this module (tsx), from the bundle's folder
 * (dist/cli.js beside node_modules) or from the working directory.
 */
export function plotlySource(): string {
  if (plotlyCache) return plotlyCache;
  const here = typeof __filename === 'string' ? __filename : path.join(process.cwd(), 'x.js');
  const tried: string[] = [];
  for (const from of [here, path.join(process.cwd(), 'x.js')]) {
    try {
      const file = createRequire(from).resolve('plotly.js-dist-min/plotly.min.js');
      plotlyCache = readFileSync(file, 'utf8');
      return plotlyCache;
    } catch (e) {
      tried.push(`${path.dirname(from)}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  throw new QuantLensError('no-plotly', `plotly.js-dist-min is not installed where QuantLens runs (${tried.join('; ')})`, { file: 'plotly.js-dist-min' });
}

export const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
/** JSON inside <script>: `<` escaped so no string can close the element. */
const scriptJson = (v: unknown) => JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
const sha256 = (s: string) => `'sha256-${createHash('sha256').update(s, 'utf8').digest('base64')}'`;

// Reads the page's colours (light or dark from the reader's system) into every chart's layout.
const RENDER = `(() => {
  const css = getComputedStyle(document.body);
  const fg = css.getPropertyValue('--fg').trim(), grid = css.getPropertyValue('--grid').trim();
  const axis = { gridcolor: grid, zerolinecolor: grid, linecolor: grid };
  const charts = JSON.parse(document.getElementById('charts').textContent);
  for (const c of charts) {
    const el = document.getElementById('chart-' + c.id);
    const layout = Object.assign({}, c.layout, {
      paper_bgcolor: 'rgba(0,0,0,0)', plot_bgcolor: 'rgba(0,0,0,0)', font: { color: fg, size: 12 },
      margin: { l: 60, r: 20, t: 40, b: 50 },
      xaxis: Object.assign({}, axis, c.layout.xaxis), yaxis: Object.assign({}, axis, c.layout.yaxis),
    });
    Plotly.newPlot(el, c.data, layout, { responsive: true, displaylogo: false });
  }
})();`;

const STYLE = `:root { --fg: #1f2328; --muted: #59636e; --bg: #ffffff; --grid: #d0d7de; --card: #f6f8fa; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --muted: #9198a1; --bg: #0d1117; --grid: #30363d; --card: #161b22; } }
body { font: 14px/1.5 system-ui, -apple-system, 'Segoe UI', sans-serif; color: var(--fg); background: var(--bg); margin: 0 auto; max-width: 1200px; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 0 0 2px; }
.muted, .caption { color: var(--muted); } .caption { margin: 0 0 8px; }
table { border-collapse: collapse; margin: 12px 0 24px; } th, td { padding: 3px 12px; border-bottom: 1px solid var(--grid); text-align: right; }
th:first-child, td:first-child { text-align: left; }
section { background: var(--card); border-radius: 6px; padding: 16px; margin: 16px 0; }
.chart { height: 460px; } .note { color: var(--muted); font-style: italic; }`;

/** The whole report page. `plotly` is the Plotly bundle's source (see plotlySource). */
export function renderReportHtml(inp: ReportInputs, plotly: string, generated = new Date()): string {
  const { report } = inp;
  const m = report.model;
  const rows = report.formats.map((f) => {
    const t = m.totals[f.id];
    return `<tr><td>${escapeHtml(f.id)}</td><td>${t ? t.bitsPerWeight.toFixed(3) : '—'}</td><td>${t ? humanBytes(t.bytes) : '—'}</td><td>${t ? t.relMse.toExponential(2) : '—'}</td><td>${t?.sqnrDb == null ? 'exact' : t.sqnrDb.toFixed(1)}</td></tr>`;
  });
  return renderPage(
    {
      title: `QuantLens report — ${path.basename(m.path)}`,
      summary: `${m.path} · ${m.format} · ${humanCount(m.analyzedParams)} of ${humanCount(m.params)} parameters analyzed in ${m.analyzedTensors} of ${m.tensors} tensors · ${report.options.sample === null ? 'full scan' : `sampled ${(report.options.sample * 100).toPrecision(3)} % of rows`} · generated ${generated.toISOString().slice(0, 16).replace('T', ' ')} UTC`,
      tables: `<table><thead><tr><th>format</th><th>bits/weight</th><th>size</th><th>relative MSE</th><th>SQNR dB</th></tr></thead><tbody>${rows.join('')}</tbody></table>`,
      sections: reportSections(inp),
    },
    plotly,
  );
}

export interface Page {
  title: string;
  /** The muted line under the title (plain text). */
  summary: string;
  /** HTML (escaped by the caller) shown between the summary and the charts. */
  tables: string;
  sections: ReportSection[];
}

/** A self-contained page: the charts' data as JSON, Plotly and the renderer inlined, admitted by hash in the CSP. */
export function renderPage(page: Page, plotly: string): string {
  const charts = page.sections.filter((s) => s.chart).map((s) => ({ id: s.id, data: s.chart!.data, layout: s.chart!.layout }));
  const body = page.sections.map((s) => {
    const inner = s.chart ? `<div class="chart" id="chart-${s.id}"></div>` : `<p class="note">${escapeHtml(s.note ?? '')}</p>`;
    return `<section><h2>${escapeHtml(s.heading)}</h2><p class="caption">${escapeHtml(s.caption)}</p>${inner}</section>`;
  });
  const csp = `default-src 'none'; script-src ${sha256(plotly)} ${sha256(RENDER)}; style-src 'unsafe-inline'; img-src data: blob:; font-src data:`;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(page.title)}</title>
<style>${STYLE}</style></head>
<body>
<h1>${escapeHtml(page.title)}</h1>
<p class="muted">${escapeHtml(page.summary)}</p>
${page.tables}
${body.join('\n')}
<script type="application/json" id="charts">${scriptJson(charts)}</script>
<script>${plotly}</script>
<script>${RENDER}</script>
</body></html>
`;
}
