// Turns a format's two kernels (bit count, quantize-dequantize on a checked grid) into a NumberFormat.
import type { WeightLayout } from '../formats/types';
import { checkedGrid, type Grid, gridOf, sizedGrid } from './grid';
import type { FormatFamily, FormatModifier, Granularity, NumberFormat, QdqOptions } from './types';

export interface FormatDef {
  id: string;
  family: FormatFamily;
  description: string;
  granularity: Granularity;
  base?: string;
  modifier?: FormatModifier;
  /** Exact bits for a tensor viewed as `grid`. */
  bits(grid: Grid): number;
  /** Write the dequantized values of `w` (finite, matching `grid`) into `out`, codes into `codes` when given. */
  qdq(w: Float32Array, grid: Grid, out: Float32Array, codes: Int32Array | undefined): void;
}

export function defineFormat(def: FormatDef): NumberFormat {
  return {
    id: def.id,
    family: def.family,
    description: def.description,
    granularity: def.granularity,
    ...(def.base !== undefined ? { base: def.base, modifier: def.modifier } : {}),
    storageBits: (shape: readonly number[], layout: WeightLayout) => def.bits(gridOf(shape, layout)),
    bitsPerWeight(shape: readonly number[], layout: WeightLayout) {
      const grid = gridOf(shape, layout);
      return grid.numel === 0 ? 0 : def.bits(grid) / grid.numel;
    },
    quantizeDequantize(w: Float32Array, shape: readonly number[], layout: WeightLayout, opts?: QdqOptions) {
      const grid = opts?.finite ? sizedGrid(w, shape, layout) : checkedGrid(w, shape, layout);
      const codes = opts?.codes;
      if (codes && codes.length !== w.length) throw new Error(`codes buffer has ${codes.length} entries, expected ${w.length}`);
      if (opts?.out && opts.out.length !== w.length) throw new Error(`output buffer has ${opts.out.length} entries, expected ${w.length}`);
      const out = opts?.out ?? new Float32Array(w.length);
      def.qdq(w, grid, out, codes);
      return out;
    },
  };
}

/** Length of one scale group along a row for a granularity (a whole row for 'channel' and 'tensor'). */
export function groupLength(granularity: Granularity, grid: Grid): number {
  return typeof granularity === 'number' ? granularity : Math.max(grid.cols, 1);
}
