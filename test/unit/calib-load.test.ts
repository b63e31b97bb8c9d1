// loadCalibration end to end on generated files: every source kind, batching, and the model-input checks.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import * as jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { loadCalibration, type CalibrationOptions } from '../../server/src/calib';
import type { ArrayValue, ModelInput } from '../../server/src/calib/types';
import { QuantLensError } from '../../server/src/formats/errors';
import { tempDir } from '../fixtures/common';
import { npyOf, zip } from './calib-fixtures';

const { dir, cleanup } = tempDir();
after(cleanup);
let n = 0;
/** Write `bytes` under a fresh folder (or into `folder`) and return the path. */
function put(name: string, bytes: Uint8Array, folder?: string): string {
  const d = folder ?? path.join(dir, `case${n++}`);
  mkdirSync(d, { recursive: true });
  const p = path.join(d, name);
  writeFileSync(p, bytes);
  return p;
}
const folder = () => {
  const d = path.join(dir, `folder${n++}`);
  mkdirSync(d);
  return d;
};

const range = (count: number, from = 0) => Array.from({ length: count }, (_, i) => from + i);
const f32 = (dims: number[], from = 0) => npyOf('<f4', dims, Float32Array.from(range(dims.reduce((a, b) => a * b, 1), from)));
const fill32 = (dims: number[], v: number) => npyOf('<f4', dims, new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(v));

const X: ModelInput = { name: 'x', dtype: 'float32', dims: ['N', 3, 4, 'W'] };

async function mismatch(spec: string, inputs: ModelInput[], message: string | RegExp, opts?: CalibrationOptions): Promise<void> {
  await assert.rejects(loadCalibration(spec, inputs, opts), (e: unknown) => {
    assert.ok(e instanceof QuantLensError, String(e));
    if (typeof message === 'string') assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
}

const values = (v: ArrayValue) => [...v.data].map(Number);

describe('.npy files and folders', () => {
  test('a single sample without a batch axis gets one', async () => {
    const p = put('a.npy', f32([3, 4, 5]));
    const set = await loadCalibration(p, [X]);
    assert.equal(set.synthetic, false);
    assert.equal(set.source, p);
    assert.equal(set.samples, 1);
    assert.equal(set.batches.length, 1);
    assert.deepEqual(set.batches[0].x.dims, [1, 3, 4, 5]);
    assert.deepEqual(values(set.batches[0].x), range(60));
  });
  test('shape, rank and dtype errors name the file, input and shapes', async () => {
    const a = put('a.npy', f32([3, 5, 4]));
    await mismatch(a, [X], `${a}: input 'x' expects shape [N, 3, 4, W] (float32), found [3, 5, 4] (float32)`);
    const b = put('b.npy', f32([12, 5]));
    await mismatch(b, [X], `${b}: input 'x' expects shape [N, 3, 4, W] (float32), found [12, 5] (float32)`);
    const c = put('c.npy', npyOf('<i8', [1, 3, 4, 1], new BigInt64Array(12)));
    await mismatch(c, [X], `${c}: input 'x' expects float32, found int64 (only float64→float32 and int32→int64 are converted)`);
    // A fixed batch axis of 2 cannot take a single sample.
    const d = put('d.npy', f32([1, 3, 4, 2]));
    await mismatch(d, [{ ...X, dims: [2, 3, 4, 'W'] }], `${d}: input 'x' expects shape [2, 3, 4, W] (float32), found [1, 3, 4, 2] (float32)`);
  });
  test('float64 is converted to float32', async () => {
    const p = put('a.npy', npyOf('<f8', [1, 3, 4, 1], Float64Array.from(range(12, 0.5))));
    const { batches } = await loadCalibration(p, [X]);
    assert.equal(batches[0].x.dtype, 'float32');
    assert.ok(batches[0].x.data instanceof Float32Array);
    assert.deepEqual(values(batches[0].x), range(12, 0.5));
  });
  test('a folder: natural name order, batches of batchSize, maxSamples stops early', async () => {
    const d = folder();
    for (const i of [1, 2, 10, 3, 4]) put(`s${i}.npy`, fill32([1, 3, 4, 2], i), d);
    put('notes.txt', new Uint8Array(3), d); // other files are ignored
    const all = await loadCalibration(d, [X]);
    assert.equal(all.batches.length, 5);
    assert.deepEqual(all.batches.map((b) => b.x.data[0]), [1, 2, 3, 4, 10]);
    assert.match(all.source, /5 \.npy files/);
    const two = await loadCalibration(d, [X], { batchSize: 2 });
    assert.deepEqual(two.batches.map((b) => b.x.dims[0]), [2, 2, 1]);
    assert.equal(two.samples, 5);
    assert.deepEqual(values(two.batches[1].x), [...new Array(24).fill(3), ...new Array(24).fill(4)]);
    const three = await loadCalibration(d, [X], { batchSize: 2, maxSamples: 3 });
    assert.deepEqual(three.batches.map((b) => b.x.dims[0]), [2, 1]);
    assert.equal(three.samples, 3);
  });
  test('batched files are cut and merged; a change of shape starts a new batch', async () => {
    const d = folder();
    put('a.npy', f32([3, 3, 4, 2]), d);
    put('b.npy', f32([2, 3, 4, 2], 1000), d);
    put('c.npy', f32([1, 3, 4, 5]), d);
    const whole = await loadCalibration(d, [X]);
    assert.deepEqual(whole.batches.map((b) => b.x.dims), [[3, 3, 4, 2], [2, 3, 4, 2], [1, 3, 4, 5]]);
    assert.equal(whole.samples, 6);
    const four = await loadCalibration(d, [X], { batchSize: 4 });
    assert.deepEqual(four.batches.map((b) => b.x.dims), [[4, 3, 4, 2], [1, 3, 4, 2], [1, 3, 4, 5]]);
    assert.deepEqual(values(four.batches[0].x), [...range(72), ...range(24, 1000)]);
    assert.deepEqual(values(four.batches[1].x), range(24, 1024));
    const cut = await loadCalibration(d, [X], { maxSamples: 2 });
    assert.deepEqual(cut.batches.map((b) => b.x.dims), [[2, 3, 4, 2]]);
  });
  test('a .npy cannot feed a model with two inputs; a mixed folder is refused', async () => {
    const p = put('a.npy', f32([1, 3, 4, 2]));
    await mismatch(p, [X, { name: 'y', dtype: 'float32', dims: [1] }], /exactly one input; this model has 2 \(x, y\)/);
    const d = folder();
    put('a.npy', f32([1, 3, 4, 2]), d);
    put('b.png', PNG.sync.write(Object.assign(new PNG({ width: 1, height: 1 }), { data: Buffer.alloc(4) })), d);
    await mismatch(d, [X], /one kind of file .* found npy and image files/);
    await mismatch(folder(), [X], /found none/);
    await mismatch(path.join(dir, 'nope.npy'), [X], /not found/);
    await mismatch(put('a.bin', new Uint8Array(4)), [X], /expected a \.npy, \.npz, \.json or image file/);
    await mismatch(p, [X], /batchSize must be a positive integer, found 0/, { batchSize: 0 });
  });
});

describe('.npz and .json map arrays to input names', () => {
  const IDS: ModelInput = { name: 'ids', dtype: 'int64', dims: ['batch', 'seq'] };
  const MASK: ModelInput = { name: 'mask', dtype: 'int64', dims: ['batch', 'seq'] };
  const PIX: ModelInput = { name: 'pix', dtype: 'float32', dims: ['batch', 2] };
  const inputs = [IDS, MASK, PIX];
  const ids = (dims: number[]) => ({ name: 'ids.npy', data: npyOf('<i4', dims, Int32Array.from(range(dims[0] * dims[1], 5))) });
  const mask = (dims: number[]) => ({ name: 'mask.npy', data: npyOf('<i8', dims, new BigInt64Array(dims[0] * dims[1]).fill(1n)) });
  const pix = (rows: number) => ({ name: 'pix.npy', data: npyOf('<f8', [rows, 2], Float64Array.from(range(rows * 2, 0.25))) });

  test('npz with several arrays; int32 → int64 and float64 → float32 conversions', async () => {
    const p = put('a.npz', zip([ids([2, 3]), { ...mask([2, 3]), deflate: true }, pix(2)]));
    const { batches, samples } = await loadCalibration(p, inputs);
    assert.equal(samples, 2);
    assert.equal(batches[0].ids.dtype, 'int64');
    assert.deepEqual([...batches[0].ids.data], range(6, 5).map(BigInt));
    assert.deepEqual([...batches[0].mask.data], new Array(6).fill(1n));
    assert.ok(batches[0].pix.data instanceof Float32Array);
    assert.deepEqual(values(batches[0].pix), range(4, 0.25));
  });
  test('missing input, unknown name, inconsistent symbolic dims', async () => {
    const a = put('a.npz', zip([ids([1, 3]), pix(1)]));
    await mismatch(a, inputs, `${a}: input 'mask' is missing (found: ids, pix); input 'mask' expects shape [batch, seq] (int64)`);
    const b = put('b.npz', zip([ids([1, 3]), mask([1, 3]), pix(1), { name: 'extra.npy', data: f32([1]) }]));
    await mismatch(b, inputs, `${b}: array 'extra' matches no model input (inputs: ids, mask, pix)`);
    const c = put('c.npz', zip([ids([1, 3]), mask([1, 4]), pix(1)]));
    await mismatch(c, inputs, `${c}: dimension 'seq' is 3 in input 'ids' but 4 in input 'mask' (input 'mask' expects shape [batch, seq] (int64), found [1, 4] (int64))`);
    const d = put('d.npz', zip([ids([1, 3]), mask([1, 3]), pix(2)]));
    await mismatch(d, inputs, /dimension 'batch' is 1 in input 'ids' but 2 in input 'pix'/);
  });
  test('np.savez default name arr_0 feeds a single-input model', async () => {
    const p = put('a.npz', zip([{ name: 'arr_0.npy', data: f32([1, 3, 4, 1]) }]));
    const { batches } = await loadCalibration(p, [X]);
    assert.deepEqual(batches[0].x.dims, [1, 3, 4, 1]);
  });
  test('JSON object and list of objects, nested arrays in the input dtype', async () => {
    const one = put('a.json', Buffer.from(JSON.stringify({ ids: [[1, 2, 3]], mask: [[1, 1, 0]], pix: [0.5, -1] })));
    const set = await loadCalibration(one, inputs);
    assert.deepEqual(set.batches[0].ids.dims, [1, 3]);
    assert.deepEqual([...set.batches[0].ids.data], [1n, 2n, 3n]);
    assert.deepEqual(set.batches[0].pix.dims, [1, 2]); // a sample without its batch axis
    assert.deepEqual(values(set.batches[0].pix), [0.5, -1]);
    const list = put('b.json', Buffer.from(JSON.stringify([
      { ids: [[1, 2]], mask: [[1, 1]], pix: [[1, 2]] },
      { ids: [[3, 4], [5, 6]], mask: [[1, 1], [1, 1]], pix: [[3, 4], [5, 6]] },
    ])));
    const merged = await loadCalibration(list, inputs, { batchSize: 8 });
    assert.equal(merged.batches.length, 1);
    assert.deepEqual([...merged.batches[0].ids.data], [1n, 2n, 3n, 4n, 5n, 6n]);
    assert.deepEqual(values(merged.batches[0].pix), [1, 2, 3, 4, 5, 6]);
  });
  test('JSON errors: ragged rows, non-integers for integer inputs, syntax', async () => {
    const a = put('a.json', Buffer.from(JSON.stringify({ ids: [[1, 2, 3], [4, 5]], mask: [[1]], pix: [1, 2] })));
    await mismatch(a, inputs, `${a}: ragged array: ids[1] has 2 elements where ids[0] has 3`);
    const b = put('b.json', Buffer.from(JSON.stringify([{ ids: [[1]], mask: [[1]], pix: [1, 2] }, { ids: [[1.5]], mask: [[1]], pix: [1, 2] }])));
    await mismatch(b, inputs, `${b}[1]: input 'ids' is int64 but ids[0][0] is 1.5`);
    const c = put('c.json', Buffer.from(JSON.stringify({ ids: [[1], [[2]]], mask: [[1]], pix: [1, 2] })));
    await mismatch(c, inputs, /ragged array: ids\[1\]\[0\] is an array/);
    const d = put('d.json', Buffer.from('{"ids": [[1, 2], }'));
    await assert.rejects(loadCalibration(d, inputs), (e: unknown) => e instanceof QuantLensError && e.where.offset === 17 && /invalid JSON/.test(e.message));
    const proto = put('p.json', Buffer.from('{"__proto__": [1], "ids": [[1]], "mask": [[1]], "pix": [1, 2]}'));
    await mismatch(proto, inputs, `${proto}: array '__proto__' matches no model input (inputs: ids, mask, pix)`);
    const empty = put('empty.json', Buffer.from('{}'));
    await mismatch(empty, [{ name: 'constructor', dtype: 'float32', dims: [1] }], /input 'constructor' is missing \(found: nothing\)/);
    const e = put('e.json', Buffer.from(JSON.stringify({ ids: [[1, 2]], mask: [[1, 1]], pix: [[1, 2, 3]] })));
    await mismatch(e, inputs, `${e}: input 'pix' expects shape [batch, 2] (float32), found [1, 3] (float32)`);
  });
});

describe('image folders', () => {
  const png = (w: number, h: number, rgb: number[][]) => {
    const img = new PNG({ width: w, height: h });
    rgb.forEach((p, i) => img.data.set([...p, 255], i * 4));
    return PNG.sync.write(img);
  };

  test('2×2 → 1×1 is the mean of the four pixels, normalized with ImageNet mean/std', async () => {
    const p = put('a.png', png(2, 2, [[10, 20, 30], [50, 60, 70], [90, 100, 110], [130, 140, 150]]));
    const { batches } = await loadCalibration(p, [{ name: 'img', dtype: 'float32', dims: ['N', 3, 1, 1] }]);
    const want = [(70 / 255 - 0.485) / 0.229, (80 / 255 - 0.456) / 0.224, (90 / 255 - 0.406) / 0.225];
    assert.deepEqual(batches[0].img.dims, [1, 3, 1, 1]);
    values(batches[0].img).forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-5, `${v} vs ${want[i]}`));
  });
  test('1×2 → 1×4 bilinear with half-pixel centers; scale/mean/std options', async () => {
    const p = put('a.png', png(2, 1, [[0, 0, 0], [100, 200, 40]]));
    const { batches } = await loadCalibration(p, [{ name: 'img', dtype: 'float32', dims: [1, 3, 'H', 'W'] }], {
      size: [1, 4], scale: 1, mean: [0, 0, 10], std: [1, 2, 1],
    });
    // source x = (d + 0.5)/2 − 0.5 → −0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1)
    assert.deepEqual(values(batches[0].img), [0, 25, 75, 100, 0, 25, 75, 100, -10, 0, 20, 30]);
  });
  test('NHWC layout detected, BGR order, identity size', async () => {
    const p = put('a.png', png(2, 2, [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]]));
    const { batches } = await loadCalibration(p, [{ name: 'img', dtype: 'float32', dims: ['N', 2, 2, 3] }], {
      channels: 'BGR', scale: 1, mean: [0, 0, 0], std: [1, 1, 1],
    });
    assert.deepEqual(batches[0].img.dims, [1, 2, 2, 3]);
    assert.deepEqual(values(batches[0].img), [3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10]);
  });
  test('gray input gets BT.601 luma; symbolic W keeps the aspect ratio', async () => {
    const p = put('a.png', png(4, 2, new Array(8).fill([100, 200, 50])));
    const { batches } = await loadCalibration(p, [{ name: 'g', dtype: 'float32', dims: ['N', 1, 4, 'W'] }], { scale: 1, mean: [0], std: [1] });
    assert.deepEqual(batches[0].g.dims, [1, 1, 4, 8]);
    for (const v of values(batches[0].g)) assert.ok(Math.abs(v - (0.299 * 100 + 0.587 * 200 + 0.114 * 50)) < 1e-3);
  });
  test('JPEG into a uint8 input: raw resized pixels; a folder batches images of equal size', async () => {
    const d = folder();
    const solid = (r: number, g: number, b: number) => {
      const data = Buffer.alloc(8 * 8 * 4);
      for (let i = 0; i < 64; i++) data.set([r, g, b, 255], i * 4);
      return jpeg.encode({ width: 8, height: 8, data }, 95).data;
    };
    put('1.jpg', solid(200, 100, 50), d);
    put('2.jpeg', solid(20, 40, 60), d);
    const set = await loadCalibration(d, [{ name: 'img', dtype: 'uint8', dims: ['N', 3, 2, 2] }], { batchSize: 2 });
    assert.equal(set.batches.length, 1);
    assert.deepEqual(set.batches[0].img.dims, [2, 3, 2, 2]);
    const want = [200, 100, 50, 20, 40, 60].flatMap((v) => [v, v, v, v]);
    values(set.batches[0].img).forEach((v, i) => assert.ok(Math.abs(v - want[i]) <= 3, `${i}: ${v} vs ${want[i]}`));
  });
  test('image errors: not 4-D, undecodable, oversized PNG header', async () => {
    const ok = put('a.png', png(1, 1, [[0, 0, 0]]));
    await mismatch(ok, [{ name: 'v', dtype: 'float32', dims: ['N', 3] }], /images feed a 4-D input/);
    await mismatch(ok, [{ name: 'v', dtype: 'int64', dims: ['N', 3, 1, 1] }], /images feed float or uint8 inputs/);
    await mismatch(ok, [X], /layout must be NCHW or NHWC, found CHW/, { layout: 'CHW' as 'NCHW' });
    await mismatch(ok, [X], /std must not contain 0/, { std: [1, 0, 1] });
    await mismatch(ok, [X], /resizing to 30000×30000 pixels exceeds 64 megapixels/, { size: [30000, 30000] });
    await mismatch(ok, [X], /mean needs 3 finite number\(s\), found \[0\.5\]/, { mean: [0.5] });
    const bad = put('b.jpg', Buffer.from([0xff, 0xd8, 0xff, 0x00, 1, 2, 3]));
    await mismatch(bad, [X], /cannot decode JPEG/);
    const huge = Buffer.from(png(1, 1, [[0, 0, 0]]));
    huge.writeUInt32BE(100000, 16);
    huge.writeUInt32BE(100000, 20);
    await mismatch(put('c.png', huge), [X], /declares 100000×100000 pixels/);
  });
});
