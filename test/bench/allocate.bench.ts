// Allocation speed: incremental exact re-solve (the budget slider), DP vs MIP agreement, the single QP and the
// full high-impact ratio optimization at 300 layers.
import { performance } from 'node:perf_hooks';
import { solveProblem } from '../../server/src/allocate/problem';
import { solveQp } from '../../server/src/allocate/qp';
import { optimizeRatios, type RatioLayer } from '../../server/src/allocate/ratios';
import { benchIncremental, syntheticProblem } from '../../server/src/allocate/synthetic';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

/** G = AᵀA/n + diag(d): a dense PSD interaction matrix with a dominant diagonal, as measured ones look. */
function psd(n: number, rnd: () => number): Float64Array {
  const k = 8;
  const A = Float64Array.from({ length: k * n }, () => rnd() - 0.5);
  const G = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let r = 0; r < k; r++) s += A[r * n + i] * A[r * n + j];
      G[i * n + j] = G[j * n + i] = (0.2 * s) / k + (i === j ? 0.5 + rnd() : 0);
    }
  }
  return G;
}

async function bestMs(f: () => Promise<unknown>, reps = 3): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await f();
    best = Math.min(best, performance.now() - t);
  }
  return best;
}

export async function benchAllocate(): Promise<void> {
  console.log('allocate: exact per-layer formats and high-impact ratios');
  const inc = benchIncremental({ layers: 1000, options: 10, budgets: 50 });
  console.log(`  1000 layers × 10 options: first solve ${inc.firstMs.toFixed(1)} ms (${inc.mode}); re-solve mean ${inc.resolveMeanMs.toFixed(3)} ms, max ${inc.resolveMaxMs.toFixed(3)} ms over ${inc.budgets} budgets (target < 20 ms)`);

  let worst = 0;
  let runs = 0;
  for (let seed = 1; seed <= 4; seed++) {
    const p = syntheticProblem({ layers: 60, options: 6, groupEvery: 3, seed });
    const json = { layers: p.layers, groups: p.groups };
    for (const budget of [3, 3.5, 4.2, 5, 6]) {
      const dp = await solveProblem(json, budget, { solver: 'dp' });
      const mip = await solveProblem(json, budget, { solver: 'mip' });
      if (dp.feasible !== mip.feasible) throw new Error(`DP and MIP disagree on feasibility (seed ${seed}, budget ${budget})`);
      if (dp.feasible) worst = Math.max(worst, Math.abs(dp.totalError! - mip.totalError!) / mip.totalError!);
      runs++;
    }
  }
  console.log(`  DP vs HiGHS MIP on ${runs} grouped instances (60 layers × 6 options): max relative difference of the optimum ${worst.toExponential(1)}`);

  const n = 300;
  const rnd = lcg(7);
  const G = psd(n, rnd);
  const qp = { Q: G, c: Float64Array.from({ length: n }, () => -rnd()), a: Float64Array.from({ length: n }, () => 0.5 + rnd()), b: n * 0.01, lo: new Float64Array(n), hi: new Float64Array(n).fill(0.05) };
  const qpMs = await bestMs(() => solveQp(qp));
  const { kkt } = await solveQp(qp);
  console.log(`  one convex QP, ${n} variables (dense PSD Q, budget row, box): ${qpMs.toFixed(1)} ms, KKT residual ${Math.max(kkt.stationarity, kkt.primalFeasibility, kkt.complementarity).toExponential(1)} (target < 100 ms)`);

  const layers: RatioLayer[] = Array.from({ length: n }, (_, l) => ({
    name: `l${l}`,
    params: 4096 * 4096,
    base: 2.25,
    fixed: 0.02,
    alpha: 20,
    sigma0: 1,
    segments: [{ width: 0.01, slope: -30 * (0.5 + rnd()) }, { width: 0.02, slope: -8 }, { width: 0.02, slope: -2 }],
  }));
  const diagMs = await bestMs(() => optimizeRatios(layers, G, 2.5, true), 1);
  const fullMs = await bestMs(() => optimizeRatios(layers, G, 2.5, false), 1);
  console.log(`  high-impact ratios, ${n} layers (3-segment curves, overhead pinning): diagonal ${diagMs.toFixed(0)} ms, full QP ${fullMs.toFixed(0)} ms`);
}
