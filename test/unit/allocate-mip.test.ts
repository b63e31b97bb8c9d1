import assert from 'node:assert/strict';
import { test } from 'node:test';
import { solveMip } from '../../server/src/allocate/mip';
import { Allocator } from '../../server/src/allocate/pareto';
import { solveProblem } from '../../server/src/allocate/problem';
import { syntheticProblem } from '../../server/src/allocate/synthetic';
import type { AllocProblem } from '../../server/src/allocate/types';
import { rng } from '../fixtures/common';

const rel = (x: number, y: number) => Math.abs(x - y) / Math.max(Math.abs(y), 1e-300);

/** 30 layers × 5 options, random params/bits/errors; optional groups of 3 and minBits. */
function medium(seed: number, grouped: boolean): AllocProblem {
  const r = rng(seed);
  const layers = Array.from({ length: 30 }, (_, l) => ({
    name: `l${l}`,
    params: 1000 * (1 + Math.floor(r() * 500)),
    options: Array.from({ length: 5 }, (_, o) => ({ id: `o${o}`, bits: [2, 3, 4.125, 4.5, 8][o] + (o === 0 ? 0 : 0.0625 * Math.floor(r() * 4)), error: r() * 100 })),
    ...(r() < 0.1 ? { minBits: 3 } : {}),
  }));
  const groups = grouped ? [0, 9, 18].map((s) => [s, s + 1, s + 2].map((i) => `l${i}`)) : [];
  return { layers, groups, limits: {} };
}

test('DP == MIP (HiGHS) on random 30×5 instances, with and without groups, within 1e-9 relative', async () => {
  let compared = 0;
  for (let seed = 1; seed <= 6; seed++) {
    const problem = medium(seed, seed % 2 === 0);
    const dp = Allocator.create(problem, { precomputeFrontier: false });
    for (const b of [2.6, 3.4, 4.3, 5.5]) {
      const x = dp.solve(b);
      const y = await solveMip(problem, b);
      assert.equal(x.feasible, y.feasible, `seed ${seed} budget ${b}`);
      if (!x.feasible) {
        assert.ok(rel(x.minAvgBits!, y.minAvgBits!) < 1e-12);
        continue;
      }
      compared++;
      assert.equal(y.optimal, true);
      assert.ok(rel(x.totalError!, y.totalError!) <= 1e-9, `seed ${seed} budget ${b}: DP ${x.totalError} vs MIP ${y.totalError}`);
      assert.ok(y.avgBits! <= b && x.avgBits! <= b);
      for (const g of problem.groups) assert.equal(new Set(g.map((n) => y.choice![n])).size, 1);
    }
  }
  assert.ok(compared >= 18, `compared ${compared}`);
});

/** Brute force with latency and memory limits (small instances). */
function bruteWithLimits(p: AllocProblem, budget: number): { err: number; minBits: number } | null {
  const P = p.layers.reduce((s, l) => s + l.params, 0);
  let best = Infinity;
  let minBits = Infinity;
  const pick: number[] = [];
  const rec = (l: number) => {
    if (l === p.layers.length) {
      const opts = p.layers.map((x, i) => x.options[pick[i]]);
      if ((p.limits.latency ?? Infinity) < opts.reduce((s, o) => s + o.latency!, 0) - 1e-12) return;
      if ((p.limits.memory ?? Infinity) < opts.reduce((s, o) => s + o.memory!, 0) - 1e-12) return;
      const bits = p.layers.reduce((s, x, i) => s + x.params * opts[i].bits, 0) / P;
      minBits = Math.min(minBits, bits);
      if (bits <= budget + 1e-12) best = Math.min(best, opts.reduce((s, o) => s + o.error, 0));
      return;
    }
    p.layers[l].options.forEach((_, i) => {
      pick[l] = i;
      rec(l + 1);
    });
  };
  rec(0);
  return minBits === Infinity ? null : { err: best, minBits };
}

test('latency and memory limits: MIP == brute force on 40 small instances', async () => {
  const r = rng(33);
  let feasible = 0;
  let infeasible = 0;
  for (let t = 0; t < 40; t++) {
    const L = 2 + Math.floor(r() * 4);
    const layers = Array.from({ length: L }, (_, l) => ({
      name: `l${l}`,
      params: 10 * (1 + Math.floor(r() * 50)),
      options: [2, 4, 8].map((bits, o) => ({ id: `q${bits}`, bits, error: (3 - o) * r() * 10, latency: 1 + r() * (3 - o), memory: bits * (1 + r()) })),
    }));
    const limits = { latency: L * (1.5 + r()), ...(t % 2 ? { memory: L * (3 + 4 * r()) } : {}) };
    const problem: AllocProblem = { layers, groups: [], limits };
    const budget = 2 + r() * 5;
    const want = bruteWithLimits(problem, budget);
    const got = await solveProblem(problem, budget);
    assert.equal(got.solver, 'mip');
    if (!want || want.err === Infinity) {
      infeasible++;
      assert.equal(got.feasible, false, `t=${t}`);
      if (want) assert.ok(rel(got.minAvgBits!, want.minBits) < 1e-9, `t=${t}: minAvgBits ${got.minAvgBits} vs ${want.minBits}`);
      else assert.equal(got.minAvgBits, null);
      continue;
    }
    feasible++;
    assert.ok(rel(got.totalError!, want.err) <= 1e-9, `t=${t}: ${got.totalError} vs ${want.err}`);
    const chosen = layers.map((l) => l.options.find((o) => o.id === got.choice![l.name])!);
    assert.ok(chosen.reduce((s, o) => s + o.latency, 0) <= limits.latency + 1e-9);
  }
  assert.ok(feasible > 10 && infeasible > 3, `coverage ${feasible}/${infeasible}`);
});

test('infeasible with a latency limit: minimum bits under the limit and the limits that bind (hand case)', async () => {
  // a (100 weights): q2 latency 5, q8 latency 1; b (100): q2 latency 5, q8 latency 1. Limit 6 → at most one q2.
  // Cheapest under the limit: one layer q2, the other q8 → (200 + 800) / 200 = 5 bits/weight.
  const layer = (name: string) => ({ name, params: 100, options: [{ id: 'q2', bits: 2, error: 4, latency: 5 }, { id: 'q8', bits: 8, error: 1, latency: 1 }] });
  const problem = { layers: [layer('a'), layer('b')], limits: { latency: 6 } };
  const r = await solveProblem(problem, 4);
  assert.equal(r.feasible, false);
  assert.equal(r.minAvgBits, 5);
  assert.deepEqual(r.binding!.map((b) => b.constraint), ['budget', 'latency']);
  const ok = await solveProblem(problem, 5);
  assert.equal(ok.feasible, true);
  assert.equal(ok.totalError, 5);
  const none = await solveProblem({ ...problem, limits: { latency: 1.5 } }, 8);
  assert.equal(none.feasible, false);
  assert.equal(none.minAvgBits, null);
  assert.equal(none.binding![0].constraint, 'latency');
});

test('grouped synthetic model: DP super-layers agree with the MIP equality formulation', async () => {
  const problem = syntheticProblem({ layers: 42, options: 6, seed: 4, groupEvery: 3 });
  const dp = Allocator.create(problem);
  for (const b of [3, 4.25, 6]) {
    const x = dp.solve(b);
    const y = await solveMip(problem, b);
    assert.ok(rel(x.totalError!, y.totalError!) <= 1e-9, `budget ${b}: ${x.totalError} vs ${y.totalError}`);
  }
});
