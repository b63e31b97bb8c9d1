// High-impact parameters, data-free proxy (DESIGN.md §4). For a low format L and a keep format K (fp16, or int8
// with a per-channel fp16 scale), the top-r fraction of a layer's weights is kept at K and the rest at L:
//   error(r) = Σ_all e_L − Σ_kept (e_L − e_K),   e_F = (w − Q_F(w))², Q_F applied to the whole layer
// (scales of L and K are those of the full layer: the proxy does not re-fit L on the remaining weights).
// Two rankings: by |w| and by e_L. Each is a histogram over the top 12 bits of the key's float32 pattern
// (exponent + 4 mantissa bits: keys within 6.25 % share a bin) holding per bin the count and the summed gains;
// the bin where the top r ends contributes pro rata (its entries share their mean gain), so any row split gives
// the same curve. Bins interleave [count, gain fp16, gain int8]: one cache line per update.
// Bits (dense + sparse layout): L's full storage (kept positions still hold an L code) + k kept values at K
// (fp16: 16 bits; int8: 8 bits + one fp16 scale per output channel) + the cheaper sparse index of
//   CSR: per kept weight a ⌈log2 in⌉-bit column index, per output channel a ⌈log2(in + 1)⌉-bit count, or
//   bitmask: 1 bit per weight.
//
// Group promotion: every scale group of L gets gain e_L(group) − e_8(group), e_8 the error of the same weights in
// int8_ch_sym (int8 codes with the output channel's fp16 scale). Promoting the groups with the largest gains first
// (≈ the worst-error groups), at promoted share p of the groups, with b_L = L's bits per weight:
//   error = Σ e_L − Σ top gains (computed as Σ e_8 + Σ remaining gains),
//   bits per weight = (1 − p)·b_L + p·8 + (16 per output channel for the int8 scale + 1 per group for the
//   promotion mask) / weights   (the last term only when p > 0; promoted groups drop their L codes and scales).
import type { WeightLayout } from '../formats/types';
import type { NumberFormat } from '../quant';
import type { HighImpactCurve, KeepFormat, PromotionCurve } from './types';

const BINS = 1 << 12;
const keyOf = (bits: number) => (bits & 0x7fffffff) >>> 19;
/** Slots per bin: count, gain with fp16 keep, gain with int8 keep. */
const SLOTS = 3;

/** Shares of promoted groups at which the promotion curve is reported. */
export const PROMOTION_SHARES = [0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1];

const ceilLog2 = (n: number) => (n <= 1 ? 0 : Math.ceil(Math.log2(n)));

/** |w| keys of a block, shared by every low format. */
export function magnitudeKeys(bits: Uint32Array, n: number, out: Uint16Array): void {
  for (let i = 0; i < n; i++) out[i] = keyOf(bits[i]);
}

/** Rank histograms of one low format against the two keep formats (fp16, int8_ch_sym). */
export class RankAcc {
  total = 0;
  n = 0;
  /** By |w| and by e_L: BINS × [count, gain fp16, gain int8]. */
  readonly mag = new Float64Array(BINS * SLOTS);
  readonly err = new Float64Array(BINS * SLOTS);

  /** e: the low format's squared errors (float32; errBits is its bit view), e16/e8 those of the keep formats. */
  addBlock(e: Float32Array, errBits: Uint32Array, magKey: Uint16Array, e16: Float32Array, e8: Float32Array, n: number): void {
    const { mag, err } = this;
    let total = 0;
    for (let i = 0; i < n; i++) {
      const x = e[i];
      const g16 = x - e16[i];
      const g8 = x - e8[i];
      const km = magKey[i] * SLOTS;
      mag[km]++;
      mag[km + 1] += g16;
      mag[km + 2] += g8;
      const ke = keyOf(errBits[i]) * SLOTS;
      err[ke]++;
      err[ke + 1] += g16;
      err[ke + 2] += g8;
      total += x;
    }
    this.total += total;
    this.n += n;
  }
}

/**
 * Gains of keeping the top k entries for every k in `ks` (largest keys first; the bin where k ends pro rata),
 * from a histogram of [count, gain…] bins, `slot` selecting the gain.
 */
export function topGains(hist: Float64Array, slot: number, ks: readonly number[]): number[] {
  const order = ks.map((k, i) => [k, i]).sort((a, b) => a[0] - b[0]);
  const res = new Array<number>(ks.length).fill(0);
  let taken = 0;
  let g = 0;
  let j = 0;
  for (let b = hist.length / SLOTS - 1; b >= 0 && j < order.length; b--) {
    const c = hist[b * SLOTS];
    if (c === 0) continue;
    const gain = hist[b * SLOTS + slot];
    for (; j < order.length && order[j][0] < taken + c; j++) res[order[j][1]] = g + (gain * (order[j][0] - taken)) / c;
    taken += c;
    g += gain;
  }
  for (; j < order.length; j++) res[order[j][1]] = g;
  return res;
}

export interface TensorGeometry {
  shape: number[];
  layout: WeightLayout;
  params: number;
  rows: number;
  cols: number;
}

/** Sparse-index bits for k kept weights: the cheaper of CSR and a bitmask. */
export function indexBits(k: number, rows: number, cols: number, params: number): { bits: number; kind: 'csr' | 'bitmask' } {
  const csr = k * ceilLog2(cols) + rows * ceilLog2(cols + 1);
  return csr <= params ? { bits: csr, kind: 'csr' } : { bits: params, kind: 'bitmask' };
}

export function highImpactCurves(
  acc: RankAcc,
  low: NumberFormat,
  int8: NumberFormat,
  geo: TensorGeometry,
  den: number,
  ratios: number[],
): HighImpactCurve[] {
  const { layout } = geo;
  const lowBits = low.storageBits(geo.shape, layout);
  const int8Scales = int8.storageBits(geo.shape, layout) - 8 * geo.params;
  const rel = (e: number) => (den > 0 ? Math.max(0, e) / den : 0);
  const kScored = ratios.map((r) => Math.round(r * acc.n));
  return (['fp16', 'int8_ch_sym'] as KeepFormat[]).map((keep) => {
    const c: HighImpactCurve = { keep, ratios, bitsPerWeight: [], byMagnitude: [], byError: [], index: [] };
    for (const r of ratios) {
      const k = Math.round(r * geo.params);
      const idx = indexBits(k, geo.rows, geo.cols, geo.params);
      const values = keep === 'fp16' ? 16 * k : 8 * k + int8Scales;
      c.bitsPerWeight.push((lowBits + values + idx.bits) / geo.params);
      c.index.push(idx.kind);
    }
    const slot = keep === 'fp16' ? 1 : 2;
    const mag = topGains(acc.mag, slot, kScored);
    const err = topGains(acc.err, slot, kScored);
    c.byMagnitude = mag.map((g) => rel(acc.total - g));
    c.byError = err.map((g) => rel(acc.total - g));
    return c;
  });
}

/** Per-group gains of promoting L's groups to int8, filled row by row. */
export class PromotionAcc {
  /** Float32: 4 bytes a group keeps a 4096² layer with six low formats under 10 MB (the peak-RSS bound). */
  readonly gains: Float32Array;
  /** Σ e_8 over all groups: error(p) = Σ e_8 + Σ gains of the groups not promoted (no cancellation at p → 1). */
  total8 = 0;

  constructor(
    readonly groupsPerRow: number,
    scoredRows: number,
  ) {
    this.gains = new Float32Array(scoredRows * groupsPerRow);
  }

  /** Row `seq` (scoring order): L's per-group squared-error sums and the int8 squared errors e8[off … off + cols). */
  addRow(seq: number, lowErr: Float64Array, e8: Float32Array, off: number, groupSize: number, cols: number): void {
    const base = seq * this.groupsPerRow;
    for (let j = 0; j < this.groupsPerRow; j++) {
      let h = 0;
      const end = off + Math.min(cols, (j + 1) * groupSize);
      for (let c = off + j * groupSize; c < end; c++) h += e8[c];
      this.gains[base + j] = lowErr[j] - h;
      this.total8 += h;
    }
  }
}

export function promotionCurve(acc: PromotionAcc, low: NumberFormat, int8: NumberFormat, geo: TensorGeometry, den: number): PromotionCurve {
  const { layout } = geo;
  const sorted = acc.gains.slice().sort().reverse();
  const bL = low.bitsPerWeight(geo.shape, layout);
  const b8 = 8;
  // Once anything is promoted: the int8 per-channel scales and a 1-bit promotion mask per group.
  const fixed = (int8.storageBits(geo.shape, layout) - 8 * geo.params + geo.rows * acc.groupsPerRow) / geo.params;
  const curve: PromotionCurve = { high: int8.id, bitsPerWeight: PROMOTION_SHARES.map((p) => (1 - p) * bL + p * b8 + (p > 0 ? fixed : 0)), relMse: [], promotedShare: PROMOTION_SHARES };
  // Walk the shares from 1 down, adding the gains of groups that stay at L (smallest first).
  let left = sorted.length;
  let rest = 0;
  for (let j = PROMOTION_SHARES.length - 1; j >= 0; j--) {
    const k = Math.round(PROMOTION_SHARES[j] * sorted.length);
    for (; left > k; left--) rest += sorted[left - 1];
    curve.relMse[j] = den > 0 ? Math.max(0, acc.total8 + rest) / den : 0;
  }
  return curve;
}
