// Hessian scores of one layer (DESIGN.md §4), with W viewed as [out, in] (rows = output channels, the view every
// number format quantizes; quant/grid.ts) and H over `in`:
//   layer score  tr(ΔW H ΔWᵀ) = Σ_rows δᵣᵀ H δᵣ,  ΔW = Q(W) − W;
//   OBS/GPTQ saliency  w_rj² / [(H + λ·mean diag(H)·I)⁻¹]_jj with λ = 0.01 (GPTQ's damping).
// A grouped conv has one Hessian per group; the rows (output channels) of group g use H_g.
import { QuantLensError, type Location } from '../formats/errors';
import type { WeightLayout } from '../formats/types';
import { QuantInputError, type NumberFormat } from '../quant';
import { gridOf, type Grid } from '../quant/grid';
import { matmul } from '../runtime/kernels';
import { DEFAULT_DAMP, inverseDiagonal } from '../runtime/linalg';
import type { SessionOptions } from '../runtime/session';
import type { ObsSummary, SalientWeight } from './types';

export interface HessianLayer {
  values: Float32Array;
  shape: number[];
  layout: WeightLayout;
  /** One d×d Hessian per group of rows (conv groups), else one. */
  H: readonly Float64Array[];
  where: Location;
}

export interface TraceOptions extends SessionOptions {
  /** Above this many multiply-adds (rows·d²) per Hessian the product runs as an onnxruntime MatMul (float32). */
  jsLimit?: number;
}

const JS_LIMIT = 2 ** 22;

/** The [out, in] view of `layer`, checked against the Hessians. */
function viewOf(layer: HessianLayer): { grid: Grid; d: number; rowsPerGroup: number } {
  const grid = gridOf(layer.shape, layer.layout);
  const groups = layer.H.length;
  const d = grid.cols;
  const bad = (why: string) => new QuantLensError('bad-hessian', why, layer.where);
  if (groups < 1 || grid.rows % groups !== 0) throw bad(`${groups} Hessians do not split the ${grid.rows} output channels evenly`);
  for (const h of layer.H) if (h.length !== d * d) throw bad(`expected ${d}×${d} Hessians for a weight of shape [${layer.shape.join(', ')}], found ${h.length} values`);
  return { grid, d, rowsPerGroup: grid.rows / groups };
}

/** Rows [r0, r0 + n) of the [out, in] view of `m` (storage order), row-major. */
function viewRows(m: Float32Array, grid: Grid, r0: number, n: number): Float32Array {
  const { cols, rowStride, colStride } = grid;
  const out = new Float32Array(n * cols);
  for (let r = 0; r < n; r++) {
    const base = (r0 + r) * rowStride;
    for (let c = 0; c < cols; c++) out[r * cols + c] = m[base + c * colStride];
  }
  return out;
}

/** tr(Δ H Δᵀ) for `delta` in storage order (ΔW of the layer). */
export async function traceScore(layer: HessianLayer, delta: Float32Array, opts: TraceOptions = {}): Promise<number> {
  const { grid, d, rowsPerGroup } = viewOf(layer);
  let total = 0;
  for (let g = 0; g < layer.H.length; g++) {
    const rows = viewRows(delta, grid, g * rowsPerGroup, rowsPerGroup);
    const h = layer.H[g];
    if (rowsPerGroup * d * d <= (opts.jsLimit ?? JS_LIMIT)) {
      for (let r = 0; r < rowsPerGroup; r++) {
        const o = r * d;
        for (let i = 0; i < d; i++) {
          const di = rows[o + i];
          if (di === 0) continue;
          let s = 0;
          const hi = i * d;
          for (let j = 0; j < d; j++) s += h[hi + j] * rows[o + j];
          total += di * s;
        }
      }
    } else {
      const m = await matmul(rows, [rowsPerGroup, d], Float32Array.from(h), [d, d], { ...opts, where: layer.where });
      for (let k = 0; k < m.length; k++) total += m[k] * rows[k];
    }
  }
  return total;
}

/** tr(ΔW H ΔWᵀ) per format, ΔW = Q(W) − W with Q quantizing in the weight's own layout. */
export async function hessianScores(layer: HessianLayer, formats: readonly NumberFormat[], opts: TraceOptions = {}): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const f of formats) {
    let q: Float32Array;
    try {
      q = f.quantizeDequantize(layer.values, layer.shape, layer.layout);
    } catch (e) {
      if (e instanceof QuantInputError) throw new QuantLensError('non-finite-weight', e.message, layer.where);
      throw e;
    }
    for (let i = 0; i < q.length; i++) q[i] -= layer.values[i];
    out[f.id] = await traceScore(layer, q, opts);
  }
  return out;
}

/** Stored coordinates of view element (row, col). */
function coordsOf(grid: Grid, shape: readonly number[], row: number, col: number): number[] {
  let flat = row * grid.rowStride + col * grid.colStride;
  const out = new Array<number>(shape.length);
  for (let a = shape.length - 1; a >= 0; a--) {
    out[a] = flat % shape[a];
    flat = Math.floor(flat / shape[a]);
  }
  return out;
}

/**
 * OBS/GPTQ saliency w² / [H⁻¹]ⱼⱼ of every weight, in [out, in] view order, and its summary (top `topK`).
 * Throws a located error when a damped Hessian is still not positive definite (e.g. all calibration rows zero).
 */
export function obsSaliency(layer: HessianLayer, damp = DEFAULT_DAMP, topK = 8): { saliency: Float32Array; summary: ObsSummary } {
  const { grid, d, rowsPerGroup } = viewOf(layer);
  const saliency = new Float32Array(grid.rows * d);
  let damping = 0;
  let total = 0;
  for (let g = 0; g < layer.H.length; g++) {
    const inv = inverseDiagonal(layer.H[g], damp, layer.where);
    damping = Math.max(damping, inv.damping);
    const rows = viewRows(layer.values, grid, g * rowsPerGroup, rowsPerGroup);
    const base = g * rowsPerGroup * d;
    for (let k = 0; k < rows.length; k++) {
      const s = (rows[k] * rows[k]) / inv.diagonal[k % d];
      saliency[base + k] = s;
      total += s;
    }
  }
  const top = topEntries(saliency, topK).map(({ index, saliency: s }): SalientWeight => {
    const row = Math.floor(index / d);
    const col = index % d;
    const coords = coordsOf(grid, layer.shape, row, col);
    return { row, col, coords, value: layer.values[row * grid.rowStride + col * grid.colStride], saliency: s };
  });
  const n = saliency.length;
  return { saliency, summary: { dampFraction: damp, damping, total, mean: n > 0 ? total / n : 0, max: top[0]?.saliency ?? 0, top } };
}

/** The k largest entries, largest first (ties: lower index first). */
function topEntries(a: Float32Array, k: number): { index: number; saliency: number }[] {
  const best: { index: number; saliency: number }[] = [];
  if (k <= 0) return best;
  for (let i = 0; i < a.length; i++) {
    const v = a[i];
    if (best.length === k && v <= best[k - 1].saliency) continue;
    let at = best.length;
    while (at > 0 && best[at - 1].saliency < v) at--;
    best.splice(at, 0, { index: i, saliency: v });
    if (best.length > k) best.pop();
  }
  return best;
}
