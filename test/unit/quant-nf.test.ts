// NormalFloat: the published NF4 table, the construction that produces it, NF3 from the same construction,
// nearest-code quantization with an fp16 absmax scale.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NF3, NF4, normalFloatCodebook, normalQuantile } from '../../server/src/quant/nf';
import { getFormat } from '../../server/src/quant/registry';

// QLoRA / bitsandbytes NF4 values (Dettmers et al. 2023, Appendix E), as published.
const NF4_PUBLISHED = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
];

test('NF4 code book is the published table, bit for bit', () => {
  assert.deepEqual(Array.from(NF4), NF4_PUBLISHED);
});

test('normal quantile matches reference values (Φ⁻¹ from tables)', () => {
  assert.ok(Math.abs(normalQuantile(0.975) - 1.959963984540054) < 1e-15);
  assert.ok(Math.abs(normalQuantile(0.9) - 1.2815515655446004) < 1e-15);
  assert.ok(Math.abs(normalQuantile(0.025) + 1.959963984540054) < 1e-15);
  assert.equal(normalQuantile(0.5), 0);
});

test('the QLoRA construction with offset 0.9677083 reproduces NF4 (float32 rounding of the original)', () => {
  const derived = normalFloatCodebook(4, 0.9677083);
  for (let i = 0; i < 16; i++) assert.ok(Math.abs(derived[i] - NF4_PUBLISHED[i]) < 2e-7, `code ${i}: ${derived[i]}`);
});

test('NF3 = the same construction for 8 codes (scipy: norm.ppf, offset ½(1-1/14 + 1-1/16))', () => {
  // Values computed independently with scipy.stats.norm.ppf and numpy.linspace.
  const scipy = [-1, -0.5350227085, -0.2469314318, 0, 0.1833374803, 0.3819939543, 0.6229857417, 1];
  for (let i = 0; i < 8; i++) assert.ok(Math.abs(NF3[i] - scipy[i]) < 6e-8, `code ${i}: ${NF3[i]}`);
});

test('nf4_g64: nearest code of w/fp16(absmax)', () => {
  // amax 1 → scale 1. 0.1: between 0.0795803 and 0.1609302 (midpoint 0.1202553) → 0.0795803 (index 8);
  // 0.5: between 0.4407098 and 0.5626170 (midpoint 0.5016634) → index 12; -0.3: midpoint of -0.3949175 and
  // -0.2844414 is -0.3396794 → index 4.
  const codes = new Int32Array(6);
  const q = getFormat('nf4_g64').quantizeDequantize(Float32Array.from([1, -1, 0, 0.1, 0.5, -0.3]), [6], 'vector', { codes });
  assert.deepEqual(Array.from(codes), [15, 0, 7, 8, 12, 4]);
  assert.deepEqual(Array.from(q), [1, -1, 0, NF4[8], NF4[12], NF4[4]]);
  // Just either side of a midpoint: (NF4[12] + NF4[13]) / 2 = 0.50166...
  const mid = (NF4[12] + NF4[13]) / 2;
  const c2 = new Int32Array(3);
  getFormat('nf4_g64').quantizeDequantize(Float32Array.from([1, mid - 1e-6, mid + 1e-6]), [3], 'vector', { codes: c2 });
  assert.deepEqual(Array.from(c2), [15, 12, 13]);
  // amax 2 → scale 2; NF3: 0.38 → 0.19 → nearest 0.1833375 (index 4).
  const c3 = new Int32Array(2);
  getFormat('nf3_g64').quantizeDequantize(Float32Array.from([-2, 0.38]), [2], 'vector', { codes: c3 });
  assert.deepEqual(Array.from(c3), [0, 4]);
});

test('nf bits: k + 16/64', () => {
  assert.equal(getFormat('nf4_g64').bitsPerWeight([4096, 4096], 'out_in'), 4.25);
  assert.equal(getFormat('nf3_g64').bitsPerWeight([64, 64], 'out_in'), 3.25);
  assert.equal(getFormat('nf4_g64').storageBits([2, 65], 'out_in'), 130 * 4 + 4 * 16);
});
