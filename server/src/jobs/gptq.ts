// GPTQ (Frantar et al. 2022): quantize a layer column by column (input axis, in the [out, in] view) and spread
// each column's error over the columns not yet quantized with the OBS update, using U = the upper Cholesky factor
// of the damped inverse Hessian (H + λ·mean(diag H)·I)⁻¹ = UᵀU:
//   q_i = Q(w_i);  e = (w_i − q_i) / U_ii;  w_j −= e·U_ij  (j > i).
// Columns go in blocks of 128: inside a block the update touches only the block's columns; the rest of the
// matrix gets the block's errors at once (W[:, end:] −= E·U[block, end:]) — the "lazy batch" update, which does
// most of the multiply-adds and runs as an onnxruntime MatMul for large layers. The factorization (one Cholesky and
// one triangular inverse, float64 JS: onnxruntime has no Cholesky) costs ~2·n³/6.
// The grid is the format's own: when a column starts a group (and at column 0 for per-channel formats) the
// format quantizes the group's current values, and the group's scale and zero point are read back from that
// result (pack.ts); every column of the group is then rounded on that fixed grid. Plain integer formats only.
// Dead inputs (H_ii = 0) get H_ii = 1 and zero weights, as in the reference implementation.
import { QuantLensError, type Location } from '../formats/errors';
import type { WeightLayout } from '../formats/types';
import type { NumberFormat } from '../quant';
import { gridOf } from '../quant/grid';
import { matmul } from '../runtime/kernels';
import { dampedCholesky, DEFAULT_DAMP } from '../runtime/linalg';
import type { SessionOptions } from '../runtime/session';
import { intFormatInfo, packWeight } from './pack';

export const GPTQ_BLOCK = 128;

export interface GptqOptions extends SessionOptions {
  /** λ (fraction of mean(diag H) added to the diagonal); default 0.01. */
  damp?: number;
  blockSize?: number;
  /** Lazy updates of more multiply-adds than this run as an onnxruntime MatMul. */
  jsLimit?: number;
  where?: Location;
}

const JS_LIMIT = 2 ** 22;

export interface GptqResult {
  /** Dequantized values, storage order. */
  values: Float32Array;
  /** Codes as the formats module writes them (signed q for sym, q + zero for asym). */
  codes: Int32Array;
}

/** Round half to even. */
function rne(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * GPTQ on `w` (storage order, `shape`/`layout` as the formats module takes them) with Hessians `H` (d×d,
 * d = the input-axis length of the [out, in] view); several Hessians split the output channels into equal
 * consecutive groups (grouped convolutions).
 */
export async function gptqQuantize(w: Float32Array, shape: readonly number[], layout: WeightLayout, format: NumberFormat, H: readonly Float64Array[], opts: GptqOptions = {}): Promise<GptqResult> {
  const where = opts.where ?? { file: '<gptq>' };
  const info = intFormatInfo(format);
  if (!info) throw new QuantLensError('unsupported', `GPTQ needs a plain integer format (int<b>_g<g>_… or int<b>_ch_…), found ${format.id}`, where);
  const grid = gridOf(shape, layout);
  const { rows, cols, rowStride, colStride } = grid;
  if (H.length < 1 || rows % H.length !== 0) throw new QuantLensError('bad-hessian', `${H.length} Hessians do not split ${rows} output channels evenly`, where);
  for (const h of H) {
    if (h.length !== cols * cols) throw new QuantLensError('bad-hessian', `expected ${cols}×${cols} Hessians for ${cols} inputs, found ${h.length} values`, where);
  }
  const values = new Float32Array(w.length);
  const codes = new Int32Array(w.length);
  const per = rows / H.length;
  for (let g = 0; g < H.length; g++) {
    // The group's rows as a row-major [per, cols] float64 matrix.
    const W = new Float64Array(per * cols);
    for (let r = 0; r < per; r++) for (let c = 0; c < cols; c++) W[r * cols + c] = w[(g * per + r) * rowStride + c * colStride];
    const { q, code } = await gptqRows(W, per, cols, H[g], format, info.signed, info.bits, info.group === 'channel' ? cols : info.group, opts, where);
    for (let r = 0; r < per; r++) {
      for (let c = 0; c < cols; c++) {
        const at = (g * per + r) * rowStride + c * colStride;
        values[at] = q[r * cols + c];
        codes[at] = code[r * cols + c];
      }
    }
  }
  return { values, codes };
}

async function gptqRows(W: Float64Array, rows: number, cols: number, h: Float64Array, format: NumberFormat, signed: boolean, bits: number, group: number, opts: GptqOptions, where: Location): Promise<{ q: Float32Array; code: Int32Array }> {
  const H = h.slice();
  for (let i = 0; i < cols; i++) {
    if (H[i * cols + i] === 0) {
      H[i * cols + i] = 1;
      for (let r = 0; r < rows; r++) W[r * cols + i] = 0;
    }
  }
  const U = inverseUpperFactor(H, cols, opts.damp ?? DEFAULT_DAMP, where);
  const q = new Float32Array(rows * cols);
  const code = new Int32Array(rows * cols);
  const scale = new Float64Array(rows);
  const zero = new Int32Array(rows);
  const qmin = signed ? -(2 ** (bits - 1)) : 0;
  const qmax = signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
  const bs = opts.blockSize ?? GPTQ_BLOCK;
  const err = new Float64Array(rows * bs);
  for (let i1 = 0; i1 < cols; i1 += bs) {
    const i2 = Math.min(i1 + bs, cols);
    for (let i = i1; i < i2; i++) {
      if (i % group === 0) groupGrid(W, rows, cols, i, Math.min(group, cols - i), format, signed, bits, scale, zero, where);
      const d = U[i * cols + i];
      const ui = i * cols;
      for (let r = 0; r < rows; r++) {
        const x = W[r * cols + i];
        const s = scale[r];
        let c = s > 0 ? rne(x / s) + zero[r] : zero[r];
        c = c < qmin ? qmin : c > qmax ? qmax : c;
        const deq = Math.fround((c - zero[r]) * s);
        q[r * cols + i] = deq;
        code[r * cols + i] = c;
        const e = (x - deq) / d;
        err[r * bs + (i - i1)] = e;
        const row = r * cols;
        for (let j = i + 1; j < i2; j++) W[row + j] -= e * U[ui + j];
      }
    }
    await lazyUpdate(W, rows, cols, err, bs, i1, i2, U, opts);
  }
  return { q, code };
}

/**
 * The upper Cholesky factor U of (H + λ·mean(diag H)·I)⁻¹ = UᵀU, row-major, from ONE Cholesky and one triangular
 * inverse: with J the reversal permutation, J·H·J = L'L'ᵀ gives H = R·Rᵀ with R = J·L'·J upper, so H⁻¹ = R⁻ᵀR⁻¹
 * and U = R⁻¹ = J·L'⁻¹·J (upper with a positive diagonal, hence THE Cholesky factor).
 */
export function inverseUpperFactor(h: Float64Array, n: number, damp: number, where: Location): Float64Array {
  const rev = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) rev[(n - 1 - i) * n + (n - 1 - j)] = h[i * n + j];
  const { L } = dampedCholesky(rev, damp, where);
  // X = L⁻¹ row by row: X[i, :] = (e_i − Σ_{k<i} L[i,k]·X[k, :]) / L[i,i] (contiguous row updates).
  const X = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const xi = i * n;
    for (let k = 0; k < i; k++) {
      const f = L[xi + k];
      if (f === 0) continue;
      const xk = k * n;
      for (let j = 0; j <= k; j++) X[xi + j] -= f * X[xk + j];
    }
    X[xi + i] += 1;
    const inv = 1 / L[xi + i];
    for (let j = 0; j <= i; j++) X[xi + j] *= inv;
  }
  const U = rev; // reuse: U[i, j] = X[n−1−i, n−1−j]
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) U[i * n + j] = X[(n - 1 - i) * n + (n - 1 - j)];
  return U;
}

/** W[:, i2:] −= E · U[i1:i2, i2:] — the bulk of GPTQ's work: on onnxruntime (float32) when large, else in float64 JS. */
async function lazyUpdate(W: Float64Array, rows: number, cols: number, err: Float64Array, bs: number, i1: number, i2: number, U: Float64Array, opts: GptqOptions): Promise<void> {
  const n = i2 - i1;
  const rest = cols - i2;
  if (rest === 0) return;
  if (rows * n * rest > (opts.jsLimit ?? JS_LIMIT)) {
    const e = new Float32Array(rows * n);
    for (let r = 0; r < rows; r++) for (let k = 0; k < n; k++) e[r * n + k] = err[r * bs + k];
    const u = new Float32Array(n * rest);
    for (let k = 0; k < n; k++) u.set(U.subarray((i1 + k) * cols + i2, (i1 + k + 1) * cols), k * rest);
    const d = await matmul(e, [rows, n], u, [n, rest], { providers: opts.providers, threads: opts.threads, where: opts.where });
    for (let r = 0; r < rows; r++) for (let j = 0; j < rest; j++) W[r * cols + i2 + j] -= d[r * rest + j];
    return;
  }
  for (let r = 0; r < rows; r++) {
    const row = r * cols;
    for (let k = i1; k < i2; k++) {
      const e = err[r * bs + (k - i1)];
      if (e === 0) continue;
      const uk = k * cols;
      for (let j = i2; j < cols; j++) W[row + j] -= e * U[uk + j];
    }
  }
}

/** Scale and zero point per row for the group of `n` columns starting at `c0`, from the format's own quantizer. */
function groupGrid(W: Float64Array, rows: number, cols: number, c0: number, n: number, format: NumberFormat, signed: boolean, bits: number, scale: Float64Array, zero: Int32Array, where: Location): void {
  const slice = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) for (let k = 0; k < n; k++) slice[r * n + k] = W[r * cols + c0 + k];
  const codes = new Int32Array(slice.length);
  const deq = format.quantizeDequantize(slice, [rows, n], 'out_in', { codes });
  const packed = packWeight(deq, codes, [rows, n], 'out_in', { bits, signed, group: 'channel' });
  if (!packed) throw new QuantLensError('internal', `could not read the grid of ${format.id} back at column ${c0}`, where);
  for (let r = 0; r < rows; r++) {
    scale[r] = packed.scales[r];
    zero[r] = packed.zeros ? packed.zeros[r] : 0;
  }
}
