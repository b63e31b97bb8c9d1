import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { LIMITS, QuantLensError } from '../../server/src/formats/errors';
import { pytorchReader } from '../../server/src/formats/pytorch';
import { openCheckpoint, probeFile, readerFor } from '../../server/src/formats/registry';
import type { Checkpoint } from '../../server/src/formats/types';
import { inTempDir, tinyLlamaTensors } from '../fixtures/common';
import {
  encodeTorch,
  PickleWriter,
  statePickle,
  STORAGE_OF,
  tensorOps,
  writeTorchArchive,
  writeTorchCheckpoint,
  writeZip,
  type TensorSpec,
  type TorchFloat,
} from '../fixtures/pytorch';

const inTemp = (body: (dir: string) => Promise<void>) => inTempDir('quantlens-pt-', body);

async function withCheckpoint(file: string, body: (ck: Checkpoint) => Promise<void>): Promise<void> {
  const ck = await pytorchReader.open(file);
  try {
    await body(ck);
  } finally {
    await ck.close();
  }
}

/** Expect `promise` to fail with a located error of `code` whose message holds every part. */
async function rejectsWith(promise: Promise<unknown>, code: string, parts: string[], where: { file?: string; offset?: number; tensor?: string } = {}): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof QuantLensError, `expected a QuantLensError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const p of parts) assert.ok(e.message.includes(p), `message should contain ${JSON.stringify(p)}: ${e.message}`);
    if (where.file !== undefined) assert.equal(e.where.file, where.file);
    if ('offset' in where) assert.equal(e.where.offset, where.offset, e.message);
    if (where.tensor !== undefined) assert.equal(e.where.tensor, where.tensor);
    return true;
  });
}

const f32 = (values: number[]) => new Uint8Array(new Float32Array(values).buffer);
const fStorage = (key: string, numel: number) => ({ key, type: 'FloatStorage' as const, numel });

// ---------------------------------------------------------------------------------------------
// Round trips

for (const dtype of ['F32', 'F16', 'BF16'] as TorchFloat[]) {
  test(`round trip: tiny LLaMA state dict as ${dtype} reads back exactly`, async () => {
    await inTemp(async (dir) => {
      const file = path.join(dir, 'pytorch_model.bin');
      const fixture = tinyLlamaTensors();
      const layout = writeTorchCheckpoint(file, fixture, dtype);
      const bytes = readFileSync(file);
      const size = dtype === 'F32' ? 4 : 2;
      await withCheckpoint(file, async (ck) => {
        assert.equal(ck.format, 'pytorch');
        assert.deepEqual(ck.files, [file]);
        assert.deepEqual(ck.metadata, { archive: 'archive', version: '3', pickleProtocol: 2 });
        // Pickle (dict) order is kept.
        assert.deepEqual(ck.tensors.map((t) => t.name), fixture.map((t) => t.name));
        for (const [i, want] of fixture.entries()) {
          const t = ck.tensors[i];
          assert.equal(t.dtype, dtype);
          assert.deepEqual(t.shape, want.shape);
          assert.equal(t.params, want.data.length);
          assert.equal(t.file, file);
          assert.equal(t.storage, 'zip');
          assert.equal(t.analyzable, true);
          assert.equal(t.reason, undefined);
          // The byte range is where the zip writer put storage i, and holds exactly the encoded values.
          assert.equal(t.byteOffset, layout.get(`archive/data/${i}`)!.dataOffset);
          assert.equal(t.byteOffset % 64, 0, 'torch-style 64-byte alignment');
          assert.equal(t.byteLength, want.data.length * size);
          assert.deepEqual(new Uint8Array(bytes.subarray(t.byteOffset, t.byteOffset + t.byteLength)), encodeTorch(want.data, dtype));
          assert.deepEqual(await ck.read(t.name), want.data);
        }
        const down = ck.tensors.find((t) => t.name === 'model.layers.1.mlp.down_proj.weight')!;
        assert.equal((await ck.read(down.name))[3 * 16 + 5], 8, 'planted super weight');
        assert.deepEqual(down.layer, { block: 'model.layers.1', layer: 'mlp.down_proj' });
        assert.equal(down.layout, 'out_in');
        const q = ck.tensors.find((t) => t.name === 'model.layers.0.self_attn.q_proj.weight')!;
        assert.deepEqual(q.layer, { block: 'model.layers.0', layer: 'self_attn.q_proj', fusedGroup: 'model.layers.0.self_attn.qkv' });
        assert.equal(ck.tensors.find((t) => t.name === 'model.embed_tokens.weight')!.layout, 'embedding');
        assert.equal(ck.tensors.find((t) => t.name === 'model.norm.weight')!.layout, 'vector');
      });
    });
  });
}

test('nested checkpoints: {state_dict}, {model}, {module}, {model: {module}} unwrap to HF names; scalars kept', async () => {
  await inTemp(async (dir) => {
    const fixture = tinyLlamaTensors();
    for (const wrap of [['state_dict'], ['model'], ['module'], ['model', 'module']]) {
      const file = path.join(dir, `${wrap.join('-')}.pt`);
      writeTorchCheckpoint(file, fixture, 'F16', { wrap, extra: { epoch: 3, arch: 'llama', step: 2 ** 40 } });
      await withCheckpoint(file, async (ck) => {
        assert.deepEqual(ck.tensors.map((t) => t.name), fixture.map((t) => t.name), wrap.join('.'));
        assert.equal(ck.metadata.stateDictKey, wrap.join('.'));
        assert.deepEqual(ck.metadata.scalars, { epoch: 3, arch: 'llama', step: 2 ** 40 });
        assert.deepEqual(await ck.read('lm_head.weight'), fixture[fixture.length - 1].data);
      });
    }
    // Long strings stay out of the metadata.
    const blob = path.join(dir, 'blob.pt');
    writeTorchCheckpoint(blob, fixture.slice(0, 1), 'F32', { wrap: ['state_dict'], extra: { note: 'x'.repeat(2000), epoch: 1 } });
    await withCheckpoint(blob, async (ck) => assert.deepEqual(ck.metadata.scalars, { epoch: 1 }));
  });
});

test('wrappers: unwrapped when tensors lie deeper; a dict holding tensors itself is never unwrapped', async () => {
  await inTemp(async (dir) => {
    const t = (key: string): TensorSpec => ({ name: '', storage: fStorage(key, 1), shape: [1] });
    const storages = [{ key: '0', bytes: f32([1]) }, { key: '1', bytes: f32([2]) }];
    // {'model': {'encoder': {'layer': OrderedDict{'w': t0}}}, 'optimizer': {'m': t1}}
    const deep = path.join(dir, 'deep.pt');
    const w = new PickleWriter().proto(2).emptyDict().mark();
    w.str('model').emptyDict().str('encoder').emptyDict().str('layer').orderedDict().str('w');
    tensorOps(w, t('0')).raw(0x73, 0x73, 0x73);
    w.str('optimizer').emptyDict().str('m');
    tensorOps(w, t('1')).raw(0x73, 0x75);
    writeTorchArchive(deep, w.stop(), storages);
    await withCheckpoint(deep, async (ck) => {
      assert.deepEqual(ck.tensors.map((x) => x.name), ['encoder.layer.w']);
      assert.equal(ck.metadata.stateDictKey, 'model');
    });
    // {'lm_head.weight': t1, 'model': {'w': t0}}: a state dict with a nested entry, kept whole.
    const flat = path.join(dir, 'flat.pt');
    const v = new PickleWriter().proto(2).orderedDict().mark();
    tensorOps(v.str('lm_head.weight'), t('1'));
    v.str('model').emptyDict().str('w');
    tensorOps(v, t('0')).raw(0x73, 0x75);
    writeTorchArchive(flat, v.stop(), storages);
    await withCheckpoint(flat, async (ck) => {
      assert.deepEqual(ck.tensors.map((x) => x.name), ['lm_head.weight', 'model.w']);
      assert.equal(ck.metadata.stateDictKey, undefined);
      assert.deepEqual([...(await ck.read('model.w'))], [1]);
    });
  });
});

test('other nested dicts and lists flatten with "." (dict order, shared tensors listed under each name)', async () => {
  await inTemp(async (dir) => {
    const file = path.join(dir, 'nested.pt');
    const t0: TensorSpec = { name: '', storage: fStorage('0', 2), shape: [2] };
    const t1: TensorSpec = { name: '', storage: fStorage('1', 1), shape: [1] };
    // {'encoder': OrderedDict{'layer.0.weight': t0}, 'heads': [t1, t0]}
    const w = new PickleWriter().proto(2).emptyDict().mark();
    w.str('encoder').orderedDict().str('layer.0.weight');
    tensorOps(w, t0).raw(0x73); // SETITEM
    w.str('heads').raw(0x5d).mark(); // EMPTY_LIST, MARK
    tensorOps(w, t1);
    tensorOps(w, t0).raw(0x65); // APPENDS
    w.raw(0x75); // SETITEMS
    writeTorchArchive(file, w.stop(), [
      { key: '0', bytes: f32([1.5, -2]) },
      { key: '1', bytes: f32([0.25]) },
    ]);
    await withCheckpoint(file, async (ck) => {
      assert.deepEqual(ck.tensors.map((t) => t.name), ['encoder.layer.0.weight', 'heads.0', 'heads.1']);
      assert.equal(ck.metadata.stateDictKey, undefined);
      assert.deepEqual([...(await ck.read('encoder.layer.0.weight'))], [1.5, -2]);
      assert.deepEqual([...(await ck.read('heads.0'))], [0.25]);
      assert.deepEqual([...(await ck.read('heads.1'))], [1.5, -2]);
    });
  });
});

test('views: tensors at storage offsets share one storage; transposed views are listed, not analyzable', async () => {
  await inTemp(async (dir) => {
    const file = path.join(dir, 'views.pt');
    const values = Array.from({ length: 24 }, (_, i) => i / 8 - 1);
    const st = fStorage('0', 24);
    const specs: TensorSpec[] = [
      { name: 'a', storage: st, offset: 0, shape: [8] },
      { name: 'b', storage: st, offset: 8, shape: [2, 8] },
      { name: 'row', storage: st, offset: 5, shape: [1, 3], stride: [99, 1] }, // size-1 dims may have any stride
      { name: 'at', storage: st, offset: 0, shape: [4, 2], stride: [1, 4] }, // a transposed view
    ];
    const layout = writeTorchArchive(file, statePickle(specs), [{ key: '0', bytes: f32(values) }]);
    const data = layout.get('archive/data/0')!.dataOffset;
    await withCheckpoint(file, async (ck) => {
      const [a, b, row, at] = ck.tensors;
      assert.deepEqual([a.byteOffset, a.byteLength], [data, 32]);
      assert.deepEqual([b.byteOffset, b.byteLength], [data + 8 * 4, 64]);
      assert.deepEqual([row.byteOffset, row.byteLength], [data + 5 * 4, 12]);
      assert.deepEqual([...(await ck.read('a'))], values.slice(0, 8));
      assert.deepEqual([...(await ck.read('b'))], values.slice(8, 24));
      assert.deepEqual([...(await ck.read('row'))], values.slice(5, 8));
      assert.equal(at.analyzable, false);
      assert.match(at.reason!, /non-contiguous view \(stride \[1, 4\] for shape \[4, 2\], contiguous is \[2, 1\]\)/);
      await rejectsWith(ck.read('at'), 'not-analyzable', ['non-contiguous'], { tensor: 'at' });
      // Range reads of a view start at its storage offset.
      assert.deepEqual([...(await ck.read('b', { start: 3, count: 5 }))], values.slice(11, 16));
    });
  });
});

test('range reads return exactly the requested slice; bad ranges and names are located errors', async () => {
  await inTemp(async (dir) => {
    const file = path.join(dir, 'm.pt');
    const fixture = tinyLlamaTensors();
    writeTorchCheckpoint(file, fixture, 'F16');
    const want = fixture.find((t) => t.name === 'model.layers.0.mlp.gate_proj.weight')!.data;
    const ck = await pytorchReader.open(file);
    assert.deepEqual(await ck.read('model.layers.0.mlp.gate_proj.weight', { start: 5, count: 7 }), want.slice(5, 12));
    assert.deepEqual(await ck.read('model.layers.0.mlp.gate_proj.weight', { start: 127, count: 1 }), want.slice(127));
    assert.deepEqual(await ck.read('model.layers.0.mlp.gate_proj.weight', { start: 128, count: 0 }), new Float32Array(0));
    await rejectsWith(ck.read('model.layers.0.mlp.gate_proj.weight', { start: 120, count: 9 }), 'bad-range', ['120+9', '128 elements']);
    await rejectsWith(ck.read('nope'), 'unknown-tensor', ['"nope"'], { file, tensor: 'nope' });
    await ck.close();
    await ck.close();
    await rejectsWith(ck.read('model.norm.weight'), 'closed', ['closed']);
  });
});

test('dtypes: FP8 via _rebuild_tensor_v3 decodes; integer storages are listed, not analyzed', async () => {
  await inTemp(async (dir) => {
    const file = path.join(dir, 'fp8.pt');
    const specs: TensorSpec[] = [
      { name: 'w8', storage: { key: '0', type: 'UntypedStorage', numel: 4 }, shape: [2, 2], v3dtype: 'float8_e4m3fn' },
      { name: 'ids', storage: { key: '1', type: 'LongStorage', numel: 2 }, shape: [2] },
      { name: 'w64', storage: { key: '2', type: 'DoubleStorage', numel: 1 }, shape: [] },
    ];
    const ids = new Uint8Array(new BigInt64Array([7n, -1n]).buffer);
    const layout = writeTorchArchive(file, statePickle(specs), [
      { key: '0', bytes: Uint8Array.of(0x38, 0x40, 0xc4, 0x01) }, // E4M3: 1, 2, -3, 2^-9
      { key: '1', bytes: ids },
      { key: '2', bytes: new Uint8Array(new Float64Array([-0.125]).buffer) },
    ]);
    await withCheckpoint(file, async (ck) => {
      const [w8, idt, w64] = ck.tensors;
      assert.deepEqual([w8.dtype, w8.byteLength, w8.analyzable], ['F8_E4M3', 4, true]);
      assert.equal(w8.byteOffset, layout.get('archive/data/0')!.dataOffset);
      assert.deepEqual([...(await ck.read('w8'))], [1, 2, -3, 2 ** -9]);
      assert.deepEqual([idt.dtype, idt.analyzable, idt.reason], ['I64', false, 'int64 tensor: listed, not analyzed']);
      assert.deepEqual([w64.dtype, w64.shape, w64.params, w64.layout], ['F64', [], 1, 'vector']);
      assert.deepEqual([...(await ck.read('w64'))], [-0.125]);
    });
  });
});

test('archive prefix is read from the data.pkl entry (any folder name)', async () => {
  await inTemp(async (dir) => {
    const file = path.join(dir, 'ckpt.pth');
    const fixture = tinyLlamaTensors().slice(0, 3);
    writeTorchCheckpoint(file, fixture, 'F32', { prefix: 'my_model-v2' });
    await withCheckpoint(file, async (ck) => {
      assert.equal(ck.metadata.archive, 'my_model-v2');
      assert.deepEqual(await ck.read(fixture[2].name), fixture[2].data);
    });
  });
});

test('byteorder: little is recorded; big-endian storages are listed, not analyzable', async () => {
  await inTemp(async (dir) => {
    const fixture = tinyLlamaTensors().slice(0, 2);
    const little = path.join(dir, 'little.pt');
    writeTorchCheckpoint(little, fixture, 'F32', { byteorder: 'little' });
    await withCheckpoint(little, async (ck) => {
      assert.equal(ck.metadata.byteorder, 'little');
      assert.deepEqual(await ck.read(fixture[1].name), fixture[1].data);
    });
    const big = path.join(dir, 'big.pt');
    writeTorchCheckpoint(big, fixture, 'F32', { byteorder: 'big' });
    await withCheckpoint(big, async (ck) => {
      assert.equal(ck.tensors[0].analyzable, false);
      assert.match(ck.tensors[0].reason!, /big-endian/);
    });
    const odd = path.join(dir, 'odd.pt');
    writeTorchCheckpoint(odd, fixture, 'F32', { byteorder: 'middle' });
    await rejectsWith(pytorchReader.open(odd), 'bad-entry', ["byteorder must be 'little' or 'big'", '"middle"']);
  });
});

test('zip64 archives and offsets past 4 GiB: a sparse file reads back exactly', async () => {
  await inTemp(async (dir) => {
    const file = path.join(dir, 'huge.pt');
    const hole = 4 * 2 ** 30 + 4096; // > 4 GiB of zeros, never written
    const small = [0.5, -0.75, 3, 1e-3];
    const specs: TensorSpec[] = [
      { name: 'big', storage: fStorage('0', hole / 4), shape: [hole / 4] },
      { name: 'small', storage: fStorage('1', 4), shape: [2, 2] },
    ];
    const layout = writeTorchArchive(file, statePickle(specs), [{ key: '0', hole }, { key: '1', bytes: f32(small) }], { zip64: true });
    const at = layout.get('archive/data/1')!.dataOffset;
    assert.ok(at > 2 ** 32);
    await withCheckpoint(file, async (ck) => {
      const [big, sm] = ck.tensors;
      assert.equal(big.params, hole / 4);
      assert.equal(big.byteLength, hole);
      assert.equal(sm.byteOffset, at);
      assert.deepEqual([...(await ck.read('small'))], [...new Float32Array(small)]);
      assert.deepEqual([...(await ck.read('big', { start: hole / 4 - 3, count: 3 }))], [0, 0, 0]);
    });
  });
});

test('sharded: pytorch_model.bin.index.json + 2 shards, through the registry (file and folder)', async () => {
  await inTemp(async (dir) => {
    const fixture = tinyLlamaTensors();
    const half = 10;
    writeTorchCheckpoint(path.join(dir, 'pytorch_model-00001-of-00002.bin'), fixture.slice(0, half), 'F16');
    writeTorchCheckpoint(path.join(dir, 'pytorch_model-00002-of-00002.bin'), fixture.slice(half), 'F16');
    const weightMap = Object.fromEntries(fixture.map((t, i) => [t.name, `pytorch_model-0000${i < half ? 1 : 2}-of-00002.bin`]));
    const index = path.join(dir, 'pytorch_model.bin.index.json');
    writeFileSync(index, JSON.stringify({ metadata: { total_size: 1234 }, weight_map: weightMap }));
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ architectures: ['LlamaForCausalLM'], model_type: 'llama', num_hidden_layers: 2 }));
    assert.equal(await readerFor(index), pytorchReader);
    for (const target of [index, dir]) {
      const ck = await openCheckpoint(target);
      try {
        assert.equal(ck.format, 'pytorch');
        assert.equal(ck.files.length, 3);
        assert.deepEqual(ck.metadata, { total_size: 1234 });
        assert.deepEqual(ck.tensors.map((t) => t.name).sort(), fixture.map((t) => t.name).sort());
        assert.ok(ck.tensors.every((t) => t.storage === 'shard'));
        for (const want of fixture) assert.deepEqual(await ck.read(want.name), want.data);
        if (target === dir) assert.equal(ck.config?.modelType, 'llama');
      } finally {
        await ck.close();
      }
    }
  });
});

test('sharded: path escapes, symlinks out of the folder, missing shards and index/shard disagreements', async () => {
  await inTemp(async (dir) => {
    const inner = path.join(dir, 'model');
    mkdirSync(inner);
    const fixture = tinyLlamaTensors().slice(0, 2);
    writeTorchCheckpoint(path.join(dir, 'outside.bin'), fixture, 'F32');
    writeTorchCheckpoint(path.join(inner, 'shard.bin'), fixture, 'F32');
    symlinkSync(path.join(dir, 'outside.bin'), path.join(inner, 'link.bin'));
    const index = path.join(inner, 'pytorch_model.bin.index.json');
    const write = (map: Record<string, string>) => writeFileSync(index, JSON.stringify({ weight_map: map }));
    const [n0, n1] = fixture.map((t) => t.name);
    write({ [n0]: '../outside.bin', [n1]: 'shard.bin' });
    await rejectsWith(pytorchReader.open(index), 'path-escape', ['"../outside.bin"', "without '..'"], { tensor: n0 });
    write({ [n0]: '/etc/passwd', [n1]: 'shard.bin' });
    await rejectsWith(pytorchReader.open(index), 'path-escape', ['/etc/passwd']);
    write({ [n0]: 'link.bin', [n1]: 'link.bin' });
    await rejectsWith(pytorchReader.open(index), 'path-escape', ['not inside the index folder']);
    write({ [n0]: 'missing.bin', [n1]: 'shard.bin' });
    await rejectsWith(pytorchReader.open(index), 'not-found', ['"missing.bin"']);
    write({ [n0]: 'shard.bin' });
    await rejectsWith(pytorchReader.open(index), 'index-mismatch', ['does not map it'], { tensor: n1 });
    write({ [n0]: 'shard.bin', [n1]: 'shard.bin', extra: 'shard.bin' });
    await rejectsWith(pytorchReader.open(index), 'index-mismatch', ['the shard does not hold it'], { tensor: 'extra' });
    writeFileSync(index, '{"weight_map": ');
    await rejectsWith(pytorchReader.open(index), 'bad-json', ['invalid JSON']);
  });
});

// ---------------------------------------------------------------------------------------------
// Sniffing and unsupported forms

test('match: torch zips and the legacy magic match; plain zips and other files do not', async () => {
  await inTemp(async (dir) => {
    const probe = async (name: string, bytes?: Uint8Array) => {
      const file = path.join(dir, name);
      if (bytes) writeFileSync(file, bytes);
      return pytorchReader.match(await probeFile(file));
    };
    writeTorchCheckpoint(path.join(dir, 'a.data'), tinyLlamaTensors().slice(0, 1), 'F32');
    assert.equal(await probe('a.data'), true, 'sniffed by the first entry name, not the extension');
    writeZip(path.join(dir, 'notes.zip'), [{ name: 'readme.txt', data: new TextEncoder().encode('hi') }]);
    assert.equal(await probe('notes.zip'), false);
    writeZip(path.join(dir, 'data.zip'), [{ name: 'dataset/data.csv', data: new TextEncoder().encode('1,2') }]);
    assert.equal(await probe('data.zip'), false);
    assert.equal(await probe('legacy.bin', legacyBytes()), true);
    assert.equal(await probe('x.bin', new TextEncoder().encode('not a checkpoint at all')), false);
    assert.equal(await probe('empty.pt', new Uint8Array(0)), false);
    assert.equal(await probe('short.pt', Uint8Array.of(0x50, 0x4b, 3, 4)), false);
    writeFileSync(path.join(dir, 'idx.json'), JSON.stringify({ weight_map: { a: 'model.safetensors' } }));
    assert.equal(await probe('idx.json'), false);
    writeTorchCheckpoint(path.join(dir, 'model.pt'), tinyLlamaTensors().slice(0, 1), 'F32');
    assert.equal(await readerFor(path.join(dir, 'model.pt')), pytorchReader);
  });
});

/** What torch.save(..., _use_new_zipfile_serialization=False) starts with: PROTO 2, LONG1 10 bytes of 0x1950a86a20f9469cfc6c, STOP. */
function legacyBytes(): Uint8Array {
  const magic = 0x1950a86a20f9469cfc6cn;
  const le = Array.from({ length: 10 }, (_, i) => Number((magic >> BigInt(8 * i)) & 0xffn));
  return Uint8Array.from([0x80, 0x02, 0x8a, 0x0a, ...le, 0x2e, 0x80, 0x02, 0x4d, 0xe9, 0x03, 0x2e]);
}

test('legacy (non-zip) torch files are refused with how to convert them', async () => {
  await inTemp(async (dir) => {
    const file = path.join(dir, 'old.pt');
    writeFileSync(file, legacyBytes());
    assert.equal(await readerFor(file), pytorchReader);
    await rejectsWith(
      pytorchReader.open(file),
      'legacy-format',
      ['unsupported legacy (pre-1.6, non-zip) PyTorch format: re-save with torch.save(..., _use_new_zipfile_serialization=True)'],
      { file, offset: 0 },
    );
  });
});

test('zips that are not torch checkpoints, TorchScript archives and corrupt zips give clear errors', async () => {
  await inTemp(async (dir) => {
    const plain = path.join(dir, 'weights.bin');
    writeZip(plain, [{ name: 'readme.txt', data: new TextEncoder().encode('hi') }]);
    assert.equal(pytorchReader.match(await probeFile(plain)), true, 'a zip named like a torch file is claimed, then explained');
    await rejectsWith(pytorchReader.open(plain), 'not-pytorch', ['no data.pkl entry']);

    const script = path.join(dir, 'scripted.pt');
    writeZip(script, [
      { name: 'archive/data.pkl', data: statePickle([]) },
      { name: 'archive/constants.pkl', data: statePickle([]) },
      { name: 'archive/code/__torch__.py', data: new TextEncoder().encode('') },
    ]);
    await rejectsWith(pytorchReader.open(script), 'unsupported', ['TorchScript', 'state_dict']);

    const two = path.join(dir, 'two.pt');
    writeZip(two, [{ name: 'a/data.pkl', data: statePickle([]) }, { name: 'b/data.pkl', data: statePickle([]) }]);
    await rejectsWith(pytorchReader.open(two), 'bad-zip', ['2 data.pkl entries']);

    const empty = path.join(dir, 'empty.pt');
    writeTorchArchive(empty, statePickle([]), []);
    await rejectsWith(pytorchReader.open(empty), 'no-tensors', ['holds no tensors', 'dict of 0']);

    // Truncated: the end of central directory record is gone.
    const good = path.join(dir, 'good.pt');
    writeTorchCheckpoint(good, tinyLlamaTensors().slice(0, 2), 'F32');
    const cut = path.join(dir, 'cut.pt');
    const bytes = readFileSync(good);
    writeFileSync(cut, bytes.subarray(0, bytes.length - 30));
    await rejectsWith(pytorchReader.open(cut), 'bad-zip', ['cannot read the zip directory'], { file: cut });

    // An end record that claims 65535 entries in a small file.
    const liar = path.join(dir, 'liar.pt');
    const lie = Uint8Array.from(bytes);
    const eocd = lie.length - 22;
    lie[eocd + 8] = lie[eocd + 9] = lie[eocd + 10] = lie[eocd + 11] = 0xff;
    writeFileSync(liar, lie);
    await rejectsWith(pytorchReader.open(liar), 'bad-zip', ['declares 65535 entries']);

    // A flipped byte inside the stored data.pkl fails its CRC.
    const flipped = path.join(dir, 'flipped.pt');
    const layout = writeTorchCheckpoint(flipped, tinyLlamaTensors().slice(0, 2), 'F32');
    const fb = readFileSync(flipped);
    const pkl = layout.get('archive/data.pkl')!;
    const nameAt = fb.indexOf('model.embed_tokens.weight', pkl.dataOffset);
    fb[nameAt] ^= 0x20;
    writeFileSync(flipped, fb);
    await rejectsWith(pytorchReader.open(flipped), 'bad-zip', ['CRC-32'], { offset: pkl.dataOffset });

    // A local header that names another file than its central directory record (ambiguous archive).
    const renamed = path.join(dir, 'renamed.pt');
    const l2 = writeTorchCheckpoint(renamed, tinyLlamaTensors().slice(0, 2), 'F32');
    const rb = readFileSync(renamed);
    const h = l2.get('archive/data/1')!.headerOffset;
    rb[h + 30 + 'archive/data/'.length] = 'X'.charCodeAt(0);
    writeFileSync(renamed, rb);
    await rejectsWith(pytorchReader.open(renamed), 'bad-zip', ['local header names "archive/data/X"', '"archive/data/1"'], { offset: h });
  });
});

test('storages: missing entries, size mismatches and views past the storage end are located', async () => {
  await inTemp(async (dir) => {
    const missing = path.join(dir, 'missing.pt');
    writeTorchArchive(missing, statePickle([{ name: 'w', storage: fStorage('5', 2), shape: [2] }]), [{ key: '0', bytes: f32([1, 2]) }]);
    await rejectsWith(pytorchReader.open(missing), 'missing-storage', ['storage "5"', 'archive/data/5'], { tensor: 'w' });

    const mismatch = path.join(dir, 'mismatch.pt');
    const l1 = writeTorchArchive(mismatch, statePickle([{ name: 'w', storage: fStorage('0', 10), shape: [2] }]), [{ key: '0', bytes: f32([1, 2]) }]);
    await rejectsWith(pytorchReader.open(mismatch), 'storage-size-mismatch', ['declares 10 × 4 bytes', 'holds 8'], {
      tensor: 'w',
      offset: l1.get('archive/data/0')!.dataOffset,
    });

    const past = path.join(dir, 'past.pt');
    writeTorchArchive(past, statePickle([{ name: 'v', storage: fStorage('0', 4), offset: 2, shape: [3] }]), [{ key: '0', bytes: f32([1, 2, 3, 4]) }]);
    await rejectsWith(pytorchReader.open(past), 'out-of-range', ['offset 2, shape [3]', 'needs 20 bytes', 'holds 16'], { tensor: 'v' });

    const strided = path.join(dir, 'strided.pt');
    writeTorchArchive(strided, statePickle([{ name: 'v', storage: fStorage('0', 4), shape: [2, 2], stride: [3, 1] }]), [{ key: '0', bytes: f32([1, 2, 3, 4]) }]);
    await rejectsWith(pytorchReader.open(strided), 'out-of-range', ['stride [3, 1]', 'needs 20 bytes'], { tensor: 'v' });

    const dup = path.join(dir, 'dup.pt');
    const w = new PickleWriter().proto(2).emptyDict().mark();
    w.str('a.b');
    tensorOps(w, { name: '', storage: fStorage('0', 1), shape: [1] });
    w.str('a').emptyDict().str('b');
    tensorOps(w, { name: '', storage: fStorage('0', 1), shape: [1] }).raw(0x73).raw(0x75);
    writeTorchArchive(dup, w.stop(), [{ key: '0', bytes: f32([1]) }]);
    await rejectsWith(pytorchReader.open(dup), 'duplicate-tensor', ['"a.b"'], { tensor: 'a.b' });
  });
});

test('compressed entries: a deflated data.pkl is read; a deflated storage is listed, not analyzable', async () => {
  await inTemp(async (dir) => {
    const fixture = tinyLlamaTensors().slice(0, 3);
    const file = path.join(dir, 'deflated.pt');
    writeTorchCheckpoint(file, fixture, 'F32', { deflate: ['data.pkl', 'data/1'] });
    await withCheckpoint(file, async (ck) => {
      assert.deepEqual(await ck.read(fixture[0].name), fixture[0].data);
      const t = ck.tensors[1];
      assert.equal(t.analyzable, false);
      assert.match(t.reason!, /archive\/data\/1 is compressed in the zip \(method 8\)/);
      await rejectsWith(ck.read(t.name), 'not-analyzable', ['compressed']);
    });
  });
});

test('zip bomb: data.pkl declaring a huge size is refused before inflating; one inflating past its size is refused', async () => {
  await inTemp(async (dir) => {
    const fixture = tinyLlamaTensors().slice(0, 1);
    const declared = path.join(dir, 'declared.pt');
    const l1 = writeTorchCheckpoint(declared, fixture, 'F32', { deflate: ['data.pkl'], pklDeclaredSize: 0xf0000000 });
    await rejectsWith(
      pytorchReader.open(declared),
      'too-large',
      [`declares ${0xf0000000} bytes uncompressed`, `limit of ${LIMITS.maxHeaderBytes}`, 'zip bomb'],
      { offset: l1.get('archive/data.pkl')!.headerOffset },
    );
    const z64 = path.join(dir, 'zip64.pt');
    writeTorchCheckpoint(z64, fixture, 'F32', { deflate: ['data.pkl'], pklDeclaredSize: 2 ** 40, zip64: true });
    await rejectsWith(pytorchReader.open(z64), 'too-large', [`declares ${2 ** 40} bytes`]);

    // Declares 100 bytes, inflates to a megabyte (a pickle padded with a 1 MB BINBYTES).
    const liar = path.join(dir, 'liar.pt');
    const pkl = statePickle([{ name: 'w', storage: fStorage('0', 1), shape: [1] }]);
    // PROTO 2, BINBYTES of 0x100000 zero bytes, POP, then the state dict's opcodes after its PROTO.
    const padded = new Uint8Array(2 + 5 + 0x100000 + 1 + pkl.length - 2);
    padded.set([0x80, 2, 0x42, 0, 0, 0x10, 0]);
    padded[7 + 0x100000] = 0x30;
    padded.set(pkl.subarray(2), 8 + 0x100000);
    writeTorchArchive(liar, padded, [{ key: '0', bytes: f32([1]) }], { deflate: ['data.pkl'], pklDeclaredSize: 100 });
    await rejectsWith(pytorchReader.open(liar), 'too-large', ['inflates to more than its declared 100 bytes']);
  });
});

test('security: a checkpoint whose data.pkl calls os.system is refused at the opcode; no side effect', async () => {
  await inTemp(async (dir) => {
    const marker = path.join(dir, 'pwned');
    const cmd = new TextEncoder().encode(`touch ${marker}`);
    // GLOBAL 'os' 'system', BINUNICODE cmd, TUPLE1, REDUCE, STOP
    const evil = Uint8Array.from([0x80, 2, 0x63, ...new TextEncoder().encode('os\nsystem\n'), 0x58, cmd.length, 0, 0, 0, ...cmd, 0x85, 0x52, 0x2e]);
    const stored = path.join(dir, 'evil.pt');
    const layout = writeTorchArchive(stored, evil, []);
    await rejectsWith(pytorchReader.open(stored), 'forbidden-global', ['forbidden pickle global os.system', 'archive/data.pkl byte 2'], {
      file: stored,
      offset: layout.get('archive/data.pkl')!.dataOffset + 2,
    });
    // Deflated: the byte offset is within data.pkl only (there is no absolute offset for it).
    const deflated = path.join(dir, 'evil-deflated.pt');
    writeTorchArchive(deflated, evil, [], { deflate: ['data.pkl'] });
    await rejectsWith(pytorchReader.open(deflated), 'forbidden-global', ['os.system', 'archive/data.pkl byte 2'], { offset: undefined });
    await assert.rejects(openCheckpoint(dir));
    assert.equal(existsSync(marker), false);
  });
});

// ---------------------------------------------------------------------------------------------
// Optional independent cross-check with CPython (pickletools + zipfile), only where python3 exists.

const hasPython = spawnSync('python3', ['--version']).status === 0;

const PY_CHECK = `
import json, pickle, pickletools, struct, sys, zipfile, io
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
pkl = z.read('archive/data.pkl')
pickletools.dis(pkl, out=io.StringIO())
class Stub:
    def __init__(self, name): self.name = name
def rebuild(storage, offset, size, stride, *rest):
    return {'storage': storage, 'offset': offset, 'size': list(size), 'stride': list(stride)}
class U(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ('collections', 'OrderedDict'):
            import collections
            return collections.OrderedDict
        if (module, name) == ('torch._utils', '_rebuild_tensor_v2'):
            return rebuild
        if module == 'torch' and name.endswith('Storage'):
            return Stub(name)
        raise pickle.UnpicklingError('forbidden ' + module + '.' + name)
    def persistent_load(self, pid):
        tag, cls, key, loc, numel = pid
        info = z.getinfo('archive/data/' + key)
        with open(sys.argv[1], 'rb') as f:
            f.seek(info.header_offset)
            h = f.read(30)
            n, m = struct.unpack('<HH', h[26:30])
        return [cls.name, key, numel, info.header_offset + 30 + n + m, info.file_size]
sd = U(io.BytesIO(pkl)).load()
print(json.dumps({k: v for k, v in sd.items()}))
`;

if (hasPython) {
  test('cross-check with python3 (found on this machine): zipfile + pickletools + a stub unpickler agree with the reader', async () => {
    await inTemp(async (dir) => {
      for (const zip64 of [false, true]) {
        const file = path.join(dir, `x${zip64 ? '64' : ''}.pt`);
        const fixture = tinyLlamaTensors();
        writeTorchCheckpoint(file, fixture, 'BF16', { zip64 });
        const r = spawnSync('python3', ['-c', PY_CHECK, file], { encoding: 'utf8' });
        assert.equal(r.status, 0, r.stderr);
        const py = JSON.parse(r.stdout) as Record<string, { storage: [string, string, number, number, number]; offset: number; size: number[]; stride: number[] }>;
        await withCheckpoint(file, async (ck) => {
          assert.deepEqual(Object.keys(py), ck.tensors.map((t) => t.name));
          for (const t of ck.tensors) {
            const p = py[t.name];
            assert.equal(p.storage[0], STORAGE_OF.BF16);
            assert.deepEqual(p.size, t.shape);
            assert.equal(p.storage[2], t.params);
            assert.equal(p.storage[3] + p.offset * 2, t.byteOffset);
            assert.equal(p.storage[4], t.byteLength);
          }
        });
      }
    });
  });
}
