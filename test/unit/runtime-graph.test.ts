import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import { DTYPES, float, GraphBuilder, MS_DOMAIN } from '../../server/src/runtime/graph';
import { cachedSession, createSession, releaseSessions } from '../../server/src/runtime/session';

after(() => releaseSessions());

/** y = Gemm(x, W, b; alpha = 0.5) followed by ReduceSum over axis 1 (axes as an int64 input, opset ≥ 13). */
function gemmGraph(): Uint8Array {
  const g = new GraphBuilder('gemm-test');
  g.input('x', 'float32', ['batch', 3]);
  const w = g.initializer('W', new Float32Array([1, 2, 3, 4, 5, 6]), [3, 2]);
  const b = g.initializer('b', new Float32Array([10, 20]), [2]);
  g.node('Gemm', ['x', w, b], ['y'], { alpha: float(0.5) });
  g.node('ReduceSum', ['y', g.int64s('axes', [1])], ['s'], { keepdims: 0 });
  g.output('y', 'float32', ['batch', 2]);
  g.output('s', 'float32', ['batch']);
  return g.build();
}

test('a built graph encodes, decodes to what was declared, and runs', async () => {
  const bytes = gemmGraph();
  const m = onnx.ModelProto.decode(bytes);
  assert.equal(Number(m.irVersion), 10);
  assert.deepEqual(m.opsetImport.map((o) => [o.domain, Number(o.version)]), [['', 21]]);
  const graph = m.graph as onnx.GraphProto;
  assert.deepEqual(graph.input.map((i) => i.name), ['x']);
  assert.deepEqual(graph.input[0].type!.tensorType!.shape!.dim!.map((d) => d.dimParam || Number(d.dimValue)), ['batch', 3]);
  assert.deepEqual(graph.output.map((o) => o.name), ['y', 's']);
  assert.deepEqual(graph.node.map((n) => n.opType), ['Gemm', 'ReduceSum']);
  const alpha = (graph.node[0] as onnx.NodeProto).attribute[0];
  assert.deepEqual([alpha.name, alpha.type, alpha.f], ['alpha', onnx.AttributeProto.AttributeType.FLOAT, 0.5]);
  const w = graph.initializer.find((t) => t.name === 'W')!;
  assert.equal(w.dataType, DTYPES.float32);
  assert.deepEqual(Array.from(new Float32Array(Uint8Array.from(w.rawData as Uint8Array).buffer)), [1, 2, 3, 4, 5, 6]);
  const axes = graph.initializer.find((t) => t.name === 'axes')!;
  assert.equal(axes.dataType, DTYPES.int64);

  const { session } = await createSession(bytes, { providers: ['cpu'] });
  const out = await session.run({ x: new ort.Tensor('float32', new Float32Array([1, 0, 0, 0, 1, 1]), [2, 3]) });
  // Row 1: 0.5·[1, 2] + [10, 20]; row 2: 0.5·([3, 4] + [5, 6]) + [10, 20] — by hand.
  assert.deepEqual([...(out.y.data as Float32Array)], [10.5, 21, 14, 25]);
  assert.deepEqual([...(out.s.data as Float32Array)], [31.5, 39]);
  await session.release();
});

test('com.microsoft ops get their opset import; the Inverse contrib op runs', async () => {
  const g = new GraphBuilder('inverse');
  g.input('A', 'float32', [2, 2]);
  g.node('Inverse', ['A'], ['B'], {}, MS_DOMAIN);
  g.output('B', 'float32', [2, 2]);
  const bytes = g.build();
  assert.deepEqual(onnx.ModelProto.decode(bytes).opsetImport.map((o) => [o.domain, Number(o.version)]), [['', 21], [MS_DOMAIN, 1]]);
  const { session } = await createSession(bytes, { providers: ['cpu'] });
  const out = await session.run({ A: new ort.Tensor('float32', new Float32Array([4, 7, 2, 6]), [2, 2]) });
  // [[4, 7], [2, 6]]⁻¹ = [[0.6, −0.7], [−0.2, 0.4]].
  const expected = [0.6, -0.7, -0.2, 0.4];
  (out.B.data as Float32Array).forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-6, `B[${i}] = ${v}`));
  await session.release();
});

test('builder rejects its own misuse before onnxruntime sees it', () => {
  const g = new GraphBuilder();
  g.input('x', 'float32', [2]);
  assert.throws(() => g.node('Relu', ['x'], ['x']), /value 'x' is defined twice/);
  assert.throws(() => g.initializer('w', new Float32Array(3), [2, 2]), /3 values for shape \[2, 2\]/);
  assert.throws(() => g.node('LeakyRelu', ['x'], ['y'], { alpha: 0.1 }), /not an integer \(wrap floats in float\(\)\)/);
  assert.throws(() => g.initializer('h', new Float32Array(2), [2], 'float16'), /cannot store Float32Array as float16/);
  // Packed int4: two values per byte.
  g.initializer('q', new Uint8Array(2), [3], 'int4');
  assert.throws(() => g.initializer('q2', new Uint8Array(3), [3], 'int4'), /3 values for shape \[3\] of int4/);
});

test('cached sessions are built once per key', async () => {
  let builds = 0;
  const build = () => {
    builds++;
    return gemmGraph();
  };
  const [a, b] = await Promise.all([cachedSession('test:gemm', build, { providers: ['cpu'] }), cachedSession('test:gemm', build, { providers: ['cpu'] })]);
  assert.equal(a, b);
  assert.equal(builds, 1);
  await cachedSession('test:gemm', build, { providers: ['cpu'], threads: 1 });
  assert.equal(builds, 2);
});
