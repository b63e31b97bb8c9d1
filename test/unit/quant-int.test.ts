// Spec vectors for int{b}_g{g}_{sym,asym} / int{b}_ch_*, computed by hand from the definitions in server/src/quant/int.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getFormat } from '../../server/src/quant/registry';
import { randn } from '../fixtures/common';

const qdq = (id: string, xs: number[], shape = [1, xs.length]) => {
  const codes = new Int32Array(xs.length);
  const out = getFormat(id).quantizeDequantize(Float32Array.from(xs), shape, 'out_in', { codes });
  return { deq: Array.from(out), codes: Array.from(codes) };
};

test('symmetric: scale = max|w|/(2^(b-1)-1), ties to even, -2^(b-1) unused', () => {
  // amax 7 → scale 7/7 = 1 (fp16-exact). 2.5 → 2, 3.5 → 4, -2.5 → -2, -3.5 → -4, 0.5 → 0, 1.5 → 2.
  const { deq, codes } = qdq('int4_g32_sym', [7, 2.5, 3.5, -2.5, -3.5, 0.5, 1.5, -7]);
  assert.deepEqual(codes, [7, 2, 4, -2, -4, 0, 2, -7]);
  assert.deepEqual(deq, [7, 2, 4, -2, -4, 0, 2, -7]);
  // amax 3 at int3 → scale 1; the most negative value gets -3, never -4.
  assert.deepEqual(qdq('int3_g32_sym', [-3, 3, -2.9, 1.5]).codes, [-3, 3, -3, 2]);
});

test('symmetric: -2^(b-1) appears only with a tiny fp16-subnormal scale', () => {
  // amax = 9.8·2^-24 → amax/7 = 1.4·2^-24 → fp16 rounds it down to 2^-24 (the smallest subnormal);
  // -amax/2^-24 = -9.8 → clamped to -8. (With any normal fp16 scale the rounding is far too small for this.)
  const a = 9.8 * 2 ** -24;
  const { deq, codes } = qdq('int4_g32_sym', [-a, a / 2]);
  assert.deepEqual(codes, [-8, 5]); // 4.9 → 5
  assert.deepEqual(deq, [-8 * 2 ** -24, 5 * 2 ** -24]);
});

test('symmetric codes stay within ±(2^(b-1)-1) on random data for every bit width', () => {
  const w = randn(4096, 11, 0.05);
  for (let b = 2; b <= 8; b++) {
    const codes = new Int32Array(w.length);
    getFormat(`int${b}_g64_sym`).quantizeDequantize(w, [32, 128], 'out_in', { codes });
    const lim = 2 ** (b - 1) - 1;
    assert.equal(Math.min(...codes), -lim, `int${b}`);
    assert.equal(Math.max(...codes), lim, `int${b}`);
  }
});

test('asymmetric: scale (max-min)/(2^b-1), zero point, ties to even', () => {
  // min 0, max 15 → scale 1, zero 0: 7.5 → 8, 6.5 → 6, 0.5 → 0, 1.5 → 2, 14.5 → 14.
  assert.deepEqual(qdq('int4_g32_asym', [0, 15, 7.5, 6.5, 0.5, 1.5, 14.5, 3]).codes, [0, 15, 8, 6, 0, 2, 14, 3]);
  // min -3, max 12 → scale 1, zero = rne(3) = 3; q = rne(w) + 3: 4.5 → 4 + 3, -2.5 → -2 + 3.
  const a = qdq('int4_g32_asym', [-3, 12, 4.5, -2.5, 0]);
  assert.deepEqual(a.codes, [0, 15, 7, 1, 3]);
  assert.deepEqual(a.deq, [-3, 12, 4, -2, 0]);
  // min -2.5, max 12.5 → scale 1, zero = rne(2.5) = 2 (even); -2.5 → rne -2 → code 0 → -2; 12.5 → 12 → code 14.
  const b = qdq('int4_g32_asym', [-2.5, 12.5]);
  assert.deepEqual(b.codes, [0, 14]);
  assert.deepEqual(b.deq, [-2, 12]);
});

test('the fp16 rounding of the scale shows up in the error', () => {
  // max 1, min 0, 4 bits: 1/15 → fp16 1092·2^-14 = 0.066650390625; 1/0.0666504 = 15.0037 → 15 → 15·scale = 4095/4096.
  const { deq, codes } = qdq('int4_g32_asym', [1, 0]);
  assert.deepEqual(codes, [15, 0]);
  assert.deepEqual(deq, [4095 / 4096, 0]);
});

test('zero-width groups: all zero is exact; all equal has no NaN and keeps the value to fp16 scale precision', () => {
  for (const id of ['int4_g32_asym', 'int4_g32_sym', 'int2_ch_asym', 'int8_ch_sym']) {
    const z = qdq(id, [0, 0, 0, 0]);
    assert.deepEqual(z.deq, [0, 0, 0, 0], id);
    assert.ok(z.codes.every((c) => c === 0), id);
    const c = qdq(id, [-0.3, -0.3, -0.3]).deq;
    for (const v of c) assert.ok(Math.abs(v + 0.3) <= 0.3 * 2 ** -10, `${id}: ${v}`);
  }
  // Asym all equal 1.5 at 4 bits: range [0, 1.5] → scale fp16(0.1) = 0.0999755859375, q = 15 → 1.4996337890625.
  assert.deepEqual(qdq('int4_g32_asym', [1.5, 1.5]).deq, [1.4996337890625, 1.4996337890625]);
  // A group of one sign is not clipped (the range always contains 0): [10, 11] at 4 bits → scale fp16(11/15).
  const pos = qdq('int4_g32_asym', [10, 11]).deq;
  assert.ok(Math.abs(pos[0] - 10) < 0.4 && Math.abs(pos[1] - 11) < 0.01, String(pos));
});

test('groups and per-channel scales are independent', () => {
  // int4_g32_sym on one row of 64: group 0 amax 7 → scale 1, group 1 amax 0.7 → scale fp16(0.1).
  const w = new Array(64).fill(0);
  w[0] = 7;
  w[1] = 2.5;
  w[32] = 0.7;
  w[33] = 0.25; // 0.25/0.0999755859375 = 2.5006 → 3
  const { deq, codes } = qdq('int4_g32_sym', w);
  assert.deepEqual([codes[0], codes[1], codes[32], codes[33]], [7, 2, 7, 3]);
  assert.equal(deq[33], Math.fround(3 * 0.0999755859375));
  // int4_ch_sym: one scale per row.
  const ch = qdq('int4_ch_sym', [7, 3.5, 14, 3.5], [2, 2]);
  assert.deepEqual(ch.codes, [7, 4, 7, 2]); // row 1: scale 2, 3.5/2 = 1.75 → 2
});

test('bits: b + 16/g (sym), b + (16+b)/g (asym); a partial group pays a full scale', () => {
  const asym = getFormat('int4_g128_asym');
  assert.equal(asym.bitsPerWeight([4096, 4096], 'out_in'), 4 + 20 / 128);
  assert.equal(getFormat('int4_g128_sym').bitsPerWeight([4096, 4096], 'out_in'), 4 + 16 / 128);
  // [3, 300]: 3 groups per row (128 + 128 + 44) → 9 groups · 20 bits + 900 · 4.
  assert.equal(asym.storageBits([3, 300], 'out_in'), 900 * 4 + 9 * 20);
  assert.equal(asym.storageBits([300, 3], 'in_out'), 900 * 4 + 9 * 20);
  assert.equal(asym.storageBits([3, 4, 5, 5], 'conv'), 300 * 4 + 3 * 20); // rows of 100: one group each
  assert.equal(asym.storageBits([300], 'vector'), 300 * 4 + 3 * 20);
  assert.equal(getFormat('int3_ch_asym').storageBits([5, 7], 'out_in'), 35 * 3 + 5 * 19);
  assert.equal(asym.bitsPerWeight([0, 128], 'out_in'), 0);
});
