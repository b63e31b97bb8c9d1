import assert from 'node:assert/strict';
import { closeSync, mkdirSync, openSync, readFileSync, statSync, symlinkSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { LIMITS, QuantLensError } from '../../server/src/formats/errors';
import { probeFile, openCheckpoint, readerFor } from '../../server/src/formats/registry';
import { safetensorsReader } from '../../server/src/formats/safetensors';
import type { Checkpoint } from '../../server/src/formats/types';
import { inTempDir, tinyLlamaTensors } from '../fixtures/common';
import {
  encodeFloats,
  layoutTensors,
  safetensorsBytes,
  writeFixtureSafetensors,
  writeSafetensors,
  writeShardedSafetensors,
  type FloatDType,
} from '../fixtures/safetensors';

/** Run `body` with a fresh temp folder, removed afterwards. */
const inTemp = (body: (dir: string) => Promise<void>) => inTempDir('quantlens-st-', body);

async function withCheckpoint(file: string, body: (ck: Checkpoint) => Promise<void>): Promise<void> {
  const ck = await safetensorsReader.open(file);
  try {
    await body(ck);
  } finally {
    await ck.close();
  }
}

/** Data buffer start of a written file, from the header length the fixture writer stored. */
function dataStartOf(file: string): number {
  const b = readFileSync(file);
  return 8 + Number(b.readBigUInt64LE(0));
}

/** Expect `open(file)` to fail with a located error at `at` (default: the file itself) containing every `parts` string. */
async function rejectsLocated(file: string, code: string, parts: string[], at = file): Promise<void> {
  await assert.rejects(safetensorsReader.open(file), (e: unknown) => {
    assert.ok(e instanceof QuantLensError, `expected a QuantLensError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.ok(e.message.startsWith(at), `message should start with ${at}: ${e.message}`);
    for (const p of parts) assert.ok(e.message.includes(p), `message should contain ${JSON.stringify(p)}: ${e.message}`);
    return true;
  });
}

const f32 = (values: number[]) => encodeFloats(new Float32Array(values), 'F32');

for (const dtype of ['F32', 'F16', 'BF16'] as FloatDType[]) {
  test(`round trip: tiny LLaMA written as ${dtype} reads back exactly`, async () => {
    await inTemp(async (dir) => {
      const file = path.join(dir, 'model.safetensors');
      const fixture = tinyLlamaTensors();
      writeFixtureSafetensors(file, fixture, dtype, { format: 'pt', note: 'é ü' });
      await withCheckpoint(file, async (ck) => {
        assert.equal(ck.format, 'safetensors');
        assert.deepEqual(ck.files, [file]);
        assert.deepEqual(ck.metadata, { format: 'pt', note: 'é ü' });
        assert.deepEqual(ck.tensors.map((t) => t.name).sort(), fixture.map((t) => t.name).sort());
        const bytes = readFileSync(file);
        const size = dtype === 'F32' ? 4 : 2;
        for (const want of fixture) {
          const t = ck.tensors.find((x) => x.name === want.name)!;
          assert.equal(t.dtype, dtype);
          assert.deepEqual(t.shape, want.shape);
          assert.equal(t.params, want.data.length);
          assert.equal(t.byteLength, want.data.length * size);
          assert.equal(t.analyzable, true);
          assert.equal(t.reason, undefined);
          assert.equal(t.file, file);
          // byteOffset is absolute: the bytes there are exactly what the writer encoded.
          assert.deepEqual(new Uint8Array(bytes.subarray(t.byteOffset, t.byteOffset + t.byteLength)), encodeFloats(want.data, dtype));
          assert.deepEqual(await ck.read(want.name), want.data);
        }
        const sw = await ck.read('model.layers.1.mlp.down_proj.weight');
        assert.equal(sw[3 * 16 + 5], 8); // the planted super weight
      });
    });
  });
}

test('FP8 and F64: hand-chosen bytes decode to hand-computed values', async () => {
  await inTemp(async (dir) => {
    const file = path.join(dir, 'fp8.safetensors');
    // E4M3 (bias 7, no inf): 0x38 = 1.0, 0x7E = 1.75·2^8 = 448, 0x01 = 1/8·2^-6 = 2^-9, 0xB8 = -1,
    // 0x08 = 2^-6 (smallest normal), 0x3C = 1.5, 0x7F = NaN, 0x00 = 0.
    const e4m3 = [0x38, 0x7e, 0x01, 0xb8, 0x08, 0x3c, 0x7f, 0x00];
    // E5M2 (bias 15): 0x3C = 1.0, 0x7B = 1.75·2^15 = 57344, 0x7C = +inf, 0x01 = 1/4·2^-14 = 2^-16,
    // 0xBC = -1, 0x3E = 1.5.
    const e5m2 = [0x3c, 0x7b, 0x7c, 0x01, 0xbc, 0x3e];
    const f64 = new Uint8Array(16);
    new DataView(f64.buffer).setFloat64(0, 0.1, true);
    new DataView(f64.buffer).setFloat64(8, -2.5, true);
    writeSafetensors(file, [
      { name: 'a', dtype: 'F8_E4M3', shape: [2, 4], bytes: new Uint8Array(e4m3) },
      { name: 'b', dtype: 'F8_E5M2', shape: [6], bytes: new Uint8Array(e5m2) },
      { name: 'c', dtype: 'F64', shape: [2], bytes: f64 },
    ]);
    await withCheckpoint(file, async (ck) => {
      assert.deepEqual([...(await ck.read('a'))], [1, 448, 2 ** -9, -1, 2 ** -6, 1.5, NaN, 0]);
      assert.deepEqual([...(await ck.read('b'))], [1, 57344, Infinity, 2 ** -16, -1, 1.5]);
      assert.deepEqual([...(await ck.read('c'))], [Math.fround(0.1), -2.5]);
      assert.deepEqual([...(await ck.read('a', { start: 1, count: 2 }))], [448, 2 ** -9]);
      assert.ok(ck.tensors.every((t) => t.analyzable));
      assert.equal(ck.tensors.find((t) => t.name === 'a')!.byteLength, 8);
    });
  });
});

test('integer and boolean tensors are listed but not analyzable', async () => {
  await inTemp(async (dir) => {
    const file = path.join(dir, 'ints.safetensors');
    const sizes: [string, number][] = [['I8', 1], ['U8', 1], ['I16', 2], ['U16', 2], ['I32', 4], ['U32', 4], ['I64', 8], ['U64', 8], ['BOOL', 1]];
    writeSafetensors(
      file,
      sizes.map(([dtype, size]) => ({ name: `ids.${dtype}`, dtype, shape: [3], bytes: new Uint8Array(3 * size) })),
    );
    await withCheckpoint(file, async (ck) => {
      assert.equal(ck.tensors.length, sizes.length);
      for (const [dtype, size] of sizes) {
        const t = ck.tensors.find((x) => x.name === `ids.${dtype}`)!;
        assert.equal(t.dtype, dtype);
        assert.equal(t.byteLength, 3 * size);
        assert.equal(t.analyzable, false);
        assert.equal(t.reason, dtype === 'BOOL' ? 'boolean tensor: listed, not analyzed' : 'integer tensor: listed, not analyzed');
      }
      await assert.rejects(ck.read('ids.I32'), (e: unknown) => e instanceof QuantLensError && e.message.includes('[ids.I32]'));
    });
  });
});

test('sharded: 3 shards + index round trip, through the registry (file and folder)', async () => {
  await inTemp(async (dir) => {
    const fixture = tinyLlamaTensors();
    const { index, shards, weightMap, totalSize } = writeShardedSafetensors(dir, fixture, 3, 'BF16');
    assert.deepEqual(shards, ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors']);
    for (const target of [index, dir]) {
      const ck = await openCheckpoint(target);
      try {
        assert.equal(ck.format, 'safetensors');
        assert.deepEqual(ck.files, [index, ...shards.map((s) => path.join(dir, s))]);
        assert.deepEqual(ck.metadata, { format: 'pt', total_size: totalSize });
        assert.equal(ck.tensors.length, fixture.length);
        for (const want of fixture) {
          const t = ck.tensors.find((x) => x.name === want.name)!;
          assert.equal(t.file, path.join(dir, weightMap[want.name]));
          assert.equal(t.storage, 'shard');
          assert.deepEqual(await ck.read(want.name), want.data);
        }
      } finally {
        await ck.close();
      }
    }
  });
});

test('range reads return exactly the requested slice', async () => {
  await inTemp(async (dir) => {
    const file = path.join(dir, 'm.safetensors');
    const fixture = tinyLlamaTensors();
    writeFixtureSafetensors(file, fixture, 'F16');
    const want = fixture.find((t) => t.name === 'model.embed_tokens.weight')!.data;
    await withCheckpoint(file, async (ck) => {
      assert.deepEqual(await ck.read('model.embed_tokens.weight', { start: 0, count: 8 }), want.slice(0, 8));
      assert.deepEqual(await ck.read('model.embed_tokens.weight', { start: 77, count: 50 }), want.slice(77, 127));
      assert.deepEqual(await ck.read('model.embed_tokens.weight', { start: 255, count: 1 }), want.slice(255, 256));
      assert.deepEqual(await ck.read('model.embed_tokens.weight', { start: 256, count: 0 }), new Float32Array(0));
      await assert.rejects(ck.read('model.embed_tokens.weight', { start: 250, count: 7 }), QuantLensError);
      await assert.rejects(ck.read('model.no_such.weight'), (e: unknown) => {
        assert.ok(e instanceof QuantLensError);
        assert.match(e.message, /m\.safetensors \[model\.no_such\.weight\]: no tensor named/);
        return true;
      });
    });
  });
});

test('layers, blocks, fused groups and layouts for LLaMA names', async () => {
  await inTemp(async (dir) => {
    const file = path.join(dir, 'm.safetensors');
    writeFixtureSafetensors(file, tinyLlamaTensors());
    await withCheckpoint(file, async (ck) => {
      const get = (n: string) => ck.tensors.find((t) => t.name === n)!;
      assert.deepEqual(get('model.layers.1.self_attn.k_proj.weight').layer, {
        block: 'model.layers.1',
        layer: 'self_attn.k_proj',
        fusedGroup: 'model.layers.1.self_attn.qkv',
      });
      assert.deepEqual(get('model.layers.0.mlp.up_proj.weight').layer, {
        block: 'model.layers.0',
        layer: 'mlp.up_proj',
        fusedGroup: 'model.layers.0.mlp.gate_up',
      });
      assert.deepEqual(get('model.layers.0.mlp.down_proj.weight').layer, { block: 'model.layers.0', layer: 'mlp.down_proj' });
      assert.deepEqual(get('model.layers.1.input_layernorm.weight').layer, { block: 'model.layers.1', layer: 'input_layernorm' });
      assert.deepEqual(get('lm_head.weight').layer, { block: '(root)', layer: 'lm_head' });
      assert.equal(get('model.embed_tokens.weight').layout, 'embedding');
      assert.equal(get('model.layers.0.self_attn.o_proj.weight').layout, 'out_in');
      assert.equal(get('model.norm.weight').layout, 'vector');
      const blocks = new Set(ck.tensors.map((t) => t.layer.block));
      assert.deepEqual([...blocks].sort(), ['(root)', 'model.layers.0', 'model.layers.1']);
    });
  });
});

test('match: sniffs bytes, not extensions', async () => {
  await inTemp(async (dir) => {
    const renamed = path.join(dir, 'weights.bin');
    writeFixtureSafetensors(renamed, tinyLlamaTensors().slice(0, 3));
    assert.equal(safetensorsReader.match(await probeFile(renamed)), true);
    assert.equal(await readerFor(renamed), safetensorsReader);

    // GGUF v3: magic, version, tensor count, KV count.
    const gguf = path.join(dir, 'm.safetensors');
    const g = Buffer.alloc(64);
    g.write('GGUF', 0, 'latin1');
    g.writeUInt32LE(3, 4);
    g.writeBigUInt64LE(1n, 8);
    writeFileSync(gguf, g);
    assert.equal(safetensorsReader.match(await probeFile(gguf)), false);

    // A zip local file header (PyTorch archives).
    const zip = path.join(dir, 'pytorch_model.bin');
    const z = Buffer.alloc(64);
    z.write('PK\x03\x04', 0, 'latin1');
    z.write('{', 8, 'latin1');
    writeFileSync(zip, z);
    assert.equal(safetensorsReader.match(await probeFile(zip)), false);

    // A header length larger than the file, and a tiny file.
    const short = path.join(dir, 'short.safetensors');
    writeFileSync(short, safetensorsBytes({ a: 1 }).subarray(0, 12));
    assert.equal(safetensorsReader.match(await probeFile(short)), false);
    writeFileSync(short, Buffer.from([2, 0, 0]));
    assert.equal(safetensorsReader.match(await probeFile(short)), false);

    // Index files: safetensors shards yes; PyTorch shards and plain configs no.
    const idx = path.join(dir, 'model.safetensors.index.json');
    writeFileSync(idx, JSON.stringify({ metadata: { total_size: 4 }, weight_map: { a: 'model-00001-of-00001.safetensors' } }));
    assert.equal(safetensorsReader.match(await probeFile(idx)), true);
    writeFileSync(idx, JSON.stringify({ weight_map: { a: 'pytorch_model-00001-of-00002.bin' } }));
    assert.equal(safetensorsReader.match(await probeFile(idx)), false);
    const cfg = path.join(dir, 'config.json');
    writeFileSync(cfg, JSON.stringify({ architectures: ['LlamaForCausalLM'], hidden_size: 8 }));
    assert.equal(safetensorsReader.match(await probeFile(cfg)), false);
  });
});

test('bad input: header length, truncation and invalid JSON give located errors', async () => {
  await inTemp(async (dir) => {
    const file = path.join(dir, 'bad.safetensors');
    const { header, data } = layoutTensors([{ name: 'w', dtype: 'F32', shape: [4], bytes: f32([1, 2, 3, 4]) }]);
    const good = safetensorsBytes(header, data);

    writeFileSync(file, good.subarray(0, 5));
    await rejectsLocated(file, 'truncated', ['@ byte 0', '5 bytes']);

    const beyond = Buffer.from(good);
    beyond.writeBigUInt64LE(BigInt(good.length), 0); // header claims more bytes than follow
    writeFileSync(file, beyond);
    await rejectsLocated(file, 'truncated', ['@ byte 0', `header length ${good.length}`]);

    beyond.writeBigUInt64LE(1n << 40n, 0);
    writeFileSync(file, beyond);
    await rejectsLocated(file, 'bad-header', ['@ byte 0', String(1n << 40n)]);

    // Truncated data: the last 4 bytes of w are gone.
    writeFileSync(file, good.subarray(0, good.length - 4));
    const start = 8 + Number(Buffer.from(good).readBigUInt64LE(0));
    await rejectsLocated(file, 'out-of-range', [`@ byte ${start} [w]`, 'data_offsets [0, 16]', 'data buffer of 12 bytes']);

    // Trailing comma: V8 gives no position here; the error points at byte 8 + 7.
    writeFileSync(file, safetensorsBytes('{"a":1,}'));
    await rejectsLocated(file, 'bad-json', ['@ byte 15', 'expected a double-quoted property name']);
    // Missing ':' after a non-ASCII key: offsets count UTF-8 bytes ("é" is 2), so 8 + 7.
    writeFileSync(file, safetensorsBytes('{"wé" 5}'));
    await rejectsLocated(file, 'bad-json', ['@ byte 15', "expected ':'"]);
    writeFileSync(file, safetensorsBytes('{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]'));
    await rejectsLocated(file, 'bad-json', ['invalid JSON', "expected ',' or '}'"]);

    writeFileSync(file, safetensorsBytes('[{"a": 1}]'));
    await rejectsLocated(file, 'bad-header', ['@ byte 8', "must start with '{'"]);
  });
});

test('bad input: entries, dtypes, shapes and offsets give located errors', async () => {
  await inTemp(async (dir) => {
    const file = path.join(dir, 'bad.safetensors');
    const data = f32([1, 2, 3, 4, 5, 6, 7, 8]); // 32 bytes
    const entry = (dtype: unknown, shape: unknown, data_offsets: unknown) => ({ dtype, shape, data_offsets });
    const write = (header: object) => {
      writeFileSync(file, safetensorsBytes(header, data));
      return dataStartOf(file);
    };

    let start = write({ a: entry('F32', [4], [0, 16]), b: entry('F32', [4], [8, 24]) });
    await rejectsLocated(file, 'overlap', [`@ byte ${start + 8} [b]`, 'overlap tensor a [0, 16]']);
    // Two tensors sharing the same bytes (aliasing).
    start = write({ a: entry('F32', [4], [16, 32]), b: entry('F32', [4], [16, 32]) });
    await rejectsLocated(file, 'overlap', [`@ byte ${start + 16} [b]`, 'overlap tensor a [16, 32]']);

    start = write({ a: entry('F32', [4], [24, 40]) });
    await rejectsLocated(file, 'out-of-range', [`@ byte ${start + 24} [a]`, 'data buffer of 32 bytes']);
    start = write({ a: entry('F32', [0], [20, 16]) });
    await rejectsLocated(file, 'bad-offsets', [`@ byte ${start + 20} [a]`, 'begin is after end']);
    write({ a: entry('F32', [1], [-4, 0]) });
    await rejectsLocated(file, 'bad-offsets', ['[a]', 'found [-4,0]']);
    write({ a: entry('F32', [1], [0.5, 4.5]) });
    await rejectsLocated(file, 'bad-offsets', ['[a]', 'two non-negative integers']);
    write({ a: entry('F32', [1], [0]) });
    await rejectsLocated(file, 'bad-offsets', ['[a]', 'found [0]']);

    write({ 'model.layers.0.q.weight': entry('Q4_K', [8], [0, 32]) });
    await rejectsLocated(file, 'unknown-dtype', ['[model.layers.0.q.weight]', 'unknown dtype "Q4_K"']);
    write({ a: entry(7, [8], [0, 32]) });
    await rejectsLocated(file, 'bad-entry', ['[a]', 'dtype must be a string']);

    start = write({ a: entry('F32', [3, 2], [0, 32]) });
    await rejectsLocated(file, 'shape-size-mismatch', [`@ byte ${start} [a]`, '6 × 4 = 24 bytes', 'span 32']);
    write({ a: entry('F16', [4, -4], [0, 32]) });
    await rejectsLocated(file, 'bad-shape', ['[a]', 'non-negative integers', '[4,-4]']);
    write({ a: entry('F16', [4, 2.5], [0, 32]) });
    await rejectsLocated(file, 'bad-shape', ['[a]', '[4,2.5]']);
    write({ a: entry('U8', new Array(LIMITS.maxDims + 1).fill(1), [0, 1]) });
    await rejectsLocated(file, 'bad-shape', ['[a]', `at most ${LIMITS.maxDims} dims`]);
    write({ a: entry('F32', '4', [0, 16]) });
    await rejectsLocated(file, 'bad-shape', ['[a]', 'found "4"']);

    write({ a: [1, 2, 3] });
    await rejectsLocated(file, 'bad-entry', ['[a]', 'expected an object', 'found [1,2,3]']);
    write({ a: null });
    await rejectsLocated(file, 'bad-entry', ['[a]', 'found null']);
    write({ __metadata__: { format: 5 }, a: entry('F32', [8], [0, 32]) });
    await rejectsLocated(file, 'bad-metadata', ['[__metadata__]', '__metadata__.format must be a string']);

    // Zero-length tensors and holes are fine; the reader lists them in data order.
    write({ z: entry('F32', [0], [4, 4]), b: entry('F32', [2], [16, 24]), a: entry('F32', [1], [0, 4]) });
    await withCheckpoint(file, async (ck) => {
      assert.deepEqual(ck.tensors.map((t) => t.name), ['a', 'z', 'b']);
      assert.deepEqual([...(await ck.read('b'))], [5, 6]);
      assert.deepEqual([...(await ck.read('z'))], []);
    });
  });
});

test('bad input: sharded index escapes, missing shards and index/shard disagreements', async () => {
  await inTemp(async (root) => {
    const dir = path.join(root, 'model');
    mkdirSync(dir);
    const fixture = tinyLlamaTensors();
    const { index, weightMap } = writeShardedSafetensors(dir, fixture, 3);
    const writeIndex = (map: Record<string, string>) => writeFileSync(index, JSON.stringify({ metadata: { total_size: 1 }, weight_map: map }));
    const first = fixture[0].name; // lives in shard 1

    // A real shard outside the folder, reached three ways.
    writeFixtureSafetensors(path.join(root, 'outside.safetensors'), fixture.slice(0, 1));
    writeIndex({ ...weightMap, [first]: '../outside.safetensors' });
    await rejectsLocated(index, 'path-escape', [`[${first}]`, '"../outside.safetensors"']);
    writeIndex({ ...weightMap, [first]: path.join(root, 'outside.safetensors') });
    await rejectsLocated(index, 'path-escape', [`[${first}]`, 'relative to the index folder']);
    symlinkSync(path.join(root, 'outside.safetensors'), path.join(dir, 'link.safetensors'));
    writeIndex({ ...weightMap, [first]: 'link.safetensors' });
    await rejectsLocated(index, 'path-escape', [`[${first}]`, 'not inside the index folder']);
    // A symlink that stays inside the folder is fine.
    symlinkSync(path.join(dir, 'model-00001-of-00003.safetensors'), path.join(dir, 'inner.safetensors'));
    writeIndex(Object.fromEntries(Object.entries(weightMap).map(([k, v]) => [k, v.replace('model-00001-of-00003', 'inner')])));
    await withCheckpoint(index, async (ck) => assert.deepEqual(await ck.read(first), fixture[0].data));

    writeIndex({ ...weightMap, [first]: 'nope.safetensors' });
    await rejectsLocated(index, 'not-found', [`[${first}]`, 'shard "nope.safetensors" not found']);

    // The index maps shard 1's tensor to shard 2: shard 1 (read first) holds a tensor mapped elsewhere.
    const shard1 = path.join(dir, 'model-00001-of-00003.safetensors');
    const shard2 = path.join(dir, 'model-00002-of-00003.safetensors');
    writeIndex({ ...weightMap, [first]: 'model-00002-of-00003.safetensors' });
    await rejectsLocated(index, 'index-mismatch', [`[${first}]`, 'model.safetensors.index.json maps it to "model-00002-of-00003.safetensors"'], shard1);
    // Listed, in a shard that exists, but held by no shard.
    writeIndex({ ...weightMap, 'model.ghost.weight': 'model-00002-of-00003.safetensors' });
    await rejectsLocated(index, 'index-mismatch', ['[model.ghost.weight]', `${index} maps this tensor`, 'the shard does not hold it'], shard2);
    // Held by a shard, not listed at all.
    const { [first]: _dropped, ...rest } = weightMap;
    writeIndex(rest);
    await rejectsLocated(index, 'index-mismatch', [`[${first}]`, 'model.safetensors.index.json does not list it'], shard1);

    writeFileSync(index, '{"weight_map": {"a": "x.safetensors",}}');
    await rejectsLocated(index, 'bad-json', ['@ byte 37', 'expected a double-quoted property name']);
    writeFileSync(index, '{"weight_map": ["x.safetensors"]}');
    await rejectsLocated(index, 'bad-index', ['weight_map must be an object']);
  });
});

test('offsets past 4 GiB: a sparse file reads back exactly', async () => {
  await inTemp(async (dir) => {
    const file = path.join(dir, 'big.safetensors');
    const target = 4.5 * 2 ** 30 + 4; // absolute byte offset of the big tensor's data
    const values = [1.5, -2.25, 3e-5, 65504, -0.125, 7, 8, 9];
    const bytes = f32(values);
    const headerFor = (begin: number) => ({
      __metadata__: { format: 'pt' },
      small: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      big: { dtype: 'F32', shape: [2, 4], data_offsets: [begin, begin + bytes.length] },
    });
    // data_offsets are relative to the data buffer, whose start depends on the header's own length:
    // size the header with a same-digit-count placeholder, then fill in the real offset.
    const begin = target - safetensorsBytes(headerFor(target)).length;
    const head = safetensorsBytes(headerFor(begin));
    assert.equal(head.length, target - begin);
    const total = target + bytes.length;

    const fd = openSync(file, 'w');
    try {
      writeSync(fd, head, 0, head.length, 0);
      writeSync(fd, f32([10, 20]), 0, 8, head.length);
    } finally {
      closeSync(fd);
    }
    truncateSync(file, total);
    const fd2 = openSync(file, 'r+');
    try {
      writeSync(fd2, bytes, 0, bytes.length, target);
    } finally {
      closeSync(fd2);
    }
    assert.equal(statSync(file).size, total);

    await withCheckpoint(file, async (ck) => {
      const big = ck.tensors.find((t) => t.name === 'big')!;
      assert.equal(big.byteOffset, target);
      assert.equal(big.byteLength, 32);
      assert.deepEqual(await ck.read('big'), new Float32Array(values));
      assert.deepEqual(await ck.read('big', { start: 5, count: 3 }), new Float32Array([7, 8, 9]));
      assert.deepEqual(await ck.read('small'), new Float32Array([10, 20]));
    });
  });
});
