// Exact solve for ONE budget, fast on large instances: Lagrangian bound + incumbent, then reduced-cost
// fixing and a Pareto-list DP over the few items whose choice is still open, pruned by the same bound.
//
// With multiplier λ and h_j = min_o (e_jo + λ·c_jo), every feasible choice s satisfies
//   error(s) ≥ Σ_j h_j − λ·capacity + Σ_j d_j(s_j),   d_jo = e_jo + λ·c_jo − h_j ≥ 0,
// (the λ·(capacity − cost) term dropped is ≥ 0). So a solution with error ≤ LB + r uses only options with
// d_jo ≤ r, and every partial state on its way has accumulated d ≤ r: a DP that drops everything else
// still finds it. Items left with one such option are fixed; the rest go through the Pareto-list DP.
// r starts small and grows until the best solution found is within r of LB (then it is optimal).
import { lagrange, type Hull } from './lagrange';
import { paretoDP, backtrack, type DPItem } from './mckp';

export interface ExactResult {
  choice: Uint16Array;
  cost: number;
  err: number;
  lowerBound: number;
  /** False only when the DP hit maxEntries: then `choice` is the best feasible one found and err − lowerBound the gap. */
  optimal: boolean;
}

export function solveExact(hull: Hull, capacity: number, maxEntries?: number): ExactResult | null {
  const items = hull.items;
  const lag = lagrange(hull, capacity);
  if (!lag) return null;
  const incumbent: ExactResult = { choice: lag.choice, cost: lag.cost, err: lag.err, lowerBound: lag.lowerBound, optimal: true };
  if (incumbent.err - lag.lowerBound <= 1e-12 * Math.abs(incumbent.err)) return incumbent;
  const rc = reducedCosts(items, lag.lambda, capacity);
  // The DP keeps tol more than it must, so round-off in the d sums never cuts the optimum.
  const tol = 1e-9 * rc.scale;
  const lb = rc.lb;

  // Iterative deepening on the room r: the DP keeps every solution with error ≤ lb + r (its d-sum is at most
  // error − lb), so once the best known error is within r of lb it is optimal. Otherwise widen r, never
  // beyond what the best known solution already proves.
  let best: { choice: Uint16Array; cost: number; err: number } = incumbent;
  let r = Math.max(tol, (best.err - lb) / 64);
  while (true) {
    const found = boundedDP(items, rc, capacity, r + tol, maxEntries);
    if (found === null) return { ...best, lowerBound: lag.lowerBound, optimal: false };
    if (found && found.err < best.err) best = found;
    if (best.err - lb <= r) return { ...best, lowerBound: Math.min(lag.lowerBound, best.err), optimal: true };
    r = Math.min(best.err - lb + tol, r * GROWTH);
  }
}

const GROWTH = 3;

interface ReducedCosts {
  lambda: number;
  /** d of option o of item k at d[start[k] + o]. */
  d: Float64Array;
  start: Uint32Array;
  /** Per item: the option with d = 0, and the second-smallest d (how cheap its best alternative is). */
  argmin: Uint16Array;
  next: Float64Array;
  /** Lagrangian bound Σ h − λ·capacity, and a magnitude scale for float tolerances. */
  lb: number;
  scale: number;
}

function reducedCosts(items: readonly DPItem[], lambda: number, capacity: number): ReducedCosts {
  const start = new Uint32Array(items.length + 1);
  for (let k = 0; k < items.length; k++) start[k + 1] = start[k] + items[k].cost.length;
  const d = new Float64Array(start[items.length]);
  const argmin = new Uint16Array(items.length);
  const next = new Float64Array(items.length);
  let sumH = 0;
  let scale = Math.abs(lambda * capacity);
  for (let k = 0; k < items.length; k++) {
    const { cost, err } = items[k];
    let h = Infinity;
    let max = 0;
    for (let o = 0; o < cost.length; o++) {
      const v = err[o] + lambda * cost[o];
      d[start[k] + o] = v;
      if (v < h) [h, argmin[k]] = [v, o];
      max = Math.max(max, Math.abs(v));
    }
    let second = Infinity;
    for (let o = 0; o < cost.length; o++) {
      d[start[k] + o] -= h;
      if (o !== argmin[k]) second = Math.min(second, d[start[k] + o]);
    }
    next[k] = second;
    sumH += h;
    scale += max + Math.abs(h);
  }
  return { lambda, d, start, argmin, next, lb: sumH - lambda * capacity, scale };
}

/**
 * Options with reduced cost ≤ room stay open; items with one open option (their d = 0 one) are fixed; a
 * Pareto-list DP over the other items drops states whose accumulated reduced cost exceeds room. Returns
 * the best choice found (undefined: none within room), or null when the DP exceeded maxEntries.
 */
function boundedDP(
  items: readonly DPItem[],
  rc: ReducedCosts,
  capacity: number,
  room: number,
  maxEntries: number | undefined,
): { choice: Uint16Array; cost: number; err: number } | undefined | null {
  const { lambda, d, start } = rc;
  const choice = rc.argmin.slice();
  const open: number[] = [];
  let fixedCost = 0;
  for (let k = 0; k < items.length; k++) {
    if (rc.next[k] <= room) open.push(k);
    else fixedCost += items[k].cost[choice[k]];
  }
  // Items whose best alternative costs little multiply the states most: take them last, so the frontier
  // stays small until the final stages (about 4× fewer states than input order on synthetic models).
  open.sort((x, y) => rc.next[y] - rc.next[x]);
  const freeOpts = open.map((k) => items[k].cost.map((_, o) => o).filter((o) => d[start[k] + o] <= room));
  const free: DPItem[] = open.map((k, f) => ({ cost: freeOpts[f].map((o) => items[k].cost[o]), err: freeOpts[f].map((o) => items[k].err[o]) }));
  // State after `done` free items: accumulated d = err + λ·cost − Σ h over those items ≤ room, where
  // h_k = err + λ·cost of the item's d = 0 option.
  const limit = new Float64Array(free.length + 1);
  limit[0] = room;
  open.forEach((k, f) => {
    const o = rc.argmin[k];
    limit[f + 1] = limit[f] + items[k].err[o] + lambda * items[k].cost[o];
  });
  const table = paretoDP(free, { capacity: capacity - fixedCost, maxEntries, bound: { lambda, limit } });
  if (!table) return null;
  if (table.cost.length === 0) return undefined;
  const picked = backtrack(table, table.cost.length - 1);
  open.forEach((k, f) => (choice[k] = freeOpts[f][picked[f]]));
  let cost = 0;
  let err = 0;
  for (let k = 0; k < items.length; k++) {
    cost += items[k].cost[choice[k]];
    err += items[k].err[choice[k]];
  }
  return { choice, cost, err };
}
