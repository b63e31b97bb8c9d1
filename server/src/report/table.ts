// Plain-text tables for the CLI (aligned columns, human units).
import type { InspectResult } from '../protocol';

export function humanCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} K`;
  return String(n);
}

export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

/** Align rows into columns; numeric-looking cells are right-aligned. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const numeric = header.map((_, i) => rows.length > 0 && rows.every((r) => /^[\d.,\s]+[KMB%]?$|^-$/.test(r[i] ?? '')));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '─'.repeat(w))), ...rows.map(line)].join('\n') + '\n';
}

/** Layers made only of scalars/short vectors (exporter constants) clutter a layer table. */
const TINY_LAYER_PARAMS = 16;

export function formatInspectTable(r: InspectResult, opts: { all?: boolean } = {}): string {
  const out: string[] = [];
  out.push(`${r.path}`);
  out.push(`format ${r.format} · ${r.tensorCount} tensors · ${humanCount(r.params)} parameters · ${r.files.length} file(s)`);
  out.push(
    `dtypes: ${Object.entries(r.dtypes)
      .sort((a, b) => b[1].params - a[1].params)
      .map(([d, s]) => `${d} ${s.tensors} tensors / ${humanCount(s.params)}`)
      .join(', ')}`,
  );
  if (r.config) {
    const c = r.config;
    const facts = [
      c.architectures.join(',') || c.modelType,
      c.numLayers !== undefined && `${c.numLayers} layers`,
      c.hiddenSize !== undefined && `hidden ${c.hiddenSize}`,
      c.intermediateSize !== undefined && `intermediate ${c.intermediateSize}`,
      c.numHeads !== undefined && `${c.numHeads} heads${c.numKeyValueHeads ? ` (${c.numKeyValueHeads} kv)` : ''}`,
      c.numExperts !== undefined && `${c.numExperts} experts`,
      c.quantizationConfig && `quantization_config: ${String(c.quantizationConfig.quant_method ?? 'present')}`,
      c.estimatedParams !== undefined && `≈${humanCount(c.estimatedParams)} params implied`,
    ].filter(Boolean);
    out.push(`config: ${facts.join(' · ')}`);
  }
  out.push('');
  if (r.blocks.length > 1) {
    out.push(formatTable(['block', 'layers', 'params'], r.blocks.map((b) => [b.block, String(b.layers), humanCount(b.params)])));
  }
  const byName = new Map(r.tensors.map((t) => [t.name, t]));
  const rows: string[][] = [];
  let hidden = 0;
  for (const l of r.layers) {
    const ts = l.tensors.map((n) => byName.get(n)!);
    const main = ts.reduce((a, b) => (b.params > a.params ? b : a));
    if (!opts.all && l.params <= TINY_LAYER_PARAMS && main.shape.length < 2) {
      hidden++;
      continue;
    }
    const extra = [main.storage, main.quantForm, l.fusedGroup && `group ${l.fusedGroup}`].filter(Boolean).join(', ');
    rows.push([l.block, l.layer, String(ts.length), humanCount(l.params), main.dtype, `[${main.shape.join('×')}]`, main.consumers?.[0]?.split(':')[0] ?? '', extra]);
  }
  if (rows.length) out.push(formatTable(['block', 'layer', 'tensors', 'params', 'dtype', 'shape', 'op', 'notes'], rows));
  if (hidden) out.push(`(${hidden} layers of ≤ ${TINY_LAYER_PARAMS} scalar/vector parameters not shown; --all lists them)\n`);
  return out.join('\n');
}
