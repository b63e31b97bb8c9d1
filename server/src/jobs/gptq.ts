// GPTQ (Frantar et al. 2022): quantize a layer column by column (input axis, in the [out, in] view) and spread
// each column's error over the columns not yet quantized with the OBS update, using U = the upper Cholesky factor
// of the damped inverse Hessian (H + λ·mean(diag H)·I)⁻¹ = UᵀU:
//   q_i = Q(w_i);  e = (w_i − q_i) / U_ii;  w_j −= e·U_ij  (j > i).
// Columns go in blocks of 128: inside a block the update touches only the block's columns; the rest of the
// matrix gets the block's errors at once (W[:, end:] −= E·U[block, end:]) — the "lazy batch" update, which does
// most of the multiply-adds and runs as an onnxruntime MatMul for large layers. The factorization is one Cholesky
// and one triangular inverse (~2·n³/6 multiply-adds, float64): onnxruntime has no Cholesky, so small Hessians are
// factored in JS and large ones blocked, their O(n³) products as float64 onnxruntime MatMuls (4096 inputs on two
// busy cores: 216 s in JS, 24 s blocked).
// The grid is the format's own: when a column starts a group (and at column 0 for per-channel formats) the
// format quantizes the group's current values, and the group's scale and zero point are read back from that
// result (pack.ts); every column of the group is then rounded on that fixed grid. Plain integer formats only.
// Dead inputs (H_ii = 0) get H_ii = 1 and zero weights, as in the reference implementation.
import * as ort from 'onnxruntime-node';
import { QuantLensError, type Location } from '../formats/errors';
import type { WeightLayout } from '../formats/types';
import type { NumberFormat } from '../quant';
import { gridOf } from '../quant/grid';
import { matmul } from '../runtime/kernels';
import { GraphBuilder } from '../runtime/graph';
import { cholesky, dampedCholesky, DEFAULT_DAMP } from '../runtime/linalg';
import { cachedSession, type SessionOptions } from '../runtime/session';
import { intFormatInfo, packWeight } from './pack';

export const GPTQ_BLOCK = 128;

export interface GptqOptions extends SessionOptions {
  /** λ (fraction of mean(diag H) added to the diagonal); default 0.01. */
  damp?: number;
  blockSize?: number;
  /** Lazy updates of more multiply-adds than this run as an onnxruntime MatMul. */
  jsLimit?: number;
  /** Hessians with more inputs than this are factored blocked on onnxruntime (default 512). */
  factorJsMax?: number;
  /** Block size of the blocked factorization (default 256). */
  factorBlock?: number;
  where?: Location;
}

const JS_LIMIT = 2 ** 22;
const FACTOR_JS_MAX = 512;
const FACTOR_BLOCK = 256;

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
  const damp = opts.damp ?? DEFAULT_DAMP;
  const U = cols > (opts.factorJsMax ?? FACTOR_JS_MAX) ? await blockedInverseUpperFactor(H, cols, damp, opts, where) : inverseUpperFactor(H, cols, damp, where);
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
    // Rows are independent: between two grid reads (group starts) the block runs four rows at a time, so those
    // rows' slices of the block and the block's rows of U stay in cache and each U value serves four updates
    // (column by column, every step would stride across all rows).
    for (let s1 = i1; s1 < i2; ) {
      if (s1 % group === 0) groupGrid(W, rows, cols, s1, Math.min(group, cols - s1), format, signed, bits, scale, zero, where);
      const s2 = Math.min(i2, (Math.floor(s1 / group) + 1) * group);
      /** Quantize W[r, i] on row r's grid, record it, return its error scaled by 1/U_ii. */
      const step = (r: number, i: number): number => {
        const at = r * cols + i;
        const x = W[at];
        const s = scale[r];
        const z = zero[r];
        let c = s > 0 ? rne(x / s) + z : z;
        c = c < qmin ? qmin : c > qmax ? qmax : c;
        const deq = Math.fround((c - z) * s);
        q[at] = deq;
        code[at] = c;
        const e = (x - deq) / U[i * cols + i];
        err[r * bs + (i - i1)] = e;
        return e;
      };
      let r = 0;
      for (; r + 4 <= rows; r += 4) {
        const w0 = r * cols;
        const w1 = w0 + cols;
        const w2 = w1 + cols;
        const w3 = w2 + cols;
        for (let i = s1; i < s2; i++) {
          const e0 = step(r, i);
          const e1 = step(r + 1, i);
          const e2 = step(r + 2, i);
          const e3 = step(r + 3, i);
          const ui = i * cols;
          for (let j = i + 1; j < i2; j++) {
            const u = U[ui + j];
            W[w0 + j] -= e0 * u;
            W[w1 + j] -= e1 * u;
            W[w2 + j] -= e2 * u;
            W[w3 + j] -= e3 * u;
          }
        }
      }
      for (; r < rows; r++) {
        const row = r * cols;
        for (let i = s1; i < s2; i++) {
          const e = step(r, i);
          const ui = i * cols;
          for (let j = i + 1; j < i2; j++) W[row + j] -= e * U[ui + j];
        }
      }
      s1 = s2;
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
  const { L } = dampedCholesky(reversed(h, n), damp, where);
  return reversed(lowerInverse(L, n), n);
}

/** J·M·J: M with rows and columns in reverse order (n×n). */
function reversed(m: Float64Array, n: number): Float64Array {
  const r = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) r[(n - 1 - i) * n + (n - 1 - j)] = m[i * n + j];
  return r;
}

/** L⁻¹ of a lower-triangular L, row by row: X[i, :] = (e_i − Σ_{k<i} L[i,k]·X[k, :]) / L[i,i] (contiguous row updates). */
function lowerInverse(L: Float64Array, n: number): Float64Array {
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
  return X;
}

/** Rows r0…r1−1, columns c0…c1−1 of the n-column row-major `m`, as a contiguous matrix (transposed when asked). */
function slice(m: Float64Array, n: number, r0: number, r1: number, c0: number, c1: number, transpose = false): Float64Array {
  const h = r1 - r0;
  const w = c1 - c0;
  const out = new Float64Array(h * w);
  for (let r = 0; r < h; r++) {
    const src = (r0 + r) * n + c0;
    if (transpose) for (let c = 0; c < w; c++) out[c * h + r] = m[src + c];
    else out.set(m.subarray(src, src + w), r * w);
  }
  return out;
}

/** A·B in float64 on onnxruntime. */
async function matmul64(a: Float64Array, m: number, k: number, b: Float64Array, n: number, opts: GptqOptions): Promise<Float64Array> {
  const { session } = await cachedSession(
    'gptq-matmul-f64',
    () => {
      const g = new GraphBuilder('matmul_f64');
      g.input('A', 'float64', ['m', 'k']);
      g.input('B', 'float64', ['k', 'n']);
      g.node('MatMul', ['A', 'B'], ['C']);
      g.output('C', 'float64', ['m', 'n']);
      return g.build();
    },
    opts,
  );
  const out = await session.run({ A: new ort.Tensor('float64', a, [m, k]), B: new ort.Tensor('float64', b, [k, n]) });
  return out.C.data as Float64Array;
}

/**
 * inverseUpperFactor for large n, blocked (block b): a left-looking Cholesky of A = J·(H + λ·mean(diag H)·I)·J,
 *   S = A[k0:, k0:k1] − L[k0:, :k0]·L[k0:k1, :k0]ᵀ,  L11 = chol(S[:b]) (JS),  L21 = S[b:]·L11⁻ᵀ,
 * then X = L⁻¹ block row by block row, X[i, :i0] = −X_ii·(L[i, :i0]·X[:i0, :i0]) with X_ii = L_ii⁻¹ from the first
 * pass. Every product is a float64 MatMul on onnxruntime; U = J·X·J.
 */
export async function blockedInverseUpperFactor(h: Float64Array, n: number, damp: number, opts: GptqOptions, where: Location): Promise<Float64Array> {
  if (!(Number.isFinite(damp) && damp >= 0)) throw new QuantLensError('bad-damp', `damping λ must be a finite number ≥ 0, found ${damp}`, where);
  let trace = 0;
  for (let i = 0; i < n; i++) trace += h[i * n + i];
  const mean = trace / n;
  if (!(mean > 0 && Number.isFinite(mean))) throw new QuantLensError('not-pd', `matrix is not positive definite: mean diagonal entry is ${mean}`, where);
  const A = reversed(h, n);
  for (let i = 0; i < n; i++) A[i * n + i] += damp * mean;
  const b = opts.factorBlock ?? FACTOR_BLOCK;
  const L = new Float64Array(n * n);
  const X = new Float64Array(n * n);
  for (let k0 = 0; k0 < n; k0 += b) {
    const k1 = Math.min(k0 + b, n);
    const kb = k1 - k0;
    const m = n - k0;
    const S = slice(A, n, k0, n, k0, k1);
    if (k0 > 0) {
      const D = await matmul64(slice(L, n, k0, n, 0, k0), m, k0, slice(L, n, k0, k1, 0, k0, true), kb, opts);
      for (let i = 0; i < S.length; i++) S[i] -= D[i];
    }
    let L11: Float64Array;
    try {
      L11 = cholesky(S.subarray(0, kb * kb), where);
    } catch (e) {
      if (!(e instanceof QuantLensError)) throw e;
      throw new QuantLensError('not-pd', `matrix is not positive definite (inputs ${n - k1}…${n - 1 - k0}) even after damping λ = ${damp}; raise the damping or check the calibration rows`, where);
    }
    const inv11 = lowerInverse(L11, kb);
    for (let r = 0; r < kb; r++) {
      L.set(L11.subarray(r * kb, r * kb + r + 1), (k0 + r) * n + k0);
      X.set(inv11.subarray(r * kb, r * kb + r + 1), (k0 + r) * n + k0);
    }
    if (m > kb) {
      const L21 = await matmul64(S.subarray(kb * kb), m - kb, kb, slice(inv11, kb, 0, kb, 0, kb, true), kb, opts);
      for (let r = 0; r < m - kb; r++) L.set(L21.subarray(r * kb, (r + 1) * kb), (k1 + r) * n + k0);
    }
  }
  for (let i0 = b; i0 < n; i0 += b) {
    const i1 = Math.min(i0 + b, n);
    const kb = i1 - i0;
    const T = await matmul64(slice(L, n, i0, i1, 0, i0), kb, i0, slice(X, n, 0, i0, 0, i0), i0, opts);
    const R = await matmul64(slice(X, n, i0, i1, i0, i1), kb, kb, T, i0, opts);
    for (let r = 0; r < kb; r++) for (let c = 0; c < i0; c++) X[(i0 + r) * n + c] = -R[r * i0 + c];
  }
  return reversed(X, n);
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
