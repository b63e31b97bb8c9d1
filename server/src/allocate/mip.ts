// Bit allocation as a MIP solved by HiGHS (WebAssembly): needed when extra resources (latency, memory)
// add a second budget, and an independent check of the DP elsewhere. Formulated on the ORIGINAL layers:
//   min Σ error_lo x_lo   s.t.  Σ_o x_lo = 1 (each layer),  Σ (params_l·bits_o / P) x_lo ≤ B,
//   Σ resource_lo x_lo ≤ limit (each limit),  x_mo = x_m'o for layers m, m' of one group,  x_lo ∈ {0,1},
// options outside a layer's bit range fixed to 0.
import highsLoader, { type Highs } from 'highs';
import { QuantLensError } from '../formats/errors';
import { prepare, type Prepared } from './items';
import { budgetBindings, fmt, minAvgBits, resultFromChoice } from './result';
import { RESOURCES, type AllocProblem, type AllocResult, type Binding, type ResourceName } from './types';

let runtime: Promise<Highs> | undefined;
/** The HiGHS runtime, loaded once per process. */
export function loadHighs(): Promise<Highs> {
  return (runtime ??= highsLoader());
}

export interface MipOptions {
  timeLimitS?: number;
}

interface MipSolution {
  /** Per layer, the index of its chosen option. */
  pick: number[];
  optimal: boolean;
  lowerBound: number;
}

/** Solve for a budget; infeasible budgets come back as { feasible: false, minAvgBits, binding }. */
export async function solveMip(problem: AllocProblem, budgetAvgBits: number, opts: MipOptions = {}): Promise<AllocResult> {
  const highs = await loadHighs();
  const prep = prepare(problem);
  if (prep.impossible.length) return { feasible: false, minAvgBits: null, binding: prep.impossible };
  const P = prep.totalParams;
  const realBits = (pick: number[]) => problem.layers.reduce((s, l, i) => s + l.params * l.options[pick[i]].bits, 0);
  let rhs = budgetAvgBits;
  for (let attempt = 0; attempt < 3; attempt++) {
    const sol = runMip(highs, prep, 'error', rhs, opts);
    if (!sol) return infeasible(highs, prep, budgetAvgBits, opts);
    // HiGHS accepts rows within its feasibility tolerance; insist on the real budget and retry tighter if needed.
    const over = realBits(sol.pick) / P - budgetAvgBits;
    if (prep.disc.exact ? !withinUnits(prep, sol.pick, budgetAvgBits) : over > 1e-12 * budgetAvgBits) {
      rhs -= Math.max(over, 0) + 1e-9 * budgetAvgBits;
      continue;
    }
    const r = resultFromChoice(problem, sol.pick, minimumBits(highs, prep, opts), { solver: 'mip', optimal: sol.optimal });
    r.gap = sol.optimal ? 0 : Math.max(0, r.totalError! - sol.lowerBound);
    return r;
  }
  throw new QuantLensError('mip-tolerance', `HiGHS kept returning choices over the budget ${budgetAvgBits} by round-off; try the DP solver`, { file: 'problem' });
}

/** Smallest achievable average bits: a MIP only when resource limits restrict the choice. */
function minimumBits(highs: Highs, prep: Prepared, opts: MipOptions): number | null {
  if (RESOURCES.every((r) => prep.problem.limits[r] === undefined)) return minAvgBits(prep);
  const sol = runMip(highs, prep, 'bits', Infinity, opts);
  return sol ? sol.pick.reduce((s, o, i) => s + prep.problem.layers[i].params * prep.problem.layers[i].options[o].bits, 0) / prep.totalParams : null;
}

function withinUnits(prep: Prepared, pick: number[], budget: number): boolean {
  let units = 0;
  for (const it of prep.items) units += it.cost[it.optionIndex.findIndex((oi) => oi[0] === pick[it.layers[0]])];
  return units <= prep.capacity(budget);
}

function infeasible(highs: Highs, prep: Prepared, budget: number, opts: MipOptions): AllocResult {
  const { problem } = prep;
  const limited = RESOURCES.filter((r) => problem.limits[r] !== undefined);
  const min = minimumBits(highs, prep, opts);
  if (min === null) {
    // Even without the bits budget no choice meets the resource limits.
    const binding: Binding[] = limited
      .map((r) => ({ r, min: minResource(prep, r) }))
      .filter(({ r, min }) => min > problem.limits[r]!)
      .map(({ r, min }) => ({ constraint: r, detail: `${r} limit ${problem.limits[r]} is below the minimum achievable ${fmt(min)}` }));
    if (!binding.length) {
      binding.push(...limited.map((r) => ({ constraint: r, detail: `the ${r} limit ${problem.limits[r]} cannot be met together with the other limits` })));
    }
    return { feasible: false, minAvgBits: null, binding, solver: 'mip' };
  }
  const binding = budgetBindings(prep, budget, min);
  const plain = minAvgBits(prep)!;
  if (min > plain * (1 + 1e-12)) {
    for (const r of limited) {
      binding.push({ constraint: r, detail: `the ${r} limit ${problem.limits[r]} raises the minimum from ${fmt(plain)} to ${fmt(min)} bits/weight` });
    }
  }
  return { feasible: false, minAvgBits: min, binding, solver: 'mip' };
}

/** Σ over items of the smallest resource total among the item's allowed options. */
function minResource(prep: Prepared, r: ResourceName): number {
  const layers = prep.problem.layers;
  return prep.items.reduce((s, it) => s + Math.min(...it.optionIndex.map((oi) => it.layers.reduce((t, li, m) => t + (layers[li].options[oi[m]][r] ?? 0), 0))), 0);
}

/**
 * One HiGHS run. objective 'error' with the budget row (rhs in avg bits), or 'bits' = minimize size
 * (budget row omitted). Returns null when infeasible.
 */
function runMip(highs: Highs, prep: Prepared, objective: 'error' | 'bits', rhs: number, opts: MipOptions): MipSolution | null {
  const { problem } = prep;
  const P = prep.totalParams;
  const col: { layer: number; opt: number }[] = [];
  const colOf = problem.layers.map((l, li) => l.options.map((_, o) => col.push({ layer: li, opt: o }) - 1));
  const opt = (c: number) => problem.layers[col[c].layer].options[col[c].opt];
  const rows: { idx: number[]; val: number[]; lo: number; hi: number }[] = [];
  for (const cols of colOf) rows.push({ idx: cols, val: cols.map(() => 1), lo: 1, hi: 1 });
  const all = col.map((_, c) => c);
  if (objective === 'error') rows.push({ idx: all, val: all.map((c) => (problem.layers[col[c].layer].params * opt(c).bits) / P), lo: -Infinity, hi: rhs });
  for (const r of RESOURCES) {
    const limit = problem.limits[r];
    if (limit === undefined) continue;
    const s = limit > 0 ? limit : 1; // scale the row to O(1) coefficients
    rows.push({ idx: all, val: all.map((c) => (opt(c)[r] ?? 0) / s), lo: -Infinity, hi: limit / s });
  }
  for (const it of prep.items) {
    const [m0, ...rest] = it.layers;
    rest.forEach((m, r) => {
      for (const oi of it.optionIndex) rows.push({ idx: [colOf[m0][oi[0]], colOf[m][oi[r + 1]]], val: [1, -1], lo: 0, hi: 0 });
    });
  }
  // Options outside the item's common allowed ids are fixed to 0 (bit ranges, and group intersection).
  const open = new Set<number>();
  prep.items.forEach((it) => it.layers.forEach((li, m) => it.optionIndex.forEach((oi) => open.add(colOf[li][oi[m]]))));
  const starts = [0];
  const indices: number[] = [];
  const values: number[] = [];
  for (const row of rows) {
    indices.push(...row.idx);
    values.push(...row.val);
    starts.push(indices.length);
  }
  const n = col.length;
  const model = highs.createModel({
    numCols: n,
    numRows: rows.length,
    colCost: col.map((c, k) => (objective === 'error' ? opt(k).error : (problem.layers[c.layer].params * opt(k).bits) / P)),
    colLower: new Float64Array(n),
    colUpper: col.map((_, k) => (open.has(k) ? 1 : 0)),
    rowLower: rows.map((r) => (r.lo === -Infinity ? -highs.infinity : r.lo)),
    rowUpper: rows.map((r) => (r.hi === Infinity ? highs.infinity : r.hi)),
    matrix: { format: 'csr', numRows: rows.length, numCols: n, starts, indices, values },
    integrality: col.map(() => highs.constants.variableType.integer),
  });
  try {
    model.options.set({
      output_flag: false,
      mip_rel_gap: 0,
      mip_abs_gap: 0,
      mip_feasibility_tolerance: 1e-9,
      primal_feasibility_tolerance: 1e-9,
      time_limit: opts.timeLimitS ?? 60,
    });
    model.run();
    const status = model.getModelStatus();
    const x = model.getSolution().colValue;
    const optimal = status === highs.constants.modelStatus.optimal;
    const hasSolution = optimal || (status === highs.constants.modelStatus.timeLimit && model.info.get('primal_solution_status') === highs.constants.solutionStatus.feasible);
    if (!hasSolution) return null;
    const pick = colOf.map((cols) => cols.reduce((b, c) => (x[c] > x[b] ? c : b), cols[0]) - cols[0]);
    return { pick, optimal, lowerBound: optimal ? model.getObjectiveValue() : Number(model.info.get('mip_dual_bound')) };
  } finally {
    model.dispose();
  }
}
