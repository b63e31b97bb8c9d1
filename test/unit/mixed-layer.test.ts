// The mixed high-impact quantizer of one layer (server/src/jobs/mixed.ts): hand-checked grids and bit count, the
// kept set against a brute-force sort, GPTQ rounding against round-to-nearest on the layer-output error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveHi, resolveLo } from '../../server/src/allocate/ratios-curve';
import { mixedLayerBits, quantizeMixedLayer } from '../../server/src/jobs/mixed';
import { getFormat } from '../../server/src/quant';
import { rng } from '../../server/src/random';

const hi8 = resolveHi('8');
const lo2g4 = getFormat('int2_g4_asym');

test('round-to-nearest: kept weights on the int8 grid of the kept weights, the rest on int2 groups fit without them (hand-checked)', () => {
  // Top 3 by |w|: (0,2) 1.984375, (0,7) −1, (1,7) 0.9921875.
  const w = Float32Array.from([0.5, -0.25, 1.984375, 0.1, 0.25, -0.5, 0.25, -1.0, 0.05, 0.2, -0.3, 0.45, 0.75, 0.2, 0.4, 0.9921875]);
  const r = quantizeMixedLayer({ w, shape: [2, 8], layout: 'out_in', lo: lo2g4, hi: hi8, kept: 3 });
  // Row 0: int8 scale 1.984375/127 = 2⁻⁶ (1.984375 = 127·2⁻⁶, −1 = −64·2⁻⁶); groups [0.5, −0.25, ·, 0.1] → s 0.25,
  // z 1; [0.25, −0.5, 0.25, ·] → s 0.25, z 2. Row 1: int8 scale 2⁻⁷; [0.05, 0.2, −0.3, 0.45] → s 0.25, z 1;
  // [0.75, 0.2, 0.4, ·(0)] → s 0.25, z 0.
  const expected = [0.5, -0.25, 1.984375, 0, 0.25, -0.5, 0.25, -1.0, 0, 0.25, -0.25, 0.5, 0.75, 0.25, 0.5, 0.9921875];
  assert.deepEqual(Array.from(r.values), expected);
  assert.deepEqual(Array.from(r.keptIndex), [2, 7, 15]);
  assert.equal(r.rounding, 'rtn');
  // int2 codes 16·2 + 4 groups × (fp16 scale + 2-bit zero) = 104; int8 row scales 2 × 16; 3 kept × 8;
  // index min(CSR 3·⌈log2 8⌉ + 2·⌈log2 9⌉ = 17, bitmask 16) = 16.
  assert.equal(r.bits, 104 + 32 + 24 + 16);
  assert.equal(mixedLayerBits(lo2g4, hi8, [2, 8], 'out_in', 0), 104);
});

test('the kept set is the top k of the saliency (brute-force sort), in any layout', () => {
  const next = rng(7);
  const [out, inn] = [12, 40];
  const w = Float32Array.from({ length: out * inn }, () => next() * 2 - 1);
  const sal = Float32Array.from({ length: w.length }, () => next());
  const k = 37;
  const brute = Array.from(sal.keys()).sort((a, b) => sal[b] - sal[a]).slice(0, k);
  for (const layout of ['out_in', 'in_out'] as const) {
    const shape = layout === 'out_in' ? [out, inn] : [inn, out];
    const r = quantizeMixedLayer({ w, shape, layout, lo: resolveLo('2'), hi: resolveHi('fp16'), kept: k, saliency: sal });
    assert.deepEqual(Array.from(r.keptIndex), brute, layout);
    // fp16 keeps: exactly the fp16 rounding of the weight.
    for (const i of brute) assert.equal(r.values[i], fp16(w[i]));
  }
});

/** Nearest fp16 value of a normal-range x (11 significant bits, ties to even): an independent reference. */
function fp16(x: number): number {
  const ulp = 2 ** (Math.floor(Math.log2(Math.abs(x))) - 10);
  const q = x / ulp;
  let r = Math.round(q);
  if (r - q === 0.5 && r % 2 !== 0) r -= 1;
  return r * ulp;
}

/** tr(Δ H Δᵀ) of an [out, in] Δ. */
function outputError(delta: Float64Array, rows: number, d: number, H: Float64Array): number {
  let t = 0;
  for (let r = 0; r < rows; r++) for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) t += delta[r * d + i] * H[i * d + j] * delta[r * d + j];
  return t;
}

test('GPTQ rounding lowers the layer-output error tr(ΔW H ΔWᵀ) against round-to-nearest, values on the two grids', () => {
  const next = rng(11);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  const [rows, d, n] = [24, 64, 512];
  const w = Float32Array.from({ length: rows * d }, () => 0.1 * gauss());
  for (let k = 0; k < 6; k++) w[Math.floor(next() * w.length)] = 1.5 * (next() < 0.5 ? -1 : 1); // outliers
  // Correlated inputs: x = A z.
  const A = Float64Array.from({ length: d * d }, (_, i) => (i % (d + 1) === 0 ? 1 : 0.3 * gauss()));
  const H = new Float64Array(d * d);
  for (let s = 0; s < n; s++) {
    const z = Array.from({ length: d }, gauss);
    const x = Array.from({ length: d }, (_, i) => z.reduce((acc, zj, j) => acc + A[i * d + j] * zj, 0));
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) H[i * d + j] += (2 / n) * x[i] * x[j];
  }
  const lo = getFormat('int2_g16_asym');
  const base = { w, shape: [rows, d], layout: 'out_in' as const, lo, hi: hi8, kept: Math.round(0.05 * w.length) };
  const rtn = quantizeMixedLayer(base);
  const gptq = quantizeMixedLayer({ ...base, H: [H] });
  assert.equal(gptq.rounding, 'gptq');
  assert.deepEqual(gptq.keptIndex, rtn.keptIndex);
  assert.equal(gptq.bits, rtn.bits);
  const err = (q: Float32Array) => outputError(Float64Array.from(q, (v, i) => v - w[i]), rows, d, H);
  const [eR, eG] = [err(rtn.values), err(gptq.values)];
  assert.ok(eG < 0.8 * eR, `GPTQ ${eG} vs RTN ${eR}`);
  // Grids: every int2 group holds at most 4 values, integer steps of one spacing apart; kept values are integer
  // multiples (c ∈ [−128, 127]) of the row scale fp16(max |kept w| / 127), fit on the original kept weights.
  const kept = new Set(gptq.keptIndex);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < d; g += 16) {
      const cells = Array.from({ length: 16 }, (_, k) => r * d + g + k).filter((i) => !kept.has(i));
      const vals = [...new Set(cells.map((i) => gptq.values[i]))].sort((a, b) => a - b);
      assert.ok(vals.length <= 4, `row ${r} group ${g}: ${vals.length} distinct values`);
      const step = Math.min(...vals.slice(1).map((v, j) => v - vals[j]));
      for (const v of vals) assert.ok(Math.abs((v - vals[0]) / step - Math.round((v - vals[0]) / step)) < 1e-4, `row ${r} group ${g}: ${v} off the grid`);
    }
    const cells = Array.from({ length: d }, (_, c) => r * d + c).filter((i) => kept.has(i));
    if (cells.length === 0) continue;
    const s = fp16(Math.max(...cells.map((i) => Math.abs(w[i]))) / 127);
    for (const i of cells) {
      const c = gptq.values[i] / s;
      assert.ok(Math.abs(c - Math.round(c)) < 1e-3 && Math.round(c) >= -128 && Math.round(c) <= 127, `row ${r}: ${gptq.values[i]} not a multiple of ${s}`);
    }
  }
});

test('bad input: kept count, saliency length, non-integer low format with GPTQ are located errors', () => {
  const w = new Float32Array(32).fill(0.5);
  const base = { w, shape: [4, 8], layout: 'out_in' as const, lo: lo2g4, hi: hi8, where: { file: 'm.onnx', tensor: 'W' } };
  assert.throws(() => quantizeMixedLayer({ ...base, kept: 33 }), /kept count 33 is not in \[0, 32\]/);
  assert.throws(() => quantizeMixedLayer({ ...base, kept: 1, saliency: new Float32Array(3) }), /saliency has 3 values, expected 32/);
  assert.throws(() => quantizeMixedLayer({ ...base, kept: 1, lo: getFormat('nf4_g64'), H: [new Float64Array(64)] }), /plain integer --lo format .* found nf4_g64/);
  const bad = w.slice();
  bad[3] = NaN;
  assert.throws(() => quantizeMixedLayer({ ...base, w: bad, kept: 1 }), (e: Error) => e.name === 'QuantLensError' || /non-finite|NaN/.test(e.message));
});
