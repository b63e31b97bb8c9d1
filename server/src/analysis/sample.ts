// Sampled mode: score a subset of output channels (rows of the [out, in] view; each row holds whole scale groups
// of every format) and estimate relMse = Σ_rows num_i / D, num_i = ‖ΔW_i‖², D = Σ_rows ‖W_i‖². Sampled mode scans
// every row once, cheaply (super weights, per-tensor scales, bad values; on F16/BF16 storage without decoding), so
// D is exact and per-row auxiliaries are known for all rows: x = ‖W_i‖², and x = Σ over blocks of 128 along the row of n·range² or n·max|w|² (the
// uniform-noise model n·Δ²/12 up to a constant, Δ ∝ a scale group's range or absmax); see FullScan in datafree.ts.
// Design (stratified): rows whose auxiliary is ≥ 5× its mean (one huge entry, an outlier channel) form a take-all
// stratum counted exactly (up to the sample size, heaviest first); the other rows are a simple random sample
// without replacement of the rest (the remaining budget, at least MIN_SAMPLE_ROWS rows). Σ num over the rest is a
// ratio estimate against an auxiliary with known total X_r, N̂_r = X_r · Σ_s num_i / Σ_s x_i, with the jackknife
// variance; the auxiliary is the one that matches how the format scales (sampledRatio). Interval: (N_certain + N̂_r)/D ± z·√Var/D, the lower
// end clipped at 0. Without the take-all stratum, rare heavy rows make any CLT interval too narrow.
import { rng } from '../random';
/** Rows scored at least (all rows when the tensor has fewer): keeps the CLT interval meaningful. */
export const MIN_SAMPLE_ROWS = 32;


/** FNV-1a of a string: mixes the tensor name into the seed so tensors get different rows. */
function hashName(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Rows a sample of `fraction` scores: ⌈fraction·rows⌉, at least MIN_SAMPLE_ROWS, at most all. */
export function sampleSize(rows: number, fraction: number): number {
  return Math.min(rows, Math.max(MIN_SAMPLE_ROWS, Math.ceil(fraction * rows)));
}

/** Rows at least this many times heavier than the mean row (by some auxiliary) are always scored. */
export const HEAVY_ROW = 5;

export interface RowSample {
  /** Sorted row indices to score. */
  rows: Int32Array;
  /** 1 where rows[i] was taken with certainty (heavy row), 0 where drawn at random. */
  certain: Uint8Array;
}

/**
 * The rows to score, or undefined when the sample would cover every row. `heaviness` (per row, optional): the
 * row's largest auxiliary relative to that auxiliary's mean.
 */
export function sampleRows(rows: number, fraction: number, seed: number, name: string, heaviness?: Float64Array): RowSample | undefined {
  const n = sampleSize(rows, fraction);
  if (n >= rows) return undefined;
  const heavy: number[] = [];
  if (heaviness) {
    for (let r = 0; r < rows; r++) if (heaviness[r] >= HEAVY_ROW) heavy.push(r);
    heavy.sort((a, b) => heaviness[b] - heaviness[a] || a - b);
    heavy.length = Math.min(heavy.length, n);
  }
  const taken = new Uint8Array(rows);
  for (const r of heavy) taken[r] = 1;
  // Partial Fisher–Yates over the rows not taken.
  const pool = new Int32Array(rows - heavy.length);
  for (let r = 0, k = 0; r < rows; r++) if (!taken[r]) pool[k++] = r;
  const next = rng((seed ^ hashName(name)) >>> 0);
  const m = Math.min(pool.length, Math.max(n - heavy.length, MIN_SAMPLE_ROWS));
  for (let i = 0; i < m; i++) {
    const j = i + Math.floor(next() * (pool.length - i));
    const t = pool[i];
    pool[i] = pool[j];
    pool[j] = t;
  }
  const chosen = Int32Array.from([...heavy, ...pool.subarray(0, m)]).sort();
  return { rows: chosen, certain: Uint8Array.from(chosen, (r) => taken[r]) };
}

/** Per row: max over auxiliaries of x_i / mean(x). */
export function heavinessOf(auxiliaries: Float64Array[], rows: number): Float64Array {
  const h = new Float64Array(rows);
  for (const x of auxiliaries) {
    const mean = x.reduce((a, b) => a + b, 0) / rows;
    if (mean > 0) for (let r = 0; r < rows; r++) h[r] = Math.max(h[r], x[r] / mean);
  }
  return h;
}

/** Standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9). */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`normalQuantile: p = ${p} outside (0, 1)`);
  const a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const lo = 0.02425;
  if (p < lo || p > 1 - lo) {
    const q = Math.sqrt(-2 * Math.log(p < lo ? p : 1 - p));
    const x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    return p < lo ? x : -x;
  }
  const q = p - 0.5;
  const r = q * q;
  return ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

export interface RatioEstimate {
  estimate: number;
  lo: number;
  hi: number;
}

/**
 * Estimate of Σ_all num from m sampled rows out of `population`, via an auxiliary x with known total, and its
 * jackknife variance: r_(j) = Σ_(i≠j) num / Σ_(i≠j) x, Var = X²·(1 − m/M)·(m − 1)/m·Σ_j (r_(j) − mean r_(j))².
 * (The jackknife, unlike the linearized CLT variance, grows when one sampled row dominates the sums.)
 */
export function ratioTotal(num: ArrayLike<number>, x: ArrayLike<number>, xTotal: number, population: number): { total: number; variance: number } {
  const m = num.length;
  let sn = 0;
  let sx = 0;
  for (let i = 0; i < m; i++) {
    sn += num[i];
    sx += x[i];
  }
  if (m === 0) return { total: 0, variance: Infinity };
  if (sx === 0) return { total: (sn / m) * population, variance: Infinity };
  if (m < 2) return { total: (sn / sx) * xTotal, variance: Infinity };
  const rj = new Float64Array(m);
  let sum = 0;
  for (let j = 0; j < m; j++) {
    const d = sx - x[j];
    if (!(d > 0)) return { total: (sn / sx) * xTotal, variance: Infinity };
    rj[j] = (sn - num[j]) / d;
    sum += rj[j];
  }
  const mean = sum / m;
  let ss = 0;
  for (let j = 0; j < m; j++) ss += (rj[j] - mean) ** 2;
  const fpc = Math.max(0, 1 - m / population);
  return { total: (sn / sx) * xTotal, variance: xTotal * xTotal * fpc * ((m - 1) / m) * ss };
}

/**
 * relMse = Σ num / den from the sampled rows (`num` in sample order): take-all rows exactly, the random rows by the
 * ratio estimator against `aux` (per row over the whole tensor), which the caller fixes by the format.
 */
export function sampledRatio(num: ArrayLike<number>, sample: RowSample, aux: Float64Array, den: number, confidence: number): RatioEstimate {
  if (den === 0) return { estimate: 0, lo: 0, hi: 0 };
  let exact = 0;
  let total = 0;
  for (let r = 0; r < aux.length; r++) total += aux[r];
  const randomNum: number[] = [];
  const randomAux: number[] = [];
  for (let i = 0; i < sample.rows.length; i++) {
    if (sample.certain[i]) {
      exact += num[i];
      total -= aux[sample.rows[i]];
    } else {
      randomNum.push(num[i]);
      randomAux.push(aux[sample.rows[i]]);
    }
  }
  const rest = aux.length - (sample.rows.length - randomNum.length);
  const { total: restTotal, variance } = ratioTotal(randomNum, randomAux, total, rest);
  const z = normalQuantile(0.5 + confidence / 2);
  const est = (exact + restTotal) / den;
  const half = (z * Math.sqrt(variance)) / den;
  return { estimate: est, lo: Math.max(0, est - half), hi: est + half };
}
