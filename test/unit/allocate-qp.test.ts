import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kktResiduals, objective, solveQp, type QpProblem } from '../../server/src/allocate/qp';
import { rng } from '../fixtures/common';

/** Q = M Mᵀ with M n×k: PSD, singular when k < n. */
function randomPsd(n: number, k: number, r: () => number): Float64Array {
  const M = Float64Array.from({ length: n * k }, () => r() * 2 - 1);
  const Q = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let t = 0; t < k; t++) Q[i * n + j] += M[i * k + t] * M[j * k + t];
  return Q;
}

test('QP on n=2 matches a brute-force grid over the feasible box', async () => {
  const r = rng(21);
  for (let t = 0; t < 12; t++) {
    const Q = randomPsd(2, t % 3 === 0 ? 1 : 2, r); // some singular
    const p: QpProblem = { Q, c: [r() * 4 - 2, r() * 4 - 2], a: [0.5 + r(), 0.5 + r()], b: 0.3 + r(), lo: [0, -0.5], hi: [1, 1] };
    const res = await solveQp(p);
    const steps = 1000;
    let best = Infinity;
    for (let i = 0; i <= steps; i++) {
      for (let j = 0; j <= steps; j++) {
        const x = [p.lo[0] + ((p.hi[0] - p.lo[0]) * i) / steps, p.lo[1] + ((p.hi[1] - p.lo[1]) * j) / steps];
        if (p.a[0] * x[0] + p.a[1] * x[1] > p.b) continue;
        best = Math.min(best, objective(p, x));
      }
    }
    assert.ok(res.kkt.primalFeasibility <= 1e-8);
    assert.ok(res.objective <= best + 1e-8, `t=${t}: solver ${res.objective} worse than grid ${best}`);
    // And the grid (spacing ≤ 1.5e-3) gets close to it: a feasible grid point lies within ~2 steps of the
    // optimum, so the difference is first order in the spacing (observed ≤ 7e-4 here).
    assert.ok(best - res.objective <= 2e-3, `t=${t}: grid ${best} far above solver ${res.objective}`);
  }
});

test('QP KKT residuals vanish on random PSD instances (n up to 300, rank-deficient)', async () => {
  const r = rng(5);
  for (const [n, k] of [[20, 20], [60, 15], [150, 150], [300, 40]]) {
    const Q = randomPsd(n, k, r);
    const hi = Float64Array.from({ length: n }, () => 0.05 + 0.2 * r());
    const a = Float64Array.from({ length: n }, () => 1 + 7 * r());
    let ahi = 0;
    for (let i = 0; i < n; i++) ahi += a[i] * hi[i];
    const p: QpProblem = { Q, c: Float64Array.from({ length: n }, () => -r() * 3), a, b: 0.4 * ahi, lo: new Float64Array(n), hi };
    const res = await solveQp(p);
    const { kkt } = res;
    assert.ok(kkt.primalFeasibility <= 1e-8, `n=${n} primal ${kkt.primalFeasibility}`);
    assert.ok(kkt.dualFeasibility <= 1e-8, `n=${n} dual ${kkt.dualFeasibility}`);
    assert.ok(kkt.stationarity <= 1e-6, `n=${n} stationarity ${kkt.stationarity}`);
    assert.ok(kkt.complementarity <= 1e-6, `n=${n} complementarity ${kkt.complementarity}`);
    assert.ok(res.mu > 0, 'budget binds (b is 40 % of the all-max size)');
    // The optimum beats feasible perturbations of itself.
    for (let t = 0; t < 20; t++) {
      const x = Float64Array.from(res.r, (v, i) => Math.min(hi[i], Math.max(0, v + (r() - 0.5) * 0.02)));
      let ax = 0;
      for (let i = 0; i < n; i++) ax += a[i] * x[i];
      if (ax <= p.b) assert.ok(objective(p, x) >= res.objective - 1e-9);
    }
  }
});

test('KKT residuals detect a non-optimal point', () => {
  // min ½(x² + y²) − x − y, x + y ≤ 1, box [0, 2]: optimum (½, ½) with μ = ½.
  const p: QpProblem = { Q: [1, 0, 0, 1], c: [-1, -1], a: [1, 1], b: 1, lo: [0, 0], hi: [2, 2] };
  const good = kktResiduals(p, [0.5, 0.5], 0.5);
  assert.ok(good.stationarity < 1e-15 && good.complementarity < 1e-15 && good.primalFeasibility === 0);
  const bad = kktResiduals(p, [0.8, 0.2], 0.5);
  assert.ok(bad.stationarity > 0.1);
  assert.ok(kktResiduals(p, [1, 1], 0).primalFeasibility === 1);
  assert.ok(kktResiduals(p, [0.5, 0.5], -0.5).dualFeasibility === 0.5);
});
