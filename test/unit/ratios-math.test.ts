// The ratio optimizer's math: convex fit, PSD projection, pair sampling, the QP (KKT, C = 0, interactions) and the
// ordering of the four strategies at equal modelled bits.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { projectPsd, samplePairs, symmetricEigen } from '../../server/src/allocate/interactions';
import {
  fitConvex, fixedRatioFor, modelAvgBits, optimizeRatios, predictedLoss, sigmaAt, uniformBits, type RatioLayer,
} from '../../server/src/allocate/ratios';
import { rng } from '../fixtures/common';

const close = (a: number, b: number, tol: number, msg?: string) => assert.ok(Math.abs(a - b) <= tol, `${msg ?? ''} ${a} vs ${b}`);

test('fitConvex: lower convex hull of the measured points, cut where it stops decreasing', () => {
  // (1, 0.9) lies above the chord (0,1)–(2,0.5) (0.75 at r = 1): not a vertex.
  const a = fitConvex([0, 1, 2, 3], [1, 0.9, 0.5, 0.4]);
  assert.equal(a.length, 2);
  close(a[0].width, 2, 1e-15);
  close(a[0].slope, -0.25, 1e-15);
  close(a[1].width, 1, 1e-15);
  close(a[1].slope, -0.1, 1e-15);
  // Rising tail dropped: the hull keeps (0,1) (1,0.5) (2,0.4), the slope to (3,0.45) is positive.
  const segs = fitConvex([0, 1, 2, 3], [1, 0.5, 0.4, 0.45]);
  assert.equal(segs.length, 2);
  close(segs[0].slope, -0.5, 1e-15);
  close(segs[1].slope, -0.1, 1e-15);
  const l: RatioLayer = { name: 'x', params: 100, base: 2, fixed: 0, alpha: 10, sigma0: 1, segments: segs };
  close(sigmaAt(l, 0.5), 0.75, 1e-15);
  close(sigmaAt(l, 1.5), 0.45, 1e-15);
  close(sigmaAt(l, 9), 0.4, 1e-15, 'flat past the hull');
});

test('PSD projection of a hand-computed 2×2 and eigenvalues of a 3×3', () => {
  // [[1,2],[2,1]]: eigenvalues 3 (v = (1,1)/√2) and −1 (v = (1,−1)/√2); clipping −1 leaves 3·vvᵀ = 1.5·ones.
  const p = projectPsd([1, 2, 2, 1], 2);
  for (const x of p.matrix) close(x, 1.5, 1e-12);
  assert.equal(p.clipped, 1);
  close(p.change, 1, 1e-12);
  // Already PSD: unchanged.
  const q = projectPsd([2, 0.5, 0.5, 3], 2);
  [2, 0.5, 0.5, 3].forEach((x, i) => close(q.matrix[i], x, 1e-12));
  assert.equal(q.clipped, 0);
  // [[2,1,0],[1,2,0],[0,0,5]]: eigenvalues 1, 3, 5; A·v = λ·v for every column.
  const A = [2, 1, 0, 1, 2, 0, 0, 0, 5];
  const e = symmetricEigen(A, 3);
  assert.deepEqual([...e.values].map((v) => Math.round(v * 1e9) / 1e9).sort(), [1, 3, 5]);
  for (let k = 0; k < 3; k++) {
    for (let i = 0; i < 3; i++) {
      let av = 0;
      for (let j = 0; j < 3; j++) av += A[i * 3 + j] * e.vectors[j * 3 + k];
      close(av, e.values[k] * e.vectors[i * 3 + k], 1e-12);
    }
  }
});

test('pair sampling: all pairs up to 40 layers, else neighbours + 2·L seeded random pairs', () => {
  assert.equal(samplePairs(5).pairs.length, 10);
  const all = samplePairs(40);
  assert.equal(all.mode, 'all');
  assert.equal(all.pairs.length, 780);
  const s = samplePairs(50, 7);
  assert.equal(s.mode, 'sampled');
  assert.equal(s.neighbours, 49 + 48);
  assert.equal(s.random, 100);
  assert.equal(s.pairs.length, 197);
  assert.equal(s.total, 1225);
  const keys = new Set(s.pairs.map(([i, j]) => `${i},${j}`));
  assert.equal(keys.size, 197, 'no pair twice');
  for (const [i, j] of s.pairs) assert.ok(i < j && j < 50);
  for (let i = 0; i + 2 < 50; i++) assert.ok(keys.has(`${i},${i + 1}`) && keys.has(`${i},${i + 2}`));
  assert.equal(s.pairs.slice(97).filter(([i, j]) => j - i <= 2).length, 0, 'random pairs are not neighbours');
  assert.deepEqual(samplePairs(50, 7).pairs, s.pairs, 'seeded');
  assert.notDeepEqual(samplePairs(50, 8).pairs, s.pairs);
  assert.match(s.description, /197 of 1225 pairs: 97 neighbours .* \+ 100 random \(seed 7\)/);
});

/** Layers with convex σ(r) = c + (1 − c)·exp(−k·r) measured at the usual ratios. */
function randomLayers(n: number, seed: number, fixed = 0): RatioLayer[] {
  const r = rng(seed);
  const ratios = [0, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1];
  return Array.from({ length: n }, (_, i) => {
    const c = 0.3 + 0.6 * r();
    const k = 10 + 90 * r();
    const params = 1000 * (1 + Math.floor(8 * r()));
    return {
      name: `l${i}`,
      params,
      base: 2 + 0.5 * r(),
      fixed,
      alpha: 16 + 8 * r(),
      sigma0: 1,
      segments: fitConvex(ratios, ratios.map((x) => c + (1 - c) * Math.exp(-k * x))),
    };
  });
}

/** G = diag(d) + M Mᵀ·scale (PSD). */
function randomG(n: number, seed: number, coupling: number): Float64Array {
  const r = rng(seed);
  const M = Float64Array.from({ length: n * 3 }, () => r() * 2 - 1);
  const G = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    G[i * n + i] += 0.5 + 2 * r();
    for (let j = 0; j < n; j++) for (let t = 0; t < 3; t++) G[i * n + j] += coupling * M[i * 3 + t] * M[j * 3 + t];
  }
  return G;
}

const diagOnly = (G: Float64Array, n: number) => Float64Array.from(G, (x, k) => (Math.floor(k / n) === k % n ? x : 0));

test('ratio QP: KKT residuals vanish and the modelled budget holds', async () => {
  for (const [n, seed] of [[6, 1], [12, 2], [30, 3]]) {
    const layers = randomLayers(n, seed);
    const G = randomG(n, seed + 10, 0.5);
    const budget = modelAvgBits(layers, new Float64Array(n).fill(0.02));
    for (const diagonal of [true, false]) {
      const res = await optimizeRatios(layers, G, budget, diagonal);
      const k = res.kkt!;
      assert.ok(k.primalFeasibility <= 1e-9 && k.dualFeasibility <= 1e-9, JSON.stringify(k));
      assert.ok(k.stationarity <= 1e-6 && k.complementarity <= 1e-6, JSON.stringify(k));
      assert.ok(res.mu! > 0, 'the budget binds (it is below every layer at r_max)');
      assert.ok(modelAvgBits(layers, res.r) <= budget + 1e-9);
      for (const x of res.r) assert.ok(x >= 0 && x <= 0.1 + 1e-12);
    }
  }
});

/**
 * Independent reference for two layers (budget binding): scan r_0 on a fine grid, r_1 takes the rest of the budget
 * (clipped to [0, r_max]), keep the best predicted loss.
 */
function twoLayerReference(layers: RatioLayer[], G: ArrayLike<number>, budget: number): number {
  const [a, b] = layers;
  const N = a.params + b.params;
  const slack = budget * N - a.params * (a.base + a.fixed) - b.params * (b.base + b.fixed);
  let best = Infinity;
  for (let s = 0; s <= 200000; s++) {
    const r0 = (0.1 * s) / 200000;
    const r1 = Math.min(0.1, (slack - a.params * a.alpha * r0) / (b.params * b.alpha));
    if (r1 < 0) break;
    best = Math.min(best, predictedLoss(layers, G, [r0, r1]));
  }
  return best;
}

test('with C = 0 the full QP equals the diagonal one; both match a brute-force scan on two layers', async () => {
  const n = 8;
  const layers = randomLayers(n, 42);
  const G = new Float64Array(n * n);
  for (let i = 0; i < n; i++) G[i * n + i] = 0.5 + (i % 3);
  const budget = modelAvgBits(layers, new Float64Array(n).fill(0.015));
  const diag = await optimizeRatios(layers, G, budget, true);
  const full = await optimizeRatios(layers, G, budget, false);
  full.r.forEach((x, i) => close(x, diag.r[i], 1e-9, `layer ${i}`));

  for (const seed of [1, 2, 3]) {
    const two = randomLayers(2, seed * 11);
    const G2 = [0.5 + seed, 0, 0, 1.5];
    const b2 = modelAvgBits(two, [0.02, 0.02]);
    const qp = predictedLoss(two, G2, (await optimizeRatios(two, G2, b2, false)).r);
    const ref = twoLayerReference(two, G2, b2);
    assert.ok(qp <= ref + 1e-12, `QP ${qp} above the scan ${ref}`);
    close(qp, ref, 1e-6 * ref, 'scan within its resolution (r steps of 5e-7)');
  }
});

test('a strong positive interaction between layers 0 and 1 moves bits to them', async () => {
  // Three identical layers; G_01 = 0.8 couples 0 and 1 (eigenvalues 1.8, 0.2, 1: PSD). The loss gradient of
  // σ_0, σ_1 is σ + 0.8σ′ > σ_2's, so both get a larger ratio than layer 2; without the coupling all are equal.
  const ratios = [0, 0.01, 0.02, 0.05, 0.1];
  const one = (name: string): RatioLayer => ({
    name, params: 4096, base: 2.25, fixed: 0.02, alpha: 20, sigma0: 1,
    segments: fitConvex(ratios, ratios.map((r) => 0.6 + 0.4 * Math.exp(-30 * r))),
  });
  const layers = [one('a'), one('b'), one('c')];
  const G = Float64Array.from([1, 0.8, 0, 0.8, 1, 0, 0, 0, 1]);
  const budget = modelAvgBits(layers, [0.03, 0.03, 0.03]);
  const full = await optimizeRatios(layers, G, budget, false);
  const diag = await optimizeRatios(layers, G, budget, true);
  close(diag.r[0], diag.r[1], 1e-9);
  close(diag.r[1], diag.r[2], 1e-9);
  close(full.r[0], full.r[1], 1e-9);
  assert.ok(full.r[0] > full.r[2] + 0.01, `interacting layers get more: ${[...full.r]}`);
  close(modelAvgBits(layers, full.r), budget, 1e-9, 'same bits');
  assert.ok(predictedLoss(layers, G, full.r) < predictedLoss(layers, G, diag.r));
});

test('at equal modelled bits: full QP ≤ diagonal (full model), diagonal ≤ fixed ratio and uniform bits', async () => {
  for (const seed of [3, 4, 5, 6]) {
    const n = 10;
    const layers = randomLayers(n, seed);
    const G = randomG(n, seed * 7, 0.8);
    const Gd = diagOnly(G, n);
    const budget = modelAvgBits(layers, new Float64Array(n).fill(0.01));
    const fixed = new Float64Array(n).fill(fixedRatioFor(layers, budget, 0.1));
    close(fixed[0], 0.01, 1e-12, 'the default budget is the 1 % fixed ratio');
    const uni = uniformBits(layers, budget, 0.1);
    const diag = (await optimizeRatios(layers, G, budget, true)).r;
    const full = (await optimizeRatios(layers, G, budget, false)).r;
    for (const r of [fixed, uni, diag, full]) assert.ok(modelAvgBits(layers, r) <= budget + 1e-9);
    const pf = (r: ArrayLike<number>) => predictedLoss(layers, G, r);
    const pd = (r: ArrayLike<number>) => predictedLoss(layers, Gd, r);
    assert.ok(pf(full) <= pf(diag) + 1e-12, `seed ${seed}: full ${pf(full)} > diagonal ${pf(diag)}`);
    assert.ok(pf(full) <= Math.min(pf(fixed), pf(uni)) + 1e-12);
    assert.ok(pd(diag) <= Math.min(pd(fixed), pd(uni)) + 1e-12, `seed ${seed}: diagonal not best on its own model`);
  }
});

test('a budget at the all-b_lo size keeps nothing; above r_max everywhere, every layer is at its hull end', async () => {
  const layers = randomLayers(4, 9, 0.05);
  const G = randomG(4, 1, 0.3);
  const min = modelAvgBits(layers, [0, 0, 0, 0]);
  assert.deepEqual([...(await optimizeRatios(layers, G, min, false)).r], [0, 0, 0, 0]);
  const big = modelAvgBits(layers, [0.1, 0.1, 0.1, 0.1]) + 1;
  for (const x of (await optimizeRatios(layers, G, big, false)).r) close(x, 0.1, 1e-9);
});

test('random instances with index overhead and any budget: always feasible, never worse than keeping nothing', async () => {
  const r = rng(77);
  for (let t = 0; t < 25; t++) {
    const n = 1 + Math.floor(r() * 6);
    const layers = randomLayers(n, 1000 + t, 0.05 * r());
    layers.forEach((l) => (l.params = 16 + Math.floor(r() * 400))); // small layers: overhead and whole weights matter
    const G = randomG(n, 2000 + t, r());
    const min = modelAvgBits(layers, new Float64Array(n));
    const max = modelAvgBits(layers, new Float64Array(n).fill(0.1));
    const budget = min + (max - min) * r() * 1.2;
    for (const diagonal of [true, false]) {
      const res = await optimizeRatios(layers, G, budget, diagonal);
      assert.ok(modelAvgBits(layers, res.r) <= budget + 1e-9, `t=${t}`);
      const f = (x: ArrayLike<number>) => predictedLoss(layers, diagonal ? diagOnly(G, n) : G, x);
      assert.ok(f(res.r) <= f(new Float64Array(n)) + 1e-12, `t=${t}: worse than r = 0`);
    }
  }
});
