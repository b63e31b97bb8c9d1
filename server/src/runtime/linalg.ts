// Float64 Cholesky and SPD inverse in JS, for OBS/GPTQ saliency ([H⁻¹]_jj) and updates.
// onnxruntime has no Cholesky or Solve op; its com.microsoft Inverse (float32/float64, LU-based) neither
// tests positive definiteness nor exposes the factor GPTQ needs. Cost: n³/6 multiply-adds per stage
// (Cholesky, triangular inverse, U·Uᵀ product) with row-contiguous inner loops, rows four at a time.
import { QuantLensError, type Location } from '../formats/errors';

/** Default damping λ: λ·mean(diag H) is added to the diagonal (the GPTQ convention, percdamp = 0.01). */
export const DEFAULT_DAMP = 0.01;

/** A pivot below this fraction of its original diagonal entry means "numerically singular" in float64. */
const MIN_PIVOT = 1e-12;

const HERE: Location = { file: '<hessian>' };

function dim(h: Float64Array, where: Location): number {
  const n = Math.round(Math.sqrt(h.length));
  if (n < 1 || n * n !== h.length) throw new QuantLensError('bad-shape', `expected a square matrix, found ${h.length} values`, where);
  return n;
}

/** Σ_k a[ia+k]·b[ib+k] for k < len, four accumulators for the JIT. */
function dot(a: Float64Array, ia: number, b: Float64Array, ib: number, len: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let k = 0;
  for (; k + 3 < len; k += 4) {
    s0 += a[ia + k] * b[ib + k];
    s1 += a[ia + k + 1] * b[ib + k + 1];
    s2 += a[ia + k + 2] * b[ib + k + 2];
    s3 += a[ia + k + 3] * b[ib + k + 3];
  }
  for (; k < len; k++) s0 += a[ia + k] * b[ib + k];
  return s0 + s1 + (s2 + s3);
}

/**
 * out[r] = Σ_k a[i_r+k]·b[ib+k] for four rows i_0…i_3 of `a` against one row of `b`: each b value is
 * loaded once for four products, which roughly halves the time of the O(n³) loops below.
 */
function dot4(a: Float64Array, i0: number, i1: number, i2: number, i3: number, b: Float64Array, ib: number, len: number, out: Float64Array): void {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  for (let k = 0; k < len; k++) {
    const v = b[ib + k];
    s0 += a[i0 + k] * v;
    s1 += a[i1 + k] * v;
    s2 += a[i2 + k] * v;
    s3 += a[i3 + k] * v;
  }
  out[0] = s0;
  out[1] = s1;
  out[2] = s2;
  out[3] = s3;
}

/**
 * Lower Cholesky factor L (row-major n×n, zeros above the diagonal) of the symmetric matrix `a`,
 * read from its lower triangle. Throws when `a` is not (numerically) positive definite.
 * Rows are computed four at a time (L_ij = (A_ij − L_i·L_j) / L_jj over k < j, row j shared).
 */
export function cholesky(a: Float64Array, where: Location = HERE): Float64Array {
  const n = dim(a, where);
  const l = new Float64Array(n * n);
  const acc = new Float64Array(4);
  for (let i0 = 0; i0 < n; i0 += 4) {
    const rows = Math.min(4, n - i0);
    for (let j = 0; j < i0; j++) {
      const rj = j * n;
      if (rows === 4) {
        dot4(l, i0 * n, (i0 + 1) * n, (i0 + 2) * n, (i0 + 3) * n, l, rj, j, acc);
        for (let r = 0; r < 4; r++) l[(i0 + r) * n + j] = (a[(i0 + r) * n + j] - acc[r]) / l[rj + j];
      } else {
        for (let i = i0; i < n; i++) l[i * n + j] = (a[i * n + j] - dot(l, i * n, l, rj, j)) / l[rj + j];
      }
    }
    for (let i = i0; i < i0 + rows; i++) {
      const ri = i * n;
      for (let j = i0; j < i; j++) l[ri + j] = (a[ri + j] - dot(l, ri, l, j * n, j)) / l[j * n + j];
      const pivot = a[ri + i] - dot(l, ri, l, ri, i);
      if (!(pivot > MIN_PIVOT * Math.abs(a[ri + i]))) {
        throw new QuantLensError('not-pd', `matrix is not positive definite: pivot ${i} is ${pivot.toPrecision(4)} (diagonal entry ${a[ri + i].toPrecision(4)})`, where);
      }
      l[ri + i] = Math.sqrt(pivot);
    }
  }
  return l;
}

/**
 * U = L⁻ᵀ (upper; row c of U is column c of L⁻¹) by forward substitution in dot form:
 * U_ci = −(Σ_{c ≤ k < i} L_ik·U_ck) / L_ii, four rows c at a time sharing row i of L.
 */
function inverseTransposed(l: Float64Array, n: number): Float64Array {
  const u = new Float64Array(n * n);
  const acc = new Float64Array(4);
  for (let c0 = 0; c0 < n; c0 += 4) {
    const rows = Math.min(4, n - c0);
    const last = c0 + rows - 1;
    // The small triangle inside the block, element by element.
    for (let c = c0; c <= last; c++) {
      const rc = c * n;
      u[rc + c] = 1 / l[c * n + c];
      for (let i = c + 1; i <= last; i++) u[rc + i] = -dot(l, i * n + c, u, rc + c, i - c) / l[i * n + i];
    }
    for (let i = last + 1; i < n; i++) {
      const ri = i * n;
      if (rows === 4) {
        // Shared range k ∈ [last, i); the ≤ 3 leading terms k ∈ [c, last) are added per row.
        dot4(u, c0 * n + last, (c0 + 1) * n + last, (c0 + 2) * n + last, (c0 + 3) * n + last, l, ri + last, i - last, acc);
        for (let r = 0; r < 4; r++) {
          const rc = (c0 + r) * n;
          let s = acc[r];
          for (let k = c0 + r; k < last; k++) s += l[ri + k] * u[rc + k];
          u[rc + i] = -s / l[ri + i];
        }
      } else {
        for (let c = c0; c <= last; c++) u[c * n + i] = -dot(l, ri + c, u, c * n + c, i - c) / l[ri + i];
      }
    }
  }
  return u;
}
export interface DampedFactor {
  /** Lower Cholesky factor of H + damping·I. */
  L: Float64Array;
  /** What was added to the diagonal: λ·mean(diag H). */
  damping: number;
  n: number;
}

/** Cholesky of H + λ·mean(diag H)·I, with a message that names the damping when it still fails. */
export function dampedCholesky(h: Float64Array, damp = DEFAULT_DAMP, where: Location = HERE): DampedFactor {
  const n = dim(h, where);
  if (!(Number.isFinite(damp) && damp >= 0)) throw new QuantLensError('bad-damp', `damping λ must be a finite number ≥ 0, found ${damp}`, where);
  let trace = 0;
  let scale = 0;
  for (let i = 0; i < n; i++) {
    trace += h[i * n + i];
    for (let j = 0; j <= i; j++) scale = Math.max(scale, Math.abs(h[i * n + j]));
  }
  if (!Number.isFinite(trace) || !Number.isFinite(scale)) throw new QuantLensError('non-finite', 'matrix holds non-finite values', where);
  for (let i = 1; i < n; i++) {
    for (let j = 0; j < i; j++) {
      const a = h[i * n + j];
      const b = h[j * n + i];
      if (Math.abs(a - b) > 1e-9 * scale) {
        throw new QuantLensError('not-symmetric', `matrix is not symmetric: [${i},${j}] = ${a} but [${j},${i}] = ${b}`, where);
      }
    }
  }
  const mean = trace / n;
  if (!(mean > 0)) throw new QuantLensError('not-pd', `matrix is not positive definite: mean diagonal entry is ${mean}`, where);
  const damping = damp * mean;
  const a = h.slice();
  for (let i = 0; i < n; i++) a[i * n + i] += damping;
  try {
    return { L: cholesky(a, where), damping, n };
  } catch (e) {
    if (!(e instanceof QuantLensError)) throw e;
    throw new QuantLensError('not-pd', `${e.detail}, even after damping λ = ${damp} (added ${damping.toPrecision(4)} to the diagonal); raise the damping or check the calibration rows`, where);
  }
}

export interface SpdInverse {
  /** (H + damping·I)⁻¹, n×n row-major, exactly symmetric. */
  inverse: Float64Array;
  damping: number;
}

/** (H + λ·mean(diag H)·I)⁻¹ = L⁻ᵀL⁻¹ in float64. */
export function inverseSpd(h: Float64Array, damp = DEFAULT_DAMP, where: Location = HERE): SpdInverse {
  const { L, damping, n } = dampedCholesky(h, damp, where);
  const u = inverseTransposed(L, n);
  // [H⁻¹]_ab = Σ_{i ≥ a} U_ai·U_bi for b ≤ a: four rows b share row a of U.
  const inverse = new Float64Array(n * n);
  const acc = new Float64Array(4);
  for (let a = 0; a < n; a++) {
    const ra = a * n;
    let b = 0;
    for (; b + 3 <= a; b += 4) {
      dot4(u, b * n + a, (b + 1) * n + a, (b + 2) * n + a, (b + 3) * n + a, u, ra + a, n - a, acc);
      for (let r = 0; r < 4; r++) {
        inverse[ra + b + r] = acc[r];
        inverse[(b + r) * n + a] = acc[r];
      }
    }
    for (; b <= a; b++) {
      const v = dot(u, b * n + a, u, ra + a, n - a);
      inverse[ra + b] = v;
      inverse[b * n + a] = v;
    }
  }
  return { inverse, damping };
}

/** diag((H + λ·mean(diag H)·I)⁻¹) — the OBS/GPTQ saliency denominator [H⁻¹]_jj — without forming the inverse. */
export function inverseDiagonal(h: Float64Array, damp = DEFAULT_DAMP, where: Location = HERE): { diagonal: Float64Array; damping: number } {
  const { L, damping, n } = dampedCholesky(h, damp, where);
  const u = inverseTransposed(L, n);
  const diagonal = new Float64Array(n);
  for (let c = 0; c < n; c++) diagonal[c] = dot(u, c * n + c, u, c * n + c, n - c);
  return { diagonal, damping };
}
