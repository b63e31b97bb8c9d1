import assert from 'node:assert/strict';
import { test } from 'node:test';
import { prepare, rational } from '../../server/src/allocate/items';
import { buildHull, lagrange } from '../../server/src/allocate/lagrange';
import { Allocator } from '../../server/src/allocate/pareto';
import { syntheticProblem } from '../../server/src/allocate/synthetic';
import type { AllocProblem, AllocResult } from '../../server/src/allocate/types';
import { rng } from '../fixtures/common';

// Random small instances whose bits are num/den, so the brute force decides the budget in integers.
interface Instance {
  problem: AllocProblem;
  den: number;
}

function randomInstance(r: () => number): Instance {
  const L = 2 + Math.floor(r() * 5);
  const den = r() < 0.5 ? 8 : 10;
  const counts = Array.from({ length: L }, () => 2 + Math.floor(r() * 3));
  const groups: string[][] = [];
  if (r() < 0.4) {
    const size = Math.min(L, 2 + Math.floor(r() * 2));
    const start = Math.floor(r() * (L - size + 1));
    for (let i = start; i < start + size; i++) counts[i] = counts[start];
    groups.push(Array.from({ length: size }, (_, i) => `L${start + i}`));
  }
  const integerErrors = r() < 0.3; // ties
  const layers = counts.map((O, l) => {
    const layer: AllocProblem['layers'][number] = {
      name: `L${l}`,
      params: 1 + Math.floor(r() * 1000),
      options: Array.from({ length: O }, (_, o) => ({
        id: `o${o}`,
        bits: (1 + Math.floor(r() * 8 * den)) / den,
        error: integerErrors ? Math.floor(r() * 10) : r() * 10,
      })),
    };
    if (r() < 0.15) layer.minBits = layer.options[Math.floor(r() * O)].bits;
    return layer;
  });
  return { problem: { layers, groups, limits: {} }, den };
}

interface Brute {
  /** min Σ params·bits·den over choices that satisfy groups and bit ranges (no budget); null if none. */
  minNum: number | null;
  maxNum: number;
  best: (budgetNum: number) => { err: number } | null;
}

function brute({ problem, den }: Instance): Brute {
  const { layers, groups } = problem;
  const combos: { num: number; err: number }[] = [];
  const pick: number[] = [];
  const rec = (l: number) => {
    if (l === layers.length) {
      for (const g of groups) {
        const ids = g.map((n) => layers[layers.findIndex((x) => x.name === n)].options[pick[layers.findIndex((x) => x.name === n)]].id);
        if (new Set(ids).size > 1) return;
      }
      let num = 0;
      let err = 0;
      layers.forEach((x, i) => {
        num += x.params * Math.round(x.options[pick[i]].bits * den);
        err += x.options[pick[i]].error;
      });
      combos.push({ num, err });
      return;
    }
    layers[l].options.forEach((o, i) => {
      if (layers[l].minBits !== undefined && o.bits < layers[l].minBits!) return;
      pick[l] = i;
      rec(l + 1);
    });
  };
  rec(0);
  return {
    minNum: combos.length ? Math.min(...combos.map((c) => c.num)) : null,
    maxNum: Math.max(0, ...combos.map((c) => c.num)),
    best(budgetNum) {
      const ok = combos.filter((c) => c.num <= budgetNum);
      return ok.length ? { err: Math.min(...ok.map((c) => c.err)) } : null;
    },
  };
}

/** The result obeys the groups, bit ranges and (in integers) the budget, and its totals are right. */
function checkValid({ problem, den }: Instance, r: AllocResult, budgetNumTotal: number): void {
  assert.ok(r.feasible && r.choice);
  let num = 0;
  let err = 0;
  for (const l of problem.layers) {
    const o = l.options.find((x) => x.id === r.choice![l.name]);
    assert.ok(o, `layer ${l.name} has a chosen option`);
    if (l.minBits !== undefined) assert.ok(o.bits >= l.minBits);
    num += l.params * Math.round(o.bits * den);
    err += o.error;
  }
  for (const g of problem.groups) assert.equal(new Set(g.map((n) => r.choice![n])).size, 1, 'group members share an option');
  assert.ok(num <= budgetNumTotal, 'budget respected exactly');
  assert.ok(Math.abs(err - r.totalError!) <= 1e-12 * Math.max(1, err));
}

test('DP == brute force on 240 random small instances (groups, minBits, infeasible budgets)', () => {
  const r = rng(7);
  let infeasible = 0;
  let grouped = 0;
  for (let t = 0; t < 240; t++) {
    const inst = randomInstance(r);
    const bf = brute(inst);
    const P = inst.problem.layers.reduce((s, l) => s + l.params, 0);
    const full = Allocator.create(inst.problem);
    const bounded = Allocator.create(inst.problem, { precomputeFrontier: false });
    assert.equal(full.mode, 'frontier');
    if (inst.problem.groups.length) grouped++;
    if (bf.minNum === null) {
      const res = full.solve(8);
      assert.equal(res.feasible, false);
      assert.equal(res.minAvgBits, null);
      assert.ok(res.binding!.length > 0);
      continue;
    }
    for (let k = 0; k < 3; k++) {
      // Budget numerator (per weight, in 1/den bits) from below the minimum to above the maximum.
      const lo = Math.floor((bf.minNum / P) * 0.8);
      const hi = Math.ceil((bf.maxNum / P) * 1.05);
      const bNum = Math.max(1, lo + Math.floor(r() * (hi - lo + 1)));
      const budget = bNum / inst.den;
      const want = bf.best(bNum * P);
      for (const res of [full.solve(budget), bounded.solve(budget)]) {
        if (!want) {
          infeasible++;
          assert.equal(res.feasible, false, `t=${t}: budget ${budget} is infeasible`);
          assert.ok(Math.abs(res.minAvgBits! - bf.minNum / (inst.den * P)) < 1e-12);
          assert.equal(res.binding![0].constraint, 'budget');
          continue;
        }
        checkValid(inst, res, bNum * P);
        assert.ok(Math.abs(res.totalError! - want.err) <= 1e-12 * Math.max(1, want.err), `t=${t}: ${res.totalError} vs brute ${want.err}`);
        assert.equal(res.optimal, true);
        assert.equal(res.discretization!.exact, true);
      }
      if (want) {
        const lag = full.solve(budget, 'lagrange');
        checkValid(inst, lag, bNum * P);
        assert.ok(lag.totalError! >= want.err - 1e-12 * Math.max(1, want.err), 'Lagrangian solution no better than the optimum');
        assert.ok(lag.gap! >= 0 && lag.lowerBound! <= want.err + 1e-12 * Math.max(1, want.err), 'lower bound below the optimum');
      }
    }
  }
  assert.ok(infeasible > 20 && grouped > 50, `coverage: ${infeasible} infeasible, ${grouped} grouped`);
});

test('approximate units (forced resolution) stay feasible and within the stated slack', () => {
  const r = rng(11);
  for (let t = 0; t < 60; t++) {
    const inst = randomInstance(r);
    const bf = brute(inst);
    if (bf.minNum === null) continue;
    const P = inst.problem.layers.reduce((s, l) => s + l.params, 0);
    const bNum = Math.ceil(((bf.minNum + bf.maxNum) / 2 / P) * 1);
    const a = Allocator.create(inst.problem, { resolutionBits: 7.3 });
    const res = a.solve(bNum / inst.den);
    if (!bf.best(bNum * P)) continue;
    checkValid(inst, res, bNum * P);
    assert.equal(res.discretization!.exact, false);
    // Optimal for any budget smaller by the slack.
    const slackNum = Math.ceil(res.discretization!.maxSlackAvgBits * inst.den * P);
    const tighter = bf.best(bNum * P - slackNum);
    if (tighter) assert.ok(res.totalError! <= tighter.err + 1e-12 * Math.max(1, tighter.err));
  }
});

// Hand-worked example. P = 100 + 200 + 100 = 400 weights; budget 4 bits/weight → 1600 bits.
//   A (100): 2b err 9 | 4b err 3 | 8b err 1       sizes 200 / 400 / 800
//   B (200): 2b err 8 | 4b err 2 | 8b err 0.5     sizes 400 / 800 / 1600
//   C (100): 2b err 20| 4b err 10| 8b err 1       sizes 200 / 400 / 800
// Choices within 1600 bits: A4 B4 C4 = 1600, err 15; A4 B2 C8 = 1600, err 12; A8 B2 C4 = 1600, err 19;
// A2 B2 C8 = 1400, err 18; A2 B4 C4 = 1400, err 21; A2 B4 C8 = 1800 is over. Best: A→4, B→2, C→8, err 12.
// At 5 bits (2000): A4 B4 C8 = 2000, err 6 (A8 B2 C8 = 2000 gives 10). Minimum: all 2-bit = 800 bits = 2 bits/weight;
// with C.minBits = 4 the minimum is (200 + 400 + 400) / 400 = 2.5 bits/weight.
const hand: AllocProblem = {
  layers: [
    { name: 'A', params: 100, options: [{ id: 'q2', bits: 2, error: 9 }, { id: 'q4', bits: 4, error: 3 }, { id: 'q8', bits: 8, error: 1 }] },
    { name: 'B', params: 200, options: [{ id: 'q2', bits: 2, error: 8 }, { id: 'q4', bits: 4, error: 2 }, { id: 'q8', bits: 8, error: 0.5 }] },
    { name: 'C', params: 100, options: [{ id: 'q2', bits: 2, error: 20 }, { id: 'q4', bits: 4, error: 10 }, { id: 'q8', bits: 8, error: 1 }] },
  ],
  groups: [],
  limits: {},
};

test('hand-worked 3-layer example', () => {
  for (const a of [Allocator.create(hand), Allocator.create(hand, { precomputeFrontier: false })]) {
    const r4 = a.solve(4);
    assert.deepEqual(r4.choice, { A: 'q4', B: 'q2', C: 'q8' });
    assert.equal(r4.totalError, 12);
    assert.equal(r4.avgBits, 4);
    assert.equal(r4.minAvgBits, 2);
    assert.deepEqual(a.solve(5).choice, { A: 'q4', B: 'q4', C: 'q8' });
    assert.equal(a.solve(5).totalError, 6);
    const low = a.solve(1.5);
    assert.equal(low.feasible, false);
    assert.equal(low.minAvgBits, 2);
    assert.deepEqual(low.binding!.map((b) => b.constraint), ['budget']);
  }
  const minC = structuredClone(hand);
  minC.layers[2].minBits = 4;
  const r = Allocator.create(minC).solve(2.25);
  assert.equal(r.feasible, false);
  assert.equal(r.minAvgBits, 2.5);
  assert.deepEqual(r.binding!.map((b) => [b.constraint, b.layer]), [['budget', undefined], ['minBits', 'C']]);
  // Grouping A and C forces one shared id: minimum stays 2 bits, but at 4 bits A4 B2 C8 is no longer allowed.
  const grouped = structuredClone(hand);
  grouped.groups = [['A', 'C']];
  const g = Allocator.create(grouped).solve(4);
  assert.deepEqual(g.choice, { A: 'q4', B: 'q4', C: 'q4' }); // A2 B4 C2 = 1200, err 31; A8 B2 C8 = 2000 over
  assert.equal(g.totalError, 15);
});

test('group coupling that raises the minimum is reported as binding', () => {
  // A is cheapest at q2, C only allows q8 (minBits) → the group forces A to q8 too.
  const p = structuredClone(hand);
  p.layers[2].minBits = 8;
  p.groups = [['A', 'C']];
  const r = Allocator.create(p).solve(2);
  assert.equal(r.feasible, false);
  assert.equal(r.minAvgBits, (800 + 400 + 800) / 400);
  const kinds = r.binding!.map((b) => b.constraint);
  assert.deepEqual(kinds, ['budget', 'minBits', 'group']);
  assert.deepEqual(r.binding![2].group, ['A', 'C']);
});

test('frontier is monotone and every frontier point is the optimum at its own budget', () => {
  const problem = syntheticProblem({ layers: 12, options: 5, seed: 3, groupEvery: 3 });
  const a = Allocator.create(problem);
  const { exact, points } = a.frontier();
  assert.ok(exact && points.length > 20);
  for (let i = 1; i < points.length; i++) {
    assert.ok(points[i].avgBits > points[i - 1].avgBits);
    assert.ok(points[i].totalError < points[i - 1].totalError, 'more bits → strictly less error on the Pareto front');
  }
  const bounded = Allocator.create(problem, { precomputeFrontier: false });
  for (const p of points.filter((_, i) => i % 7 === 0)) {
    const r = bounded.solve(p.avgBits);
    assert.ok(Math.abs(r.totalError! - p.totalError) <= 1e-9 * p.totalError);
    assert.ok(r.avgBits! <= p.avgBits + 1e-12);
  }
});

test('incremental re-solve (frontier table) == independent bounded solve at many budgets', () => {
  const problem = syntheticProblem({ layers: 40, options: 6, seed: 5 });
  const inc = Allocator.create(problem);
  const fresh = Allocator.create(problem, { precomputeFrontier: false });
  assert.equal(inc.mode, 'frontier');
  assert.equal(fresh.mode, 'per-budget');
  const r = rng(9);
  for (let i = 0; i < 60; i++) {
    const b = 2.2 + r() * 8;
    const x = inc.solve(b);
    const y = fresh.solve(b);
    assert.equal(x.feasible, y.feasible);
    if (!x.feasible) continue;
    assert.ok(Math.abs(x.totalError! - y.totalError!) <= 1e-9 * y.totalError!, `budget ${b}: ${x.totalError} vs ${y.totalError}`);
    assert.ok(x.avgBits! <= b && y.avgBits! <= b);
  }
});

test('Lagrangian: gap ≥ 0, solution feasible, bound below the exact optimum (large instance)', () => {
  const problem = syntheticProblem({ layers: 400, options: 8, seed: 2 });
  const prep = prepare(problem);
  const hull = buildHull(prep.items);
  const exact = Allocator.create(problem, { precomputeFrontier: false });
  for (const b of [2.7, 3.3, 4.2, 5, 7.9]) {
    const cap = prep.capacity(b);
    const lag = lagrange(hull, cap)!;
    assert.ok(lag.cost <= cap);
    assert.ok(lag.err >= lag.lowerBound);
    const opt = exact.solve(b);
    assert.equal(opt.optimal, true);
    assert.ok(opt.totalError! >= lag.lowerBound * (1 - 1e-12), 'LP bound ≤ optimum');
    assert.ok(opt.totalError! <= lag.err * (1 + 1e-12), 'optimum ≤ Lagrangian solution');
    const viaSolve = exact.solve(b, 'lagrange');
    assert.ok(viaSolve.avgBits! <= b && viaSolve.gap! >= 0);
  }
});

test('large instance: sampled frontier is monotone and its points lie between the LP bound and the Lagrangian solution', () => {
  const problem = syntheticProblem({ layers: 300, options: 8, seed: 8 });
  const a = Allocator.create(problem);
  assert.equal(a.mode, 'per-budget');
  const { exact, points } = a.frontier(24);
  assert.equal(exact, false);
  assert.ok(points.length >= 20);
  for (let i = 1; i < points.length; i++) assert.ok(points[i].avgBits > points[i - 1].avgBits && points[i].totalError < points[i - 1].totalError);
  const prep = prepare(problem);
  const hull = buildHull(prep.items);
  for (const p of [points[3], points[15]]) {
    const lag = lagrange(hull, prep.capacity(p.avgBits))!;
    assert.ok(lag.lowerBound <= p.totalError * (1 + 1e-12) && p.totalError <= lag.err * (1 + 1e-12));
  }
});

test('a DP that runs out of entries returns a feasible solution with an honest gap', () => {
  const problem = syntheticProblem({ layers: 300, options: 8, seed: 8 });
  const tiny = Allocator.create(problem, { precomputeFrontier: false, maxEntries: 3 });
  const full = Allocator.create(problem, { precomputeFrontier: false });
  let cut = 0;
  for (const b of [3.1, 4.4, 5.2, 6.6, 9.3]) {
    const x = tiny.solve(b);
    const opt = full.solve(b);
    assert.ok(x.feasible && x.avgBits! <= b);
    assert.equal(opt.optimal, true);
    if (x.optimal) continue;
    cut++;
    assert.ok(x.gap! > 0 && x.lowerBound! <= opt.totalError! * (1 + 1e-12) && opt.totalError! <= x.totalError!);
    assert.ok(Math.abs(x.totalError! - x.lowerBound! - x.gap!) <= 1e-9 * x.totalError!);
  }
  assert.ok(cut >= 3);
});

test('bits without a small common denominator fall back to rounded-up units (feasible, slack reported)', () => {
  const r = rng(4);
  for (let t = 0; t < 40; t++) {
    const inst = randomInstance(r);
    for (const l of inst.problem.layers) for (const o of l.options) o.bits += r() * 1e-3; // arbitrary doubles
    const P = inst.problem.layers.reduce((s, l) => s + l.params, 0);
    const a = Allocator.create(inst.problem);
    const budget = 1 + r() * 7;
    const res = a.solve(budget);
    // Float brute force over all choices (groups and minBits respected).
    let best = Infinity;
    let bestTight = Infinity;
    const slack = a.prep.disc.maxSlackAvgBits;
    const layers = inst.problem.layers;
    const pick: number[] = [];
    const rec = (l: number): void => {
      if (l === layers.length) {
        for (const g of inst.problem.groups) if (new Set(g.map((n) => layers[Number(n.slice(1))].options[pick[Number(n.slice(1))]].id)).size > 1) return;
        const bits = layers.reduce((s, x, i) => s + x.params * x.options[pick[i]].bits, 0) / P;
        const err = layers.reduce((s, x, i) => s + x.options[pick[i]].error, 0);
        if (bits <= budget) best = Math.min(best, err);
        if (bits <= budget - slack) bestTight = Math.min(bestTight, err);
        return;
      }
      layers[l].options.forEach((o, i) => {
        if (layers[l].minBits !== undefined && o.bits < layers[l].minBits) return;
        pick[l] = i;
        rec(l + 1);
      });
    };
    rec(0);
    assert.equal(a.prep.disc.exact, false);
    if (!res.feasible) {
      assert.equal(best, Infinity, `t=${t}: reported infeasible but a choice fits`);
      continue;
    }
    assert.ok(res.avgBits! <= budget, 'rounded-up units never overspend');
    assert.ok(res.totalError! >= best - 1e-12 * Math.max(1, best));
    assert.ok(res.totalError! <= bestTight + 1e-12 * Math.max(1, bestTight), 'optimal for the budget minus the stated slack');
  }
});

test('rational: decimal and dyadic bit widths are recovered exactly, others are not', () => {
  assert.deepEqual(rational(4.1), [41, 10]);
  assert.deepEqual(rational(4.125), [33, 8]);
  assert.deepEqual(rational(6.5625), [105, 16]);
  assert.deepEqual(rational(16), [16, 1]);
  assert.equal(rational(Math.PI), null);
  assert.equal(rational(4 + 1e-9), null);
});
