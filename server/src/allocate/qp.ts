// Box- and budget-constrained convex QP, solved by HiGHS (active-set QP, WebAssembly):
//   min ½ rᵀQr + cᵀr   s.t.  aᵀr ≤ b,  lo ≤ r ≤ hi,   Q symmetric PSD (the caller projects it).
// The answer carries its own KKT residuals, computed here from r and the budget multiplier, so a
// caller can trust it without trusting the solver.
import { QuantLensError } from '../formats/errors';
import { loadHighs } from './mip';

export interface QpProblem {
  /** n×n, row-major (only the lower triangle is read; it is assumed symmetric). */
  Q: ArrayLike<number>;
  c: ArrayLike<number>;
  a: ArrayLike<number>;
  b: number;
  lo: ArrayLike<number>;
  hi: ArrayLike<number>;
}

export interface Kkt {
  /** ‖r − clip(r − (Qr + c + μa), lo, hi)‖∞: zero iff r is stationary on the box for multiplier μ. */
  stationarity: number;
  /** max of |μ·(b − aᵀr)| and |ν·(distance to the bound)| for the bound multipliers ν. */
  complementarity: number;
  /** Largest violation of aᵀr ≤ b or of the box. */
  primalFeasibility: number;
  /** max(0, −μ). */
  dualFeasibility: number;
}

export interface QpResult {
  r: Float64Array;
  objective: number;
  /** Multiplier of aᵀr ≤ b (≥ 0 at optimality: the objective decrease per unit of extra b). */
  mu: number;
  kkt: Kkt;
}

export async function solveQp(p: QpProblem): Promise<QpResult> {
  const highs = await loadHighs();
  const n = p.c.length;
  for (const [name, v] of [['a', p.a], ['lo', p.lo], ['hi', p.hi]] as const) {
    if (v.length !== n) throw new QuantLensError('bad-qp', `${name} has length ${v.length}, expected ${n}`, { file: 'qp' });
  }
  if (p.Q.length !== n * n) throw new QuantLensError('bad-qp', `Q has ${p.Q.length} entries, expected ${n}×${n}`, { file: 'qp' });
  // Lower triangle, compressed by column.
  const starts = [0];
  const indices: number[] = [];
  const values: number[] = [];
  for (let j = 0; j < n; j++) {
    for (let i = j; i < n; i++) {
      const q = p.Q[i * n + j];
      if (q !== 0) {
        indices.push(i);
        values.push(q);
      }
    }
    starts.push(indices.length);
  }
  const aIdx: number[] = [];
  const aVal: number[] = [];
  for (let i = 0; i < n; i++) {
    if (p.a[i] !== 0) {
      aIdx.push(i);
      aVal.push(p.a[i]);
    }
  }
  const inf = (x: number) => (x === Infinity ? highs.infinity : x === -Infinity ? -highs.infinity : x);
  const model = highs.createModel({
    numCols: n,
    numRows: 1,
    colCost: Float64Array.from(p.c),
    colLower: Float64Array.from(p.lo, inf),
    colUpper: Float64Array.from(p.hi, inf),
    rowLower: [-highs.infinity],
    rowUpper: [inf(p.b)],
    matrix: { format: 'csr', numRows: 1, numCols: n, starts: [0, aIdx.length], indices: aIdx, values: aVal },
    hessian: { format: 'triangular', dimension: n, starts, indices, values },
  });
  try {
    // HiGHS's QP solver can cycle on degenerate instances: bound it so a bad case fails (qp-failed) instead of hanging.
    model.options.set({ output_flag: false, primal_feasibility_tolerance: 1e-9, dual_feasibility_tolerance: 1e-9, qp_iteration_limit: Math.max(10_000, 100 * n) });
    model.run();
    const status = model.getModelStatus();
    if (status !== highs.constants.modelStatus.optimal) {
      throw new QuantLensError('qp-failed', `QP solver ended with status ${status} (expected optimal ${highs.constants.modelStatus.optimal}); is Q PSD and the box ∩ budget non-empty?`, { file: 'qp' });
    }
    const sol = model.getSolution();
    const r = Float64Array.from(sol.colValue);
    // HiGHS reports the row dual of an active ≤ row as ≤ 0 when minimizing (a wrong sign shows as dualFeasibility).
    const mu = -sol.rowDual[0];
    return { r, objective: objective(p, r), mu, kkt: kktResiduals(p, r, mu) };
  } finally {
    model.dispose();
  }
}

export function objective(p: QpProblem, r: ArrayLike<number>): number {
  const n = r.length;
  let f = 0;
  for (let i = 0; i < n; i++) {
    let qi = 0;
    for (let j = 0; j < n; j++) qi += sym(p.Q, n, i, j) * r[j];
    f += r[i] * (0.5 * qi + p.c[i]);
  }
  return f;
}

/** Q[i][j] read from the lower triangle, as the solver sees it. */
const sym = (Q: ArrayLike<number>, n: number, i: number, j: number) => (i >= j ? Q[i * n + j] : Q[j * n + i]);

export function kktResiduals(p: QpProblem, r: ArrayLike<number>, mu: number): Kkt {
  const n = r.length;
  let ar = 0;
  for (let i = 0; i < n; i++) ar += p.a[i] * r[i];
  let stationarity = 0;
  let complementarity = mu === 0 ? 0 : Math.abs(mu * (p.b - ar));
  let primalFeasibility = Math.max(0, ar - p.b);
  for (let i = 0; i < n; i++) {
    let z = p.c[i] + mu * p.a[i];
    for (let j = 0; j < n; j++) z += sym(p.Q, n, i, j) * r[j];
    const step = Math.min(p.hi[i], Math.max(p.lo[i], r[i] - z));
    stationarity = Math.max(stationarity, Math.abs(r[i] - step));
    // z > 0 must be held by the lower bound, z < 0 by the upper one.
    const dist = z > 0 ? r[i] - p.lo[i] : p.hi[i] - r[i];
    if (Number.isFinite(dist)) complementarity = Math.max(complementarity, Math.abs(z * dist));
    primalFeasibility = Math.max(primalFeasibility, p.lo[i] - r[i], r[i] - p.hi[i]);
  }
  return { stationarity, complementarity, primalFeasibility, dualFeasibility: Math.max(0, -mu) };
}
