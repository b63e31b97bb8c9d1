// Which formats may quantize a tensor one row block at a time with results identical to the whole tensor.
// Rows of the [out, in] view are independent for group/channel-scaled formats. Two kinds depend on the tensor:
// a per-tensor scale from the tensor's max |w| (per-tensor FP8/FP6, NVFP4's fp32 scale) and +reorder's column
// permutation from the per-column max |w|. Both are reproduced exactly by appending one extra row holding the
// tensor's per-column max |w|: its column maxima equal the tensor's, so is its overall max, and its own groups
// touch no real row. Modifiers that transform rows before the base's tensor statistic (+had, +ol) over such a
// base would transform that extra row too, so those quantize the whole tensor at once.
// test/unit/analysis-blocks.test.ts checks block == whole for every catalogue format.
import { getFormat, type NumberFormat } from '../quant';

export type BlockMode = 'rows' | 'augment' | 'whole';

export function blockMode(f: NumberFormat): BlockMode {
  if (f.modifier === undefined || f.base === undefined) return f.granularity === 'tensor' || f.family === 'nvfp4' ? 'augment' : 'rows';
  const base = blockMode(getFormat(f.base));
  if (f.modifier === 'reorder') return base === 'whole' ? 'whole' : 'augment';
  return base === 'rows' ? 'rows' : 'whole';
}

/** Length of the groups along a row that share a scale (a whole row for per-channel and per-tensor scales). */
export function groupSizeOf(f: NumberFormat, cols: number): number {
  return typeof f.granularity === 'number' ? Math.min(f.granularity, Math.max(cols, 1)) : Math.max(cols, 1);
}
