// Chart data builders: analysis results → Plotly traces and layouts. Pure functions, shared by the webview and the
// HTML report, so both draw the same pictures. Colours of text, grid and background are left to the caller (theme);
// only data colours (colour scales, the two bit shares) are fixed here.
import type { Data, Layout } from 'plotly.js';
import type { AnalysisReport, LayerReport } from '../analysis/types';
import type { JobResult } from '../protocol';
import { spearman } from '../sensitivity/agreement';

export interface Chart {
  data: Data[];
  layout: Partial<Layout>;
}

/** One layer's allocation: its format and, for high-impact allocations, the kept share r at b_hi bits. */
export interface LayerAllocation {
  format: string;
  /** Average bits per weight of the layer, every overhead included. */
  bits: number;
  highImpactRatio?: number;
  /** Bits of one kept weight (value + index overhead), b_hi. */
  hiBits?: number;
}

/** Layer tensor name → its allocation (from `quantlens/allocate`, `allocate --json` or the ratio optimizer). */
export type Allocation = Record<string, LayerAllocation>;

export const HI_COLOR = '#e45756';
export const LO_COLOR = '#4c78a8';
/** Format colours, by the format's position in the report (Tableau 10 without the high-impact red). */
export const FORMAT_COLORS = ['#4c78a8', '#f58518', '#54a24b', '#b279a2', '#eeca3b', '#72b7b2', '#ff9da6', '#9d755d', '#bab0ac'];

export function formatColor(report: AnalysisReport, format: string): string {
  const i = report.formats.findIndex((f) => f.id === format);
  return FORMAT_COLORS[(i < 0 ? report.formats.length : i) % FORMAT_COLORS.length];
}
/** Sequential scale: low error dark, high error bright. */
export const ERROR_SCALE = 'Viridis';

/** The format with the fewest bits per weight (ties: the first listed): the default for scores and the heatmap. */
export function lowestBitFormat(report: AnalysisReport): string | undefined {
  let best: AnalysisReport['formats'][number] | undefined;
  for (const f of report.formats) if (!best || f.bitsPerWeight < best.bitsPerWeight) best = f;
  return best?.id;
}

/** Digit runs compare as numbers: `layers.2` before `layers.10`. */
const collator = new Intl.Collator('en', { numeric: true });

/** Where a layer sits outside the numbered blocks: embeddings before them, heads and final norms after. */
const stage = (l: LayerReport): number => (/\d/.test(l.block) ? 1 : /embed|tok|wte|wpe/i.test(l.name) ? 0 : 2);

/**
 * Data-flow order of the usual sublayers inside a transformer block (Hugging Face, GGUF, GPT-2 names): attention
 * q, k, v, output, then the MLP's gate, up, down. Other names come after them.
 */
const SUBLAYERS = [/q_proj|attn_q\b|query|c_attn/, /k_proj|attn_k\b|key/, /v_proj|attn_v\b|value/, /o_proj|attn_output|out_proj|attn\.c_proj/, /gate_proj|ffn_gate|w1\b/, /up_proj|ffn_up|w3\b|c_fc/, /down_proj|ffn_down|w2\b|mlp\.c_proj/];
const sublayer = (l: LayerReport): number => {
  const i = SUBLAYERS.findIndex((re) => re.test(l.name));
  return i < 0 ? SUBLAYERS.length : i;
};

/** Layers in model depth order: embeddings, numbered blocks (0, 1, …, 10, numerically), the rest; in a block, data-flow order, then by name. */
export function depthOrder(layers: readonly LayerReport[]): LayerReport[] {
  return [...layers].sort((a, b) => stage(a) - stage(b) || collator.compare(a.block, b.block) || sublayer(a) - sublayer(b) || collator.compare(a.name, b.name));
}

/** Bits per weight of each layer by depth: one format for all, or an allocation (stacked hi/lo shares when it keeps weights). */
export function bitsChart(report: AnalysisReport, opts: { format?: string; allocation?: Allocation } = {}): Chart {
  const layers = depthOrder(report.layers);
  const x = layers.map((l) => l.name);
  const layout: Partial<Layout> = {
    title: { text: 'Bits per weight by layer (model depth →)' },
    barmode: 'stack',
    xaxis: { title: { text: 'layer' }, showticklabels: layers.length <= 64, automargin: true },
    yaxis: { title: { text: 'bits / weight' }, rangemode: 'tozero' },
    showlegend: true,
    // Stacked bars list their legend bottom-up by default; keep the report's format order.
    legend: { traceorder: 'normal' },
  };
  const alloc = opts.allocation;
  if (!alloc) {
    const format = opts.format ?? lowestBitFormat(report);
    if (!format) return { data: [], layout };
    const y = layers.map((l) => l.errors[format]?.bitsPerWeight ?? null);
    return { data: [{ type: 'bar', name: format, x, y, marker: { color: formatColor(report, format) } }], layout };
  }
  const picked = layers.map((l) => alloc[l.name]);
  const hi = picked.map((a) => (a?.highImpactRatio && a.hiBits ? a.highImpactRatio * a.hiBits : 0));
  // One trace per format (in the report's order) so the legend names them; each layer has a bar in one trace only.
  const used = new Set(picked.map((a) => a?.format));
  const formats = [...report.formats.map((f) => f.id), ...[...used].filter((f): f is string => f !== undefined && !report.formats.some((r) => r.id === f))];
  const data: Data[] = formats
    .filter((f) => used.has(f))
    .map((f) => ({
      type: 'bar',
      name: f,
      x,
      y: picked.map((a, i) => (a?.format === f ? a.bits - hi[i] : null)),
      hovertemplate: `%{x}<br>${f}: %{y:.3f} bits<extra></extra>`,
      marker: { color: formatColor(report, f) },
    }));
  if (hi.some((h) => h > 0)) {
    const ratio = picked.map((a) => a?.highImpactRatio ?? 0);
    data.push({ type: 'bar', name: 'high-impact at b_hi', x, y: hi, customdata: ratio, hovertemplate: '%{x}<br>kept share %{customdata:.2%}: %{y:.3f} bits<extra></extra>', marker: { color: HI_COLOR } });
  }
  return { data, layout };
}

export type HeatMetric = 'relMse' | 'sqnr';

/**
 * Layer × format error. relMse is drawn as log10 (the colour scale spans decades); SQNR in dB is already
 * logarithmic. Rows are layers by depth, columns the report's formats; exact cells (relMse 0) stay empty.
 */
export function heatmapChart(report: AnalysisReport, metric: HeatMetric = 'relMse'): Chart {
  const layers = depthOrder(report.layers);
  const formats = report.formats.map((f) => f.id);
  const raw = layers.map((l) => formats.map((f) => (metric === 'relMse' ? l.errors[f]?.relMse : l.errors[f]?.sqnrDb) ?? null));
  const z = raw.map((row) => row.map((v) => (metric === 'sqnr' ? v : v === null || v <= 0 ? null : Math.log10(v))));
  const data: Data[] = [
    {
      type: 'heatmap',
      x: formats,
      y: layers.map((l) => l.name),
      z,
      customdata: raw as never,
      colorscale: ERROR_SCALE,
      // High SQNR is good: reverse so that "bright = bad" holds for both metrics.
      reversescale: metric === 'sqnr',
      colorbar: { title: { text: metric === 'relMse' ? 'log₁₀ relMSE' : 'SQNR dB' } },
      hovertemplate: `%{y}<br>%{x}: ${metric === 'relMse' ? 'relMSE %{customdata:.3e}' : '%{customdata:.1f} dB'}<extra></extra>`,
    },
  ];
  const layout: Partial<Layout> = {
    title: { text: metric === 'relMse' ? 'Relative error by layer × format (log scale)' : 'SQNR by layer × format (dB)' },
    xaxis: { title: { text: 'format' }, automargin: true },
    yaxis: { autorange: 'reversed', showticklabels: layers.length <= 64, automargin: true },
  };
  return { data, layout };
}

/** The group-map cell holding a weight at `coords` (logical shape), or undefined when it falls outside the map. */
export function cellOf(layer: LayerReport, map: NonNullable<LayerReport['groupMaps']>[string], coords: number[]): [number, number] | undefined {
  let row: number;
  let col: number;
  if (layer.layout === 'in_out') {
    [col, row] = coords;
  } else {
    // [out, in, k…]: the view flattens everything after the output channel into one row.
    row = coords[0];
    col = 0;
    for (let d = 1; d < coords.length; d++) col = col * layer.shape[d] + coords[d];
  }
  const r = Math.floor(row / map.rowsPerCell);
  const c = Math.floor(Math.floor(col / map.groupSize) / map.groupsPerCell);
  return r < map.cellRows && c < map.cellCols ? [r, c] : undefined;
}

/** Weights per row of the [out, in] view (groups run along it). */
export const rowLength = (l: LayerReport): number => (l.layout === 'in_out' ? l.shape[0] : l.shape.slice(1).reduce((a, b) => a * b, 1));

/**
 * The layer a group map shows first: the most sensitive at `format` among those with rows of ≥ 512 weights (several
 * groups per row, so the map has structure to show), else the most sensitive of all.
 */
export function groupMapLayer(layers: readonly LayerReport[], format: string): LayerReport | undefined {
  const ranked = layers.filter((l) => l.errors[format]).sort((a, b) => b.errors[format].relMse - a.errors[format].relMse);
  return ranked.find((l) => rowLength(l) >= 512) ?? ranked[0];
}

/** Group-level error map of one layer (rows × groups, log10 MSE) with its super weights as markers. */
export function groupMapChart(layer: LayerReport, format: string): Chart {
  const map = layer.groupMaps?.[format];
  const layout: Partial<Layout> = {
    title: { text: `Group error: ${layer.name} at ${format}` },
    xaxis: { title: { text: map ? `group (${map.groupsPerCell} × ${map.groupSize} weights per cell)` : 'group' } },
    yaxis: { title: { text: map ? `output row (${map.rowsPerCell} per cell)` : 'output row' }, autorange: 'reversed' },
  };
  if (!map) return { data: [], layout };
  const z: (number | null)[][] = [];
  for (let r = 0; r < map.cellRows; r++) {
    z.push(map.mse.slice(r * map.cellCols, (r + 1) * map.cellCols).map((v) => (v > 0 ? Math.log10(v) : null)));
  }
  const data: Data[] = [{ type: 'heatmap', z, colorscale: ERROR_SCALE, colorbar: { title: { text: 'log₁₀ MSE' } }, hovertemplate: 'row cell %{y}, group cell %{x}<br>log₁₀ MSE %{z:.2f}<extra></extra>' }];
  const marks = layer.stats.superWeights.map((s) => ({ s, cell: cellOf(layer, map, s.coords) })).filter((m) => m.cell !== undefined);
  if (marks.length) {
    data.push({
      type: 'scatter',
      mode: 'markers',
      name: 'super weights',
      // The colour bar sits where a legend would.
      showlegend: false,
      x: marks.map((m) => m.cell![1]),
      y: marks.map((m) => m.cell![0]),
      text: marks.map((m) => `[${m.s.coords.join(', ')}] = ${m.s.value.toPrecision(4)}${m.s.overMedian === null ? '' : ` (${m.s.overMedian.toPrecision(3)}× median)`}`),
      hovertemplate: 'super weight %{text}<extra></extra>',
      marker: { symbol: 'x', size: 12, color: HI_COLOR, line: { width: 2, color: HI_COLOR } },
    });
  }
  return { data, layout };
}

/** Size vs predicted error: the allocator's frontier, with the current budget's solution marked. */
export function paretoChart(points: readonly { avgBits: number; totalError: number }[], current?: { avgBits: number; totalError: number }): Chart {
  const data: Data[] = [
    { type: 'scatter', mode: 'lines+markers', name: 'Pareto frontier', x: points.map((p) => p.avgBits), y: points.map((p) => p.totalError), line: { shape: 'hv', color: LO_COLOR }, marker: { size: 4 } },
  ];
  if (current) data.push({ type: 'scatter', mode: 'markers', name: 'current budget', x: [current.avgBits], y: [current.totalError], marker: { size: 12, color: HI_COLOR } });
  return {
    data,
    layout: {
      title: { text: 'Size vs predicted error' },
      xaxis: { title: { text: 'average bits / weight' } },
      yaxis: { title: { text: 'Σ‖ΔW‖² (predicted)' }, ...scaleFor(points.map((p) => p.totalError)) },
    },
  };
}

/**
 * Log axis for positive values spanning at least a decade (labels: decades, or 1-2-5 within two decades, not
 * every minor tick); linear otherwise.
 */
export function scaleFor(values: readonly number[]): { type: 'log' | 'linear'; dtick?: number | string } {
  if (!values.length || values.some((v) => !(v > 0))) return { type: 'linear' };
  const decades = Math.log10(Math.max(...values) / Math.min(...values));
  if (decades < 1) return { type: 'linear' };
  return { type: 'log', dtick: decades >= 2 ? 1 : 'D2' };
}

/** Per-method layer scores: method → layer name → score (larger = more sensitive). */
export type MethodScores = Record<string, Record<string, number>>;

/** Scatter of two methods' scores on the layers both scored, titled with Spearman's ρ of their rankings. */
export function agreementChart(scores: MethodScores, a: string, b: string): Chart & { rho: number | null; n: number } {
  const sa = scores[a] ?? {};
  const sb = scores[b] ?? {};
  const names = Object.keys(sa).filter((n) => Number.isFinite(sa[n]) && Number.isFinite(sb[n]));
  const x = names.map((n) => sa[n]);
  const y = names.map((n) => sb[n]);
  const rho = spearman(x, y);
  return {
    rho,
    n: names.length,
    data: [{ type: 'scatter', mode: 'markers', name: `${a} vs ${b}`, x, y, text: names, hovertemplate: '%{text}<br>%{x:.3g} vs %{y:.3g}<extra></extra>', marker: { color: LO_COLOR } }],
    layout: {
      title: { text: `Agreement: ${a} vs ${b} — Spearman ρ = ${rho === null ? 'n/a' : rho.toFixed(3)} (${names.length} layers)` },
      xaxis: { title: { text: a }, ...scaleFor(x) },
      yaxis: { title: { text: b }, ...scaleFor(y) },
    },
  };
}

export interface PredictedMeasured {
  name: string;
  predicted: number;
  measured: number;
}

/** Predicted vs measured error of finished jobs, with the y = x line (points above it: the prediction was optimistic). */
export function predictedMeasuredChart(pairs: readonly PredictedMeasured[], units = 'error'): Chart {
  const ok = pairs.filter((p) => Number.isFinite(p.predicted) && Number.isFinite(p.measured));
  const x = ok.map((p) => p.predicted);
  const y = ok.map((p) => p.measured);
  const all = [...x, ...y];
  const scale = scaleFor(all);
  const data: Data[] = [{ type: 'scatter', mode: 'markers', name: 'jobs', x, y, text: ok.map((p) => p.name), hovertemplate: '%{text}<br>predicted %{x:.3g}, measured %{y:.3g}<extra></extra>', marker: { color: LO_COLOR, size: 8 } }];
  if (all.length) {
    const lo = Math.min(...all);
    const hi = Math.max(...all);
    data.push({ type: 'scatter', mode: 'lines', name: 'y = x', x: [lo, hi], y: [lo, hi], line: { dash: 'dot', color: '#888888' }, hoverinfo: 'skip' });
  }
  return {
    data,
    layout: {
      title: { text: `Predicted vs measured ${units}` },
      xaxis: { title: { text: `predicted ${units}` }, ...scale },
      yaxis: { title: { text: `measured ${units}` }, ...scale },
    },
  };
}

/** Axis words of the jobs chart: the weights' predicted error against what the model's output measured. */
export const JOB_ERROR_UNITS = 'relative error';

/**
 * Chart points of finished jobs (those that were evaluated): predicted ‖ΔW‖²/‖W‖² of the quantized weights vs the
 * measured relative error of the model output, 10^(−SQNR/10).
 */
export function predictedMeasured(jobs: readonly JobResult[]): PredictedMeasured[] {
  return jobs.filter((j) => j.measured !== null).map((j) => ({ name: j.name, predicted: j.predictedRelMse, measured: j.measured!.relMse }));
}

/**
 * The layer scores a data-free report offers for the agreement chart, at one format (larger = more sensitive):
 * relMSE, the weight statistics that are often used as cheap proxies, and the imatrix score when present.
 */
export function reportScores(report: AnalysisReport, format: string): MethodScores {
  const out: MethodScores = { relMse: {}, kurtosis: {}, 'max/σ': {} };
  const hessian: Record<string, number> = {};
  for (const l of report.layers) {
    const e = l.errors[format];
    if (e) out.relMse[l.name] = e.relMse;
    if (e?.hessianDiag !== undefined) hessian[l.name] = e.hessianDiag;
    out.kurtosis[l.name] = l.stats.kurtosis;
    out['max/σ'][l.name] = l.stats.maxOverStd;
  }
  if (Object.keys(hessian).length) out.imatrix = hessian;
  return out;
}
