// Exact multiple-choice knapsack by the Pareto-list DP: after each item, keep only the states
// (cost, error) that no other state beats on both. Costs are integer units, so merging is exact; the
// stored table is one option index + one parent pointer per state, so memory is bounded by maxEntries.

export interface DPItem {
  readonly cost: readonly number[];
  readonly err: readonly number[];
}

export interface ParetoTable {
  /** Final frontier: cost strictly ascending, error strictly descending. */
  cost: Float64Array;
  err: Float64Array;
  /** Per item: the option each state took and the state it extended in the previous frontier. */
  opt: Uint16Array[];
  parent: Uint32Array[];
  /** States stored over all items. */
  entries: number;
}

export interface DPOptions {
  /** Drop states that cannot be completed within this cost. */
  capacity?: number;
  /** Give up (return null) when the table would hold more states than this. */
  maxEntries?: number;
  /**
   * Bound pruning (Lagrangian): a state reached after `done` items is dropped when
   * err + lambda · cost > bound[done] — the caller's bound proves it cannot lead to a useful solution.
   */
  bound?: { lambda: number; limit: ArrayLike<number> };
}

export const DEFAULT_MAX_ENTRIES = 4_000_000;

class Buf {
  cost = new Float64Array(0);
  err = new Float64Array(0);
  parent = new Uint32Array(0);
  opt = new Uint16Array(0);
  ensure(n: number): void {
    if (this.cost.length >= n) return;
    const size = Math.max(n, this.cost.length * 2, 16);
    const grow = <T extends Float64Array | Uint32Array | Uint16Array>(a: T, make: (k: number) => T): T => {
      const b = make(size);
      b.set(a);
      return b;
    };
    this.cost = grow(this.cost, (k) => new Float64Array(k));
    this.err = grow(this.err, (k) => new Float64Array(k));
    this.parent = grow(this.parent, (k) => new Uint32Array(k));
    this.opt = grow(this.opt, (k) => new Uint16Array(k));
  }
}

export function paretoDP(items: readonly DPItem[], opts: DPOptions = {}): ParetoTable | null {
  const cap = opts.capacity ?? Infinity;
  const maxEntries = opts.maxEntries ?? DEFAULT_MAX_ENTRIES;
  const lambda = opts.bound?.lambda ?? 0;
  // minRest[k]: cheapest completion of items k.. — a state that cannot afford it is dropped.
  const minRest = new Float64Array(items.length + 1);
  for (let k = items.length - 1; k >= 0; k--) minRest[k] = minRest[k + 1] + Math.min(...items[k].cost);
  let prevCost = new Float64Array([0]);
  let prevErr = new Float64Array([0]);
  const optT: Uint16Array[] = [];
  const parentT: Uint32Array[] = [];
  let entries = 0;
  let a = new Buf();
  let b = new Buf();
  for (let k = 0; k < items.length; k++) {
    const { cost, err } = items[k];
    const limit = cap - minRest[k + 1];
    let len = 0;
    const bound = opts.bound ? opts.bound.limit[k + 1] : Infinity;
    for (let o = 0; o < cost.length; o++) {
      b.ensure(len + prevCost.length);
      len = mergeShifted(a, len, prevCost, prevErr, cost[o], err[o], o, limit, lambda, bound, b);
      [a, b] = [b, a];
    }
    entries += len;
    // Give up early when the table is on course to exceed maxEntries (frontiers rarely shrink).
    if (entries + (opts.capacity === undefined ? len * (items.length - k - 1) : 0) > maxEntries) return null;
    if (len === 0) return { cost: new Float64Array(0), err: new Float64Array(0), opt: optT, parent: parentT, entries };
    prevCost = a.cost.slice(0, len);
    prevErr = a.err.slice(0, len);
    optT.push(a.opt.slice(0, len));
    parentT.push(a.parent.slice(0, len));
  }
  return { cost: prevCost, err: prevErr, opt: optT, parent: parentT, entries };
}

/**
 * Merge frontier `acc[0..accLen)` with the previous frontier shifted by option (c, e), dropping
 * states over `limit` or with err + lambda·cost > bound, and every state dominated by a cheaper-or-equal one.
 */
function mergeShifted(
  acc: Buf,
  accLen: number,
  pc: Float64Array,
  pe: Float64Array,
  c: number,
  e: number,
  o: number,
  limit: number,
  lambda: number,
  bound: number,
  out: Buf,
): number {
  const [ac, ae, ap, ao] = [acc.cost, acc.err, acc.parent, acc.opt];
  const [oc, oe, op, oo] = [out.cost, out.err, out.parent, out.opt];
  // Shifted states are sorted by cost: those over the limit form a suffix.
  let m = pc.length;
  while (m > 0 && pc[m - 1] + c > limit) m--;
  let i = 0;
  let j = 0;
  let n = 0;
  let lastErr = Infinity;
  while (i < accLen || j < m) {
    let cost: number, err: number, parent: number, opt: number;
    const cj = j < m ? pc[j] + c : Infinity;
    const ej = j < m ? pe[j] + e : Infinity;
    if (j < m && ej + lambda * cj > bound) {
      j++; // pruned by the bound
      continue;
    }
    if (i < accLen && (ac[i] < cj || (ac[i] === cj && ae[i] <= ej))) {
      cost = ac[i];
      err = ae[i];
      parent = ap[i];
      opt = ao[i];
      i++;
    } else {
      cost = cj;
      err = ej;
      parent = j;
      opt = o;
      j++;
    }
    if (err < lastErr) {
      oc[n] = cost;
      oe[n] = err;
      op[n] = parent;
      oo[n] = opt;
      n++;
      lastErr = err;
    }
  }
  return n;
}

/** Index of the best (lowest-error) final state with cost ≤ capacity, or -1. */
export function bestWithin(t: ParetoTable, capacity: number): number {
  let lo = 0;
  let hi = t.cost.length; // first index with cost > capacity
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (t.cost[mid] <= capacity) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** Option index per item for final state `index`, following parent pointers back. */
export function backtrack(t: ParetoTable, index: number): Uint16Array {
  const choice = new Uint16Array(t.opt.length);
  for (let k = t.opt.length - 1; k >= 0; k--) {
    choice[k] = t.opt[k][index];
    index = t.parent[k][index];
  }
  return choice;
}
