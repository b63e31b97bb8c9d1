// Spec vectors for the block-scaled formats: OCP MX v1.0, NVFP4, block floating point — worked out by hand.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getFormat } from '../../server/src/quant/registry';

/** One row: the values given, zero-padded to `n`. */
function row(n: number, values: Record<number, number>): Float32Array {
  const w = new Float32Array(n);
  for (const [i, v] of Object.entries(values)) w[Number(i)] = v;
  return w;
}
const pick = (a: Float32Array | Int32Array, idx: number[]) => idx.map((i) => a[i]);

test('mxfp4: shared exponent floor(log2 amax) - 2, E2M1 elements with ties to even and the max-normal clamp', () => {
  // Block 0: amax 5 → floor(log2 5) = 2 → X = 2^(2-2) = 1: 5 → 4 (4|6 tie), 2.5 → 2, 0.25 → 0, 0.75 → 1, -3.5 → -4, 1.25 → 1.
  // Block 1: amax 0.3 → floor(log2 0.3) = -2 → X = 2^-4: 0.3·16 = 4.8 → 4 → 0.25; 0.1·16 = 1.6 → 1.5 → 0.09375.
  // Block 2: amax 7 → X = 1: 7 → clamped to max normal 6.
  const w = row(96, { 0: 5, 1: 2.5, 2: 0.25, 3: 0.75, 4: -3.5, 5: 1.25, 32: 0.3, 33: 0.1, 64: 7, 65: -6.5 });
  const codes = new Int32Array(96);
  const q = getFormat('mxfp4').quantizeDequantize(w, [1, 96], 'out_in', { codes });
  assert.deepEqual(pick(q, [0, 1, 2, 3, 4, 5, 6]), [4, 2, 0, 1, -4, 1, 0]);
  assert.deepEqual(pick(q, [32, 33]), [0.25, 0.09375]);
  assert.deepEqual(pick(q, [64, 65]), [6, -6]);
  assert.deepEqual(pick(codes, [0, 4, 64]), [0b0_11_0, 0b1_11_0, 0b0_11_1]); // 4 = 2^2·1.0, -4, 6 = 2^2·1.5
});

test('MX FP6/FP8 element types: emax 4 (E3M2), 2 (E2M3), 8 (E4M3), 15 (E5M2)', () => {
  const one = (id: string, vals: number[]) => Array.from(getFormat(id).quantizeDequantize(Float32Array.from(vals), [vals.length], 'vector'));
  // E4M3: amax 1000 → floor(log2 1000) = 9 → X = 2^(9-8) = 2; 1000/2 = 500 → clamped to 448 → 896. 3/2 = 1.5 → 3.
  assert.deepEqual(one('mxfp8_e4m3', [1000, 3, 2.125]), [896, 3, 2]); // 2.125/2 = 1.0625 → 1 (tie to even)
  // E5M2: amax 1 → X = 2^(0-15): 0.3·2^15 = 9830.4; spacing 2048 there → 10240 → 0.3125.
  assert.deepEqual(one('mxfp8_e5m2', [1, 0.3]), [1, 0.3125]);
  // E3M2: amax 30 → floor(log2 30) = 4 → X = 1: 30 → 28. E2M3: amax 7.9 → X = 1: 7.9 → 7.5, 5.25 → 5.
  assert.deepEqual(one('mxfp6_e3m2', [30, 1.125]), [28, 1]);
  assert.deepEqual(one('mxfp6_e2m3', [7.9, 5.25]), [7.5, 5]);
});

test('mxint8: two\'s complement ×2^-6 with emax 0; -2 is reachable, +2 clamps to 127/64', () => {
  // amax 1.999 → floor(log2) = 0 → X = 1, step 1/64: 1.999·64 = 127.94 → 128 → clamp 127; -127.94 → -128 (representable);
  // 0.3·64 = 19.2 → 19; 0.0078125·64 = 0.5 → 0 (even); 0.0234375·64 = 1.5 → 2.
  const codes = new Int32Array(5);
  const q = getFormat('mxint8').quantizeDequantize(Float32Array.from([1.999, -1.999, 0.3, 0.0078125, 0.0234375]), [5], 'vector', { codes });
  assert.deepEqual(Array.from(codes), [127, -128, 19, 0, 2]);
  assert.deepEqual(Array.from(q), [127 / 64, -2, 19 / 64, 0, 2 / 64]);
});

test('MX bits: element bits + 8 per block of 32; a partial block pays a full scale; zero blocks are exact', () => {
  assert.equal(getFormat('mxfp4').bitsPerWeight([4096, 4096], 'out_in'), 4.25);
  assert.equal(getFormat('mxfp6_e3m2').bitsPerWeight([64, 64], 'out_in'), 6.25);
  assert.equal(getFormat('mxint8').storageBits([2, 40], 'out_in'), 80 * 8 + 4 * 8);
  assert.deepEqual(Array.from(getFormat('mxfp8_e4m3').quantizeDequantize(new Float32Array(40), [2, 20], 'out_in')), new Array(40).fill(0));
});

test('nvfp4: two-level scale (fp32 tensor, E4M3 block) by hand', () => {
  // amax_tensor 5376 → s_t = 5376/(448·6) = 2.
  // Block 0: amax 5376 → s_b = 5376/6/2 = 448 (E4M3 max) → element scale 896: 5376 → 6, 2688 → 3, 2240/896 = 2.5 → 2 → 1792.
  // Block 1: amax 10 → 10/6/2 = 0.8333 → E4M3 spacing 1/16 in [0.5, 1): 13.33 → 13/16 = 0.8125 → element scale 1.625:
  //   10/1.625 = 6.15 → saturates at 6 → 9.75; 3.25/1.625 = 2 → 3.25; 1/1.625 = 0.615 → 0.5 → 0.8125.
  // Block 2: amax 1e-6 → 1e-6/12 < 2^-10 (half the smallest E4M3 subnormal) → s_b = 0 → zeros.
  const w = row(48, { 0: 5376, 1: 2688, 2: 2240, 16: 10, 17: 3.25, 18: 1, 32: 1e-6, 33: -5e-7 });
  const codes = new Int32Array(48);
  const q = getFormat('nvfp4').quantizeDequantize(w, [1, 48], 'out_in', { codes });
  assert.deepEqual(pick(q, [0, 1, 2]), [5376, 2688, 1792]);
  assert.deepEqual(pick(q, [16, 17, 18]), [9.75, 3.25, 0.8125]);
  assert.deepEqual(pick(q, [32, 33]), [0, 0]);
  assert.deepEqual(pick(codes, [0, 1, 18]), [0b0111, 0b0101, 0b0001]); // 6, 3, 0.5 in E2M1
  // Bits: 4 + 8/16 per element + 32 per tensor; 48 elements = 3 blocks.
  assert.equal(getFormat('nvfp4').storageBits([1, 48], 'out_in'), 48 * 4 + 3 * 8 + 32);
  assert.equal(getFormat('nvfp4').storageBits([3, 17], 'out_in'), 51 * 4 + 6 * 8 + 32);
});

test('bfp: shared exponent of the block amax, sign + (m-1)-bit magnitude, ties to even, saturating', () => {
  // bfp8_b16: amax 1.99 → E = 0 → step 2^(0-6) = 1/64: 1.99 → 127.36 → 127; 0.3 → 19.2 → 19; -0.7 → -44.8 → -45.
  const codes = new Int32Array(4);
  const q8 = getFormat('bfp8_b16').quantizeDequantize(Float32Array.from([1.99, 0.3, -0.7, 1]), [4], 'vector', { codes });
  assert.deepEqual(Array.from(codes), [127, 19, -45, 64]);
  assert.deepEqual(Array.from(q8), [127 / 64, 19 / 64, -45 / 64, 1]);
  // bfp4_b16: amax 1.99 → step 2^(0-2) = 0.25: 1.99 → 7.96 → saturates at 7; 0.375 → 1.5 → 2; 0.625 → 2.5 → 2.
  const q4 = getFormat('bfp4_b16').quantizeDequantize(Float32Array.from([1.99, 0.375, 0.625, -1]), [4], 'vector');
  assert.deepEqual(Array.from(q4), [1.75, 0.5, 0.5, -1]);
  // bfp6_b32: amax 31.9 → E = 4 → step 2^(4-4) = 1: 23.5 → 24 (even), 0.5 → 0, -31.9 → -32 → saturates at -31.
  const q6 = getFormat('bfp6_b32').quantizeDequantize(Float32Array.from([24, 23.5, 0.5, -31.9]), [4], 'vector');
  assert.deepEqual(Array.from(q6), [24, 24, 0, -31]);
  assert.equal(getFormat('bfp8_b32').bitsPerWeight([64, 64], 'out_in'), 8.25);
  assert.equal(getFormat('bfp4_b16').storageBits([1, 20], 'out_in'), 20 * 4 + 2 * 8);
});
