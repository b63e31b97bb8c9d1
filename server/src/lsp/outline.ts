// The model outline: a binary checkpoint shown as read-only text (blocks → layers with params, dtype, shape), with
// the line of every layer, so the editor can put lenses on layers and resolve "the layer under the cursor".
// Big checkpoints (60k-tensor MoE) stay light: layers are listed up to a cap per block and in all; past it, blocks
// show their totals only.
import { layerPath } from '../formats/layers';
import type { InspectResult } from '../protocol';
import { humanCount } from '../report/table';

export interface OutlineLayer {
  /** 0-based line of the layer in the outline text. */
  line: number;
  block: string;
  layer: string;
  /** As plans and tools name it: `block.layer` (just the layer outside repeated blocks). */
  path: string;
  /** The layer's tensors, its largest (the weight a job quantizes) first. */
  tensors: string[];
  params: number;
}

export interface Outline {
  text: string;
  layers: OutlineLayer[];
}

export interface OutlineLimits {
  /** Layers listed per block before "… N more". */
  perBlock: number;
  /** Layers listed in all; later blocks show their totals only. */
  total: number;
}

export const OUTLINE_LIMITS: OutlineLimits = { perBlock: 200, total: 2000 };
/** Layer names longer than this are not padded to (the column would push the numbers off screen). */
const NAME_COLUMN_MAX = 40;


export function modelOutline(r: InspectResult, limits: OutlineLimits = OUTLINE_LIMITS): Outline {
  const lines: string[] = [];
  const layers: OutlineLayer[] = [];
  lines.push(`QuantLens model outline (read-only): ${r.path}`);
  lines.push(`${r.format} · ${r.tensorCount} tensors · ${humanCount(r.params)} parameters · ${r.files.length} file(s)`);
  const dtypes = Object.entries(r.dtypes).sort((a, b) => b[1].params - a[1].params);
  if (dtypes.length) lines.push(`dtypes: ${dtypes.map(([d, s]) => `${d} ${s.tensors} tensors / ${humanCount(s.params)}`).join(', ')}`);
  lines.push('Right-click a layer line: Quantize Layer, Reveal in Plan. Lenses show sensitivity and bits once the model is analyzed.');
  if (r.tensorCount === 0) {
    lines.push('', 'No tensors: this file holds no weights.');
    return { text: `${lines.join('\n')}\n`, layers };
  }
  const byName = new Map(r.tensors.map((t) => [t.name, t]));
  const byBlock = new Map<string, InspectResult['layers']>();
  for (const l of r.layers) {
    const list = byBlock.get(l.block);
    if (list) list.push(l);
    else byBlock.set(l.block, [l]);
  }
  let listed = 0;
  for (const b of r.blocks) {
    const ls = byBlock.get(b.block) ?? [];
    const room = Math.max(0, Math.min(limits.perBlock, limits.total - listed));
    lines.push('', `${b.block} — ${b.layers} layer${b.layers === 1 ? '' : 's'} · ${humanCount(b.params)} params${room === 0 ? ' (not listed: outline limit reached)' : ''}`);
    if (room === 0) continue;
    const shown = ls.slice(0, room);
    const width = Math.min(NAME_COLUMN_MAX, Math.max(...shown.map((l) => l.layer.length)));
    for (const l of shown) {
      const ts = l.tensors.map((n) => byName.get(n)).filter((t) => t !== undefined);
      // The largest tensor describes the layer (the weight, not its bias).
      const main = ts.reduce<(typeof ts)[number] | undefined>((a, t) => (!a || t.params > a.params ? t : a), undefined);
      const facts = [
        humanCount(l.params).padStart(9),
        main ? `${main.dtype} [${main.shape.join('×')}]` : '',
        ts.length > 1 ? `${ts.length} tensors` : '',
        // The fused group within its block (`self_attn.qkv`): the block heads the section already.
        l.fusedGroup ? `⊂ ${l.fusedGroup.startsWith(`${l.block}.`) ? l.fusedGroup.slice(l.block.length + 1) : l.fusedGroup}` : '',
      ].filter(Boolean);
      const tensors = main ? [main.name, ...l.tensors.filter((n) => n !== main.name)] : l.tensors;
      layers.push({ line: lines.length, block: l.block, layer: l.layer, path: layerPath(l), tensors, params: l.params });
      lines.push(`  ${l.layer.padEnd(width)}  ${facts.join('  ')}`);
    }
    listed += shown.length;
    if (ls.length > shown.length) {
      const rest = ls.slice(shown.length);
      lines.push(`  … ${rest.length} more layers · ${humanCount(rest.reduce((s, l) => s + l.params, 0))} params (Inspect Model lists every tensor)`);
    }
  }
  return { text: `${lines.join('\n')}\n`, layers };
}
