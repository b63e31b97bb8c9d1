// The table-driven element rounding of qdqMinifloatRun must equal the arithmetic definition (roundMinifloat +
// minifloatCode, whose spec vectors are in quant-minifloat.test.ts) bit for bit: values, codes and signs,
// on every grid value, every rounding midpoint and its float32 neighbours, and random inputs over 60 binades.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { qdqMinifloatRun } from '../../server/src/quant/fp';
import { E2M1, E2M3, E3M2, E4M3, E5M2, minifloatCode, roundMinifloat, type Minifloat } from '../../server/src/quant/minifloat';
import { getFormat } from '../../server/src/quant/registry';
import { rng } from '../fixtures/common';

/** The definition, element by element (as qdqMinifloatRun computed it before the tables). */
function reference(w: Float32Array, f: Minifloat, scale: number): { out: Float32Array; codes: Int32Array } {
  const out = new Float32Array(w.length);
  const codes = new Int32Array(w.length);
  const inv = scale > 0 ? 1 / scale : 0;
  for (let i = 0; i < w.length; i++) {
    const x = w[i] * inv;
    const e = roundMinifloat(f, x);
    out[i] = e * scale;
    codes[i] = minifloatCode(f, Math.abs(e), x < 0 || Object.is(x, -0));
  }
  return { out, codes };
}

/** Grid values, midpoints, their float32 neighbours, zeros and out-of-range magnitudes, both signs. */
function boundaryInputs(f: Minifloat): Float32Array {
  const grid: number[] = [];
  for (let c = 0; c < 1 << (f.ebits + f.mbits); c++) {
    const v = c < 1 << f.mbits ? c * f.minQuantum : 2 ** ((c >> f.mbits) - f.bias) * (1 + (c & ((1 << f.mbits) - 1)) * f.ulpScale);
    if (v <= f.maxFinite) grid.push(v);
  }
  const xs: number[] = [0, f.maxFinite * 1.5, f.maxFinite * 1e6, f.minQuantum / 4, 1e-30];
  for (let i = 0; i < grid.length; i++) {
    xs.push(grid[i]);
    if (i + 1 < grid.length) xs.push((grid[i] + grid[i + 1]) / 2);
  }
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  const all: number[] = [];
  for (const x of xs) {
    f32[0] = x;
    const b = u32[0];
    for (const d of [-1, 0, 1]) {
      u32[0] = b + d;
      if (Number.isFinite(f32[0])) all.push(f32[0], -f32[0]);
    }
  }
  return Float32Array.from(all);
}

const equalBits = (a: Float32Array, b: Float32Array) => {
  const ua = new Uint32Array(a.buffer);
  const ub = new Uint32Array(b.buffer);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return i;
  return -1;
};

for (const f of [E2M1, E2M3, E3M2, E4M3, E5M2]) {
  test(`qdqMinifloatRun ${f.name}: bit-identical to roundMinifloat/minifloatCode`, () => {
    const next = rng(7);
    const random = Float32Array.from({ length: 40000 }, () => (next() - 0.5) * 2 ** Math.floor(next() * 60 - 30));
    const inputs: [string, Float32Array, number][] = [
      ['boundary, scale 1', boundaryInputs(f), 1],
      ['boundary, scale 2^-3 (MX-like)', boundaryInputs(f).map((v) => v / 8), 2 ** -3],
      ['random, scale 1', random, 1],
      ['random, scale 0.0137 (not a power of two)', random, 0.0137],
      ['random, scale 0', random, 0],
    ];
    for (const [what, w, scale] of inputs) {
      const ref = reference(w, f, scale);
      const out = new Float32Array(w.length);
      const codes = new Int32Array(w.length);
      qdqMinifloatRun(w, out, codes, 0, w.length, f, scale);
      const i = equalBits(out, ref.out);
      assert.equal(i, -1, `${what}: value of ${w[i]} is ${out[i]}, definition ${ref.out[i]}`);
      const j = codes.findIndex((c, k) => c !== ref.codes[k]);
      assert.equal(j, -1, `${what}: code of ${w[j]} is ${codes[j]}, definition ${ref.codes[j]}`);
    }
  });
}

test('qdqMinifloatRun works on a sub-range longer than its internal chunk and leaves the rest alone', () => {
  const next = rng(3);
  const w = Float32Array.from({ length: 5000 }, () => next() * 10 - 5);
  const out = new Float32Array(5000).fill(99);
  qdqMinifloatRun(w, out, undefined, 100, 4000, E2M1, 1);
  const ref = reference(w.subarray(100, 4100), E2M1, 1).out;
  assert.equal(out[99], 99);
  assert.equal(out[4100], 99);
  assert.equal(equalBits(out.slice(100, 4100), ref), -1);
});

test('MX minifloat formats on bit patterns: bit-identical to per-block qdqMinifloatRun with scale 2^max(floor(log2 amax) − emax, −127)', () => {
  const next = rng(11);
  const cols = 200; // 6 full blocks and a partial one per row
  const rows = 40;
  const w = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    // Row magnitudes from 2^-140 (float32 subnormal amax: the fallback) through 2^-120 (scale clamped to 2^-127) to 2^40.
    const mag = r === 0 ? 0 : 2 ** [-140, -130, -120, -60, -8, 0, 3, 40][r % 8];
    for (let c = 0; c < cols; c++) w[r * cols + c] = (next() - 0.5) * mag * (c % 37 === 0 ? 9 : 1);
    if (r === 5) w.fill(-0, r * cols, r * cols + 32); // a block of negative zeros
    // Float32 subnormal elements under a normal block maximum of 2^-100 or 2^-116 (near the fast path's limit).
    if (r === 7 || r === 15) for (let c = 0; c < cols; c++) w[r * cols + c] = c % 32 === 0 ? 2 ** (r === 7 ? -100 : -116) : (next() - 0.5) * 2 ** -127;
  }
  for (const [id, f] of [['mxfp4', E2M1], ['mxfp6_e2m3', E2M3], ['mxfp6_e3m2', E3M2], ['mxfp8_e4m3', E4M3], ['mxfp8_e5m2', E5M2]] as const) {
    const codes = new Int32Array(w.length);
    const out = getFormat(id).quantizeDequantize(w, [rows, cols], 'out_in', { codes });
    const ref = new Float32Array(w.length);
    const refCodes = new Int32Array(w.length);
    for (let r = 0; r < rows; r++) {
      for (let c0 = 0; c0 < cols; c0 += 32) {
        const off = r * cols + c0;
        const n = Math.min(32, cols - c0);
        const amax = Math.max(...Array.from(w.subarray(off, off + n), Math.abs));
        const scale = amax > 0 ? 2 ** Math.max(Math.floor(Math.log2(amax)) - f.emax, -127) : 0;
        qdqMinifloatRun(w, ref, refCodes, off, n, f, scale);
      }
    }
    assert.equal(equalBits(out, ref), -1, `${id}: values`);
    assert.deepEqual([...codes], [...refCodes], `${id}: codes`);
  }
});
