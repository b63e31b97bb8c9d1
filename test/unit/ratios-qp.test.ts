// The ratio QP's own solvers (separable for diagonal G, projected gradient as the fallback) against HiGHS and KKT.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { objective, solveQp, type QpProblem } from '../../server/src/allocate/qp';
import { solveByProjection, solveSeparable } from '../../server/src/allocate/ratios-qp';
import { rng } from '../fixtures/common';

function instance(n: number, seed: number, zeros: number): QpProblem {
  const r = rng(seed);
  const Q = new Float64Array(n * n);
  for (let i = 0; i < n; i++) Q[i * n + i] = i < zeros ? 0 : 0.01 + 3 * r();
  const lo = Float64Array.from({ length: n }, () => 0.05 * r());
  const hi = Float64Array.from(lo, (x) => x + 0.01 + 0.1 * r());
  const a = Float64Array.from({ length: n }, () => 0.001 + 4 * r());
  let alo = 0;
  let ahi = 0;
  for (let i = 0; i < n; i++) {
    alo += a[i] * lo[i];
    ahi += a[i] * hi[i];
  }
  return { Q, c: Float64Array.from({ length: n }, () => -2 * r()), a, b: alo + (ahi - alo) * (0.1 + 0.6 * r()), lo, hi };
}

test('separable QP: same optimum and multiplier as HiGHS, KKT residuals vanish', async () => {
  for (let t = 0; t < 30; t++) {
    const p = instance(2 + (t % 40), 100 + t, t % 3 === 0 ? 2 : 0); // some linear (q = 0) terms
    const s = solveSeparable(p);
    const h = await solveQp(p);
    assert.ok(Math.abs(s.objective - h.objective) <= 1e-9 * (1 + Math.abs(h.objective)), `t=${t}: ${s.objective} vs HiGHS ${h.objective}`);
    assert.ok(s.kkt.primalFeasibility <= 1e-12, JSON.stringify(s.kkt));
    assert.ok(s.kkt.stationarity <= 1e-9 && s.kkt.complementarity <= 1e-9 && s.kkt.dualFeasibility === 0, `t=${t}: ${JSON.stringify(s.kkt)}`);
    assert.ok(Math.abs(s.mu - h.mu) <= 1e-6 * (1 + h.mu), `t=${t}: μ ${s.mu} vs ${h.mu}`);
  }
});

test('separable QP: a slack budget gives every term its own optimum (μ = 0); linear terms fill the rest exactly', () => {
  // ½·2x² − 1x on [0, 1] → x = 0.5; ½·4y² − 1y on [0, 1] → y = 0.25; a = (1, 1), b = 10: μ = 0.
  const Q = [2, 0, 0, 4];
  let s = solveSeparable({ Q, c: [-1, -1], a: [1, 1], b: 10, lo: [0, 0], hi: [1, 1] });
  assert.deepEqual([...s.r], [0.5, 0.25]);
  assert.equal(s.mu, 0);
  // Two linear terms with costs −3, −1 per unit and a = (1, 1), b = 1.5 on [0, 1]²: x0 = 1, x1 = 0.5, μ = 1.
  s = solveSeparable({ Q: [0, 0, 0, 0], c: [-3, -1], a: [1, 1], b: 1.5, lo: [0, 0], hi: [1, 1] });
  assert.ok(Math.abs(s.r[0] - 1) < 1e-12 && Math.abs(s.r[1] - 0.5) < 1e-9, `${[...s.r]}`);
  assert.ok(Math.abs(s.mu - 1) < 1e-9);
  assert.ok(Math.abs(objective({ Q: [0, 0, 0, 0], c: [-3, -1], a: [1, 1], b: 1.5, lo: [0, 0], hi: [1, 1] }, s.r) + 3.5) < 1e-9);
});

test('projected-gradient fallback: the HiGHS optimum on dense PSD instances, small KKT residuals', async () => {
  const r = rng(8);
  for (let t = 0; t < 6; t++) {
    const n = 3 + 5 * t;
    const base = instance(n, 300 + t, 0);
    const M = Float64Array.from({ length: n * 2 }, () => r() * 2 - 1);
    const Q = Float64Array.from(base.Q);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) Q[i * n + j] += M[i * 2] * M[j * 2] + M[i * 2 + 1] * M[j * 2 + 1];
    const p = { ...base, Q };
    const h = await solveQp(p);
    const g = solveByProjection(p);
    assert.ok(g.kkt.primalFeasibility <= 1e-12);
    assert.ok(g.objective - h.objective <= 1e-7 * (1 + Math.abs(h.objective)), `t=${t}: ${g.objective} vs HiGHS ${h.objective}`);
    assert.ok(g.kkt.stationarity <= 1e-6, `t=${t}: ${JSON.stringify(g.kkt)}`);
  }
});
