// Catalogue-wide properties: ids, bit counts, layouts, bad input.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { WeightLayout } from '../../server/src/formats/types';
import { allFormats, describeFormats, formatIds, getFormat } from '../../server/src/quant/registry';
import { QuantInputError, UnknownFormatError } from '../../server/src/quant/types';
import { randn } from '../fixtures/common';

test('catalogue: unique ids that parse back to themselves, one-line descriptions', () => {
  const ids = formatIds();
  assert.equal(new Set(ids).size, ids.length);
  for (const f of allFormats()) {
    assert.equal(getFormat(f.id).id, f.id);
    assert.ok(f.description.length > 20 && !f.description.includes('\n'), f.id);
  }
  for (const id of ['int2_g32_sym', 'int8_ch_asym', 'nf4_g64', 'nf3_g64', 'fp8_e4m3', 'fp8_e5m2_ch', 'fp6_e3m2', 'fp6_e2m3',
    'fp4_e2m1_g32', 'mxfp4', 'mxfp6_e3m2', 'mxfp6_e2m3', 'mxfp8_e4m3', 'mxfp8_e5m2', 'mxint8', 'nvfp4', 'bfp4_b16', 'bfp8_b32',
    'int4_g128_asym+ol2', 'int4_g128_asym+reorder', 'mxfp4+had64', 'nvfp4+had16', 'int4_g128_sym+had128']) {
    assert.ok(ids.includes(id), id);
  }
});

test('describeFormats: bits per weight of a 4096×4096 out_in matrix', () => {
  const bits = Object.fromEntries(describeFormats().map((d) => [d.id, d.bitsPerWeight]));
  const n = 4096 * 4096;
  assert.equal(bits.int4_g128_asym, 4 + 20 / 128);
  assert.equal(bits.int3_ch_asym, 3 + 19 / 4096);
  assert.equal(bits.int8_g32_sym, 8.5);
  assert.equal(bits.nf4_g64, 4.25);
  assert.equal(bits.fp8_e4m3, 8 + 32 / n);
  assert.equal(bits.fp8_e4m3_ch, 8 + 32 / 4096);
  assert.equal(bits.fp6_e2m3, 6 + 32 / n);
  assert.equal(bits.fp4_e2m1_g32, 4.5);
  assert.equal(bits.mxfp4, 4.25);
  assert.equal(bits.mxfp8_e5m2, 8.25);
  assert.equal(bits.mxint8, 8.25);
  assert.equal(bits.nvfp4, 4.5 + 32 / n);
  assert.equal(bits.bfp6_b16, 6.5);
  assert.equal(bits['int4_g128_asym+reorder'], 4 + 20 / 128 + (12 * 4096) / n);
  assert.equal(bits['mxfp4+had64'], 4.25);
});

test('ids: other sizes and chained modifiers parse; malformed ids say why', () => {
  assert.equal(getFormat('int5_g256_sym').bitsPerWeight([1, 256], 'out_in'), 5 + 16 / 256);
  assert.equal(getFormat('int4_g128_asym+had64+ol2').modifier, 'outliers');
  for (const [id, why] of [
    ['int9_g128_sym', /bit width 9/],
    ['int4_g128', /not a known format family/],
    ['fp8_e2m1', /no 8-bit element type e2m1/],
    ['mxfp4+had12', /not a power of two/],
    ['mxfp4+ol1+ol2', /given twice/],
    ['nvfp4+foo', /unknown modifier/],
  ] as const) {
    assert.throws(() => getFormat(id), (e: unknown) => e instanceof UnknownFormatError && why.test(e.message), id);
  }
});

/** [rows, cols] out_in data → [cols, rows] in_out data (the same matrix stored transposed). */
function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = w[r * cols + c];
  return t;
}

test('layouts: in_out on transposed data gives the transposed result of out_in, for every format; conv = flattened out_in', () => {
  // [6, 200]: partial last groups for every group size; [70, 50]: more output channels than one in_out tile (64).
  for (const [rows, cols] of [[6, 200], [70, 50]]) {
    const w = randn(rows * cols, 21 + rows, 0.05);
    w[7] = 1.5; // an outlier
    const wT = transpose(w, rows, cols);
    for (const f of allFormats()) {
      const codes = new Int32Array(w.length);
      const codesT = new Int32Array(w.length);
      const a = f.quantizeDequantize(w, [rows, cols], 'out_in', { codes });
      const b = f.quantizeDequantize(wT, [cols, rows], 'in_out', { codes: codesT });
      assert.deepEqual(b, transpose(a, rows, cols), `${f.id} [${rows}, ${cols}]`);
      assert.deepEqual(codesT, Int32Array.from(transpose(Float32Array.from(codes), rows, cols)), f.id);
      assert.deepEqual(f.quantizeDequantize(w, [rows, cols / 25, 5, 5], 'conv'), a, f.id);
      assert.equal(f.storageBits([cols, rows], 'in_out'), f.storageBits([rows, cols], 'out_in'), f.id);
    }
  }
});

test('vector and embedding layouts: one row / rows of the table', () => {
  const w = randn(300, 4, 1);
  const f = getFormat('int4_g128_asym');
  const layouts: [WeightLayout, number[]][] = [['vector', [300]], ['embedding', [1, 300]], ['out_in', [1, 300]]];
  const outs = layouts.map(([layout, shape]) => f.quantizeDequantize(w, shape, layout));
  assert.deepEqual(outs[0], outs[2]);
  assert.deepEqual(outs[1], outs[2]);
});

test('NaN/Inf input: a QuantInputError naming the first bad flat index, for every format', () => {
  const w = randn(64, 2, 1);
  w[13] = NaN;
  w[20] = Infinity;
  for (const f of allFormats()) {
    assert.throws(
      () => f.quantizeDequantize(w, [2, 32], 'out_in'),
      (e: unknown) => e instanceof QuantInputError && e.index === 13 && /NaN at flat index 13/.test(e.message),
      f.id,
    );
  }
  const inf = new Float32Array(4);
  inf[2] = -Infinity;
  assert.throws(() => getFormat('mxfp4').quantizeDequantize(inf, [4], 'vector'), /-Infinity at flat index 2/);
  // `finite: true` (the caller checked) skips the pass and gives the same values on finite input.
  const ok = randn(64, 2, 3);
  for (const f of allFormats()) {
    assert.deepEqual(f.quantizeDequantize(ok, [2, 32], 'out_in', { finite: true }), f.quantizeDequantize(ok, [2, 32], 'out_in'), f.id);
  }
  assert.doesNotThrow(() => getFormat('int4_g32_sym').quantizeDequantize(w, [2, 32], 'out_in', { finite: true }));
  assert.throws(() => getFormat('int4_g32_sym').quantizeDequantize(w, [3, 32], 'out_in', { finite: true }), /has 96 elements/);
});

test('shape checks and empty tensors', () => {
  const f = getFormat('nvfp4');
  assert.throws(() => f.quantizeDequantize(new Float32Array(10), [3, 4], 'out_in'), /has 12 elements but the data has 10/);
  assert.throws(() => f.quantizeDequantize(new Float32Array(4), [2, 2], 'out_in', { codes: new Int32Array(3) }), /codes buffer/);
  assert.throws(() => f.bitsPerWeight([2, -1], 'out_in'), /bad dimension -1/);
  for (const g of allFormats()) {
    assert.equal(g.quantizeDequantize(new Float32Array(0), [0, 128], 'out_in').length, 0, g.id);
    assert.equal(g.storageBits([0, 128], 'out_in'), 0, g.id);
  }
});

test('inputs are never modified', () => {
  const w = randn(256, 8, 0.1);
  const copy = Float32Array.from(w);
  for (const f of allFormats()) f.quantizeDequantize(w, [4, 64], 'out_in');
  assert.deepEqual(w, copy);
});
