// The ratio optimizer's QP, min ½xᵀQx + cᵀx  s.t.  aᵀx ≤ b,  lo ≤ x ≤ hi  (Q PSD, a > 0, lo feasible):
//  - Q diagonal (data-free, or the diagonal strategy): separable but for the budget row, solved exactly through its
//    one multiplier μ (a continuous quadratic knapsack): x_i(μ) minimizes its own term plus μ·a_i·x_i on the box,
//    Σ a_i x_i(μ) falls as μ grows, and μ is found by bisection to machine precision. HiGHS's active-set QP was
//    seen to cycle without end on such instances (47 layers of the sample model).
//  - otherwise solveQp (HiGHS); should it give up (status not optimal), accelerated projected gradient (FISTA
//    with restarts), each projection onto box ∩ {aᵀx ≤ b} being the separable problem with Q = I.
// Every answer carries the KKT residuals qp.ts computes from it.
import { QuantLensError } from '../formats/errors';
import { kktResiduals, objective, solveQp, type QpProblem, type QpResult } from './qp';

export async function solveRatioQp(p: QpProblem): Promise<QpResult> {
  const n = p.c.length;
  let diagonal = true;
  for (let t = 0; t < n * n && diagonal; t++) if (p.Q[t] !== 0 && Math.floor(t / n) !== t % n) diagonal = false;
  if (diagonal) return solveSeparable(p);
  try {
    return await solveQp(p);
  } catch (e) {
    if (e instanceof QuantLensError && e.code === 'qp-failed') return solveByProjection(p);
    throw e;
  }
}

/** min Σ ½ q_i x_i² + c_i x_i on the box with Σ a_i x_i ≤ b; μ the budget multiplier. */
function separable(q: ArrayLike<number>, c: ArrayLike<number>, p: QpProblem): { x: Float64Array; mu: number } {
  const n = c.length;
  const x = new Float64Array(n);
  const at = (mu: number, linearAtHi: boolean) => {
    let used = 0;
    for (let i = 0; i < n; i++) {
      const g = c[i] + mu * p.a[i];
      const v = q[i] > 0 ? -g / q[i] : g > 0 || (g === 0 && !linearAtHi) ? -Infinity : Infinity;
      x[i] = Math.min(p.hi[i], Math.max(p.lo[i], v));
      used += p.a[i] * x[i];
    }
    return used;
  };
  if (at(0, true) <= p.b) return { x, mu: 0 };
  let lo = 0;
  let hi = 1;
  while (at(hi, false) > p.b && Number.isFinite(hi)) hi *= 2;
  for (let it = 0; it < 200 && hi - lo > 1e-15 * hi; it++) {
    const mid = 0.5 * (lo + hi);
    if (at(mid, false) > p.b) lo = mid;
    else hi = mid;
  }
  // x(μ) on the feasible side; the slack left by linear terms (a jump of Σ a·x at μ) or by the last bisection step
  // goes to the terms that still want more: linear ones at their jump first, then interior ones.
  let slack = p.b - at(hi, false);
  const order = Array.from({ length: n }, (_, i) => i);
  const atJump = (i: number) => q[i] === 0 && c[i] + hi * p.a[i] <= 1e-9 * (Math.abs(c[i]) + hi * p.a[i]);
  const interior = (i: number) => q[i] > 0 && -(c[i] + hi * p.a[i]) / q[i] > x[i] - 1e-15;
  for (const i of [...order.filter(atJump), ...order.filter(interior)]) {
    if (slack <= 0) break;
    const step = Math.min(p.hi[i] - x[i], slack / p.a[i]);
    if (step <= 0) continue;
    x[i] += step;
    slack -= step * p.a[i];
  }
  return { x, mu: hi };
}

export function solveSeparable(p: QpProblem): QpResult {
  const n = p.c.length;
  const { x, mu } = separable(Float64Array.from({ length: n }, (_, i) => p.Q[i * n + i]), p.c, p);
  return result(p, x, mu);
}

/** FISTA with adaptive restart; step 1/L with L the Gershgorin bound of Q's largest eigenvalue. */
export function solveByProjection(p: QpProblem, maxIter = 20000): QpResult {
  const n = p.c.length;
  let lip = 0;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += Math.abs(p.Q[i * n + j]);
    lip = Math.max(lip, s);
  }
  const ones = new Float64Array(n).fill(1);
  const f = (x: ArrayLike<number>) => objective(p, x);
  /** Gradient step from y, projected; the projection's multiplier times L estimates the budget multiplier. */
  const step = (y: Float64Array) => {
    const target = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let g = p.c[i];
      for (let j = 0; j < n; j++) g += p.Q[i * n + j] * y[j];
      target[i] = -(y[i] - g / lip);
    }
    const pr = separable(ones, target, p);
    return { x: pr.x, mu: pr.mu * lip };
  };
  let { x, mu } = step(separable(ones, Float64Array.from(p.lo, (v) => -v), p).x);
  let y = x;
  let t = 1;
  let fx = f(x);
  for (let k = 0; k < maxIter; k++) {
    const nx = step(y);
    const fn = f(nx.x);
    if (fn > fx) {
      // Restart: momentum made things worse.
      y = x;
      t = 1;
      continue;
    }
    const tn = (1 + Math.sqrt(1 + 4 * t * t)) / 2;
    y = Float64Array.from(nx.x, (v, i) => v + ((t - 1) / tn) * (v - x[i]));
    t = tn;
    x = nx.x;
    mu = nx.mu;
    fx = fn;
    if (k % 50 === 49) {
      const kkt = kktResiduals(p, x, mu);
      if (kkt.stationarity <= 1e-10 && kkt.complementarity <= 1e-10) break;
    }
  }
  return result(p, x, mu);
}

function result(p: QpProblem, r: Float64Array, mu: number): QpResult {
  return { r, mu, objective: objective(p, r), kkt: kktResiduals(p, r, mu) };
}
