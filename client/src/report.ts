// `Inspect Model` output: the inspect result as a Markdown document (tables diff and copy well).
import type { InspectResult } from '../../server/src/protocol';
import { cell, formatCount } from './format';

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
  out.push('_Not analyzed yet: sensitivity scores appear here once Analyze Sensitivity has run._', '');
  return out.join('\n');
}
