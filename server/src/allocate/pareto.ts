// Incremental allocation: prepare once, then answer many budgets (the webview slider, a Pareto sweep).
// When the full Pareto-list DP table fits in `maxEntries`, a new budget is a binary search in the final
// frontier + backtrack (O(items)); otherwise each budget runs the exact bounded solve (exact.ts), which
// reuses the precomputed hulls. Both are exact.
import { check } from '../formats/errors';
import { solveExact } from './exact';
import { prepare, realCost, type PrepareOptions, type Prepared } from './items';
import { buildHull, lagrange, type Hull } from './lagrange';
import { backtrack, bestWithin, DEFAULT_MAX_ENTRIES, paretoDP, type ParetoTable } from './mckp';
import { budgetBindings, cheapestChoice, layerPicks, minAvgBits, resultFromChoice } from './result';
import type { AllocProblem, AllocResult, ParetoPoint } from './types';

export interface AllocatorOptions extends PrepareOptions {
  /** Bound on stored DP states (6 bytes each) for the frontier table and for each bounded solve. */
  maxEntries?: number;
  /** Build the whole frontier table up front (default true). */
  precomputeFrontier?: boolean;
}

export type SolverKind = 'auto' | 'dp' | 'lagrange';

export class Allocator {
  private constructor(
    readonly prep: Prepared,
    readonly hull: Hull | null,
    readonly table: ParetoTable | null,
    private readonly maxEntries: number,
    readonly minAvgBits: number | null,
  ) {}

  static create(problem: AllocProblem, opts: AllocatorOptions = {}): Allocator {
    const limited = Object.keys(problem.limits);
    check(limited.length === 0, 'bad-solver', `resource limits (${limited.join(', ')}) need the MIP solver (solveMip)`, { file: 'problem' });
    const prep = prepare(problem, opts);
    const maxEntries = opts.maxEntries ?? DEFAULT_MAX_ENTRIES;
    const ok = prep.impossible.length === 0;
    const hull = ok ? buildHull(prep.items) : null;
    const table = ok && opts.precomputeFrontier !== false ? paretoDP(prep.items, { maxEntries }) : null;
    return new Allocator(prep, hull, table, maxEntries, minAvgBits(prep));
  }

  /** 'frontier': budgets are answered from the precomputed table; 'per-budget': each runs a bounded exact solve. */
  get mode(): 'frontier' | 'per-budget' {
    return this.table ? 'frontier' : 'per-budget';
  }

  solve(budgetAvgBits: number, solver: SolverKind = 'auto'): AllocResult {
    const { prep, hull, minAvgBits: min } = this;
    if (!hull) return { feasible: false, minAvgBits: null, binding: prep.impossible };
    const disc = prep.disc;
    const cap = prep.capacity(budgetAvgBits);
    if (cap < prep.minCost) {
      // Rounded-up units may reject a budget that the cheapest choice meets for real: return that choice.
      if (min !== null && min <= budgetAvgBits) {
        return resultFromChoice(prep.problem, layerPicks(prep, cheapestChoice(prep)), min, { solver: 'dp-exact', optimal: false, discretization: disc });
      }
      return { feasible: false, minAvgBits: min, binding: budgetBindings(prep, budgetAvgBits, min!) };
    }
    const picks = (perItem: ArrayLike<number>) => layerPicks(prep, perItem);
    if (solver === 'lagrange') {
      const lag = lagrange(hull, cap)!;
      const gap = Math.max(0, lag.err - lag.lowerBound);
      return resultFromChoice(prep.problem, picks(lag.choice), min, { solver: 'lagrange', optimal: gap === 0, gap, lowerBound: lag.lowerBound, discretization: disc });
    }
    if (this.table) {
      const choice = backtrack(this.table, bestWithin(this.table, cap));
      return resultFromChoice(prep.problem, picks(choice), min, { solver: 'dp-frontier', optimal: true, gap: 0, discretization: disc });
    }
    const ex = solveExact(hull, cap, this.maxEntries)!;
    const gap = ex.optimal ? 0 : Math.max(0, ex.err - ex.lowerBound);
    return resultFromChoice(prep.problem, picks(ex.choice), min, {
      solver: 'dp-exact',
      optimal: ex.optimal,
      gap,
      ...(ex.optimal ? {} : { lowerBound: ex.lowerBound }),
      discretization: disc,
    });
  }

  /**
   * Size vs error. With the table: every Pareto-optimal point (in approximate units, sizes are the
   * rounded-up upper bounds). Otherwise: `samples` budgets evenly spaced between the cheapest and the
   * largest choice, each solved exactly, keeping the points where error still falls.
   */
  frontier(samples = 64): { exact: boolean; points: ParetoPoint[] } {
    const { prep, table } = this;
    if (!this.hull) return { exact: true, points: [] };
    const P = prep.totalParams;
    if (table) {
      const points = Array.from(table.cost, (c, i) => ({ avgBits: (c * prep.disc.unitBits) / P, totalError: table.err[i] }));
      return { exact: prep.disc.exact, points };
    }
    const lo = this.minAvgBits!;
    const hi = prep.items.reduce((s, it) => s + Math.max(...it.ids.map((id) => realCost(prep.problem, it.layers, id))), 0) / P;
    const points: ParetoPoint[] = [];
    for (let i = 0; i < samples; i++) {
      const b = samples === 1 ? hi : lo + ((hi - lo) * i) / (samples - 1);
      const r = this.solve(b);
      if (!r.feasible) continue;
      const last = points[points.length - 1];
      if (!last || r.totalError! < last.totalError) points.push({ avgBits: r.avgBits!, totalError: r.totalError! });
    }
    return { exact: false, points };
  }
}
