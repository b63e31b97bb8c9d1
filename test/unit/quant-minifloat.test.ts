// Spec vectors for the ExMy element codec and the scaled FP formats, worked out by hand from the definitions:
// value = 2^(e − bias)·(1 + m/2^M) for e > 0, 2^(1 − bias)·m/2^M for e = 0; round half to even; saturate.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { f16ToNumber } from '../../server/src/formats/dtypes';
import { E2M1, E2M3, E3M2, E4M3, E5M2, minifloatCode, roundMinifloat, toFp16 } from '../../server/src/quant/minifloat';
import { roundHalfEven } from '../../server/src/quant/rounding';
import { getFormat } from '../../server/src/quant/registry';
import { randn, toF16Bits } from '../fixtures/common';

const r = (f: typeof E4M3, xs: number[]) => xs.map((x) => roundMinifloat(f, x));

test('roundHalfEven: halves go to the even neighbour, Math.round would not', () => {
  assert.deepEqual([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, -3.5, 2.4999, 2.5001].map((x) => roundHalfEven(x) + 0), [0, 2, 2, 0, -2, -2, 4, -4, 2, 3]);
  assert.equal(roundHalfEven(2 ** 60 + 2 ** 9), 2 ** 60 + 2 ** 9); // beyond 2^51: already an integer
});

test('E4M3 (OCP FP8): max 448, saturation, subnormals, ties to even', () => {
  // Max: S.1111.110 = 2^8·1.75 = 448 (S.1111.111 is NaN). 449 and 464 (the 448|480 midpoint) and beyond saturate.
  assert.deepEqual(r(E4M3, [448, 449, 464, 470, 1e9, -449]), [448, 448, 448, 448, 448, -448]);
  // Largest binade below: 1.875·2^7 = 240 is on the grid.
  assert.deepEqual(r(E4M3, [240, 232]), [240, 224]); // 232 = 224|240 midpoint; 224 = 1.75·2^7 has even mantissa 110
  // Subnormals: spacing 2^-9 = min positive; 2^-10 is the 0|2^-9 midpoint → 0 (even); 3·2^-10 → 2^-8 (code 2, even).
  assert.deepEqual(r(E4M3, [2 ** -9, 2 ** -10, 1.5 * 2 ** -10, 3 * 2 ** -10, 7 * 2 ** -9, 2 ** -6]), [2 ** -9, 0, 2 ** -9, 2 ** -8, 7 * 2 ** -9, 2 ** -6]);
  // Normal ties at spacing 1/8 in [1, 2): 1.0625 → 1.0 (mantissa 000), 1.1875 → 1.25 (010), 1.3125 → 1.25.
  assert.deepEqual(r(E4M3, [1.0625, 1.1875, 1.3125, -1.0625, 1.07]), [1, 1.25, 1.25, -1, 1.125]);
  // Bit patterns: 448 = 0 1111 110, 2^-9 = 0 0000 001, -1 = 1 0111 000, 1.25 = 0 0111 010.
  assert.equal(minifloatCode(E4M3, 448, false), 0b0_1111_110);
  assert.equal(minifloatCode(E4M3, 2 ** -9, false), 0b0_0000_001);
  assert.equal(minifloatCode(E4M3, 1, true), 0b1_0111_000);
  assert.equal(minifloatCode(E4M3, 1.25, false), 0b0_0111_010);
});

test('E5M2 (OCP FP8): max 57344, saturation, subnormals, ties', () => {
  // Max 2^15·1.75 = 57344 (exponent 31 is Inf/NaN); 61440 is the 57344|65536 midpoint → saturates.
  assert.deepEqual(r(E5M2, [57344, 60000, 61440, 1e30]), [57344, 57344, 57344, 57344]);
  // Min subnormal 2^-16; 2^-17 ties to 0. Spacing 1/4 in [1, 2): 1.125 → 1.0, 1.375 → 1.5 (mantissa 10).
  assert.deepEqual(r(E5M2, [2 ** -16, 2 ** -17, 3 * 2 ** -17, 1.125, 1.375, 1.2]), [2 ** -16, 0, 2 ** -15, 1, 1.5, 1.25]);
  assert.equal(minifloatCode(E5M2, 57344, false), 0b0_11110_11);
});

test('FP6 E3M2 and E2M3 (OCP MX element types): max values and ties', () => {
  // E3M2: bias 3, max 2^4·1.75 = 28, 30 (28|32 midpoint) saturates; subnormal spacing 2^-4; min normal 2^-2.
  // Spacing 1/16 in [0.25, 0.5): 0.28125 is the 0.25|0.3125 midpoint → 0.25 (mantissa 00).
  assert.deepEqual(r(E3M2, [28, 29, 30, 100, 0.0625, 0.03125, 0.09375, 0.25, 0.28125, 0.3125]), [28, 28, 28, 28, 0.0625, 0, 0.125, 0.25, 0.25, 0.3125]);
  // E2M3: bias 1, max 2^2·1.875 = 7.5; spacing 1/8 below 2; 5.25 = 5|5.5 midpoint → 5 (mantissa 010).
  assert.deepEqual(r(E2M3, [7.5, 7.75, 9, 0.0625, 0.1875, 5.25, 5.75]), [7.5, 7.5, 7.5, 0, 0.25, 5, 6]);
});

test('FP4 E2M1: the value set is ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}; ties to even', () => {
  const seen = new Set<number>();
  for (let x = -8; x <= 8; x += 1 / 64) seen.add(roundMinifloat(E2M1, x) + 0); // + 0 folds −0 into 0
  assert.deepEqual([...seen].sort((a, b) => a - b), [-6, -4, -3, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 3, 4, 6]);
  // Midpoints: 0.25→0, 0.75→1, 1.25→1, 1.75→2, 2.5→2, 3.5→4, 5→4; 7 and 100 saturate at 6.
  assert.deepEqual(r(E2M1, [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5, 7, 100]), [0, 1, 1, 2, 2, 4, 4, 6, 6]);
  assert.deepEqual([0.5, 1, 6].map((a) => minifloatCode(E2M1, a, false)), [0b0_00_1, 0b0_01_0, 0b0_11_1]);
});

test('toFp16 agrees with an independent IEEE half encoder (fixtures) and saturates instead of overflowing', () => {
  const xs = randn(4000, 7, 3);
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i] * 2 ** ((i % 36) - 26); // spans fp16 subnormals to a few thousand
    assert.equal(toFp16(Math.fround(x)) + 0, f16ToNumber(toF16Bits(x)) + 0, `x=${x}`); // + 0: zeros compare unsigned
  }
  assert.equal(toFp16(0.1), 0.0999755859375); // 1638·2^-14
  assert.equal(toFp16(70000), 65504);
  assert.equal(toFp16(2 ** -25), 0); // half of the smallest subnormal: tie to 0
});

test('fp8_e4m3 per tensor: scale = amax/448 in fp32', () => {
  const f = getFormat('fp8_e4m3');
  // amax 448 → scale 1: values map straight to E4M3.
  const w = Float32Array.from([448, -224, 1.0625, 1.1875, 2 ** -9, 2 ** -10]);
  assert.deepEqual(Array.from(f.quantizeDequantize(w, [6], 'vector')), [448, -224, 1, 1.25, 2 ** -9, 0]);
  // amax 896 → scale 2: 2.125/2 = 1.0625 → 1 → 2; 2.375/2 = 1.1875 → 1.25 → 2.5.
  const w2 = Float32Array.from([896, 2.125, 2.375, -3]);
  assert.deepEqual(Array.from(f.quantizeDequantize(w2, [2, 2], 'out_in')), [896, 2, 2.5, -3]);
  assert.equal(f.bitsPerWeight([2, 2], 'out_in'), 8 + 32 / 4);
});

test('fp8_e4m3_ch / fp8_e5m2_ch: one fp32 scale per output channel', () => {
  const f = getFormat('fp8_e4m3_ch');
  // Row 0 amax 448 → scale 1; row 1 amax 56 → scale 1/8: 0.1328125·8 = 1.0625 → 1 → 0.125.
  const w = Float32Array.from([448, 1.0625, 56, 0.1328125]);
  assert.deepEqual(Array.from(f.quantizeDequantize(w, [2, 2], 'out_in')), [448, 1, 56, 0.125]);
  assert.equal(f.storageBits([2, 2], 'out_in'), 4 * 8 + 2 * 32);
  // E5M2 per channel: amax 57344 → scale 1; 1.375 → 1.5.
  const g = getFormat('fp8_e5m2_ch');
  assert.deepEqual(Array.from(g.quantizeDequantize(Float32Array.from([57344, 1.375]), [1, 2], 'out_in')), [57344, 1.5]);
});

test('fp6 per tensor and fp4_e2m1_g32 (fp16 scale per group of 32)', () => {
  // fp6_e3m2: amax 28 → scale 1. 0.03125 → 0 (tie), 0.09375 → 0.125 (tie to even code 2).
  const e3 = getFormat('fp6_e3m2').quantizeDequantize(Float32Array.from([28, 0.0625, 0.03125, 0.09375]), [4], 'vector');
  assert.deepEqual(Array.from(e3), [28, 0.0625, 0, 0.125]);
  const e2 = getFormat('fp6_e2m3').quantizeDequantize(Float32Array.from([7.5, 0.0625, 0.1875, 5.25]), [4], 'vector');
  assert.deepEqual(Array.from(e2), [7.5, 0, 0.25, 5]);
  // fp4_e2m1_g32: group 0 amax 12 → scale 2: [6, 2.5, 3.5, -0.5] → [6, 2, 4, -0.5] → ×2.
  // group 1 (a partial group of 2) amax 0.75 → scale 0.125: 0.3/0.125 = 2.4 → 2 → 0.25.
  const w = new Float32Array(34);
  w.set([12, 5, 7, -1]);
  w.set([0.75, 0.3], 32);
  const q = getFormat('fp4_e2m1_g32').quantizeDequantize(w, [1, 34], 'out_in');
  assert.deepEqual(Array.from(q.subarray(0, 4)), [12, 4, 8, -1]);
  assert.deepEqual(Array.from(q.subarray(32)), [0.75, 0.25]);
  assert.equal(getFormat('fp4_e2m1_g32').storageBits([1, 34], 'out_in'), 34 * 4 + 2 * 16);
});

test('FP element codes are the stored bit patterns', () => {
  const codes = new Int32Array(4);
  getFormat('fp8_e4m3').quantizeDequantize(Float32Array.from([448, -1, 2 ** -9, 0]), [4], 'vector', { codes });
  assert.deepEqual(Array.from(codes), [0x7e, 0xb8, 0x01, 0x00]);
});
