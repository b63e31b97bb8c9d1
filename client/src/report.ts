// `Inspect Model` output: the inspect result as a Markdown document (tables diff and copy well).
import type { AnalyzeResponse, InspectResult } from '../../server/src/protocol';
import { cell, formatBytes, formatCount } from './format';

export function inspectMarkdown(label: string, r: InspectResult): string {
  const out: string[] = [`# ${label}`, ''];
  out.push(`- Format: ${r.format}`, `- Path: \`${r.path}\``);
  if (r.files.length > 1) out.push(`- Files: ${r.files.length}`);
  out.push(`- Tensors: ${r.tensorCount.toLocaleString('en-US')}`, `- Parameters: ${r.params.toLocaleString('en-US')} (${formatCount(r.params)})`, '');

  const c = r.config;
  if (c) {
    out.push('## Config', '', '| field | value |', '| --- | --- |');
    const rows: [string, unknown][] = [
      ['architectures', c.architectures.join(', ')],
      ['model_type', c.modelType],
      ['layers', c.numLayers],
      ['hidden size', c.hiddenSize],
      ['intermediate size', c.intermediateSize],
      ['attention heads', c.numHeads],
      ['key/value heads', c.numKeyValueHeads],
      ['vocabulary', c.vocabSize],
      ['experts', c.numExperts],
      ['dtype', c.torchDtype],
      ['estimated parameters', c.estimatedParams?.toLocaleString('en-US')],
      ['quantization_config', c.quantizationConfig ? JSON.stringify(c.quantizationConfig) : undefined],
    ];
    for (const [k, v] of rows) if (v !== undefined && v !== '') out.push(`| ${k} | ${cell(String(v))} |`);
    out.push('');
  }

  const dtypes = Object.entries(r.dtypes);
  if (dtypes.length) {
    out.push('## Data types', '', '| dtype | tensors | parameters |', '| --- | ---: | ---: |');
    for (const [d, s] of dtypes) out.push(`| ${cell(d)} | ${s.tensors} | ${s.params.toLocaleString('en-US')} |`);
    out.push('');
  }
  if (r.blocks.length) {
    out.push('## Blocks', '', '| block | layers | parameters |', '| --- | ---: | ---: |');
    for (const b of r.blocks) out.push(`| ${cell(b.block)} | ${b.layers} | ${b.params.toLocaleString('en-US')} |`);
    out.push('');
  }
  if (r.layers.length) {
    const byName = new Map(r.tensors.map((t) => [t.name, t]));
    out.push('## Layers', '', '| block | layer | parameters | tensors | dtype | fused group |', '| --- | --- | ---: | --- | --- | --- |');
    for (const l of r.layers) {
      const ts = l.tensors.map((n) => byName.get(n)).filter((t) => t !== undefined);
      const shapes = ts.map((t) => `${t.name.split('.').pop()} [${t.shape.join('×')}]`).join(', ');
      const dtype = [...new Set(ts.map((t) => t.dtype))].join('/');
      out.push(`| ${cell(l.block)} | ${cell(l.layer)} | ${l.params.toLocaleString('en-US')} | ${cell(shapes)} | ${dtype} | ${cell(l.fusedGroup ?? '')} |`);
    }
    out.push('');
  }
  return out.join('\n');
}

const LAYERS_SHOWN = 40;

/** `Analyze Sensitivity` output: model totals per format, then the layers that suffer most at the lowest-bit format. */
export function analysisMarkdown(label: string, r: AnalyzeResponse): string {
  const { report } = r;
  const m = report.model;
  const out: string[] = [`# Sensitivity: ${label}`, ''];
  out.push(
    `- Analyzed: ${m.analyzedTensors.toLocaleString('en-US')} of ${m.tensors.toLocaleString('en-US')} tensors, ${formatCount(m.analyzedParams)} of ${formatCount(m.params)} parameters` +
      (report.skipped.count ? ` (skipped: ${Object.entries(report.skipped.byReason).map(([k, v]) => `${v} ${k}`).join(', ')})` : ''),
    `- Mode: ${report.options.sample !== null ? `sampled (${(report.options.sample * 100).toPrecision(3)} % of rows, ${(report.options.confidence! * 100).toFixed(0)} % intervals)` : 'full scan'} · ` +
      `${r.cache === 'hit' ? 'from the analysis cache' : `${(r.ms / 1000).toFixed(1)} s`}`,
  );
  if (r.warning) out.push(`- Warning: ${r.warning}`);
  out.push('', '## Formats (whole model)', '', '| format | bits/weight | size | relative MSE | SQNR dB |', '| --- | ---: | ---: | ---: | ---: |');
  for (const f of report.formats) {
    const t = m.totals[f.id];
    out.push(`| ${f.id} | ${t.bitsPerWeight.toFixed(3)} | ${formatBytes(t.bytes)} | ${t.relMse.toExponential(2)} | ${t.sqnrDb === null ? 'exact' : t.sqnrDb.toFixed(1)} |`);
  }
  const lowest = [...report.formats].sort((a, b) => a.bitsPerWeight - b.bitsPerWeight)[0];
  if (lowest && report.layers.length) {
    const worst = [...report.layers].sort((a, b) => b.errors[lowest.id].relMse - a.errors[lowest.id].relMse).slice(0, LAYERS_SHOWN);
    out.push('', `## Most sensitive layers at ${lowest.id}`, '', `| tensor | parameters | SQNR dB | ${report.formats.map((f) => f.id).join(' | ')} | kurtosis | max/σ | outliers |`);
    out.push(`| --- | ---: | ---: | ${report.formats.map(() => '---:').join(' | ')} | ---: | ---: | ---: |`);
    for (const l of worst) {
      const sq = l.errors[lowest.id].sqnrDb;
      const errs = report.formats.map((f) => l.errors[f.id].relMse.toExponential(2)).join(' | ');
      out.push(`| ${cell(l.name)} | ${formatCount(l.params)} | ${sq === null ? 'exact' : sq.toFixed(1)} | ${errs} | ${l.stats.kurtosis.toFixed(1)} | ${l.stats.maxOverStd.toFixed(1)} | ${(l.stats.outlierShare * 100).toFixed(3)} % |`);
    }
    if (report.layers.length > LAYERS_SHOWN) out.push('', `_${report.layers.length - LAYERS_SHOWN} more layers: \`quantlens analyze --json\` lists them all._`);
  }
  out.push('', '_Relative MSE = ‖Q(W) − W‖² / ‖W‖² per tensor; the format columns give it per format._', '');
  return out.join('\n');
}
