// Layer-wise high-impact ratio optimization (DESIGN.md §4), the math only: curves in, ratios out.
//
// Error model. σ_l(r) = ‖ΔW_l(r)‖ / ‖ΔW_l(0)‖ is layer l's error magnitude when the top-r share of its weights is
// kept at b_hi (σ = 1: everything at b_lo). It is measured at a few ratios and fitted by the lower convex hull of
// those points, cut where it stops decreasing: a convex, non-increasing piecewise-linear σ̂_l(r), exact at the hull
// vertices.
// Loss model: the second-order expansion around the full-precision weights in the per-layer magnitudes,
//   L(σ) = ½ σᵀ G σ,   G PSD (interactions.ts: G_ll = 2ΔL(l), G_lm = C_lm; data-free: G = 2·diag(‖ΔW_l(0)‖²)/Σ‖W‖²,
// so L is the model's relative weight error Σ‖ΔW_l‖²/Σ‖W‖²). With σ̂ convex, non-increasing and ≥ 0 and G PSD
// with Gσ̂ ≥ 0, L(r) is convex.
// Bits: the CSR model n_l·(base_l + [r_l > 0]·(fixed_l + α_l·r_l)) (ratios-curve.ts), an upper bound of the exact
// count. Problem: min ½ σ̂ᵀGσ̂  s.t.  Σ n_l α_l r_l ≤ B·N − Σ n_l (base_l + fixed_l),  0 ≤ r_l ≤ r_max.
// Solver: active segments. With one hull segment per layer fixed, σ̂ is affine in r on a box, so the problem is a QP
// in L variables (one per layer) — solved by solveQp (HiGHS), or exactly by ratios-qp.ts when G is diagonal;
// both return the KKT residuals of their answer. A layer that ends on a segment end where the neighbouring segment
// still lowers the Lagrangian (slope·(Gσ̂)_l + μ·a_l of the wrong sign) moves to it and the QP is solved again; the
// previous point stays feasible, so the loss never rises, and at the end the KKT conditions of the piecewise problem
// hold (the final QP's, plus these one-sided conditions at segment ends).
// Index overhead: the QP charges every layer its fixed overhead; a layer the solution leaves at r = 0 does not pay
// it, so such layers are pinned at 0, their overhead returned to the budget, and the QP solved again until no new
// layer reaches 0 (each round can only lower the loss). Then, while budget is left, pinned layers that could pay
// their overhead are tried un-pinned (MAX_UNPIN_TRIES). The diagonal strategy drops G's off-diagonal entries; the
// full one also starts from the diagonal solution's pinned layers and keeps the better result, so at equal budget
// its predicted loss is never above the diagonal solution's.
import type { Kkt } from './qp';
import { solveRatioQp } from './ratios-qp';

export interface Segment {
  width: number;
  /** dσ/dr on this segment (< 0). */
  slope: number;
}

export interface RatioLayer {
  name: string;
  params: number;
  /** Modelled bits per weight: base at r = 0, base + fixed + α·r above. */
  base: number;
  fixed: number;
  alpha: number;
  /** 1 when the layer has an error at b_lo, 0 when b_lo is exact on it (then nothing is worth keeping). */
  sigma0: number;
  segments: Segment[];
}

/** Lower convex hull of (r, σ) points (r ascending, r[0] = 0, σ[0] = 1), cut where it stops decreasing. */
export function fitConvex(ratios: readonly number[], sigma: readonly number[]): Segment[] {
  const hull: [number, number][] = [];
  for (let i = 0; i < ratios.length; i++) {
    const p: [number, number] = [ratios[i], sigma[i]];
    while (hull.length >= 2) {
      const [o, a] = [hull[hull.length - 2], hull[hull.length - 1]];
      const cross = (a[0] - o[0]) * (p[1] - o[1]) - (a[1] - o[1]) * (p[0] - o[0]);
      if (cross > 0) break;
      hull.pop();
    }
    hull.push(p);
  }
  const segs: Segment[] = [];
  for (let i = 1; i < hull.length; i++) {
    const width = hull[i][0] - hull[i - 1][0];
    const slope = (hull[i][1] - hull[i - 1][1]) / width;
    if (!(slope < 0)) break;
    segs.push({ width, slope });
  }
  return segs;
}

/** The fitted σ̂(r): segments filled in order. */
export function sigmaAt(l: RatioLayer, r: number): number {
  let s = l.sigma0;
  let left = r;
  for (const seg of l.segments) {
    if (left <= 0) break;
    const t = Math.min(seg.width, left);
    s += seg.slope * t;
    left -= t;
  }
  return Math.max(0, s);
}

/** ½ σ̂ᵀ G σ̂ at ratios r (G n×n row-major). */
export function predictedLoss(layers: readonly RatioLayer[], G: ArrayLike<number>, r: ArrayLike<number>): number {
  const n = layers.length;
  const s = layers.map((l, i) => sigmaAt(l, r[i]));
  let f = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) f += s[i] * G[i * n + j] * s[j];
  return 0.5 * f;
}

/** At least one weight kept: the layer pays its index overhead (a ratio below one weight keeps none). */
const keeps = (l: RatioLayer, r: number) => r * l.params >= 1 - 1e-9;

/** r, or 0 where it keeps no weight of the layer. */
export const effectiveRatio = (l: RatioLayer, r: number): number => (keeps(l, r) ? r : 0);

/** Modelled bits per weight of one layer at ratio r. */
export const layerModelBits = (l: RatioLayer, r: number): number => l.base + (keeps(l, r) ? l.fixed + l.alpha * r : 0);

/** Modelled average bits per weight at ratios r. */
export function modelAvgBits(layers: readonly RatioLayer[], r: ArrayLike<number>): number {
  let bits = 0;
  let n = 0;
  layers.forEach((l, i) => {
    bits += l.params * layerModelBits(l, r[i]);
    n += l.params;
  });
  return bits / n;
}

const rMaxOf = (l: RatioLayer) => l.segments.reduce((s, g) => s + g.width, 0);

/**
 * Every layer at the same modelled bits T where it can reach them (its largest ratio in [0, r_max] within T; 0 if
 * one kept weight is over), T the largest target whose total fits B (bisection: layers whose b_lo storage alone is
 * above T still count theirs).
 */
export function uniformBits(layers: readonly RatioLayer[], budget: number, rMax: number): Float64Array {
  const at = (T: number) =>
    Float64Array.from(layers, (l) => {
      const r = Math.min(rMax, Math.max(0, (T - l.base - l.fixed) / l.alpha));
      return keeps(l, r) ? r : 0;
    });
  let lo = 0;
  let hi = layers.reduce((m, l) => Math.max(m, l.base + l.fixed + l.alpha * rMax), budget);
  if (modelAvgBits(layers, at(hi)) <= budget) return at(hi);
  for (let i = 0; i < 60; i++) {
    const mid = 0.5 * (lo + hi);
    if (modelAvgBits(layers, at(mid)) <= budget) lo = mid;
    else hi = mid;
  }
  return at(lo);
}

/** One ratio for every layer: the largest in [0, r_max] whose modelled bits fit B (bisection: bits grow with r). */
export function fixedRatioFor(layers: readonly RatioLayer[], budget: number, rMax: number): number {
  const bitsAt = (r: number) => modelAvgBits(layers, new Float64Array(layers.length).fill(r));
  if (bitsAt(rMax) <= budget) return rMax;
  let lo = 0;
  let hi = rMax;
  for (let i = 0; i < 60; i++) {
    const mid = 0.5 * (lo + hi);
    if (bitsAt(mid) <= budget) lo = mid;
    else hi = mid;
  }
  return lo;
}

export interface QpRatios {
  r: Float64Array;
  /** Of the last QP solved; absent when nothing was left to optimize (no budget above the all-b_lo size). */
  kkt?: Kkt;
  /** Budget multiplier of the last QP: loss decrease per extra average bit. */
  mu?: number;
  /** QPs solved, and the layers pinned at r = 0 in the end. */
  rounds: number;
  pinned: number;
}

/** Layers tried for un-pinning per strategy (each try solves QPs; the overhead matters only for small layers). */
export const MAX_UNPIN_TRIES = 8;
/** Segment moves per round (each a QP); ends far earlier in practice. */
const MAX_MOVES = 100;

/** A ratio strategy at average budget B: `diagonal` drops G's off-diagonal entries. */
export async function optimizeRatios(layers: readonly RatioLayer[], G: ArrayLike<number>, budget: number, diagonal = false): Promise<QpRatios> {
  const L = layers.length;
  const Gm = diagonal ? diagOf(G, L) : Float64Array.from(G);
  const f = (x: QpRatios) => predictedLoss(layers, Gm, x.r);
  const guess = new Float64Array(L).fill(fixedRatioFor(layers, budget, layers.reduce((x, l) => Math.max(x, rMaxOf(l)), 0)));
  let best = await unpin(layers, Gm, budget, await pinnedRounds(layers, Gm, budget, new Set(), guess));
  if (!diagonal) {
    const d = await optimizeRatios(layers, G, budget, true);
    const alt = await unpin(layers, Gm, budget, await pinnedRounds(layers, Gm, budget, zeros(d.r), d.r));
    if (f(alt) < f(best)) best = alt;
  }
  return best;
}

const zeros = (r: Float64Array) => new Set(Array.from(r.keys()).filter((i) => r[i] === 0));

/** Rounds of solveRound, pinning the layers left at 0 each time; `guess` picks the first round's segments. */
async function pinnedRounds(layers: readonly RatioLayer[], G: Float64Array, budget: number, pinned: Set<number>, guess: ArrayLike<number>): Promise<QpRatios> {
  let rounds = 0;
  for (;;) {
    const res = await solveRound(layers, G, budget, pinned, guess);
    guess = res.r;
    rounds += res.qps;
    const next = zeros(res.r);
    if (next.size === pinned.size) return { r: res.r, kkt: res.kkt, mu: res.mu, rounds, pinned: pinned.size };
    pinned = next;
  }
}

/**
 * Budget left by pinning can be stranded (a layer pinned early could now pay its overhead): while some is left, try
 * un-pinning the pinned layers whose overhead fits it, most promising first (first-segment loss decrease per bit,
 * overhead amortized over the segment), and keep the first that lowers the predicted loss.
 */
async function unpin(layers: readonly RatioLayer[], G: Float64Array, budget: number, res: QpRatios): Promise<QpRatios> {
  const L = layers.length;
  const N = layers.reduce((s, l) => s + l.params, 0);
  const f = (x: QpRatios) => predictedLoss(layers, G, x.r);
  let tries = 0;
  let rounds = res.rounds;
  for (;;) {
    const slack = budget - modelAvgBits(layers, res.r);
    const sigma = layers.map((l, i) => sigmaAt(l, res.r[i]));
    const density = (i: number) => {
      const l = layers[i];
      const s0 = l.segments[0];
      let grad = 0;
      for (let j = 0; j < L; j++) grad += G[i * L + j] * sigma[j];
      return (-s0.slope * grad) / (l.alpha + l.fixed / s0.width);
    };
    const pinned = zeros(res.r);
    const candidates = [...pinned]
      .filter((i) => layers[i].sigma0 > 0 && layers[i].segments.length > 0 && (layers[i].params * (layers[i].fixed + layers[i].alpha / layers[i].params)) / N <= slack)
      .sort((a, b) => density(b) - density(a));
    let improved = false;
    for (const c of candidates) {
      if (tries++ >= MAX_UNPIN_TRIES) return { ...res, rounds };
      const trial = await pinnedRounds(layers, G, budget, new Set([...pinned].filter((i) => i !== c)), res.r);
      rounds += trial.rounds;
      if (f(trial) < f(res) * (1 - 1e-12)) {
        res = trial;
        improved = true;
        break;
      }
    }
    if (!improved) return { ...res, rounds };
  }
}

function diagOf(G: ArrayLike<number>, L: number): Float64Array {
  const D = new Float64Array(L * L);
  for (let i = 0; i < L; i++) D[i * L + i] = G[i * L + i];
  return D;
}

/**
 * One round with the layers in `pinned` fixed at r = 0 (they pay no index overhead): active-segment QPs, starting
 * on the segments that hold `guess`.
 */
async function solveRound(layers: readonly RatioLayer[], G: Float64Array, budget: number, pinned: Set<number>, guess: ArrayLike<number>): Promise<{ r: Float64Array; kkt?: Kkt; mu?: number; qps: number }> {
  const L = layers.length;
  const off = (i: number) => pinned.has(i) || layers[i].sigma0 === 0 || layers[i].segments.length === 0;
  let N = 0;
  let base = 0;
  layers.forEach((l, i) => {
    N += l.params;
    base += l.params * (l.base + (off(i) ? 0 : l.fixed));
  });
  const b = budget - base / N;
  const free = layers.map((_, i) => i).filter((i) => !off(i));
  const r = new Float64Array(L);
  if (b <= 0 || free.length === 0) return { r, qps: 0 };
  // Segment start ratios and σ̂ there, per layer.
  const starts = layers.map((l) => l.segments.reduce<number[]>((acc, s, k) => [...acc, (acc[k] ?? 0) + s.width], [0]));
  const sigmaStart = layers.map((l, i) => starts[i].map((x) => sigmaAt(l, x)));
  // Scale the objective to O(1) for the solver's tolerances.
  let gmax = 0;
  for (let i = 0; i < L; i++) gmax = Math.max(gmax, Math.abs(G[i * L + i]));
  const k = gmax > 0 ? 1 / gmax : 1;
  const m = free.length;
  const seg = Int32Array.from(free, (i) => {
    let s = 0;
    while (s + 1 < layers[i].segments.length && guess[i] > starts[i][s + 1]) s++;
    return s;
  });
  const a = Float64Array.from(free, (i) => (layers[i].params * layers[i].alpha) / N);
  // A guess whose segment starts already exceed the budget starts from r = 0 instead. Later moves keep the
  // previous point inside the boxes, so every QP stays feasible.
  if (free.reduce((sum, i, q) => sum + a[q] * starts[i][seg[q]], 0) > b) seg.fill(0);
  let qps = 0;
  for (;;) {
    // σ̂_i = p_i + d_i·r_i on the active segment; pinned layers sit at σ = σ0.
    const d = Float64Array.from(free, (i, q) => layers[i].segments[seg[q]].slope);
    const p = Float64Array.from(free, (i, q) => sigmaStart[i][seg[q]] - d[q] * starts[i][seg[q]]);
    const sigmaOff = new Float64Array(L);
    layers.forEach((l, i) => (sigmaOff[i] = off(i) ? l.sigma0 : 0));
    const Q = new Float64Array(m * m);
    const c = new Float64Array(m);
    for (let u = 0; u < m; u++) {
      const i = free[u];
      let gp = 0;
      for (let j = 0; j < L; j++) gp += G[i * L + j] * sigmaOff[j];
      for (let v = 0; v < m; v++) {
        const g = G[i * L + free[v]];
        gp += g * p[v];
        Q[u * m + v] = k * d[u] * d[v] * g;
      }
      c[u] = k * d[u] * gp;
    }
    const lo = Float64Array.from(free, (i, q) => starts[i][seg[q]]);
    const hi = Float64Array.from(free, (i, q) => starts[i][seg[q] + 1]);
    const res = await solveRatioQp({ Q, c, a, b, lo, hi });
    qps++;
    free.forEach((i, q) => (r[i] = Math.min(hi[q], Math.max(lo[q], res.r[q]))));
    // One-sided optimality at segment ends: the neighbouring segment's Lagrangian slope (scaled units).
    const sigma = layers.map((l, i) => (off(i) ? l.sigma0 : sigmaAt(l, r[i])));
    let moved = false;
    free.forEach((i, q) => {
      let grad = 0;
      for (let j = 0; j < L; j++) grad += G[i * L + j] * sigma[j];
      const along = (s: number) => k * layers[i].segments[s].slope * grad + res.mu * a[q];
      const tol = 1e-9 * (1 + Math.abs(res.mu * a[q]));
      if (r[i] >= hi[q] - 1e-12 && seg[q] + 1 < layers[i].segments.length && along(seg[q] + 1) < -tol) {
        seg[q]++;
        moved = true;
      } else if (r[i] <= lo[q] + 1e-12 && seg[q] > 0 && along(seg[q] - 1) > tol) {
        seg[q]--;
        moved = true;
      }
    });
    if (!moved || qps >= MAX_MOVES) {
      // Less than one kept weight is none (and must not charge the layer its index overhead).
      layers.forEach((l, i) => (r[i] = r[i] * l.params < 1 ? 0 : Math.min(r[i], rMaxOf(l))));
      return { r, kkt: res.kkt, mu: res.mu / k, qps };
    }
  }
}
