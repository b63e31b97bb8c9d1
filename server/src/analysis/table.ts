// Plain-text output of `quantlens analyze` and `quantlens formats`: layer rows × format columns of SQNR dB.
import type { FormatSummary } from '../quant';
import { humanCount } from '../report/table';
import type { AnalysisReport } from './types';

/** Columns aligned; every column but the first right-aligned. */
function align(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd()).join('\n') + '\n';
}

const db = (x: number | null) => (x === null ? 'exact' : x.toFixed(1));

export function formatAnalysisTable(r: AnalysisReport): string {
  const ids = r.formats.map((f) => f.id);
  const skipped = Object.entries(r.skipped.byReason).map(([k, v]) => `${k} ${v}`).join(', ');
  const out: string[] = [
    r.model.path,
    `format ${r.model.format} · ${r.model.analyzedTensors} of ${r.model.tensors} tensors analyzed (${humanCount(r.model.analyzedParams)} params)` +
      (r.skipped.count > 0 ? ` · ${r.skipped.count} skipped (${skipped})` : ''),
    r.options.sample !== null
      ? `SQNR dB per layer × format, estimated from ${(r.options.sample * 100).toPrecision(3)} % of the output channels (${(r.options.confidence! * 100).toFixed(0)} % intervals in --json)`
      : 'SQNR dB per layer × format (higher is better); bits/weight include scales and zero points',
    `kurt = excess kurtosis · out‰ = weights beyond ${r.options.sigma}σ of their channel, per mille · SW = super weights`,
    '',
  ];
  const rows: string[][] = [['layer', 'params', 'kurt', 'out‰', 'max/σ', 'SW', ...ids]];
  rows.push(['bits/weight', '', '', '', '', '', ...r.formats.map((f) => f.bitsPerWeight.toFixed(2))]);
  for (const l of r.layers) {
    rows.push([
      l.name,
      humanCount(l.params),
      l.stats.kurtosis.toFixed(1),
      (l.stats.outlierShare * 1000).toFixed(2),
      l.stats.maxOverStd.toFixed(1),
      String(l.stats.superWeights.length || '-'),
      ...ids.map((id) => db(l.errors[id].sqnrDb)),
    ]);
  }
  rows.push(['model (all analyzed layers)', humanCount(r.model.analyzedParams), '', '', '', '', ...ids.map((id) => db(r.model.totals[id].sqnrDb))]);
  out.push(align(rows));
  for (const l of r.layers) {
    for (const s of l.stats.superWeights) out.push(`super weight ${l.name} [${s.coords.join(', ')}] = ${s.value} (${s.overMedian === null ? '∞' : s.overMedian.toFixed(0)}× median |w|)\n`);
  }
  return out.join('\n');
}

export function formatFormatsTable(list: FormatSummary[]): string {
  const rows = [['id', 'family', 'bits/w', 'definition'], ...list.map((f) => [f.id, f.family, f.bitsPerWeight.toFixed(4), f.description])];
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  return (
    'bits/w: storage per weight of a 4096×4096 [out, in] matrix, scales and zero points included\n\n' +
    rows.map((r) => `${r[0].padEnd(w0)}  ${r[1].padEnd(w1)}  ${r[2].padStart(7)}  ${r[3]}`).join('\n') +
    '\n'
  );
}
