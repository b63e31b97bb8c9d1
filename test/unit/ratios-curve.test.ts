// One layer's high-impact curve against a brute-force reference (sort every weight, sum gains) and hand-counted bits.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { QuantLensError } from '../../server/src/formats/errors';
import {
  bitsAt, errorAt, fitRatios, kthLargest, measureLayer, mixedWeights, resolveHi, resolveLo, topOrder,
} from '../../server/src/allocate/ratios-curve';
import { getFormat } from '../../server/src/quant';
import { f16ToNumber } from '../../server/src/formats/dtypes';
import { randn, rng, toF16Bits } from '../fixtures/common';

const close = (a: number, b: number, rel: number, msg?: string) => assert.ok(Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b), 1e-30), `${msg ?? ''} ${a} vs ${b}`);

/** Brute force: e(k) = Σ e_lo − Σ over the k most salient (ties: lower index) of (e_lo − e_hi). */
function reference(w: Float32Array, lo: Float32Array, hi: Float32Array, sal: ArrayLike<number>): (k: number) => number {
  const idx = Array.from(w.keys()).sort((a, b) => sal[b] - sal[a] || a - b);
  let total = 0;
  for (let i = 0; i < w.length; i++) total += (w[i] - lo[i]) ** 2;
  return (k) => {
    let g = 0;
    for (let t = 0; t < k; t++) {
      const j = idx[t];
      g += (w[j] - lo[j]) ** 2 - (w[j] - hi[j]) ** 2;
    }
    return total - g;
  };
}

test('curve of an [8, 64] layer (int2_g64_asym low, int8_ch_sym kept) equals brute force; bits counted by hand', () => {
  const shape = [8, 64];
  const w = randn(512, 11, 0.02);
  w[77] = 0.5; // an outlier: the first weight kept
  const lo = resolveLo('2');
  const hi = resolveHi('8');
  assert.equal(lo.id, 'int2_g64_asym');
  assert.equal(hi.id, 'int8_ch_sym');
  const { curve, quant } = measureLayer({ name: 't', shape, layout: 'out_in' }, w, { lo, hi, rMax: 0.1, ratios: [0.01, 0.02, 0.05] });
  const qLo = getFormat('int2_g64_asym').quantizeDequantize(w, shape, 'out_in');
  const qHi = getFormat('int8_ch_sym').quantizeDequantize(w, shape, 'out_in');
  const ref = reference(w, qLo, qHi, Array.from(w, Math.abs));
  assert.deepEqual(curve.ratios, [0, 0.01, 0.02, 0.05, 0.1]);
  assert.equal(curve.kMax, 51); // ⌊0.1 · 512⌋
  // Kept counts ⌊r·512⌋: 0, 5, 10, 25, 51.
  [0, 5, 10, 25, 51].forEach((k, i) => close(curve.errors[i], ref(k), 1e-9, `k=${k}`));
  for (const k of [1, 3, 17, 40, 51]) close(errorAt(curve, k / 512), ref(k), 1e-9, `errorAt k=${k}`);
  assert.equal(quant.order[0], 77);
  let sumSq = 0;
  for (const x of w) sumSq += x * x;
  close(curve.sumSq, sumSq, 1e-12);
  // Bits: int8 scales = one fp16 per row (8·16 = 128); CSR = k·⌈log2 64⌉ + 8·⌈log2 65⌉ = 6k + 56 (< 512-bit mask).
  assert.equal(curve.hiScaleBits, 128);
  assert.equal(curve.fixedBits, 128 + 56);
  assert.equal(curve.perKeptBits, 8 + 6);
  const low = getFormat('int2_g64_asym').storageBits(shape, 'out_in');
  assert.equal(curve.lowBits, low);
  assert.equal(bitsAt(curve, 0), low);
  assert.equal(bitsAt(curve, 25 / 512), low + 128 + 25 * 8 + 25 * 6 + 56);
  // Mixed weights: the 25 kept at int8, the rest at int2.
  const mixed = mixedWeights(quant, 25);
  let e = 0;
  for (let i = 0; i < 512; i++) e += (w[i] - mixed[i]) ** 2;
  close(e, ref(25), 1e-9);
});

test('a given saliency decides the ranking; the bitmask wins over CSR when it is cheaper', () => {
  const shape = [4, 16];
  const w = randn(64, 5, 1);
  const sal = Float32Array.from({ length: 64 }, (_, i) => (i * 37) % 64); // a permutation of 0…63
  const lo = resolveLo('int2_g64_asym');
  const hi = resolveHi('fp16');
  const { curve, quant } = measureLayer({ name: 't', shape, layout: 'out_in' }, w, { lo, hi, rMax: 0.5, ratios: [0.1, 0.25], saliency: sal });
  const qLo = getFormat('int2_g64_asym').quantizeDequantize(w, shape, 'out_in');
  const qHi = Float32Array.from(w, (x) => f16ToNumber(toF16Bits(x))); // fp16 by the fixture writer's rounding
  const order = Array.from(sal.keys()).sort((a, b) => sal[b] - sal[a]);
  assert.deepEqual([...quant.order], order.slice(0, 32));
  const ref = reference(w, qLo, qHi, sal);
  [0, 6, 16, 32].forEach((k, i) => close(curve.errors[i], ref(k), 1e-9, `k=${k}`));
  // 4 rows × 16 cols, k = 32: CSR = 32·4 + 4·5 = 148 > 64-bit mask → bitmask. fp16 values: 16 bits each, no scales.
  assert.equal(bitsAt(curve, 0.5), curve.lowBits + 32 * 16 + 64);
  assert.equal(bitsAt(curve, 2 / 64), curve.lowBits + 2 * 16 + 2 * 4 + 4 * 5);
});

test('topOrder and kthLargest: exact top-k with ties to the lower index', () => {
  assert.deepEqual([...topOrder(Float32Array.from([1, 3, 3, 2, 3]), 2)], [1, 2]);
  assert.deepEqual([...topOrder(Float32Array.from([1, 3, 3, 2, 3]), 4)], [1, 2, 4, 3]);
  assert.deepEqual([...topOrder(Float32Array.from([0, 0, 0]), 2)], [0, 1]);
  const r = rng(3);
  for (let t = 0; t < 20; t++) {
    const n = 1 + Math.floor(r() * 300);
    const a = Float32Array.from({ length: n }, () => Math.floor(r() * 20)); // many ties
    const sorted = Array.from(a).sort((x, y) => y - x);
    const k = 1 + Math.floor(r() * n);
    assert.equal(kthLargest(Float32Array.from(a), k), sorted[k - 1]);
    const top = topOrder(a, k);
    assert.deepEqual(Array.from(top, (i) => a[i]), sorted.slice(0, k));
  }
});

test('large layers keep the gain curve on a 1025-point grid: exact there, linear in between', () => {
  const shape = [64, 256]; // 16384 weights, kMax = 1638 > 1024
  const w = randn(16384, 8, 0.02);
  const { curve } = measureLayer({ name: 't', shape, layout: 'out_in' }, w, { lo: resolveLo('3'), hi: resolveHi('16'), rMax: 0.1, ratios: [] });
  assert.deepEqual(curve.ratios, fitRatios([], 0.1));
  assert.equal(curve.gridK.length, 1025);
  const qLo = getFormat('int3_g128_asym').quantizeDequantize(w, shape, 'out_in');
  const qHi = Float32Array.from(w, (x) => f16ToNumber(toF16Bits(x)));
  const ref = reference(w, qLo, qHi, Array.from(w, Math.abs));
  for (const j of [0, 1, 500, 1024]) close(errorAt(curve, curve.gridK[j] / 16384), ref(curve.gridK[j]), 1e-9, `grid ${j}`);
  // Between grid points k1 < k < k2 the interpolation lies between the neighbours' values.
  const k = curve.gridK[700] + 1;
  const e = errorAt(curve, k / 16384);
  assert.ok(e <= ref(curve.gridK[700]) + 1e-12 && e >= ref(curve.gridK[701]) - 1e-12);
  close(curve.errors[curve.errors.length - 1], ref(1638), 1e-9, 'fit points are exact');
});

test('bad input: --hi/--lo specs, non-finite weights and saliency are located errors', () => {
  assert.equal(resolveHi('4').id, 'int4_ch_sym');
  assert.equal(resolveHi('int6_ch_sym').elemBits, 6);
  assert.equal(resolveLo('3').id, 'int3_g128_asym');
  assert.equal(resolveLo('nf4_g64').id, 'nf4_g64');
  assert.throws(() => resolveHi('int4_g128_asym'), (e: unknown) => e instanceof QuantLensError && /--hi: expected fp16, 16, int<b>_ch_sym/.test(e.message));
  assert.throws(() => resolveLo('int9_g7'), (e: unknown) => e instanceof QuantLensError && /--lo: unknown number format/.test(e.message));
  const o = { lo: resolveLo('2'), hi: resolveHi('8'), rMax: 0.1, ratios: [] };
  const w = randn(64, 1, 1);
  w[9] = NaN;
  assert.throws(() => measureLayer({ name: 'blk.0.w', shape: [4, 16], layout: 'out_in' }, w, o), (e: unknown) => e instanceof QuantLensError && /\[blk\.0\.w\].*non-finite/.test(e.message));
  const ok = randn(64, 1, 1);
  assert.throws(() => measureLayer({ name: 'x', shape: [4, 16], layout: 'out_in' }, ok, { ...o, saliency: new Float32Array(3) }), /saliency has 3 values, expected 64/);
  assert.throws(() => measureLayer({ name: 'x', shape: [4, 16], layout: 'out_in' }, ok, { ...o, saliency: new Float32Array(64).fill(-1) }), /saliency\[0\] = -1: expected a finite value ≥ 0/);
  assert.throws(() => measureLayer({ name: 'x', shape: [4, 16], layout: 'out_in' }, ok.subarray(0, 60), o), /read 60 values, expected 64/);
});
