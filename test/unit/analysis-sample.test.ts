// Sampled mode: row choice, the ratio-estimator interval, and that the full-scan value lies inside it.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { analyzeTensor, FullScan } from '../../server/src/analysis/datafree';
import { getFormat } from '../../server/src/quant/registry';
import { heavinessOf, MIN_SAMPLE_ROWS, normalQuantile, ratioTotal, sampledRatio, sampleRows } from '../../server/src/analysis/sample';
import { DEFAULT_FORMATS, DEFAULT_OPTIONS, type DatafreeOptions } from '../../server/src/analysis/types';
import { openCheckpoint } from '../../server/src/formats/registry';
import { encodeFloats, writeSafetensorsFile } from '../../server/src/formats/write-safetensors';
import { inTempDir, randn, rng } from '../fixtures/common';
import { memoryCheckpoint, tensorInfo } from '../helpers/memory-checkpoint';

test('normal quantiles', () => {
  assert.ok(Math.abs(normalQuantile(0.975) - 1.959963984540054) < 1e-8);
  assert.ok(Math.abs(normalQuantile(0.005) + 2.5758293035489) < 1e-8);
  assert.ok(Math.abs(normalQuantile(0.5)) < 1e-12);
  assert.throws(() => normalQuantile(1));
});

test('ratio estimator with an auxiliary on a hand case, jackknife variance', () => {
  // num [1, 2, 3], x [1, 1, 1], 3 of 100 rows, X = 100: r = 6/3 = 2 → N̂ = 200.
  // Leave-one-out ratios (5/2, 4/2, 3/2) = (2.5, 2, 1.5), mean 2, Σ (r_j − 2)² = 0.5;
  // Var = 100²·(1 − 3/100)·(2/3)·0.5.
  const t = ratioTotal([1, 2, 3], [1, 1, 1], 100, 100);
  assert.equal(t.total, 200);
  assert.ok(Math.abs(t.variance - 1e4 * 0.97 * (2 / 3) * 0.5) < 1e-8);
});

test('stratified estimate: take-all rows exactly, the random rows by the best auxiliary', () => {
  // 100 rows with x = 1, except row 7 (x = 50, heavy). Sample: row 7 (certain, num 40) + rows 1, 2, 3 (num 1, 2, 3).
  const x = new Float64Array(100).fill(1);
  x[7] = 50;
  const sample = { rows: Int32Array.from([1, 2, 3, 7]), certain: Uint8Array.from([0, 0, 0, 1]) };
  // Rest: 99 rows, X_r = 99; r = 6/3 = 2 → N̂_r = 198; jackknife Var = 99²·(1 − 3/99)·(2/3)·0.5. D = 400.
  const r = sampledRatio([1, 2, 3, 40], sample, x, 400, 0.95);
  const half = (1.959963984540054 * Math.sqrt(99 * 99 * (1 - 3 / 99) * (2 / 3) * 0.5)) / 400;
  assert.equal(r.estimate, (40 + 198) / 400);
  assert.ok(Math.abs(r.hi - (r.estimate + half)) < 1e-8 && Math.abs(r.lo - (r.estimate - half)) < 1e-8);
  // An auxiliary proportional to num on the random rows has zero residuals: the interval is a point.
  const y = new Float64Array(100).fill(2);
  y[1] = 1;
  y[3] = 3;
  const p = sampledRatio([1, 2, 3, 40], sample, y, 400, 0.95);
  const exact = (40 + (6 / 6) * (y.reduce((a, b) => a + b) - y[7])) / 400;
  assert.deepEqual([p.estimate, p.lo, p.hi], [exact, exact, exact]);
});

test('pre-pass auxiliaries per row: Σw² and, per group length, Σ n·range² (range widened to 0) and Σ n·max|w|²', () => {
  const w = new Float32Array(2 * 40);
  w[3] = 2;
  w[5] = -1; // row 0, group 0 of 32: range 3, absmax 2
  w[35] = 0.5; // row 0, group 1 (8 entries): range [0, 0.5], absmax 0.5
  w[40 + 20] = -1; // row 1
  const scan = new FullScan(3, 40, [32, 40, 8]);
  scan.add(w, Int32Array.of(0, 2));
  assert.equal(scan.rowSumSq[0], 4 + 1 + 0.25);
  assert.deepEqual(scan.rowAux.get(32)!.map((a) => a[0]), [32 * 9 + 8 * 0.25, 32 * 4 + 8 * 0.25]);
  assert.deepEqual(scan.rowAux.get(40)!.map((a) => a[0]), [40 * 9, 40 * 4]);
  assert.deepEqual(scan.rowAux.get(40)!.map((a) => a[2]), [40, 40]);
  assert.equal(scan.rowSumSq[1], 0, 'rows not added stay 0');
  // Group lengths that are not multiples of 16 take the extremes of the 16-blocks they overlap (an upper bound):
  // groups of 8 at 0 and 8 (both in block 0: range 3, absmax 2), 16 and 24 (block 1: 0), 32 (block 2: 0.5).
  assert.deepEqual(scan.rowAux.get(8)!.map((a) => a[0]), [8 * 9 * 2 + 8 * 0.25, 8 * 4 * 2 + 8 * 0.25]);
  // The auxiliary each format's error follows.
  assert.equal(scan.auxiliaryFor(getFormat('int4_g128_asym'), 32), scan.rowAux.get(32)![0]);
  assert.equal(scan.auxiliaryFor(getFormat('mxfp4'), 32), scan.rowAux.get(32)![1]);
  assert.equal(scan.auxiliaryFor(getFormat('fp8_e4m3'), 40), scan.rowSumSq);
});

test('row sample: sorted, distinct, seeded per tensor name, heavy rows taken, at least MIN_SAMPLE_ROWS', () => {
  const a = sampleRows(4096, 0.05, 0, 'x.weight')!;
  assert.equal(a.rows.length, Math.ceil(0.05 * 4096));
  for (let i = 1; i < a.rows.length; i++) assert.ok(a.rows[i] > a.rows[i - 1]);
  assert.ok(a.rows[0] >= 0 && a.rows[a.rows.length - 1] < 4096);
  assert.ok(a.certain.every((c) => c === 0));
  assert.deepEqual(sampleRows(4096, 0.05, 0, 'x.weight'), a);
  assert.notDeepEqual(sampleRows(4096, 0.05, 0, 'y.weight'), a);
  assert.notDeepEqual(sampleRows(4096, 0.05, 1, 'x.weight'), a);
  assert.equal(sampleRows(100, 0.05, 0, 'x')!.rows.length, MIN_SAMPLE_ROWS);
  assert.equal(sampleRows(MIN_SAMPLE_ROWS, 0.05, 0, 'x'), undefined, 'a sample of every row is a full scan');
  // Heavy rows (≥ 5× the mean of an auxiliary) are always in, heaviest first, at most the sample size; the random
  // part keeps at least MIN_SAMPLE_ROWS rows.
  const x = new Float64Array(1000).fill(1);
  for (const r of [5, 500, 999]) x[r] = 100;
  const h = heavinessOf([x], 1000);
  const s = sampleRows(1000, 0.05, 0, 'x', h)!;
  assert.deepEqual([...s.rows].filter((r, i) => s.certain[i]), [5, 500, 999]);
  assert.equal(s.rows.length, 50);
  const many = sampleRows(1000, 0.05, 0, 'x', new Float64Array(1000).fill(1000))!;
  assert.equal(many.certain.reduce((a, b) => a + b, 0), 50);
  assert.equal(many.rows.length, 50 + MIN_SAMPLE_ROWS);
});

/** Rows with different scales and a few outlier channels: per-row errors vary, as in real layers. */
function heterogeneous(rows: number, cols: number, seed: number): Float32Array {
  const w = randn(rows * cols, seed, 0.02);
  const r = rng(seed + 1);
  for (let i = 0; i < rows; i++) {
    const s = 0.5 + 2 * r();
    for (let c = 0; c < cols; c++) w[i * cols + c] *= s;
    if (r() < 0.05) w[i * cols + Math.floor(r() * cols)] *= 15;
  }
  return w;
}

const o = (x: Partial<DatafreeOptions>): DatafreeOptions => ({ ...DEFAULT_OPTIONS, highImpact: false, ...x });

test('sampled relMse: the full-scan value lies inside the 95 % interval for every default format', async () => {
  const rows = 2048;
  const cols = 256;
  const ckpt = memoryCheckpoint([{ name: 'l.weight', shape: [rows, cols], data: heterogeneous(rows, cols, 3) }]);
  const t = tensorInfo(ckpt, 'l.weight');
  const full = await analyzeTensor(ckpt, t, o({}));
  const sampled = await analyzeTensor(ckpt, t, o({ sample: 0.05 }));
  assert.deepEqual(sampled.sampled, { rows: Math.ceil(0.05 * rows), of: rows });
  assert.equal(full.sampled, undefined);
  for (const id of DEFAULT_FORMATS) {
    const [lo, hi] = sampled.errors[id].ci!;
    const v = full.errors[id].relMse;
    assert.ok(lo <= v && v <= hi, `${id}: ${v} outside [${lo}, ${hi}]`);
    assert.ok(hi - lo < 0.5 * v, `${id}: interval too wide to be useful`);
  }
  // Super weights and max|w| come from a full pass even when sampling.
  assert.equal(sampled.stats.maxAbs, full.stats.maxAbs);
});

test('sampled intervals have about their nominal coverage (40 seeds)', async () => {
  const rows = 600;
  const cols = 128;
  const ckpt = memoryCheckpoint([{ name: 'l.weight', shape: [rows, cols], data: heterogeneous(rows, cols, 9) }]);
  const t = tensorInfo(ckpt, 'l.weight');
  const id = 'int3_g128_asym';
  const full = (await analyzeTensor(ckpt, t, o({ formats: [id] }))).errors[id].relMse;
  let covered = 0;
  const seeds = 40;
  for (let seed = 0; seed < seeds; seed++) {
    const [lo, hi] = (await analyzeTensor(ckpt, t, o({ formats: [id], sample: 0.1, seed }))).errors[id].ci!;
    if (lo <= full && full <= hi) covered++;
  }
  // Binomial(40, 0.95): P(covered < 34) ≈ 0.3 %.
  assert.ok(covered >= 34, `coverage ${covered}/${seeds}`);
});

/**
 * a and b agree to 1e-5 relative: the SIMD pre-pass sums Σw² in another order and the group auxiliaries (weights
 * of the ratio estimator) in float32.
 */
function near(a: number | null, b: number | null, what: string): void {
  assert.ok(a === b || (a !== null && b !== null && Math.abs(a - b) <= 1e-5 * Math.abs(b)), `${what}: ${a} vs ${b}`);
}

test('sampled mode on stored F16/BF16 patterns equals the decoded-float pass (sums, auxiliaries, super weights, column maxima)', async () => {
  const rows = 300;
  // 100: partial last blocks and groups (g128 clipped to the row is 100, not a multiple of 16) take the JS loop;
  // 128: the SIMD kernel.
  for (const cols of [100, 128]) {
    const w = heterogeneous(rows, cols, 5);
    w[17 * cols + 40] = 3; // a super weight
    w[250 * cols + 3] = -2.5;
    for (const dtype of ['F16', 'BF16'] as const) {
      await inTempDir('ql-half-', async (dir) => {
        const file = path.join(dir, 'm.safetensors');
        await writeSafetensorsFile(file, [{ name: 'l.weight', dtype, shape: [rows, cols], bytes: encodeFloats(w, dtype) }]);
        const stored = await openCheckpoint(file);
        try {
          assert.ok(await stored.readHalf!('l.weight', { start: 0, count: 4 }), 'the safetensors reader hands over F16/BF16 patterns');
          // The same values, decoded, through a checkpoint without readHalf: the float pass.
          const decoded = memoryCheckpoint([{ name: 'l.weight', shape: [rows, cols], data: await stored.read('l.weight') }]);
          for (const sample of [0.2, 0.05]) {
            const at = `${dtype} ${cols} cols, ${sample}`;
            const a = await analyzeTensor(stored, stored.tensors[0], o({ sample }));
            const b = await analyzeTensor(decoded, tensorInfo(decoded, 'l.weight'), o({ sample }));
            near(a.sumSq, b.sumSq, `${at}: Σw²`);
            assert.deepEqual(a.stats, b.stats, `${at}: stats and super weights`);
            for (const id of DEFAULT_FORMATS) {
              const [x, y] = [a.errors[id], b.errors[id]];
              assert.deepEqual({ ...x, relMse: 0, sqnrDb: 0, ci: 0 }, { ...y, relMse: 0, sqnrDb: 0, ci: 0 }, `${at}: ${id}`);
              near(x.relMse, y.relMse, `${at}: ${id} relMse`);
              near(x.sqnrDb, y.sqnrDb, `${at}: ${id} sqnrDb`);
              near(x.ci![0], y.ci![0], `${at}: ${id} interval`);
              near(x.ci![1], y.ci![1], `${at}: ${id} interval`);
            }
          }
          assert.equal((await analyzeTensor(stored, stored.tensors[0], o({ sample: 0.05 }))).stats.maxAbs, 3, 'max |w| from the pre-pass');
        } finally {
          await stored.close();
        }
      });
    }
  }
});

test('sampled mode on BF16 weights beyond 2^64 (float32 auxiliaries overflow) equals the decoded-float pass', async () => {
  const [rows, cols] = [200, 64];
  const w = heterogeneous(rows, cols, 4);
  w[77 * cols + 9] = 2 ** 70;
  await inTempDir('ql-half-', async (dir) => {
    const file = path.join(dir, 'huge.safetensors');
    await writeSafetensorsFile(file, [{ name: 'l.weight', dtype: 'BF16', shape: [rows, cols], bytes: encodeFloats(w, 'BF16') }]);
    const stored = await openCheckpoint(file);
    try {
      const decoded = memoryCheckpoint([{ name: 'l.weight', shape: [rows, cols], data: await stored.read('l.weight') }]);
      const a = await analyzeTensor(stored, stored.tensors[0], o({ sample: 0.1 }));
      const b = await analyzeTensor(decoded, tensorInfo(decoded, 'l.weight'), o({ sample: 0.1 }));
      for (const id of DEFAULT_FORMATS) near(a.errors[id].relMse, b.errors[id].relMse, `${id} relMse`);
      assert.equal(a.stats.maxAbs, 2 ** 70);
    } finally {
      await stored.close();
    }
  });
});

test('sampled mode on stored F16 patterns names a non-finite weight with its coordinates', async () => {
  const w = heterogeneous(200, 64, 8);
  w[123 * 64 + 7] = Infinity;
  await inTempDir('ql-half-', async (dir) => {
    const file = path.join(dir, 'bad.safetensors');
    await writeSafetensorsFile(file, [{ name: 'l.weight', dtype: 'F16', shape: [200, 64], bytes: encodeFloats(w, 'F16') }]);
    const ckpt = await openCheckpoint(file);
    try {
      await assert.rejects(analyzeTensor(ckpt, ckpt.tensors[0], o({ sample: 0.05 })), /non-finite weight Infinity at \[123, 7\]/);
    } finally {
      await ckpt.close();
    }
  });
});
