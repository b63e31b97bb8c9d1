// Lagrangian relaxation of the multiple-choice knapsack via per-item lower convex hulls.
// The LP relaxation is solved greedily: start every item at its cheapest option and take hull
// increments in order of error saved per cost unit. For a budget, the LP optimum is a binary search in
// the prefix sums of that order; the increments before the first one that does not fit form a feasible
// integer solution, the LP value is a lower bound, and their difference is the optimality gap.
import type { DPItem } from './mckp';

export interface Hull {
  items: readonly DPItem[];
  /** Per item: its cheapest option (lowest error among equally cheap ones). */
  start: Uint16Array;
  baseCost: number;
  baseErr: number;
  /** Hull increments, sorted by slope (error saved per unit) descending. */
  incItem: Uint32Array;
  incOpt: Uint16Array;
  incCost: Float64Array;
  incGain: Float64Array;
  slope: Float64Array;
  /** Prefix sums over the sorted increments (length + 1). */
  cumCost: Float64Array;
  cumGain: Float64Array;
}

export function buildHull(items: readonly DPItem[]): Hull {
  const start = new Uint16Array(items.length);
  const incs: { item: number; opt: number; cost: number; gain: number; slope: number }[] = [];
  let baseCost = 0;
  let baseErr = 0;
  items.forEach((it, k) => {
    const order = it.cost.map((_, o) => o).sort((x, y) => it.cost[x] - it.cost[y] || it.err[x] - it.err[y]);
    // Non-dominated options (error strictly falls as cost rises), then their lower convex hull.
    let bestErr = Infinity;
    const hull: number[] = [];
    for (const o of order) {
      if (!(it.err[o] < bestErr)) continue;
      bestErr = it.err[o];
      while (hull.length >= 2) {
        const [p, q] = [hull[hull.length - 2], hull[hull.length - 1]];
        // Drop q when it lies on or above the segment p → o.
        const cross = (it.cost[q] - it.cost[p]) * (it.err[o] - it.err[p]) - (it.err[q] - it.err[p]) * (it.cost[o] - it.cost[p]);
        if (cross <= 0) hull.pop();
        else break;
      }
      hull.push(o);
    }
    start[k] = hull[0];
    baseCost += it.cost[hull[0]];
    baseErr += it.err[hull[0]];
    for (let i = 1; i < hull.length; i++) {
      const cost = it.cost[hull[i]] - it.cost[hull[i - 1]];
      const gain = it.err[hull[i - 1]] - it.err[hull[i]];
      incs.push({ item: k, opt: hull[i], cost, gain, slope: gain / cost });
    }
  });
  // Stable sort keeps each item's increments in hull order when slopes tie.
  incs.sort((x, y) => y.slope - x.slope);
  const n = incs.length;
  const h: Hull = {
    items,
    start,
    baseCost,
    baseErr,
    incItem: Uint32Array.from(incs, (x) => x.item),
    incOpt: Uint16Array.from(incs, (x) => x.opt),
    incCost: Float64Array.from(incs, (x) => x.cost),
    incGain: Float64Array.from(incs, (x) => x.gain),
    slope: Float64Array.from(incs, (x) => x.slope),
    cumCost: new Float64Array(n + 1),
    cumGain: new Float64Array(n + 1),
  };
  for (let i = 0; i < n; i++) {
    h.cumCost[i + 1] = h.cumCost[i] + h.incCost[i];
    h.cumGain[i + 1] = h.cumGain[i] + h.incGain[i];
  }
  return h;
}

export interface LagrangeResult {
  /** Option index per item; feasible (cost ≤ capacity). */
  choice: Uint16Array;
  cost: number;
  err: number;
  /** LP-relaxation value: no choice within capacity has less error. */
  lowerBound: number;
  /** Optimal multiplier of the budget constraint (error per cost unit); 0 when the budget is slack. */
  lambda: number;
}

/** LP bound + rounded (then greedily improved) feasible solution for `capacity` units; null when even the cheapest choice does not fit. */
export function lagrange(h: Hull, capacity: number): LagrangeResult | null {
  const room = capacity - h.baseCost;
  if (room < 0) return null;
  let lo = 0;
  let hi = h.cumCost.length - 1; // largest k with cumCost[k] ≤ room
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (h.cumCost[mid] <= room) lo = mid;
    else hi = mid - 1;
  }
  const k = lo;
  const n = h.incCost.length;
  const frac = k < n ? (room - h.cumCost[k]) / h.incCost[k] : 0;
  const lowerBound = h.baseErr - h.cumGain[k] - frac * (k < n ? h.incGain[k] : 0);
  const choice = h.start.slice();
  for (let i = 0; i < k; i++) choice[h.incItem[i]] = h.incOpt[i];
  const { cost, err } = improve(h.items, choice, capacity);
  return { choice, cost, err, lowerBound: Math.min(lowerBound, err), lambda: k < n ? h.slope[k] : 0 };
}

const MAX_PASSES = 32;

/** Greedy fill of the leftover budget: repeatedly apply the single option change that saves most error. */
function improve(items: readonly DPItem[], choice: Uint16Array, capacity: number): { cost: number; err: number } {
  let cost = 0;
  let err = 0;
  for (let k = 0; k < items.length; k++) {
    cost += items[k].cost[choice[k]];
    err += items[k].err[choice[k]];
  }
  for (let pass = 0; pass < MAX_PASSES; pass++) {
    let best = 0;
    let bk = -1;
    let bo = 0;
    for (let k = 0; k < items.length; k++) {
      const { cost: c, err: e } = items[k];
      const room = capacity - cost + c[choice[k]];
      const e0 = e[choice[k]];
      for (let o = 0; o < c.length; o++) {
        if (c[o] <= room && e0 - e[o] > best) {
          best = e0 - e[o];
          bk = k;
          bo = o;
        }
      }
    }
    if (bk < 0) break;
    cost += items[bk].cost[bo] - items[bk].cost[choice[bk]];
    err -= best;
    choice[bk] = bo;
  }
  return { cost, err };
}
