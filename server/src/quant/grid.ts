// The [out, in] view every format works on: rows are output channels, quantization groups run along the input axis.
// Other layouts are addressed through strides; in_out data is gathered 64 output channels at a time into a small
// scratch (mapGroups), never transposed as a whole.
import type { WeightLayout } from '../formats/types';
import { QuantInputError } from './types';

export interface Grid {
  /** Output channels. */
  rows: number;
  /** Input-axis length of one row (groups run along it). */
  cols: number;
  /** Flat distance between element (r, c) and (r + 1, c). */
  rowStride: number;
  /** Flat distance between element (r, c) and (r, c + 1). */
  colStride: number;
  numel: number;
}

/**
 * out_in / embedding / conv / other: rows = shape[0], the remaining axes flattened into the input axis
 * (conv: in·kh·kw). in_out (ONNX MatMul B, [in, out]): rows = the last axis, earlier axes flattened into the input
 * axis, read with stride `out`. vector and any 1-D shape: a single row.
 */
export function gridOf(shape: readonly number[], layout: WeightLayout): Grid {
  let numel = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new Error(`bad dimension ${d} in shape [${shape.join(', ')}]`);
    numel *= d;
  }
  if (!Number.isSafeInteger(numel)) throw new Error(`shape [${shape.join(', ')}] has too many elements`);
  if (shape.length < 2 || layout === 'vector') return { rows: numel === 0 ? 0 : 1, cols: numel, rowStride: numel, colStride: 1, numel };
  if (layout === 'in_out') {
    const out = shape[shape.length - 1];
    return { rows: out, cols: out === 0 ? 0 : numel / out, rowStride: 1, colStride: out, numel };
  }
  const rows = shape[0];
  const cols = rows === 0 ? 0 : numel / rows;
  return { rows, cols, rowStride: cols, colStride: 1, numel };
}

/** Grid of `w`, checking that the shape matches the data. */
export function sizedGrid(w: Float32Array, shape: readonly number[], layout: WeightLayout): Grid {
  const g = gridOf(shape, layout);
  if (g.numel !== w.length) throw new Error(`shape [${shape.join(', ')}] has ${g.numel} elements but the data has ${w.length}`);
  return g;
}

/** Grid of `w`, checking that the shape matches the data and every value is finite. */
export function checkedGrid(w: Float32Array, shape: readonly number[], layout: WeightLayout): Grid {
  const g = sizedGrid(w, shape, layout);
  for (let i = 0; i < w.length; i++) {
    const v = w[i];
    if (v - v !== 0) throw new QuantInputError(i, v); // NaN and ±Inf are the only values with v − v ≠ 0
  }
  return g;
}

/** Number of scale groups of length `g` along the input axis (a partial last group counts as a whole one). */
export function groupCount(grid: Grid, g: number): number {
  return grid.rows * Math.ceil(grid.cols / g);
}

/**
 * Visit every group of length `g` (the last one of a row may be shorter) in place: `fn(offset, length, stride)`.
 * For index bookkeeping (outlier selection); value kernels go through `mapGroups`.
 */
export function forEachGroup(grid: Grid, g: number, fn: (off: number, n: number, stride: number) => void): void {
  const { rows, cols, rowStride, colStride } = grid;
  if (colStride === 1) {
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c += g) fn(r * rowStride + c, Math.min(g, cols - c), 1);
  } else {
    for (let c = 0; c < cols; c += g) {
      const n = Math.min(g, cols - c);
      for (let r = 0; r < rows; r++) fn(r * rowStride + c * colStride, n, colStride);
    }
  }
}

/** A group kernel: reads src[off … off+n), writes dst (and codes) at the same indices. */
export type GroupKernel = (src: Float32Array, dst: Float32Array, codes: Int32Array | undefined, off: number, n: number) => void;

/** Output channels per tile when in_out data is gathered into rows (measured best of 8…128 on 4096×4096). */
const TILE = 64;

/**
 * Apply `kernel` to every group of length `g` of every row, always on contiguous memory: out_in rows are used in
 * place; in_out data is gathered TILE output channels at a time into a small row-major scratch (each input-axis
 * index contributes one contiguous run of TILE values) and scattered back — a strided walk over a whole column
 * per group would miss the cache on every element.
 */
export function mapGroups(w: Float32Array, out: Float32Array, codes: Int32Array | undefined, grid: Grid, g: number, kernel: GroupKernel): void {
  const { rows, cols, rowStride, colStride } = grid;
  if (colStride === 1) {
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c += g) kernel(w, out, codes, r * rowStride + c, Math.min(g, cols - c));
    return;
  }
  const src = new Float32Array(TILE * cols);
  const dst = new Float32Array(TILE * cols);
  const tcodes = codes ? new Int32Array(TILE * cols) : undefined;
  for (let r0 = 0; r0 < rows; r0 += TILE) {
    const t = Math.min(TILE, rows - r0);
    for (let c = 0; c < cols; c++) {
      const base = c * colStride + r0 * rowStride;
      for (let k = 0; k < t; k++) src[k * cols + c] = w[base + k * rowStride];
    }
    for (let k = 0; k < t; k++) for (let c = 0; c < cols; c += g) kernel(src, dst, tcodes, k * cols + c, Math.min(g, cols - c));
    for (let c = 0; c < cols; c++) {
      const base = c * colStride + r0 * rowStride;
      for (let k = 0; k < t; k++) out[base + k * rowStride] = dst[k * cols + c];
      if (codes && tcodes) for (let k = 0; k < t; k++) codes[base + k * rowStride] = tcodes[k * cols + c];
    }
  }
}
