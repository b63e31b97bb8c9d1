// One layer's high-impact curve (DESIGN.md §4): the top-r fraction of its weights by saliency kept at b_hi, the rest
// at b_lo. Unlike the histogram proxy of analysis/highimpact.ts this ranks weights exactly (quickselect of the
// top k_max, then a sort of those k_max only), takes any per-weight saliency (|w| when none is given), and any
// keep format fp16 or int<b>_ch_sym. Error, as there, with both formats applied to the whole layer:
//   e(k) = Σ_all e_lo − Σ_{top k} (e_lo − e_hi),   e_F = (w − Q_F(w))².
// Bits, same encoding as highimpact.ts: lo's full storage + k kept values (fp16: 16 bits; int<b>: b bits + one
// fp16 scale per output channel) + the cheaper of the CSR index (⌈log2 cols⌉ per kept weight, ⌈log2(cols + 1)⌉
// per row) and a bitmask — all nothing when k = 0.
import { check, QuantLensError } from '../formats/errors';
import type { WeightLayout } from '../formats/types';
import { indexBits } from '../analysis/highimpact';
import { getFormat, QuantInputError, UnknownFormatError, type NumberFormat } from '../quant';
import { toFp16 } from '../quant/minifloat';
import { gridOf } from '../quant/grid';
import { rng } from '../random';

const fp16 = toFp16;

/** The format kept weights are stored in. */
export interface HiFormat {
  id: string;
  /** Bits per kept value (the element code). */
  elemBits: number;
  /** Extra bits per layer once anything is kept (int: one fp16 scale per output channel). */
  scaleBits(shape: readonly number[], layout: WeightLayout): number;
  qdq(w: Float32Array, shape: readonly number[], layout: WeightLayout): Float32Array;
}

/** `--hi`: fp16 (or 16), int<b>_ch_sym, or a bit width 2…8 meaning int<b>_ch_sym. */
export function resolveHi(spec: string): HiFormat {
  const s = spec.trim();
  if (s === 'fp16' || s === '16') {
    return {
      id: 'fp16',
      elemBits: 16,
      scaleBits: () => 0,
      qdq: (w) => Float32Array.from(w, fp16),
    };
  }
  const m = /^(?:int([2-8])_ch_sym|([2-8]))$/.exec(s);
  if (!m) throw new QuantLensError('bad-option', `--hi: expected fp16, 16, int<b>_ch_sym or a bit width 2…8, found '${spec}'`, { file: '--hi' });
  const b = Number(m[1] ?? m[2]);
  const f = getFormat(`int${b}_ch_sym`);
  return {
    id: f.id,
    elemBits: b,
    scaleBits: (shape, layout) => f.storageBits(shape, layout) - b * shape.reduce((a, x) => a * x, 1),
    qdq: (w, shape, layout) => f.quantizeDequantize(w, shape, layout),
  };
}

/** Default low format per bit width (the analysis defaults). */
const LOW_BY_BITS: Record<string, string> = { '2': 'int2_g64_asym', '3': 'int3_g128_asym', '4': 'int4_g128_asym' };

/** `--lo`: a format id, or a bit width (2 → int2_g64_asym, 3 → int3_g128_asym, 4 → int4_g128_asym, b → int<b>_g128_asym). */
export function resolveLo(spec: string): NumberFormat {
  const s = spec.trim();
  const id = /^[2-8]$/.test(s) ? (LOW_BY_BITS[s] ?? `int${s}_g128_asym`) : s;
  try {
    return getFormat(id);
  } catch (e) {
    if (e instanceof UnknownFormatError) throw new QuantLensError('bad-option', `--lo: ${e.message}`, { file: '--lo' });
    throw e;
  }
}

export interface LayerGeometry {
  name: string;
  shape: number[];
  layout: WeightLayout;
}

export interface LayerCurve {
  name: string;
  params: number;
  rows: number;
  cols: number;
  /** Σ w². */
  sumSq: number;
  /** Σ (w − Q_lo(w))²: the error at r = 0. */
  errLow: number;
  lowBits: number;
  /** Bits of one kept value, and the hi scales stored once anything is kept. */
  hiElemBits: number;
  hiScaleBits: number;
  /** The optimizer's CSR model, lowBits + fixedBits + k·perKeptBits ≥ bitsAt when k > 0: bits once anything is kept (hi scales + row counts)… */
  fixedBits: number;
  /** …and bits per kept weight (hi element + column index). */
  perKeptBits: number;
  /** Largest kept count (⌊r_max · params⌋). */
  kMax: number;
  /** Fit points: ratios and the exact squared error at each. */
  ratios: number[];
  errors: number[];
  /** Σ of the top-k gains at counts `gridK` (every k when kMax ≤ GRID, else GRID + 1 evenly spaced counts). */
  gridK: Float64Array;
  gridGain: Float64Array;
}

/** Kept-count resolution of the stored gain curve. */
export const GRID = 1024;

/** Kept count for ratio r (floored, so bits never exceed the linear model). */
export const keptCount = (c: LayerCurve, r: number): number => Math.min(c.kMax, Math.max(0, Math.floor(r * c.params + 1e-9)));

/** Squared error at ratio r: exact at grid counts, linear in between. */
export function errorAt(c: LayerCurve, r: number): number {
  const k = keptCount(c, r);
  const { gridK, gridGain } = c;
  let j = 0;
  while (j + 1 < gridK.length && gridK[j + 1] <= k) j++;
  let g = gridGain[j];
  if (gridK[j] < k && j + 1 < gridK.length) g += ((gridGain[j + 1] - g) * (k - gridK[j])) / (gridK[j + 1] - gridK[j]);
  return Math.max(0, c.errLow - g);
}

/** Exact storage bits of the layer at ratio r. */
export function bitsAt(c: LayerCurve, r: number): number {
  return mixedStorageBits(c, keptCount(c, r));
}

/** Exact storage bits of a layer with k weights kept (the encoding above; nothing extra when k = 0). */
export function mixedStorageBits(c: Pick<LayerCurve, 'lowBits' | 'hiScaleBits' | 'hiElemBits' | 'rows' | 'cols' | 'params'>, k: number): number {
  if (k === 0) return c.lowBits;
  return c.lowBits + c.hiScaleBits + k * c.hiElemBits + indexBits(k, c.rows, c.cols, c.params).bits;
}

const ceilLog2 = (n: number) => (n <= 1 ? 0 : Math.ceil(Math.log2(n)));

/** Ratios the curve is measured at: r = 0, the given ones inside (0, r_max), and r_max. */
export function fitRatios(base: readonly number[], rMax: number): number[] {
  return [...new Set([0, ...base.filter((r) => r > 0 && r < rMax), rMax])].sort((a, b) => a - b);
}

export interface MeasureOptions {
  lo: NumberFormat;
  hi: HiFormat;
  rMax: number;
  ratios: readonly number[];
  /** Per-weight saliency (≥ 0, same flat order as the weights); |w| when absent. */
  saliency?: Float32Array;
}

/** Everything a later perturbation needs: Q_lo(W), Q_hi(W) and the ranked kept indices. */
export interface LayerQuant {
  low: Float32Array;
  high: Float32Array;
  /** Flat indices of the top kMax weights, most salient first. */
  order: Uint32Array;
}

/** Weights with the top-k (by `order`) at hi and the rest at lo. */
export function mixedWeights(q: LayerQuant, k: number): Float32Array {
  const out = q.low.slice();
  for (let i = 0; i < k; i++) out[q.order[i]] = q.high[q.order[i]];
  return out;
}

export function measureLayer(g: LayerGeometry, w: Float32Array, o: MeasureOptions): { curve: LayerCurve; quant: LayerQuant } {
  const where = { file: 'ratios', tensor: g.name };
  const { rows, cols, numel: n } = gridOf(g.shape, g.layout);
  check(w.length === n, 'bad-tensor', `read ${w.length} values, expected ${n} for shape [${g.shape.join(', ')}]`, where);
  let low: Float32Array;
  let high: Float32Array;
  try {
    low = o.lo.quantizeDequantize(w, g.shape, g.layout);
    high = o.hi.qdq(w, g.shape, g.layout);
  } catch (e) {
    if (e instanceof QuantInputError) throw new QuantLensError('non-finite', `${e.message}`, where);
    throw e;
  }
  const sal = o.saliency;
  if (sal) {
    check(sal.length === n, 'bad-saliency', `saliency has ${sal.length} values, expected ${n}`, where);
    for (let i = 0; i < n; i++) {
      if (!(sal[i] >= 0 && sal[i] < Infinity)) throw new QuantLensError('bad-saliency', `saliency[${i}] = ${sal[i]}: expected a finite value ≥ 0`, where);
    }
  }
  const key = sal ?? Float32Array.from(w, Math.abs);
  let sumSq = 0;
  let errLow = 0;
  for (let i = 0; i < n; i++) {
    sumSq += w[i] * w[i];
    const d = w[i] - low[i];
    errLow += d * d;
  }
  const kMax = Math.min(n, Math.floor(o.rMax * n + 1e-9));
  const order = topOrder(key, kMax);
  // Prefix sums of the gains e_lo − e_hi in rank order.
  const prefix = new Float64Array(kMax + 1);
  for (let i = 0; i < kMax; i++) {
    const j = order[i];
    const dl = w[j] - low[j];
    const dh = w[j] - high[j];
    prefix[i + 1] = prefix[i] + dl * dl - dh * dh;
  }
  const steps = Math.min(kMax, GRID);
  const gridK = new Float64Array(steps + 1);
  const gridGain = new Float64Array(steps + 1);
  for (let s = 0; s <= steps; s++) {
    gridK[s] = steps === 0 ? 0 : Math.round((s * kMax) / steps);
    gridGain[s] = prefix[gridK[s]];
  }
  const ratios = fitRatios(o.ratios, o.rMax);
  const hiScaleBits = o.hi.scaleBits(g.shape, g.layout);
  const curve: LayerCurve = {
    name: g.name,
    params: n,
    rows,
    cols,
    sumSq,
    errLow,
    lowBits: o.lo.storageBits(g.shape, g.layout),
    hiElemBits: o.hi.elemBits,
    hiScaleBits,
    fixedBits: hiScaleBits + rows * ceilLog2(cols + 1),
    perKeptBits: o.hi.elemBits + ceilLog2(cols),
    kMax,
    ratios,
    errors: ratios.map((r) => Math.max(0, errLow - prefix[Math.min(kMax, Math.floor(r * n + 1e-9))])),
    gridK,
    gridGain,
  };
  return { curve, quant: { low, high, order } };
}

/** Indices of the k largest keys, largest first; ties go to the lower index. */
export function topOrder(key: Float32Array, k: number): Uint32Array {
  if (k === 0) return new Uint32Array(0);
  const thr = kthLargest(Float32Array.from(key), k);
  const out = new Uint32Array(k);
  let m = 0;
  for (let i = 0; i < key.length; i++) if (key[i] > thr) out[m++] = i;
  for (let i = 0; i < key.length && m < k; i++) if (key[i] === thr) out[m++] = i;
  out.sort((a, b) => key[b] - key[a] || a - b);
  return out;
}

/** The k-th largest value (1-based) by quickselect with random pivots (reorders `a`). */
export function kthLargest(a: Float32Array, k: number): number {
  const next = rng(0x9e3779b9);
  let lo = 0;
  let hi = a.length - 1;
  const target = a.length - k; // k-th largest = (n − k)-th smallest, 0-based
  while (lo < hi) {
    const pivot = a[lo + Math.floor(next() * (hi - lo + 1))];
    // Three-way partition: [lo, lt) < pivot, [lt, gt] = pivot, (gt, hi] > pivot.
    let lt = lo;
    let gt = hi;
    let i = lo;
    while (i <= gt) {
      const v = a[i];
      if (v < pivot) {
        a[i++] = a[lt];
        a[lt++] = v;
      } else if (v > pivot) {
        a[i] = a[gt];
        a[gt--] = v;
      } else i++;
    }
    if (target < lt) hi = lt - 1;
    else if (target > gt) lo = gt + 1;
    else return pivot;
  }
  return a[target];
}
