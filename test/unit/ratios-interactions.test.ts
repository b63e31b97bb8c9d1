// Co-perturbation through a LossProbe whose loss is a known quadratic ½δᵀHδ: the measured ΔL(l) and C_lm must be
// the hand-computed δ_lᵀH_llδ_l/2 and δ_lᵀH_lmδ_m, and runRatios must report the probe's loss at its ratios.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { interactionModel, measureInteractions, samplePairs, type LossProbe } from '../../server/src/allocate/interactions';
import { runRatios, type WeightSource } from '../../server/src/allocate/ratios-run';
import { getFormat } from '../../server/src/quant';
import { randn } from '../fixtures/common';

/** ΔL = q(δ) = ½ δᵀHδ, δ = (replaced − original) over the named weights concatenated in `names` order. */
class QuadraticProbe implements LossProbe {
  calls = 0;
  constructor(
    private readonly names: string[],
    private readonly original: Map<string, Float32Array>,
    private readonly q: (d: number[]) => number,
  ) {}
  async baseline(): Promise<void> {}
  async deltaLoss(p: Map<string, Float32Array>): Promise<number> {
    this.calls++;
    const d: number[] = [];
    for (const n of this.names) {
      const w = this.original.get(n)!;
      const x = p.get(n) ?? w;
      for (let i = 0; i < w.length; i++) d.push(x[i] - w[i]);
    }
    return this.q(d);
  }
}

/** ½ δᵀHδ for a dense H given entry-wise. */
const dense = (H: (i: number, j: number) => number) => (d: number[]) => {
  let f = 0;
  for (let i = 0; i < d.length; i++) for (let j = 0; j < d.length; j++) f += d[i] * H(i, j) * d[j];
  return 0.5 * f;
};

test('measureInteractions recovers hand-computed ΔL(l) and C_lm of a quadratic loss', async () => {
  // Three layers of two weights (flat positions 0-1, 2-3, 4-5), all zero; their b_lo perturbations δ:
  // δ0 = (1, 0), δ1 = (0, 2), δ2 = (1, 1). H = 2·I + H[0][3] = 0.25 + H[3][5] = −0.1 (symmetric).
  //   ΔL(0) = ½·2·1 = 1, ΔL(1) = ½·2·4 = 4, ΔL(2) = ½·2·2 = 2,
  //   C01 = δ0[0]·0.25·δ1[1] = 0.5, C12 = δ1[1]·(−0.1)·δ2[1] = −0.2, C02 = 0.
  const names = ['a', 'b', 'c'];
  const zero = new Map(names.map((n) => [n, new Float32Array(2)]));
  const H = (i: number, j: number) => (i === j ? 2 : (i === 0 && j === 3) || (i === 3 && j === 0) ? 0.25 : (i === 3 && j === 5) || (i === 5 && j === 3) ? -0.1 : 0);
  const probe = new QuadraticProbe(names, zero, dense(H));
  const delta = [Float32Array.from([1, 0]), Float32Array.from([0, 2]), Float32Array.from([1, 1])];
  const x = await measureInteractions(probe, 3, (l) => new Map([[names[l], delta[l]]]), samplePairs(3));
  assert.deepEqual([...x.single], [1, 4, 2]);
  const C = [...x.C].map((v) => Math.round(v * 1e12) / 1e12);
  assert.deepEqual(C, [0, 0.5, 0, 0.5, 0, -0.2, 0, -0.2, 0]);
  assert.equal(x.runs, 1 + 3 + 3);
  assert.equal(probe.calls, 6);
  const G = [...interactionModel(x)].map((v) => Math.round(v * 1e12) / 1e12);
  assert.deepEqual(G, [2, 0.5, 0, 0.5, 8, -0.2, 0, -0.2, 4]);
});

test('a probe result that is not finite is a located error, not a NaN in the QP', async () => {
  const probe: LossProbe = { baseline: async () => {}, deltaLoss: async () => NaN };
  await assert.rejects(
    measureInteractions(probe, 2, (l) => new Map([[`w${l}`, new Float32Array(1)]]), samplePairs(2)),
    /perturbing w0 at b_lo gives a loss change of NaN/,
  );
});

test('runRatios with a runnable model: interactions measured, strategies measured through the probe', async () => {
  const shapes: [string, number[]][] = [['l0', [8, 64]], ['l1', [8, 64]], ['l2', [16, 64]]];
  const weights = new Map(shapes.map(([n, s], i) => [n, randn(s[0] * s[1], 30 + i, 0.02 * (1 + i))]));
  const src: WeightSource = {
    path: 'mem',
    layers: shapes.map(([name, shape]) => ({ name, shape, layout: 'out_in' })),
    read: async (n) => weights.get(n)!.slice(),
    close: async () => {},
  };
  const names = shapes.map(([n]) => n);
  const sizes = shapes.map(([, s]) => s[0] * s[1]);
  const offsets = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
  // H = 40·I plus 3 between position p of l0 and position p of l1 (l0 and l1 have the same shape):
  //   ½δᵀHδ = 20·Σδ² + 3·Σ_p δ_l0[p]·δ_l1[p].
  const H = (d: number[]) => {
    let f = 0;
    for (const x of d) f += 20 * x * x;
    for (let p = 0; p < sizes[0]; p++) f += 3 * d[offsets[0] + p] * d[offsets[1] + p];
    return f;
  };
  const probe = new QuadraticProbe(names, weights, H);
  const report = await runRatios(src, { hi: '8', lo: '2', rMax: 0.1, fixedRatio: 0.02, probe });
  assert.equal(report.lossModel, 'co-perturbation');
  assert.equal(report.interactions.measured, true);
  assert.equal(report.interactions.description, 'all 3 pairs of 3 layers');
  assert.equal(report.interactions.runs, 7);
  // Measured ΔL of each strategy = the quadratic at the weights it describes, rebuilt here by brute force.
  const lo = getFormat('int2_g64_asym');
  const hi = getFormat('int8_ch_sym');
  for (const s of report.strategies) {
    const replaced = new Map(shapes.map(([name, shape]) => {
      const w = weights.get(name)!;
      const out = lo.quantizeDequantize(w, shape, 'out_in');
      const keep = hi.quantizeDequantize(w, shape, 'out_in');
      const k = Math.floor(report.layers.find((l) => l.name === name)!.ratio[s.id] * w.length + 1e-9);
      Array.from(w.keys()).sort((a, b) => Math.abs(w[b]) - Math.abs(w[a]) || a - b).slice(0, k).forEach((i) => (out[i] = keep[i]));
      return [name, out];
    }));
    const expect = await new QuadraticProbe(names, weights, H).deltaLoss(replaced);
    assert.ok(Math.abs(s.measured! - expect) <= 1e-9 * expect, `${s.id}: ${s.measured} vs ${expect}`);
    assert.ok(s.modelAvgBits <= report.budgetBits + 1e-9, s.id);
  }
  const by = Object.fromEntries(report.strategies.map((s) => [s.id, s]));
  assert.ok(by['full-qp'].predicted <= by.diagonal.predicted + 1e-12, 'full QP is optimal for the full model');
});
