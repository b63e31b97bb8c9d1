// One format per layer from a data-free report, for the charts: the budget slider's re-solve and the Pareto curve.
// Same objective as `quantlens allocate`: each layer × format costs its exact bits per weight and predicts the error
// ‖ΔW‖² = relMse·‖W‖², so the total is the model's squared weight error. The Allocator answers each budget from its
// precomputed frontier table (exact), so a slider step is a table lookup plus a backtrack.
import { Allocator } from '../allocate/pareto';
import type { AllocProblem, ParetoPoint } from '../allocate/types';
import type { AnalysisReport } from '../analysis/types';
import type { Allocation } from './charts';

export function allocProblem(report: AnalysisReport, formats: readonly string[] = report.formats.map((f) => f.id)): AllocProblem {
  return {
    layers: report.layers.map((l) => ({
      name: l.name,
      params: l.params,
      options: formats.filter((id) => l.errors[id]).map((id) => ({ id, bits: l.errors[id].bitsPerWeight, error: l.errors[id].relMse * l.sumSq })),
    })),
    groups: [],
    limits: {},
  };
}

export interface BudgetSolution {
  feasible: boolean;
  budget: number;
  /** Smallest average bits any choice reaches (null: no layer to allocate). */
  minAvgBits: number | null;
  avgBits?: number;
  totalError?: number;
  /** Σ‖ΔW‖² / Σ‖W‖² of the choice. */
  relError?: number;
  allocation?: Allocation;
}

export class BudgetSolver {
  private frontierCache?: ParetoPoint[];
  private readonly sumSq: number;

  constructor(
    readonly report: AnalysisReport,
    private readonly allocator = Allocator.create(allocProblem(report)),
  ) {
    this.sumSq = report.layers.reduce((s, l) => s + l.sumSq, 0);
  }

  /** Average bits of the cheapest and of the most precise choice: the slider's range. */
  range(): { min: number; max: number } | undefined {
    const points = this.frontier();
    if (!points.length) return undefined;
    return { min: points[0].avgBits, max: points[points.length - 1].avgBits };
  }

  frontier(): ParetoPoint[] {
    this.frontierCache ??= this.report.layers.length ? this.allocator.frontier().points : [];
    return this.frontierCache;
  }

  solve(budget: number): BudgetSolution {
    if (!this.report.layers.length) return { feasible: false, budget, minAvgBits: null };
    const r = this.allocator.solve(budget);
    const out: BudgetSolution = { feasible: r.feasible, budget, minAvgBits: r.minAvgBits };
    if (!r.feasible || !r.choice) return out;
    const allocation: Allocation = {};
    for (const l of this.report.layers) {
      const format = r.choice[l.name];
      if (format) allocation[l.name] = { format, bits: l.errors[format].bitsPerWeight };
    }
    return { ...out, avgBits: r.avgBits, totalError: r.totalError, relError: this.sumSq > 0 ? r.totalError! / this.sumSq : 0, allocation };
  }
}

/**
 * Solvers per analyzed model for the language server: filled from each finished analysis, else built from the
 * (disk-cached) analysis on first use. A slider step then costs one table lookup, never a re-analysis.
 */
export class SolverCache {
  private readonly solvers = new Map<string, Promise<BudgetSolver>>();

  static key(file: string, formats: readonly string[] | undefined, cacheDir: string | false | undefined): string {
    return JSON.stringify([file, formats ?? null, cacheDir ?? null]);
  }

  /** A fresh report for this key (the model was re-analyzed). */
  set(key: string, report: AnalysisReport): void {
    this.solvers.set(key, Promise.resolve(new BudgetSolver(report)));
  }

  get(key: string, load: () => Promise<AnalysisReport>): Promise<BudgetSolver> {
    let s = this.solvers.get(key);
    if (!s) {
      s = load().then((r) => new BudgetSolver(r));
      this.solvers.set(key, s);
      // A failed load (unreadable file, cancelled) is not remembered.
      s.catch(() => this.solvers.get(key) === s && this.solvers.delete(key));
    }
    return s;
  }
}
