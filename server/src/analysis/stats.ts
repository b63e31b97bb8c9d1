// Weight statistics of one layer, accumulated one output channel (row of the [out, in] view) at a time.
// - Kurtosis: excess kurtosis n·M4/M2² − 3 (0 for a Gaussian), from per-row central moments merged exactly
//   (Pébay 2008 pairwise update), so it does not depend on how rows are split into blocks.
// - Outlier share: |w − μ_c| > k·σ_c, μ_c and σ_c (population std) of the weight's own output channel.
// - max/σ: max |w| over the layer / the population std of the layer.
// - Super weights: let a_1 ≥ a_2 ≥ … be the largest |w| (ties: first seen wins). s is the first i ≤ 16 with
//   a_i > 10·a_(i+1) (a clear gap below the top i). If such s exists and a_s > 50·median|w|, entries 1…s are
//   super weights. The median comes from a histogram of |w| on 4 mantissa bits (within 6.25 %).
// Loops use Math.abs/Math.max: `v < 0 ? -v : v` compiles to a branch that mispredicts on random signs.
import type { SuperWeight, WeightStats } from './types';

export const SUPER_GAP = 10;
export const SUPER_OVER_MEDIAN = 50;
const MAX_SUPER = 16;
const TOP = MAX_SUPER + 1;

/** A weight that is NaN or ±Inf, at (row, col) of the [out, in] view. */
export class NonFiniteWeight extends Error {
  constructor(
    readonly row: number,
    readonly col: number,
    readonly value: number,
  ) {
    super(`non-finite weight ${value}`);
  }
}

/** Throw NonFiniteWeight for the first non-finite entry of a row. */
export function locateNonFinite(w: Float32Array, off: number, cols: number, row: number): never {
  for (let c = 0; c < cols; c++) if (!Number.isFinite(w[off + c])) throw new NonFiniteWeight(row, c, w[off + c]);
  throw new Error('locateNonFinite: row is finite');
}

export interface TopEntry {
  abs: number;
  value: number;
  row: number;
  col: number;
}

/** The `TOP` largest |w| seen, descending; an equal later entry does not displace an earlier one. */
export class TopAbs {
  readonly entries: TopEntry[] = [];
  private floor = -1;

  /** Entries must exceed this |w| to enter the list (−1 while it is not full). */
  get threshold(): number {
    return this.floor;
  }

  addRow(w: Float32Array, off: number, cols: number, row: number): void {
    let floor = this.floor;
    for (let c = 0; c < cols; c++) {
      const a = Math.abs(w[off + c]);
      if (a > floor) {
        this.insert(a, w[off + c], row, c);
        floor = this.floor;
      }
    }
  }

  /** One entry with |value| = abs (callers check abs > threshold first, as addRow does). */
  insert(abs: number, value: number, row: number, col: number): void {
    const e = this.entries;
    let i = e.length;
    while (i > 0 && e[i - 1].abs < abs) i--;
    e.splice(i, 0, { abs, value, row, col });
    if (e.length > TOP) e.length = TOP;
    if (e.length === TOP) this.floor = e[TOP - 1].abs;
  }
}

export class StatsAcc {
  n = 0;
  mean = 0;
  m2 = 0;
  m3 = 0;
  m4 = 0;
  outliers = 0;
  sumSq = 0;
  /** Counts of |w| by the top 12 bits of its float32 pattern (exponent + 4 mantissa bits): 32 KB, stays in L1. */
  readonly absHist = new Float64Array(1 << 12);
  readonly top = new TopAbs();

  constructor(readonly sigma: number) {}

  /** Add row `row` of the [out, in] view, stored at w[off … off + cols). Throws NonFiniteWeight. */
  addRow(w: Float32Array, bits: Uint32Array, off: number, cols: number, row: number): void {
    const end = off + cols;
    let s = 0;
    for (let i = off; i < end; i++) s += w[i];
    if (!Number.isFinite(s)) locateNonFinite(w, off, cols, row);
    const mu = s / cols;
    let m2 = 0;
    let m3 = 0;
    let m4 = 0;
    let sq = 0;
    const hist = this.absHist;
    for (let i = off; i < end; i++) {
      const v = w[i];
      const d = v - mu;
      const d2 = d * d;
      m2 += d2;
      m3 += d2 * d;
      m4 += d2 * d2;
      sq += v * v;
      hist[(bits[i] & 0x7fffffff) >>> 19]++;
    }
    // Outliers and the largest entries in one pass (lim = Infinity when σ = 0: no outliers).
    const sd = Math.sqrt(m2 / cols);
    const lim = sd > 0 ? this.sigma * sd : Infinity;
    let out = 0;
    const top = this.top;
    let floor = top.threshold;
    for (let i = off; i < end; i++) {
      const v = w[i];
      if (Math.abs(v - mu) > lim) out++;
      const a = Math.abs(v);
      if (a > floor) {
        top.insert(a, v, row, i - off);
        floor = top.threshold;
      }
    }
    this.outliers += out;
    this.sumSq += sq;
    this.merge(cols, mu, m2, m3, m4);
  }

  /** Pébay's exact pairwise merge of central moments (n, mean, M2, M3, M4). */
  private merge(nb: number, mb: number, m2b: number, m3b: number, m4b: number): void {
    const na = this.n;
    const n = na + nb;
    const d = mb - this.mean;
    const dn = d / n;
    const t = d * dn * na * nb; // δ²·na·nb/n
    // In the fractions fa, fb of n: na² − na·nb + nb² = n²(1 − 3·fa·fb). Products of counts (na² > 2^31 after a few
    // rows) made V8 deoptimize on int32 overflow at every new accumulator.
    const fa = na / n;
    const fb = nb / n;
    this.m4 += m4b + t * d * d * (1 - 3 * fa * fb) + 6 * d * d * (fa * fa * m2b + fb * fb * this.m2) + 4 * dn * (na * m3b - nb * this.m3);
    this.m3 += m3b + t * dn * (na - nb) + 3 * dn * (na * m2b - nb * this.m2);
    this.m2 += m2b + t;
    this.mean += dn * nb;
    this.n = n;
  }

  /** Median |w| from the histogram: the middle of the bin holding the ⌈n/2⌉-th smallest value. */
  medianAbs(): number {
    const half = Math.ceil(this.n / 2);
    let seen = 0;
    const f = new Float32Array(2);
    const u = new Uint32Array(f.buffer);
    for (let k = 0; k < this.absHist.length; k++) {
      seen += this.absHist[k];
      if (seen >= half && this.absHist[k] > 0) {
        u[0] = k << 19;
        u[1] = (k << 19) | 0x7ffff;
        return (f[0] + f[1]) / 2;
      }
    }
    return 0;
  }

  /**
   * Finalize. `top` may come from a full scan (sampled mode) while moments come from the sampled rows;
   * `coords` maps a (row, col) of the [out, in] view to logical coordinates.
   */
  result(coords: (row: number, col: number) => number[], top: TopAbs = this.top): WeightStats {
    const n = this.n;
    const variance = n > 0 ? this.m2 / n : 0;
    const std = Math.sqrt(variance);
    const maxAbs = top.entries.length > 0 ? top.entries[0].abs : 0;
    return {
      kurtosis: this.m2 > 0 ? (n * this.m4) / (this.m2 * this.m2) - 3 : 0,
      outlierShare: n > 0 ? this.outliers / n : 0,
      maxOverStd: std > 0 ? maxAbs / std : 0,
      mean: this.mean,
      std,
      maxAbs,
      superWeights: superWeights(top.entries, this.medianAbs(), coords),
    };
  }
}

export function superWeights(top: readonly TopEntry[], median: number, coords: (row: number, col: number) => number[]): SuperWeight[] {
  for (let s = 1; s <= Math.min(MAX_SUPER, top.length - 1); s++) {
    if (top[s - 1].abs > SUPER_GAP * top[s].abs) {
      if (!(top[s - 1].abs > SUPER_OVER_MEDIAN * median)) return [];
      return top.slice(0, s).map((e) => ({
        coords: coords(e.row, e.col),
        value: e.value,
        overMedian: median > 0 ? e.abs / median : null,
      }));
    }
  }
  return [];
}
