// High-impact curves and group promotion against brute force (sort every weight / group) and hand-counted bits.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { analyzeTensor } from '../../server/src/analysis/datafree';
import { indexBits, PROMOTION_SHARES, topGains } from '../../server/src/analysis/highimpact';
import { DEFAULT_OPTIONS } from '../../server/src/analysis/types';
import { getFormat } from '../../server/src/quant';
import { randn, toF16Bits } from '../fixtures/common';
import { fromF16Bits } from '../fixtures/gguf';
import { memoryCheckpoint, tensorInfo } from '../helpers/memory-checkpoint';

test('topGains: whole bins from the top, the last one pro rata', () => {
  // Bins ascending by key, [count, gain]: bin 3 holds 4 entries with gain 8, bin 5 two entries with gain 10.
  const hist = new Float64Array(8 * 3);
  hist[3 * 3] = 4;
  hist[3 * 3 + 1] = 8;
  hist[5 * 3] = 2;
  hist[5 * 3 + 1] = 10;
  // k = 1: half of bin 5 → 5; k = 2: bin 5 → 10; k = 4: 10 + 8·2/4 = 14; k = 6: 18; k = 10: everything, 18.
  assert.deepEqual(topGains(hist, 1, [4, 1, 10, 2, 6, 0]), [14, 5, 18, 10, 18, 0]);
});

test('sparse index bits: CSR (column index + per-row count) or a bitmask, whichever is cheaper', () => {
  // 82 kept of a 64×128 matrix: 82·⌈log2 128⌉ + 64·⌈log2 129⌉ = 574 + 512 = 1086 < 8192.
  assert.deepEqual(indexBits(82, 64, 128, 8192), { bits: 1086, kind: 'csr' });
  // 2000 kept: 14000 + 512 > 8192 → one bit per weight.
  assert.deepEqual(indexBits(2000, 64, 128, 8192), { bits: 8192, kind: 'bitmask' });
});

const ROWS = 32;
const COLS = 128;
const N = ROWS * COLS;

/** Gaussian weights plus 41 planted large ones (0.5…0.9, far above the rest): the top 1 % by |w| is exactly them. */
function plantedTensor(): { w: Float32Array; planted: Set<number> } {
  const w = randn(N, 7, 0.02);
  const planted = new Set<number>();
  for (let k = 0; k < 41; k++) {
    const i = (k * 977 + 13) % N;
    planted.add(i);
    w[i] = (k % 2 ? -1 : 1) * (0.5 + k / 100);
  }
  return { w, planted };
}

const sqErr = (w: Float32Array, q: Float32Array) => Float64Array.from(w, (x, i) => (q[i] - x) ** 2);
const fp16Of = (x: number) => fromF16Bits(toF16Bits(x));

test('high-impact curves equal brute force; bits count the kept values and the sparse index', async () => {
  const { w, planted } = plantedTensor();
  const ckpt = memoryCheckpoint([{ name: 'l.weight', shape: [ROWS, COLS], data: w }]);
  const r = await analyzeTensor(ckpt, tensorInfo(ckpt, 'l.weight'), { ...DEFAULT_OPTIONS, formats: ['int2_g64_asym'], ratios: [0.01, 0.5] });
  const eL = sqErr(w, getFormat('int2_g64_asym').quantizeDequantize(w, [ROWS, COLS], 'out_in'));
  const e8 = sqErr(w, getFormat('int8_ch_sym').quantizeDequantize(w, [ROWS, COLS], 'out_in'));
  const e16 = Float64Array.from(w, (x) => (x - fp16Of(x)) ** 2);
  const den = w.reduce((s, x) => s + x * x, 0);
  const total = eL.reduce((s, x) => s + x, 0);
  const [c16, c8] = r.highImpact!.int2_g64_asym;
  assert.equal(c16.keep, 'fp16');
  assert.equal(c8.keep, 'int8_ch_sym');

  // r = 1 %: k = round(40.96) = 41 = exactly the planted weights by magnitude.
  const keptGain = (keep: Float64Array) => [...planted].reduce((s, i) => s + eL[i] - keep[i], 0);
  assert.ok(Math.abs(c16.byMagnitude[0] - (total - keptGain(e16)) / den) < 1e-6 * c16.byMagnitude[0]);
  assert.ok(Math.abs(c8.byMagnitude[0] - (total - keptGain(e8)) / den) < 1e-6 * c8.byMagnitude[0]);

  // By error, r = 50 %: sort by e_L. Bins are 6.25 % wide, so the entry where the top half ends shares its
  // bin's mean gain: allow 1e-3 relative.
  const byErr = [...eL.keys()].sort((a, b) => eL[b] - eL[a]).slice(0, Math.round(0.5 * N));
  for (const [c, keep] of [[c16, e16], [c8, e8]] as const) {
    const gain = byErr.reduce((s, i) => s + eL[i] - keep[i], 0);
    assert.ok(Math.abs(c.byError[1] - (total - gain) / den) < 1e-3 * c.byError[1], `${c.keep}: ${c.byError[1]} vs ${(total - gain) / den}`);
  }
  assert.ok(c16.byError[1] < c16.byMagnitude[1], 'keeping the worst-quantized half beats keeping the largest half');

  // Bits. int2_g64_asym: 2·4096 + (16 + 2)·(32 rows · 2 groups) = 9344. k = 41:
  //   fp16: 9344 + 16·41 + (41·⌈log2 128⌉ + 32·⌈log2 129⌉ = 287 + 256) = 10543 → /4096
  //   int8: 9344 + 8·41 + 16·32 (per-channel scales) + 543 = 10727 → /4096
  assert.equal(c16.bitsPerWeight[0], 10543 / 4096);
  assert.equal(c8.bitsPerWeight[0], 10727 / 4096);
  assert.deepEqual(c16.index, ['csr', 'bitmask']);
  // r = 50 %: k = 2048 → bitmask (4096 bits) is cheaper than CSR (2048·7 + 256).
  assert.equal(c16.bitsPerWeight[1], (9344 + 16 * 2048 + 4096) / 4096);
});

test('group promotion: worst groups first to int8, error and bits vs brute force', async () => {
  const { w } = plantedTensor();
  const ckpt = memoryCheckpoint([{ name: 'l.weight', shape: [ROWS, COLS], data: w }]);
  const r = await analyzeTensor(ckpt, tensorInfo(ckpt, 'l.weight'), { ...DEFAULT_OPTIONS, formats: ['int2_g64_asym'] });
  const eL = sqErr(w, getFormat('int2_g64_asym').quantizeDequantize(w, [ROWS, COLS], 'out_in'));
  const e8 = sqErr(w, getFormat('int8_ch_sym').quantizeDequantize(w, [ROWS, COLS], 'out_in'));
  const den = w.reduce((s, x) => s + x * x, 0);
  const gains: number[] = [];
  let total8 = 0;
  for (let g = 0; g < N / 64; g++) {
    let l = 0;
    let h = 0;
    for (let i = g * 64; i < (g + 1) * 64; i++) {
      l += eL[i];
      h += e8[i];
    }
    gains.push(l - h);
    total8 += h;
  }
  gains.sort((a, b) => b - a);
  const c = r.promotion!.int2_g64_asym;
  assert.equal(c.high, 'int8_ch_sym');
  assert.deepEqual(c.promotedShare, PROMOTION_SHARES);
  PROMOTION_SHARES.forEach((p, j) => {
    // Groups not promoted keep e_L = e_8 + gain: error = Σ e_8 + Σ gains of the groups left at L.
    const k = Math.round(p * gains.length);
    const expect = (total8 + gains.slice(k).reduce((s, x) => s + x, 0)) / den;
    assert.ok(Math.abs(c.relMse[j] - expect) <= 1e-6 * expect, `share ${p}`); // e_8 is held as float32 per weight
  });
  // Bits at share 0.1: 0.9·(9344/4096) + 0.1·8 + (16·32 scales + 64 group flags)/4096.
  assert.ok(Math.abs(c.bitsPerWeight[PROMOTION_SHARES.indexOf(0.1)] - (0.9 * (9344 / 4096) + 0.8 + 576 / 4096)) < 1e-12);
  assert.equal(c.bitsPerWeight[0], 9344 / 4096);
  // Promoting everything leaves the int8 error.
  assert.ok(Math.abs(c.relMse.at(-1)! - e8.reduce((s, x) => s + x, 0) / den) < 1e-6 * c.relMse.at(-1)!);
});

test('high-impact curves only for formats under 5 bits per weight', async () => {
  const { w } = plantedTensor();
  const ckpt = memoryCheckpoint([{ name: 'l.weight', shape: [ROWS, COLS], data: w }]);
  const r = await analyzeTensor(ckpt, tensorInfo(ckpt, 'l.weight'), { ...DEFAULT_OPTIONS });
  assert.deepEqual(Object.keys(r.highImpact!).sort(), ['int2_g64_asym', 'int3_g128_asym', 'int4_g128_asym', 'mxfp4', 'nf4_g64', 'nvfp4']);
  assert.deepEqual(Object.keys(r.promotion!).sort(), Object.keys(r.highImpact!).sort());
});
