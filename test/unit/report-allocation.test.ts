// The report panel's budget solver: exact choices on a hand-worked two-layer instance, and the server-side cache.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AnalysisReport, LayerReport } from '../../server/src/analysis/types';
import { allocProblem, BudgetSolver, SolverCache } from '../../server/src/report/allocation';

const e = (relMse: number, bitsPerWeight: number) => ({ relMse, sqnrDb: null, maxAbsErr: 0, entropyBits: 0, bitsPerWeight });
const layer = (name: string, params: number, sumSq: number, errors: LayerReport['errors']): LayerReport => ({
  name, block: 'b', layer: name, params, shape: [params / 4, 4], layout: 'out_in', dtype: 'F32', sumSq, errors,
  stats: { kurtosis: 0, outlierShare: 0, maxOverStd: 0, mean: 0, std: 0, maxAbs: 0, superWeights: [] },
});

// A: 100 params, ‖W‖² 10: lo (4 bits) relMse 0.1 → error 1.0; hi (8 bits) 0.01 → 0.1.
// B: 300 params, ‖W‖² 4: lo relMse 0.5 → 2.0; hi 0.125 → 0.5.
// Average bits: lo/lo 4; hi/lo (100·8 + 300·4)/400 = 5; lo/hi 7; hi/hi 8. Errors: 3.0, 2.1, 1.5, 0.6.
const report: AnalysisReport = {
  version: 't', formats: [{ id: 'lo', bitsPerWeight: 4 }, { id: 'hi', bitsPerWeight: 8 }],
  options: { sigma: 6, sample: null, confidence: null, ratios: [] },
  model: { path: '/m', format: 'safetensors', files: [], tensors: 2, params: 400, analyzedTensors: 2, analyzedParams: 400, totals: {} },
  layers: [layer('A', 100, 10, { lo: e(0.1, 4), hi: e(0.01, 8) }), layer('B', 300, 4, { lo: e(0.5, 4), hi: e(0.125, 8) })],
  skipped: { count: 0, params: 0, byReason: {}, tensors: [] },
};

test('problem: error = relMse · ‖W‖² per option', () => {
  const p = allocProblem(report);
  assert.deepEqual(p.layers.map((l) => l.options.map((o) => [o.id, o.bits, o.error])), [
    [['lo', 4, 1], ['hi', 8, 0.1]],
    [['lo', 4, 2], ['hi', 8, 0.5]],
  ]);
});

test('solve: the hand-worked optimum at each budget, relative error, infeasible below 4 bits', () => {
  const s = new BudgetSolver(report);
  const at = (b: number) => s.solve(b);
  const r5 = at(5.5);
  assert.deepEqual([r5.feasible, r5.avgBits, r5.allocation], [true, 5, { A: { format: 'hi', bits: 8 }, B: { format: 'lo', bits: 4 } }]);
  assert.ok(Math.abs(r5.totalError! - 2.1) < 1e-12);
  assert.ok(Math.abs(r5.relError! - 2.1 / 14) < 1e-12);
  assert.deepEqual(at(7).allocation, { A: { format: 'lo', bits: 4 }, B: { format: 'hi', bits: 8 } });
  assert.deepEqual(at(4).allocation, { A: { format: 'lo', bits: 4 }, B: { format: 'lo', bits: 4 } });
  const bad = at(3);
  assert.deepEqual([bad.feasible, bad.minAvgBits, bad.allocation], [false, 4, undefined]);
  assert.deepEqual(s.range(), { min: 4, max: 8 });
  const f = s.frontier();
  assert.deepEqual(f.map((p) => p.avgBits), [4, 5, 7, 8]);
  assert.deepEqual(f.map((p) => Math.round(p.totalError * 1e9) / 1e9), [3, 2.1, 1.5, 0.6]);
});

test('a model without analyzed layers: nothing to allocate, no range', () => {
  const s = new BudgetSolver({ ...report, layers: [] });
  assert.deepEqual(s.solve(4), { feasible: false, budget: 4, minAvgBits: null });
  assert.equal(s.range(), undefined);
  assert.deepEqual(s.frontier(), []);
});

test('solver cache: one load per key, a new report replaces it, failed loads are retried', async () => {
  const cache = new SolverCache();
  let loads = 0;
  const load = async () => (loads++, report);
  const k = SolverCache.key('/m', ['lo', 'hi'], undefined);
  const a = await cache.get(k, load);
  assert.equal(await cache.get(k, load), a);
  assert.equal(loads, 1);
  assert.notEqual(SolverCache.key('/m', ['lo'], undefined), k);
  cache.set(k, report);
  assert.notEqual(await cache.get(k, load), a);
  const k2 = SolverCache.key('/other', undefined, false);
  await assert.rejects(cache.get(k2, async () => { throw new Error('unreadable'); }), /unreadable/);
  await new Promise((r) => setImmediate(r));
  assert.equal((await cache.get(k2, load)).report, report);
});
