// The HTML report a quantize job writes beside its output (`<output>.report.html`, next to the JSON report): the
// job's measured and predicted numbers as tables, the predicted error per weight, and predicted vs measured for
// this job among the earlier evaluated jobs of the same model. Self-contained like the analysis report (html.ts).
import * as path from 'node:path';
import type { Data } from 'plotly.js';
import { QuantLensError } from '../formats/errors';
import type { QuantizeReport } from '../jobs/pipeline';
import { FORMAT_COLORS, HI_COLOR, JOB_ERROR_UNITS, predictedMeasured, predictedMeasuredChart, type Chart, type PredictedMeasured } from './charts';
import { escapeHtml, plotlySource, renderPage, type ReportSection } from './html';
import { findJobResults, jobResult } from './jobs';
import { humanBytes, humanCount } from './table';

/** `<output without .onnx>.report.html`. */
export function jobHtmlPath(output: string): string {
  return `${output.replace(/\.onnx$/i, '')}.report.html`;
}

const exp = (x: number | undefined, d = 3) => (x === undefined ? '—' : Number.isFinite(x) ? x.toExponential(d) : String(x));
const pct = (x: number) => `${(100 * x).toFixed(2)} %`;
const db = (x: number) => (Number.isFinite(x) ? `${x.toFixed(2)} dB` : x > 0 ? '∞ (exact)' : '−∞');

/** Predicted relative error ‖ΔW‖²/‖W‖² per weight in model order, one bar trace per format (legend = formats). */
export function weightErrorChart(r: QuantizeReport): Chart {
  const formats = [...new Set(r.weights.map((w) => w.format))];
  const data: Data[] = formats.map((f, i) => {
    const ws = r.weights.filter((w) => w.format === f);
    return { type: 'bar', name: f, x: ws.map((w) => w.name), y: ws.map((w) => w.relMse), marker: { color: FORMAT_COLORS[i % FORMAT_COLORS.length] } };
  });
  return {
    data,
    layout: {
      title: { text: 'Predicted relative error per weight (model order →)' },
      xaxis: { title: { text: 'weight' }, categoryorder: 'array', categoryarray: r.weights.map((w) => w.name), showticklabels: r.weights.length <= 64, automargin: true },
      yaxis: { title: { text: '‖Q(W) − W‖² / ‖W‖²' }, type: 'log' },
    },
  };
}

/** Predicted vs measured relative error: the earlier jobs and this one (highlighted). */
export function jobPointsChart(earlier: readonly PredictedMeasured[], current: PredictedMeasured): Chart {
  const chart = predictedMeasuredChart([...earlier, current], JOB_ERROR_UNITS);
  chart.data.push({ type: 'scatter', mode: 'markers', name: 'this job', x: [current.predicted], y: [current.measured], text: [current.name], hovertemplate: '%{text}<br>predicted %{x:.3g}, measured %{y:.3g}<extra></extra>', marker: { color: HI_COLOR, size: 12, symbol: 'diamond' } });
  return chart;
}

function rowsHtml(rows: [string, string][]): string {
  return `<table><tbody>${rows.map(([k, v]) => `<tr><td>${escapeHtml(k)}</td><td>${escapeHtml(v)}</td></tr>`).join('')}</tbody></table>`;
}

function summaryRows(r: QuantizeReport): [string, string][] {
  const rows: [string, string][] = [
    ['method', r.method],
    ['execution provider', r.executionProvider],
    ['size on disk', `${humanBytes(r.sizeBytes.original)} → ${humanBytes(r.sizeBytes.quantized)} (${((100 * r.sizeBytes.quantized) / r.sizeBytes.original).toFixed(1)} %)`],
    ['weights quantized', `${r.weights.length} (${humanCount(r.weights.reduce((s, w) => s + w.params, 0))} parameters)${r.simulated ? `, ${r.weights.filter((w) => w.simulated).length} simulated (fake-quantized floats)` : ''}`],
    ['predicted relative error', `${exp(r.predicted.relMse)} (parameter-weighted ‖ΔW‖²/‖W‖²)`],
  ];
  if (r.predicted.hessian !== undefined) rows.push(['predicted Σ tr(ΔW H ΔWᵀ)', exp(r.predicted.hessian)]);
  if (r.skipped.length) rows.push(['skipped', `${r.skipped.length} plan entries (${r.skipped[0].reason})`]);
  const e = r.evaluation;
  if (!r.metrics || !e) return [...rows, ['measured', 'not evaluated']];
  rows.push(
    ['evaluation data', `${e.data.samples} samples, ${e.data.synthetic ? 'synthetic' : e.data.source}; output ${e.output}`],
    ['measured KL', `${exp(r.metrics.kl)} nats`],
    ['measured top-1 agreement', pct(r.metrics.top1)],
    ['measured SQNR', db(r.metrics.sqnrDb)],
  );
  if (e.accuracy) rows.push(['accuracy', `${pct(e.accuracy.original)} → ${pct(e.accuracy.quantized)}`]);
  if (e.perplexity) rows.push(['perplexity', `${e.perplexity.original.toFixed(3)} → ${e.perplexity.quantized.toFixed(3)}`]);
  rows.push(['latency per batch', `${e.latencyMs.original.toFixed(2)} ms → ${e.latencyMs.quantized.toFixed(2)} ms`]);
  return rows;
}

function weightsTable(r: QuantizeReport): string {
  const hessian = r.weights.some((w) => w.hessian !== undefined);
  const head = ['weight', 'format', 'stored as', 'parameters', 'pred. relMse', ...(hessian ? ['pred. tr(ΔWHΔWᵀ)'] : [])];
  const rows = r.weights.map((w) => [w.name, w.format, w.storage + (w.simulated ? ' (simulated)' : ''), humanCount(w.params), exp(w.relMse), ...(hessian ? [exp(w.hessian)] : [])]);
  return `<table><thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((c) => `<tr>${c.map((v) => `<td>${escapeHtml(v)}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

/** The page for one finished job; `earlier`: other evaluated jobs of the model (chart points). */
export function renderJobReportHtml(r: QuantizeReport, earlier: readonly PredictedMeasured[], plotly: string, generated = new Date()): string {
  const sections: ReportSection[] = [
    { id: 'weights', heading: 'Predicted error per weight', caption: 'Data-free prediction from the quantized weights alone.', chart: weightErrorChart(r) },
  ];
  const self = jobResult(r, r.report ?? '', generated.getTime());
  const point = self && predictedMeasured([self])[0];
  sections.push(
    point
      ? {
          id: 'jobs',
          heading: 'Predicted vs measured',
          caption: `This job (◆) and ${earlier.length} earlier evaluated job(s) of this model. Measured: the output's relative squared error 10^(−SQNR/10) on the evaluation data.`,
          chart: jobPointsChart(earlier, point),
        }
      : { id: 'jobs', heading: 'Predicted vs measured', caption: '', note: 'This job was not evaluated (--no-eval): nothing measured.' },
  );
  return renderPage(
    {
      title: `QuantLens job — ${path.basename(r.output)}`,
      summary: `${r.model} → ${r.output} · generated ${generated.toISOString().slice(0, 16).replace('T', ' ')} UTC`,
      tables: rowsHtml(summaryRows(r)) + weightsTable(r),
      sections,
    },
    plotly,
  );
}

/**
 * The job's page, with the earlier jobs whose reports lie beside the model (not this output's previous report);
 * undefined where Plotly is not installed (the packaged extension ships it only inside the webview bundle).
 */
export async function jobReportHtml(r: QuantizeReport): Promise<string | undefined> {
  let plotly: string;
  try {
    plotly = plotlySource();
  } catch (e) {
    if (e instanceof QuantLensError && e.code === 'no-plotly') return undefined;
    throw e;
  }
  const earlier = (await findJobResults(r.model)).filter((j) => path.resolve(j.output) !== path.resolve(r.output));
  return renderJobReportHtml(r, predictedMeasured(earlier), plotly);
}
