// The report panel: the six charts of server/src/report/charts.ts over the model's analysis, a budget slider that
// re-solves on the language server (through the extension host), and clicks that reveal layers in the explorer.
// Talks to the host only through the typed messages of protocol.ts; keeps its view state in the webview state so
// a reload (or a restart, through the host's serializer) shows the same thing.
import Plotly from 'plotly.js-dist-min';
import type { Config, Data, Layout, PlotlyHTMLElement, PlotMouseEvent } from 'plotly.js';
import type { AnalysisReport, LayerReport } from '../../server/src/analysis/types';
import type { AllocateResponse, HostToWebview, JobResult, PanelState, WebviewToHost } from '../../server/src/protocol';
import {
  agreementChart,
  bitsChart,
  groupMapChart,
  groupMapLayer,
  heatmapChart,
  JOB_ERROR_UNITS,
  lowestBitFormat,
  paretoChart,
  predictedMeasured,
  predictedMeasuredChart,
  reportScores,
  type Allocation,
  type Chart,
} from '../../server/src/report/charts';

interface VsCodeApi {
  postMessage(message: WebviewToHost): void;
  getState(): PanelState | undefined;
  setState(state: PanelState): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const api = acquireVsCodeApi();
const post = (m: WebviewToHost) => api.postMessage(m);

let state: PanelState | undefined = api.getState();
let report: AnalysisReport | undefined;
let alloc: AllocateResponse | undefined;
let frontier: AllocateResponse['frontier'];
/** Finished jobs of this model (undefined until the host has read them). */
let jobs: JobResult[] | undefined;
const details = new Map<string, { detail?: LayerReport; error?: string }>();

const el = <T extends HTMLElement>(tag: string, props: Partial<T> = {}, ...children: (Node | string)[]): T => {
  const e = Object.assign(document.createElement(tag), props) as T;
  e.append(...children);
  return e;
};

// ---- Page skeleton ----
const status = el<HTMLDivElement>('div', { className: 'status' });
const title = el<HTMLHeadingElement>('h1', { textContent: 'QuantLens' });
const slider = el<HTMLInputElement>('input', { type: 'range', step: '0.01', disabled: true, id: 'budget' });
const budgetText = el<HTMLSpanElement>('span', { className: 'muted' });
const option = (value: string, text = value) => el<HTMLOptionElement>('option', { value, textContent: text });
const metric = el<HTMLSelectElement>('select', { id: 'metric' }, option('relMse', 'relative MSE'), option('sqnr', 'SQNR dB'));
const layerSel = el<HTMLSelectElement>('select', { id: 'layer' });
const formatSel = el<HTMLSelectElement>('select', { id: 'format' });
const agreeA = el<HTMLSelectElement>('select', { id: 'agreeA' });
const agreeB = el<HTMLSelectElement>('select', { id: 'agreeB' });

const CHARTS = ['bits', 'heatmap', 'groups', 'pareto', 'agreement', 'jobs'] as const;
type ChartId = (typeof CHARTS)[number];
const boxes = Object.fromEntries(CHARTS.map((id) => [id, el<HTMLDivElement>('div', { className: 'chart', id: `chart-${id}` })])) as Record<ChartId, HTMLDivElement>;
const card = (heading: string, controls: Node[], id: ChartId) =>
  el('section', { className: 'card' }, el('div', { className: 'card-head' }, el('h2', { textContent: heading }), ...controls), boxes[id]);
const label = (text: string, control: HTMLElement) => el('label', {}, `${text} `, control);

const root = document.getElementById('root') ?? document.body;
root.replaceChildren(
  el('header', {}, title, status),
  el('div', { className: 'controls' }, label('Budget', slider), budgetText),
  el(
    'div',
    { className: 'grid' },
    card('Bits per layer', [], 'bits'),
    card('Layer × format sensitivity', [label('metric', metric)], 'heatmap'),
    card('Group-level error', [label('layer', layerSel), label('format', formatSel)], 'groups'),
    card('Size vs error', [], 'pareto'),
    card('Method agreement', [agreeA, el('span', { textContent: ' vs ' }), agreeB], 'agreement'),
    card('Predicted vs measured', [], 'jobs'),
  ),
);

function setStatus(text: string, error = false): void {
  status.textContent = text;
  status.classList.toggle('error', error);
}

function save(patch: Partial<PanelState>): void {
  if (!state) return;
  state = { ...state, ...patch };
  api.setState(state);
}

// ---- Theme: VS Code's CSS variables into every layout ----
function themed(layout: Partial<Layout>): Partial<Layout> {
  const css = getComputedStyle(document.body);
  const v = (name: string, fallback: string) => css.getPropertyValue(name).trim() || fallback;
  const fg = v('--vscode-editor-foreground', '#cccccc');
  const grid = v('--vscode-editorWidget-border', v('--vscode-panel-border', '#80808055'));
  const axis = { gridcolor: grid, zerolinecolor: grid, linecolor: grid };
  return {
    ...layout,
    paper_bgcolor: 'rgba(0,0,0,0)',
    plot_bgcolor: 'rgba(0,0,0,0)',
    font: { color: fg, family: v('--vscode-font-family', 'sans-serif'), size: 11 },
    margin: { l: 60, r: 20, t: 36, b: 40 },
    hoverlabel: { bgcolor: v('--vscode-editorHoverWidget-background', '#252526'), font: { color: v('--vscode-editorHoverWidget-foreground', fg) } },
    xaxis: { ...axis, ...layout.xaxis },
    yaxis: { ...axis, ...layout.yaxis },
  };
}

const CONFIG: Partial<Config> = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ['sendDataToCloud', 'toImage'] };
const clickable = new Set<ChartId>();

function draw(id: ChartId, chart: Chart | string, onClick?: (e: PlotMouseEvent) => void): void {
  const box = boxes[id];
  if (typeof chart === 'string') {
    Plotly.purge(box);
    box.replaceChildren(el('p', { className: 'note', textContent: chart }));
    return;
  }
  if (box.querySelector('.note')) box.replaceChildren();
  void Plotly.react(box, chart.data as Data[], themed(chart.layout), CONFIG).then((plot: PlotlyHTMLElement) => {
    if (onClick && !clickable.has(id)) {
      clickable.add(id);
      plot.on('plotly_click', onClick);
    }
  });
}

// ---- Charts ----
function allocation(): Allocation | undefined {
  if (!report || !alloc?.choice) return undefined;
  const out: Allocation = {};
  for (const l of report.layers) {
    const f = alloc.choice[l.name];
    if (f && l.errors[f]) out[l.name] = { format: f, bits: l.errors[f].bitsPerWeight };
  }
  return out;
}

/** A layer picked in any chart: shown in the group map and revealed in the explorer. */
function pick(layer: unknown, format?: unknown): void {
  if (typeof layer !== 'string' || !report?.layers.some((l) => l.name === layer)) return;
  if (typeof format === 'string' && report.formats.some((f) => f.id === format)) formatSel.value = format;
  layerSel.value = layer;
  showGroups();
  post({ type: 'reveal', layer });
}

function drawBits(): void {
  if (!report) return;
  const a = allocation();
  draw('bits', bitsChart(report, a ? { allocation: a } : {}), (e) => pick(e.points[0]?.x));
}

function drawHeatmap(): void {
  if (!report) return;
  draw('heatmap', heatmapChart(report, metric.value === 'sqnr' ? 'sqnr' : 'relMse'), (e) => pick(e.points[0]?.y, e.points[0]?.x));
}

function drawPareto(): void {
  if (!frontier?.length) return draw('pareto', alloc && !alloc.range ? 'No layer to allocate.' : 'Solving…');
  const cur = alloc?.feasible && alloc.avgBits !== undefined && alloc.totalError !== undefined ? { avgBits: alloc.avgBits, totalError: alloc.totalError } : undefined;
  draw('pareto', paretoChart(frontier, cur), (e) => {
    const b = Number(e.points[0]?.x);
    if (Number.isFinite(b)) setBudget(b);
  });
}

function drawAgreement(): void {
  const low = report && lowestBitFormat(report);
  if (!report || !low) return draw('agreement', 'No analyzed layers.');
  save({ agreement: [agreeA.value, agreeB.value] });
  draw('agreement', agreementChart(reportScores(report, low), agreeA.value, agreeB.value), (e) => pick(e.points[0]?.text));
}

function showGroups(): void {
  const layer = layerSel.value;
  const format = formatSel.value;
  save({ layer });
  if (!layer) return draw('groups', 'No analyzed layers.');
  const d = details.get(layer);
  if (!d) {
    details.set(layer, {});
    post({ type: 'layerDetail', layer });
    return draw('groups', `Computing the group-error map of ${layer}…`);
  }
  if (d.error) return draw('groups', d.error);
  if (!d.detail) return draw('groups', `Computing the group-error map of ${layer}…`);
  draw('groups', groupMapChart(d.detail, format));
}

function drawAll(): void {
  drawBits();
  drawHeatmap();
  showGroups();
  drawPareto();
  drawAgreement();
  drawJobs();
}

function drawJobs(): void {
  if (!jobs) return draw('jobs', 'Reading finished quantization jobs…');
  const points = predictedMeasured(jobs);
  if (!points.length) {
    const why = jobs.length ? `${jobs.length} finished job(s), none evaluated` : 'No finished quantization jobs for this model yet';
    return draw('jobs', `${why}: run Quantize Layer or Quantize Model; the chart fills in as jobs finish.`);
  }
  draw('jobs', predictedMeasuredChart(points, JOB_ERROR_UNITS));
}

// ---- Budget slider: one request in flight, the latest position wins ----
let inFlight = false;
let pending: number | undefined;

function requestBudget(budget: number, withFrontier = false): void {
  if (inFlight) {
    pending = budget;
    return;
  }
  inFlight = true;
  post({ type: 'budget', budget, frontier: withFrontier || undefined });
}

function setBudget(b: number): void {
  slider.value = String(b);
  save({ budget: b });
  budgetText.textContent = `${b.toFixed(2)} bits/weight…`;
  requestBudget(b);
}

slider.addEventListener('input', () => setBudget(Number(slider.value)));
metric.addEventListener('change', () => {
  save({ metric: metric.value === 'sqnr' ? 'sqnr' : 'relMse' });
  drawHeatmap();
});
layerSel.addEventListener('change', () => {
  showGroups();
  post({ type: 'reveal', layer: layerSel.value });
});
formatSel.addEventListener('change', showGroups);
agreeA.addEventListener('change', drawAgreement);
agreeB.addEventListener('change', drawAgreement);

function onAllocation(r: AllocateResponse): void {
  inFlight = false;
  if (r.frontier) frontier = r.frontier;
  if (r.range) {
    slider.min = String(r.range.min);
    slider.max = String(r.range.max);
    slider.disabled = false;
  }
  // The first answer (a remembered or default budget) may lie outside what this model can reach: snap into range.
  if (!r.feasible && r.range && pending === undefined && r.budget < r.range.min) {
    setBudget(r.range.min);
    return;
  }
  alloc = r;
  budgetText.textContent = r.feasible
    ? `${r.avgBits!.toFixed(3)} bits/weight · relative error ${r.relError!.toExponential(2)} · solved in ${r.ms} ms`
    : `infeasible: at least ${r.minAvgBits?.toFixed(3) ?? '—'} bits/weight`;
  drawBits();
  drawPareto();
  if (pending !== undefined) {
    const b = pending;
    pending = undefined;
    requestBudget(b);
  }
}

function onReport(fromHost: PanelState, r: AnalysisReport): void {
  // The webview's own state (layer, metric, budget) survives hiding and reloads; the host's names the model.
  const saved = api.getState();
  const s: PanelState = saved?.path === fromHost.path ? { ...fromHost, ...saved, ...(fromHost.layer ? { layer: fromHost.layer } : {}) } : fromHost;
  state = s;
  api.setState(s);
  report = r;
  details.clear();
  title.textContent = `QuantLens — ${s.label}`;
  setStatus(`${r.layers.length} layers · ${r.formats.length} formats · ${r.options.sample === null ? 'full scan' : `sampled ${(r.options.sample * 100).toPrecision(3)} %`}`);
  metric.value = s.metric ?? 'relMse';
  const low = lowestBitFormat(r);
  formatSel.replaceChildren(...r.formats.map((f) => option(f.id, `${f.id} (${f.bitsPerWeight.toFixed(2)} b)`)));
  if (low) formatSel.value = low;
  const bySensitivity = low ? [...r.layers].sort((a, b) => b.errors[low].relMse - a.errors[low].relMse) : r.layers;
  layerSel.replaceChildren(...bySensitivity.map((l) => option(l.name)));
  const first = low && groupMapLayer(r.layers, low);
  if (first) layerSel.value = first.name;
  if (s.layer && r.layers.some((l) => l.name === s.layer)) layerSel.value = s.layer;
  const methods = low ? Object.keys(reportScores(r, low)) : [];
  for (const sel of [agreeA, agreeB]) sel.replaceChildren(...methods.map((m) => option(m)));
  const [a, b] = s.agreement ?? ['relMse', methods.includes('imatrix') ? 'imatrix' : 'max/σ'];
  if (methods.includes(a)) agreeA.value = a;
  if (methods.includes(b)) agreeB.value = b;
  alloc = undefined;
  frontier = undefined;
  inFlight = false;
  pending = undefined;
  drawAll();
  if (r.layers.length) {
    const budget = s.budget ?? 4.5;
    slider.value = String(budget);
    requestBudget(budget, true);
  }
}

window.addEventListener('message', (event: MessageEvent<HostToWebview>) => {
  const msg = event.data;
  switch (msg?.type) {
    case 'report':
      return onReport(msg.state, msg.report);
    case 'allocation':
      return onAllocation(msg.result);
    case 'layerDetail':
      details.set(msg.layer, { detail: msg.detail, error: msg.error });
      if (layerSel.value === msg.layer) showGroups();
      return;
    case 'status':
      if (msg.error) inFlight = false;
      return setStatus(msg.text, msg.error);
    case 'jobs':
      jobs = msg.jobs;
      return drawJobs();
    case 'select':
      if (!report?.layers.some((l) => l.name === msg.layer)) return;
      layerSel.value = msg.layer;
      boxes.groups.scrollIntoView({ block: 'nearest' });
      return showGroups();
  }
});

// Theme switches change the CSS variables: redraw with the new colours.
new MutationObserver(() => report && drawAll()).observe(document.body, { attributes: true, attributeFilter: ['class'] });

if (state) setStatus(`Loading ${state.label}…`);
post({ type: 'ready' });
