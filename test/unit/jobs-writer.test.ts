import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import { QuantLensError } from '../../server/src/formats/errors';
import { defaultOutputPath, writeQuantizedModel, type QuantizedTensor } from '../../server/src/jobs/quantize';
import { getFormat } from '../../server/src/quant';
import { GraphBuilder } from '../../server/src/runtime/graph';
import { ModelRunner } from '../../server/src/runtime/model-runner';
import { randn, tempDir } from '../fixtures/common';
import { tinyCnn, tinyFeeds, tinyMlp, writeTinyModel } from '../fixtures/tiny-models';

const tmp = tempDir('jobs-writer');
after(() => tmp.cleanup());
ort.env.logLevel = 'error';

/** Quantizes the runner's weights with the given formats, codes included. */
function quantizeAll(runner: ModelRunner, formats: Record<string, string>): QuantizedTensor[] {
  return Object.entries(formats).map(([name, id]) => {
    const w = runner.weight(name);
    const format = getFormat(id);
    const codes = new Int32Array(w.shape.reduce((a, b) => a * b, 1));
    const values = format.quantizeDequantize(runner.read(name), w.shape, w.layout, { codes });
    return { name, shape: w.shape, layout: w.layout, format, values, codes };
  });
}

/** The written model's value `name` as onnxruntime computes it (the weight made a graph output). */
async function valueOf(file: string, name: string, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  const m = onnx.ModelProto.decode(readFileSync(file));
  m.graph!.output = [...m.graph!.output!, { name }];
  const s = await ort.InferenceSession.create(onnx.ModelProto.encode(m).finish());
  const r = await s.run(feeds, [name]);
  await s.release();
  return r[name].data as Float32Array;
}

function feedsOf(n: number, dims: number[], seed: number): Record<string, ort.Tensor> {
  return { x: new ort.Tensor('float32', randn(dims.reduce((a, b) => a * b, 1), seed, 1), [n, ...dims.slice(1)]) };
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

describe('quantized ONNX writer', () => {
  it('stores int formats as DequantizeLinear codes that dequantize exactly to quantizeDequantize', async () => {
    const src = writeTinyModel(tinyMlp(), tmp.dir, 'mlp.onnx');
    const runner = await ModelRunner.open(src);
    // fc1: 16 inputs in groups of 5 → a partial last block; fc2: per-channel; asym and sym.
    const qs = quantizeAll(runner, { 'fc0.weight': 'int4_g4_asym', 'fc1.weight': 'int3_g5_sym', 'fc2.weight': 'int8_ch_asym' });
    const out = path.join(tmp.dir, 'mlp.q.onnx');
    const res = await writeQuantizedModel(src, out, qs);
    assert.deepEqual(res.weights.map((w) => [w.name, w.storage, w.simulated]), [
      ['fc0.weight', 'uint4', false],
      ['fc1.weight', 'int4', false],
      ['fc2.weight', 'uint8', false],
    ]);
    const feeds = feedsOf(3, [3, 8], 5);
    for (const q of qs) assert.deepEqual(await valueOf(out, q.name, feeds), q.values, q.name);
    // The model runs; with fp32 MatMulNBits compute (as evaluate.ts asks) its output is the original's with the
    // fake-quantized weights fed in, up to fp32 noise. onnxruntime's default fuses DequantizeLinear + MatMul into
    // MatMulNBits with int8 activations: a visibly larger difference.
    const ref = (await runner.run({ x: { dtype: 'float32', dims: [3, 8], data: feeds.x.data as Float32Array } }, new Map(qs.map((q) => [q.name, q.values]))))['fc2.out'];
    const diff: number[] = [];
    for (const extra of [{ session: { qdq_matmulnbits_accuracy_level: '1' } }, {}]) {
      const s = await ort.InferenceSession.create(out, { extra });
      diff.push(maxRelDiff((await s.run(feeds))['fc2.out'].data as Float32Array, ref));
      await s.release();
    }
    assert.ok(diff[0] < 1e-5 && diff[1] > 1e-4, `fp32 compute ${diff[0]}, default ${diff[1]}`);
    await runner.close();
  });

  it('decodes by hand from the spec: int4 nibbles low first, [blocks, out] scales, uint4 zero points', async () => {
    // W [4, 2] (in, out), int4_g2_asym: blocks along the input axis.
    const W = new Float32Array([0.1, -1, 0.5, 2, -0.3, 0.25, 0.7, -0.75]);
    const g = new GraphBuilder('one');
    g.input('x', 'float32', ['N', 4]);
    g.initializer('W', W, [4, 2]);
    g.node('MatMul', ['x', 'W'], ['y']);
    g.output('y', 'float32', ['N', 2]);
    const src = path.join(tmp.dir, 'one.onnx');
    writeFileSync(src, g.build());
    const format = getFormat('int4_g2_asym');
    const codes = new Int32Array(8);
    const values = format.quantizeDequantize(W, [4, 2], 'in_out', { codes });
    await writeQuantizedModel(src, defaultOutputPath(src), [{ name: 'W', shape: [4, 2], layout: 'in_out', format, values, codes }]);
    const m = onnx.ModelProto.decode(readFileSync(path.join(tmp.dir, 'one.quant.onnx')));
    const byName = new Map(m.graph!.initializer!.map((t) => [t.name, t]));
    const q = byName.get('W_quantized')!;
    const s = byName.get('W_scale')!;
    const z = byName.get('W_zero_point')!;
    assert.equal(q.dataType, 21); // uint4
    assert.deepEqual(s.dims!.map(Number), [2, 2]);
    const nib = (raw: Uint8Array, i: number) => (raw[i >> 1] >> ((i & 1) * 4)) & 15;
    const sc = new Float32Array(Uint8Array.from(s.rawData!).buffer);
    const dq = m.graph!.node!.find((n) => n.opType === 'DequantizeLinear')!;
    assert.deepEqual(dq.output, ['W']);
    assert.deepEqual(dq.attribute!.map((a) => [a.name, Number(a.i)]), [['axis', 0], ['block_size', 2]]);
    for (let i = 0; i < 8; i++) {
      const [row, col] = [Math.floor(i / 2), i % 2];
      const block = Math.floor(row / 2) * 2 + col;
      assert.equal((nib(q.rawData!, i) - nib(z.rawData!, block)) * sc[block], values[i], `element ${i}`);
    }
    // Hand-checked: column 1 rows 0–1 = [−1, 2]: scale fp16(3/15) = 0.199951171875, zero rne(1/0.19995…) = 5.
    assert.equal(sc[1], 0.199951171875);
    assert.equal(nib(z.rawData!, 1), 5);
  });

  it('handles conv weights (reshaped [out, in·k·k] view) and Gemm transB', async () => {
    const m = tinyCnn();
    const src = writeTinyModel(m, tmp.dir, 'cnn.onnx');
    const runner = await ModelRunner.open(src);
    const qs = quantizeAll(runner, { 'conv1.weight': 'int4_g9_sym', 'conv2.weight': 'int8_g16_asym', 'conv3.weight': 'int4_ch_sym', 'fc.weight': 'int4_g4_sym' });
    const out = path.join(tmp.dir, 'cnn.q.onnx');
    const res = await writeQuantizedModel(src, out, qs);
    assert.ok(res.weights.every((w) => !w.simulated));
    const feeds = feedsOf(2, [2, 3, 12, 12], 9);
    for (const q of qs) assert.deepEqual(await valueOf(out, q.name, feeds), q.values, q.name);
    const s = await ort.InferenceSession.create(out, { extra: { session: { qdq_matmulnbits_accuracy_level: '1' } } });
    const y = (await s.run(feeds)).logits.data as Float32Array;
    await s.release();
    const ref = (await runner.run(tinyFeeds(m, 2, 9), new Map(qs.map((q) => [q.name, q.values])))).logits;
    assert.ok(maxRelDiff(y, ref) < 1e-5);
    await runner.close();
  });

  it('writes formats without a kernel as fake-quantized floats, marked simulated', async () => {
    const src = writeTinyModel(tinyMlp(), tmp.dir, 'mlp2.onnx');
    const runner = await ModelRunner.open(src);
    const qs = quantizeAll(runner, { 'fc0.weight': 'nf4_g64', 'fc1.weight': 'int4_g8_asym+had8' });
    const res = await writeQuantizedModel(src, path.join(tmp.dir, 'mlp2.q.onnx'), qs);
    assert.deepEqual(res.weights.map((w) => [w.storage, w.simulated]), [['float32', true], ['float32', true]]);
    assert.match(res.weights[0].reason!, /nf4_g64 is not a plain integer format/);
    const m = onnx.ModelProto.decode(readFileSync(res.output));
    const t = m.graph!.initializer!.find((x) => x.name === 'fc0.weight')!;
    assert.deepEqual(new Float32Array(Uint8Array.from(t.rawData!).buffer), qs[0].values);
    await runner.close();
  });

  it('rewrites weights held in Constant nodes (DequantizeLinear at opset 21, simulated below)', async () => {
    const W = randn(12, 3, 0.5);
    for (const opset of [21, 13]) {
      const g = new GraphBuilder('const', opset);
      g.input('x', 'float32', ['N', 4]);
      g.node('Constant', [], ['W'], { value: { name: 'W', dataType: 1, dims: [4, 3], rawData: new Uint8Array(W.buffer.slice(0)) } });
      g.node('MatMul', ['x', 'W'], ['y']);
      g.output('y', 'float32', ['N', 3]);
      const src = path.join(tmp.dir, `const${opset}.onnx`);
      writeFileSync(src, g.build());
      const format = getFormat('int4_g2_sym');
      const codes = new Int32Array(12);
      const values = format.quantizeDequantize(W, [4, 3], 'in_out', { codes });
      const res = await writeQuantizedModel(src, defaultOutputPath(src), [{ name: 'W', shape: [4, 3], layout: 'in_out', format, values, codes }]);
      assert.equal(res.weights[0].simulated, opset < 21);
      if (opset < 21) assert.match(res.weights[0].reason!, /opset 13 is below 21/);
      const m = onnx.ModelProto.decode(readFileSync(res.output));
      assert.equal(m.graph!.node!.filter((n) => n.opType === 'Constant').length, opset < 21 ? 1 : 0);
      assert.deepEqual(await valueOf(res.output, 'W', { x: new ort.Tensor('float32', new Float32Array(4), [1, 4]) }), values);
    }
  });

  it('refuses to overwrite an existing output and never writes over the source', async () => {
    const src = writeTinyModel(tinyMlp(), tmp.dir, 'mlp3.onnx');
    const before = readFileSync(src);
    await assert.rejects(writeQuantizedModel(src, src, [], { overwrite: true }), (e: unknown) => e instanceof QuantLensError && /input of this command/.test(e.message));
    const out = defaultOutputPath(src);
    assert.equal(out, path.join(tmp.dir, 'mlp3.quant.onnx'));
    await writeQuantizedModel(src, out, []);
    await assert.rejects(writeQuantizedModel(src, out, []), (e: unknown) => e instanceof QuantLensError && /--force/.test(e.message));
    await writeQuantizedModel(src, out, [], { overwrite: true });
    assert.deepEqual(readFileSync(src), before);
  });
});

describe('below opset 21: com.microsoft MatMulNBits', () => {
  it('replaces the MatMuls of a (shared) [in, out] weight; outputs equal the fake-quantized run', async () => {
    for (const id of ['int4_g16_sym', 'int4_g16_asym', 'int8_g32_asym', 'int3_g16_asym']) {
      // K = 40: a partial last block of 8 (16) or 8 (32).
      const g = new GraphBuilder('nbits', 13);
      g.input('x', 'float32', ['N', 40]);
      g.initializer('W', randn(120, 21, 0.3), [40, 3]);
      g.node('MatMul', ['x', 'W'], ['y1']);
      g.node('Relu', ['x'], ['xr']);
      g.node('MatMul', ['xr', 'W'], ['y2']);
      g.node('Add', ['y1', 'y2'], ['y']);
      g.output('y', 'float32', ['N', 3]);
      const src = path.join(tmp.dir, `nbits-${id}.onnx`);
      writeFileSync(src, g.build());
      const runner = await ModelRunner.open(src);
      const qs = quantizeAll(runner, { W: id });
      const res = await writeQuantizedModel(src, defaultOutputPath(src), qs);
      assert.deepEqual(res.weights.map((w) => [w.storage, w.simulated]), [[id.startsWith('int8') ? 'MatMulNBits(8)' : 'MatMulNBits(4)', false]], id);
      const m = onnx.ModelProto.decode(readFileSync(res.output));
      assert.deepEqual(m.graph!.node!.map((n) => n.opType), ['MatMulNBits', 'Relu', 'MatMulNBits', 'Add']);
      assert.ok(!m.graph!.initializer!.some((t) => t.name === 'W'));
      const feeds = feedsOf(5, [5, 40], 31);
      const s = await ort.InferenceSession.create(res.output);
      const y = (await s.run(feeds)).y.data as Float32Array;
      await s.release();
      const ref = (await runner.run({ x: { dtype: 'float32', dims: [5, 40], data: feeds.x.data as Float32Array } }, new Map([['W', qs[0].values]]))).y;
      assert.ok(maxRelDiff(y, ref) < 1e-5, `${id}: ${maxRelDiff(y, ref)}`);
      await runner.close();
    }
  });

  it('keeps other uses simulated, with the reason', async () => {
    const g = new GraphBuilder('nbits2', 13);
    g.input('x', 'float32', ['N', 32]);
    g.initializer('W', randn(64, 22, 0.3), [32, 2]);
    g.node('Gemm', ['x', 'W'], ['y']);
    g.output('y', 'float32', ['N', 2]);
    const src = path.join(tmp.dir, 'nbits-gemm.onnx');
    writeFileSync(src, g.build());
    const runner = await ModelRunner.open(src);
    const res = await writeQuantizedModel(src, defaultOutputPath(src), quantizeAll(runner, { W: 'int4_g16_sym' }));
    assert.equal(res.weights[0].simulated, true);
    assert.match(res.weights[0].reason!, /opset 13 .* MatMulNBits does not apply: the weight is used by something other than MatMul/);
    await runner.close();
  });
});
