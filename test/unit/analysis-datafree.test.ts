// Data-free metrics against hand-computed values and brute-force references (DESIGN.md §4).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { analyzeTensor } from '../../server/src/analysis/datafree';
import { DEFAULT_FORMATS, DEFAULT_OPTIONS, type DatafreeOptions, type LayerReport } from '../../server/src/analysis/types';
import { QuantLensError } from '../../server/src/formats/errors';
import { getFormat } from '../../server/src/quant';
import { randn, tinyLlamaTensors } from '../fixtures/common';
import { memoryCheckpoint, tensorInfo, type MemoryTensor } from '../helpers/memory-checkpoint';

const opts = (o: Partial<DatafreeOptions> = {}): DatafreeOptions => ({ ...DEFAULT_OPTIONS, highImpact: false, ...o });

async function analyze(t: MemoryTensor, o: Partial<DatafreeOptions> = {}, blockElems?: number): Promise<LayerReport> {
  const ckpt = memoryCheckpoint([t]);
  return analyzeTensor(ckpt, tensorInfo(ckpt, t.name), opts(o), { blockElems });
}

test('int4 symmetric on a hand-computed 2×4 tensor: relMse, SQNR, max error, code entropy, bits', async () => {
  // Row 0: amax 7 → scale fp16(7/7) = 1; q = rne(w) = [7, 3, −3, 0] (0.5 → 0: ties to even).
  //   errors [0, −0.25, −0.25, −0.5] → Σ e² = 0 + 0.0625 + 0.0625 + 0.25 = 0.375.
  // Row 1: amax 7 → scale 1; q = [−7, 1, 1, 1] = w exactly → 0.
  // Σ w² = 49 + 10.5625 + 7.5625 + 0.25 + 49 + 1 + 1 + 1 = 119.375.
  // Codes [7, 3, −3, 0, −7, 1, 1, 1]: five codes once, code 1 three times →
  //   H = 5·(1/8)·log2 8 + (3/8)·log2(8/3).
  // Bits: 4 per weight + one fp16 scale per group of 4 = 4 + 16/4 = 8.
  const w = Float32Array.from([7, 3.25, -2.75, 0.5, -7, 1, 1, 1]);
  const r = await analyze({ name: 'l.weight', shape: [2, 4], data: w }, { formats: ['int4_g4_sym'] });
  const e = r.errors.int4_g4_sym;
  assert.equal(e.relMse, 0.375 / 119.375);
  assert.ok(Math.abs(e.sqnrDb! - 10 * Math.log10(119.375 / 0.375)) < 1e-12);
  assert.equal(e.maxAbsErr, 0.5);
  assert.ok(Math.abs(e.entropyBits - (5 * (1 / 8) * 3 + (3 / 8) * Math.log2(8 / 3))) < 1e-12);
  assert.equal(e.bitsPerWeight, 8);
  assert.equal(r.sumSq, 119.375);
});

test('entropy of codes uniform over 4 values is 2 bits; an exact format has relMse 0 and SQNR null', async () => {
  // int2 asym, range [0, 3] → scale fp16(3/3) = 1, zero 0: codes = w = {0, 1, 2, 3} twice each.
  const r = await analyze({ name: 'l.weight', shape: [2, 4], data: Float32Array.from([0, 1, 2, 3, 3, 2, 1, 0]) }, { formats: ['int2_g4_asym'] });
  const e = r.errors.int2_g4_asym;
  assert.equal(e.entropyBits, 2);
  assert.equal(e.relMse, 0);
  assert.equal(e.sqnrDb, null);
  assert.equal(e.bitsPerWeight, 2 + 18 / 4);
});

test('kurtosis, outlier share and max/σ on hand data', async () => {
  // [[0,0,0,2],[0,0,0,−2]]: mean 0, m2 = 8/8 = 1, m4 = 32/8 = 4 → excess kurtosis 4/1 − 3 = 1; max/σ = 2/1.
  // Row 0: μ = 0.5, σ = √((3·0.25 + 2.25)/4) = √0.75 ≈ 0.866; k = 1.5: |2 − 0.5| = 1.5 > 1.299 (outlier),
  // |0 − 0.5| = 0.5 (not) → one outlier per row → share 2/8. With k = 6: none.
  const t = { name: 'l.weight', shape: [2, 4], data: Float32Array.from([0, 0, 0, 2, 0, 0, 0, -2]) };
  const r = await analyze(t, { formats: ['int8_ch_sym'], sigma: 1.5 });
  assert.ok(Math.abs(r.stats.kurtosis - 1) < 1e-12);
  assert.equal(r.stats.outlierShare, 0.25);
  assert.equal(r.stats.maxOverStd, 2);
  assert.equal(r.stats.maxAbs, 2);
  assert.equal((await analyze(t, { formats: ['int8_ch_sym'], sigma: 6 })).stats.outlierShare, 0);

  // Rows with very different means: the merged moments equal the direct two-pass formulas.
  const x = [1, 2, 3, 4, 10, 20, 30, 40];
  const mu = x.reduce((a, b) => a + b) / x.length;
  const m2 = x.reduce((a, b) => a + (b - mu) ** 2, 0) / x.length;
  const m4 = x.reduce((a, b) => a + (b - mu) ** 4, 0) / x.length;
  const r2 = await analyze({ name: 'l.weight', shape: [2, 4], data: Float32Array.from(x) }, { formats: ['int8_ch_sym'] });
  assert.ok(Math.abs(r2.stats.kurtosis - (m4 / (m2 * m2) - 3)) < 1e-12);
  assert.ok(Math.abs(r2.stats.std - Math.sqrt(m2)) < 1e-12);
  assert.ok(Math.abs(r2.stats.maxOverStd - 40 / Math.sqrt(m2)) < 1e-12);
});

test('super weight found at the planted coordinate of tinyLlamaTensors, nowhere else', async () => {
  const tensors = tinyLlamaTensors().filter((t) => t.shape.length === 2);
  const ckpt = memoryCheckpoint(tensors);
  for (const t of ckpt.tensors) {
    const r = await analyzeTensor(ckpt, t, opts({ formats: ['int4_g128_asym'] }));
    if (t.name === 'model.layers.1.mlp.down_proj.weight') {
      assert.equal(r.stats.superWeights.length, 1);
      assert.deepEqual(r.stats.superWeights[0].coords, [3, 5]);
      assert.equal(r.stats.superWeights[0].value, 8);
      assert.ok(r.stats.superWeights[0].overMedian! > 50);
    } else {
      assert.deepEqual(r.stats.superWeights, [], t.name);
    }
  }
});

test('super weights: two entries above a 10× gap are both reported; no gap, none', async () => {
  const data = randn(16 * 64, 3, 0.05);
  data[2 * 64 + 7] = 8;
  data[9 * 64 + 1] = -7.5;
  const r = await analyze({ name: 'l.weight', shape: [16, 64], data }, { formats: ['int8_ch_sym'] });
  assert.deepEqual(r.stats.superWeights.map((s) => [s.coords, s.value]), [[[2, 7], 8], [[9, 1], -7.5]]);
  // 8 is 100× the median but only ~5× the next entry: no gap, no super weight.
  data[9 * 64 + 1] = 0;
  data[5 * 64 + 5] = 1.6;
  const r2 = await analyze({ name: 'l.weight', shape: [16, 64], data }, { formats: ['int8_ch_sym'] });
  assert.deepEqual(r2.stats.superWeights, []);
});

test('in_out layout (ONNX MatMul [in, out]) groups along axis 0: the transposed matrix gives identical errors', async () => {
  const rows = 24;
  const cols = 200; // not a multiple of 128 or 64: partial last groups
  const w = randn(rows * cols, 11, 0.03);
  w[3 * cols + 100] = 4; // a super weight at [3, 100] of the [out, in] matrix
  const wt = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) wt[c * rows + r] = w[r * cols + c];
  const formats = [...DEFAULT_FORMATS, 'int4_g128_asym+reorder', 'mxfp4+had32'];
  for (const blockElems of [undefined, 5 * cols]) {
    const a = await analyze({ name: 'a.weight', shape: [rows, cols], data: w, layout: 'out_in' }, { formats, highImpact: true }, blockElems);
    const b = await analyze({ name: 'b.weight', shape: [cols, rows], data: wt, layout: 'in_out' }, { formats, highImpact: true }, blockElems);
    assert.deepEqual(b.errors, a.errors);
    assert.deepEqual(b.promotion, a.promotion);
    assert.deepEqual({ ...b.stats, superWeights: [] }, { ...a.stats, superWeights: [] });
    assert.deepEqual(a.stats.superWeights.map((s) => s.coords), [[3, 100]]);
    assert.deepEqual(b.stats.superWeights.map((s) => s.coords), [[100, 3]]);
  }
  // And the errors are those of the format applied to the [out, in] matrix directly.
  const a = await analyze({ name: 'a.weight', shape: [rows, cols], data: w }, { formats: ['int4_g128_asym'] });
  const q = getFormat('int4_g128_asym').quantizeDequantize(w, [rows, cols], 'out_in');
  let num = 0;
  let den = 0;
  for (let i = 0; i < w.length; i++) {
    num += (q[i] - w[i]) ** 2;
    den += w[i] ** 2;
  }
  assert.ok(Math.abs(a.errors.int4_g128_asym.relMse - num / den) < 1e-12 * (num / den));
});

test('results do not depend on the block size (per-tensor scales and +reorder included)', async () => {
  const rows = 40;
  const cols = 96;
  const w = randn(rows * cols, 5, 0.02);
  for (let r = 0; r < rows; r++) w[r * cols + 17] *= 9; // an outlier input channel
  const formats = [...DEFAULT_FORMATS, 'fp8_e5m2', 'int3_g128_asym+reorder', 'nvfp4+reorder', 'nvfp4+had16'];
  const whole = await analyze({ name: 'l.weight', shape: [rows, cols], data: w }, { formats, highImpact: true, groupMaps: true });
  const blocked = await analyze({ name: 'l.weight', shape: [rows, cols], data: w }, { formats, highImpact: true, groupMaps: true }, 3 * cols);
  assert.deepEqual(blocked.errors, whole.errors);
  assert.deepEqual(blocked.stats, whole.stats);
  assert.deepEqual(blocked.groupMaps, whole.groupMaps);
  assert.deepEqual(blocked.promotion, whole.promotion);
  // Rank totals are summed per block: equal up to float rounding.
  for (const [id, curves] of Object.entries(whole.highImpact!)) {
    curves.forEach((c, i) => {
      const d = blocked.highImpact![id][i];
      c.byMagnitude.forEach((x, k) => assert.ok(Math.abs(x - d.byMagnitude[k]) <= 1e-12 * x, `${id} ${c.keep}`));
      c.byError.forEach((x, k) => assert.ok(Math.abs(x - d.byError[k]) <= 1e-12 * x, `${id} ${c.keep}`));
    });
  }
});

test('group-error map: cells are mean squared errors over rows × groups (brute force)', async () => {
  const rows = 6;
  const cols = 16;
  const w = randn(rows * cols, 8, 0.1);
  const q = getFormat('int4_g4_sym').quantizeDequantize(w, [rows, cols], 'out_in');
  const r = await analyze({ name: 'l.weight', shape: [rows, cols], data: w }, { formats: ['int4_g4_sym'], groupMaps: true, mapSize: 2 });
  const m = r.groupMaps!.int4_g4_sym;
  // 6 rows → 3 per cell; 4 groups of 4 → 2 groups per cell: 2 × 2 cells of 3 rows × 8 columns.
  assert.deepEqual([m.rowsPerCell, m.groupsPerCell, m.cellRows, m.cellCols, m.groupSize], [3, 2, 2, 2, 4]);
  for (let i = 0; i < 2; i++) {
    for (let j = 0; j < 2; j++) {
      let s = 0;
      for (let rr = 3 * i; rr < 3 * i + 3; rr++) for (let c = 8 * j; c < 8 * j + 8; c++) s += (q[rr * cols + c] - w[rr * cols + c]) ** 2;
      assert.equal(m.mse[i * 2 + j], Number((s / 24).toPrecision(4)));
    }
  }
});

test('a NaN or Inf weight is a located error naming the tensor and its coordinates', async () => {
  const w = randn(8 * 16, 2);
  w[2 * 16 + 3] = NaN;
  await assert.rejects(analyze({ name: 'm.q_proj.weight', shape: [8, 16], data: w }), (e: unknown) => {
    assert.ok(e instanceof QuantLensError);
    assert.equal(e.where.tensor, 'm.q_proj.weight');
    assert.match(e.message, /non-finite weight NaN at \[2, 3\]/);
    return true;
  });
  // in_out: coordinates as stored ([in, out]).
  const wt = randn(16 * 8, 2);
  wt[5 * 8 + 1] = -Infinity;
  await assert.rejects(analyze({ name: 'mm.w', shape: [16, 8], data: wt, layout: 'in_out' }), /\[mm\.w\]: non-finite weight -Infinity at \[5, 1\]/);
  // Sampled mode still scans every row for bad values.
  const big = randn(400 * 8, 4);
  big[399 * 8 + 7] = NaN;
  await assert.rejects(analyze({ name: 'big.weight', shape: [400, 8], data: big }, { sample: 0.05 }), /non-finite weight NaN at \[399, 7\]/);
});
