// The mixed high-impact quantizer of one layer (DESIGN.md §4, issue 6/8): the top-k weights by saliency (|w| when
// none is given) are stored at b_hi (`--hi`: fp16 or int<b>_ch_sym), every other weight at b_lo (`--lo`), with the
// sparse index counted as allocate/ratios-curve.ts counts it (the ratios command's exact bit count).
//
// Grids. Each format is fit to the weights it stores: b_lo's group scales/zero points on the layer with the kept
// positions read as 0, b_hi's per-channel scales on the kept weights alone (the rest read as 0). So outliers no
// longer stretch the low-bit groups (SpQR's point), and a 0 never widens a symmetric range (an asymmetric
// group whose remaining weights all share one sign gets 0 into its range: rare at group sizes ≥ 32).
//
// Rounding. Without calibration: round-to-nearest on both grids. With the layer Hessian H: one GPTQ pass over the
// input columns (the OBS update with U = chol((H + λ·mean diag H·I)⁻¹), upper), each weight rounded to ITS grid —
// kept ones to b_hi, the others to b_lo — and every rounding error spread over the columns not yet quantized.
// Why not "GPTQ for the kept weights, plain RTN for the rest": the b_lo weights carry almost all of the error
// (≥ 90 % of the weights at 2–3 bits), so they are the ones that most need error feedback; and the kept weights,
// quantized in the same pass, absorb part of their neighbours' error on their finer grid at no extra cost. The
// b_lo group grid is fit when the pass reaches the group's first column (on the updated weights), as in GPTQ;
// b_hi's per-channel scales are fit on the kept weights before the pass. The kept set is chosen once, on the
// original weights, so the index (and the bit count) does not depend on the rounding.
// The update is the column-by-column form (no lazy batches): O(rows·cols²) multiply-adds in float64 JS.
import { QuantLensError, type Location } from '../formats/errors';
import type { WeightLayout } from '../formats/types';
import { mixedStorageBits, topOrder, type HiFormat } from '../allocate/ratios-curve';
import { getFormat, QuantInputError, type NumberFormat } from '../quant';
import { gridOf, type Grid } from '../quant/grid';
import { toFp16 } from '../quant/minifloat';
import { DEFAULT_DAMP } from '../runtime/linalg';
import { inverseUpperFactor } from './gptq';
import { intFormatInfo, packWeight, type IntFormatInfo } from './pack';

export interface MixedLayerInput {
  w: Float32Array;
  shape: readonly number[];
  layout: WeightLayout;
  lo: NumberFormat;
  hi: HiFormat;
  /** Weights kept at b_hi (the top k by saliency). */
  kept: number;
  /** Per-weight saliency ≥ 0 in storage order; |w| when absent. */
  saliency?: Float32Array;
  /** Layer Hessians (one d×d per group of output channels): GPTQ rounding; absent: round-to-nearest. */
  H?: readonly Float64Array[];
  damp?: number;
  where?: Location;
}

export interface MixedLayerResult {
  /** Dequantized values, storage order. */
  values: Float32Array;
  /** Storage indices of the kept weights, most salient first. */
  keptIndex: Uint32Array;
  /** Exact storage bits (b_lo codes and scales + kept values + b_hi scales + the cheaper sparse index). */
  bits: number;
  rounding: 'rtn' | 'gptq';
}

/** Why GPTQ rounding cannot run with this low format (undefined when it can). */
export function mixedGptqBlocker(lo: NumberFormat): string | undefined {
  return intFormatInfo(lo) ? undefined : `GPTQ rounding needs a plain integer --lo format (int<b>_g<g>_… or int<b>_ch_…), found ${lo.id}`;
}

/** Exact storage bits of a layer of this shape with k weights kept at `hi`, the rest at `lo`. */
export function mixedLayerBits(lo: NumberFormat, hi: HiFormat, shape: readonly number[], layout: WeightLayout, k: number): number {
  const { rows, cols, numel } = gridOf(shape, layout);
  return mixedStorageBits({ lowBits: lo.storageBits(shape, layout), hiScaleBits: hi.scaleBits(shape, layout), hiElemBits: hi.elemBits, rows, cols, params: numel }, k);
}

export function quantizeMixedLayer(x: MixedLayerInput): MixedLayerResult {
  const where = x.where ?? { file: '<mixed>' };
  const { w, shape, layout } = x;
  const grid = gridOf(shape, layout);
  if (w.length !== grid.numel) throw new QuantLensError('bad-tensor', `read ${w.length} values, expected ${grid.numel} for shape [${shape.join(', ')}]`, where);
  if (!(Number.isInteger(x.kept) && x.kept >= 0 && x.kept <= w.length)) throw new QuantLensError('bad-ratio', `kept count ${x.kept} is not in [0, ${w.length}]`, where);
  const sal = x.saliency;
  if (sal && sal.length !== w.length) throw new QuantLensError('bad-saliency', `saliency has ${sal.length} values, expected ${w.length}`, where);
  const keptIndex = topOrder(sal ?? Float32Array.from(w, Math.abs), x.kept);
  const mask = new Uint8Array(w.length);
  for (const i of keptIndex) mask[i] = 1;
  const bits = mixedLayerBits(x.lo, x.hi, shape, layout, x.kept);
  try {
    if (!x.H) return { values: roundToNearest(x, mask), keptIndex, bits, rounding: 'rtn' };
    const blocker = mixedGptqBlocker(x.lo);
    if (blocker) throw new QuantLensError('unsupported', blocker, where);
    return { values: gptqMixed(x, grid, mask, x.H, where), keptIndex, bits, rounding: 'gptq' };
  } catch (e) {
    if (e instanceof QuantInputError) throw new QuantLensError('non-finite-weight', e.message, where);
    throw e;
  }
}

/** `w` with the positions where mask[i] === keep set to 0. */
function zeroed(w: ArrayLike<number>, mask: Uint8Array, keep: number): Float32Array {
  return Float32Array.from(w, (v, i) => (mask[i] === keep ? 0 : v));
}

function roundToNearest(x: MixedLayerInput, mask: Uint8Array): Float32Array {
  const low = x.lo.quantizeDequantize(zeroed(x.w, mask, 1), x.shape, x.layout);
  if (x.kept === 0) return low;
  const high = x.hi.qdq(zeroed(x.w, mask, 0), x.shape, x.layout);
  for (let i = 0; i < low.length; i++) if (mask[i]) low[i] = high[i];
  return low;
}

/** Round half to even (the formats' rounding). */
function rne(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** One row's integer grid: scale, zero point, code range. */
interface RowGrid {
  scale: Float64Array;
  zero: Int32Array;
  qmin: number;
  qmax: number;
}

function rowGrid(info: IntFormatInfo, rows: number): RowGrid {
  return {
    scale: new Float64Array(rows),
    zero: new Int32Array(rows),
    qmin: info.signed ? -(2 ** (info.bits - 1)) : 0,
    qmax: info.signed ? 2 ** (info.bits - 1) - 1 : 2 ** info.bits - 1,
  };
}

function roundOn(g: RowGrid, r: number, v: number): number {
  const s = g.scale[r];
  let c = s > 0 ? rne(v / s) + g.zero[r] : g.zero[r];
  c = c < g.qmin ? g.qmin : c > g.qmax ? g.qmax : c;
  return Math.fround((c - g.zero[r]) * s);
}

/**
 * Fits `format` (one group per row) to columns [c0, c0 + n) of the row-major [rows, cols] matrix W, positions whose
 * mask is `drop` read as 0, and stores each row's scale and zero point (read back from what the format produced).
 */
function fitRows(W: Float64Array, mask: Uint8Array, drop: number, rows: number, cols: number, c0: number, n: number, format: NumberFormat, info: IntFormatInfo, out: RowGrid, where: Location): void {
  const slice = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) for (let k = 0; k < n; k++) slice[r * n + k] = mask[r * cols + c0 + k] === drop ? 0 : W[r * cols + c0 + k];
  const codes = new Int32Array(slice.length);
  const deq = format.quantizeDequantize(slice, [rows, n], 'out_in', { codes });
  const packed = packWeight(deq, codes, [rows, n], 'out_in', { ...info, group: 'channel' });
  if (!packed) throw new QuantLensError('internal', `could not read the grid of ${format.id} back at column ${c0}`, where);
  for (let r = 0; r < rows; r++) {
    out.scale[r] = packed.scales[r];
    out.zero[r] = packed.zeros ? packed.zeros[r] : 0;
  }
}

function gptqMixed(x: MixedLayerInput, grid: Grid, mask: Uint8Array, H: readonly Float64Array[], where: Location): Float32Array {
  const { rows, cols, rowStride, colStride } = grid;
  if (H.length < 1 || rows % H.length !== 0) throw new QuantLensError('bad-hessian', `${H.length} Hessians do not split ${rows} output channels evenly`, where);
  for (const h of H) if (h.length !== cols * cols) throw new QuantLensError('bad-hessian', `expected ${cols}×${cols} Hessians for ${cols} inputs, found ${h.length} values`, where);
  const loInfo = intFormatInfo(x.lo)!;
  const hiFormat = x.hi.id === 'fp16' ? undefined : getFormat(x.hi.id);
  const hiInfo = hiFormat && intFormatInfo(hiFormat);
  const values = new Float32Array(x.w.length);
  const per = rows / H.length;
  for (let g = 0; g < H.length; g++) {
    const W = new Float64Array(per * cols);
    const m = new Uint8Array(per * cols);
    for (let r = 0; r < per; r++) {
      for (let c = 0; c < cols; c++) {
        const at = (g * per + r) * rowStride + c * colStride;
        W[r * cols + c] = x.w[at];
        m[r * cols + c] = mask[at];
      }
    }
    const q = gptqRows(W, m, per, cols, H[g], x, loInfo, hiFormat && hiInfo ? { format: hiFormat, info: hiInfo } : undefined, where);
    for (let r = 0; r < per; r++) for (let c = 0; c < cols; c++) values[(g * per + r) * rowStride + c * colStride] = q[r * cols + c];
  }
  return values;
}

function gptqRows(W: Float64Array, mask: Uint8Array, rows: number, cols: number, h: Float64Array, x: MixedLayerInput, loInfo: IntFormatInfo, hi: { format: NumberFormat; info: IntFormatInfo } | undefined, where: Location): Float32Array {
  const Hd = h.slice();
  // Dead inputs (H_ii = 0): H_ii = 1 and zero weights, as GPTQ does.
  for (let i = 0; i < cols; i++) {
    if (Hd[i * cols + i] === 0) {
      Hd[i * cols + i] = 1;
      for (let r = 0; r < rows; r++) W[r * cols + i] = 0;
    }
  }
  const U = inverseUpperFactor(Hd, cols, x.damp ?? DEFAULT_DAMP, where);
  const loGrid = rowGrid(loInfo, rows);
  const loGroup = loInfo.group === 'channel' ? cols : loInfo.group;
  const hiGrid = hi ? rowGrid(hi.info, rows) : undefined;
  if (hi && hiGrid && x.kept > 0) fitRows(W, mask, 0, rows, cols, 0, cols, hi.format, hi.info, hiGrid, where);
  const q = new Float32Array(rows * cols);
  for (let i = 0; i < cols; i++) {
    if (i % loGroup === 0) fitRows(W, mask, 1, rows, cols, i, Math.min(loGroup, cols - i), x.lo, loInfo, loGrid, where);
    const d = U[i * cols + i];
    const ui = i * cols;
    for (let r = 0; r < rows; r++) {
      const row = r * cols;
      const v = W[row + i];
      const deq = mask[row + i] ? (hiGrid ? roundOn(hiGrid, r, v) : toFp16(v)) : roundOn(loGrid, r, v);
      q[row + i] = deq;
      const e = (v - deq) / d;
      if (e === 0) continue;
      for (let j = i + 1; j < cols; j++) W[row + j] -= e * U[ui + j];
    }
  }
  return q;
}
