// The safetensors and GGUF writers: hand-written bytes for tiny files, half/bfloat16 rounding vectors from the
// IEEE/bfloat16 definitions, and round trips through QuantLens's readers (and the independent @huggingface/gguf).
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { gguf } from '@huggingface/gguf';
import { QuantLensError } from '../../server/src/formats/errors';
import { openCheckpoint } from '../../server/src/formats/registry';
import { kv, writeGgufFile } from '../../server/src/formats/write-gguf';
import { bf16BitsOf, encodeFloats, f16BitsOf, writeSafetensorsFile } from '../../server/src/formats/write-safetensors';
import { tempDir } from '../fixtures/common';
import { fromF16Bits } from '../fixtures/gguf';

const tmp = tempDir('quantlens-write-');
after(() => tmp.cleanup());

const le16 = (...v: number[]) => v.flatMap((x) => [x & 255, x >> 8]);
const le32 = (v: number) => [v & 255, (v >>> 8) & 255, (v >>> 16) & 255, v >>> 24];
const le64 = (v: number) => [...le32(v), 0, 0, 0, 0];
const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));

describe('float encodings', () => {
  test('fp16: round to nearest even, subnormals, overflow to ∞, signed zero, NaN', () => {
    const cases: [number, number][] = [
      [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65519, 0x7bff], [65520, 0x7c00], [-1e6, 0xfc00],
      [1 + 2 ** -11, 0x3c00], // tie between 1 and 1 + 2^-10: even mantissa (1) wins
      [1 + 3 * 2 ** -11, 0x3c02], // tie between 1 + 2^-10 (odd) and 1 + 2^-9: goes up
      [2 ** -14, 0x0400], [2 ** -24, 0x0001], [2 ** -25, 0x0000], [3 * 2 ** -25, 0x0002], [-(2 ** -26), 0x8000],
      [0, 0x0000], [-0, 0x8000], [Infinity, 0x7c00], [-Infinity, 0xfc00],
    ];
    for (const [x, bits] of cases) assert.equal(f16BitsOf(x), bits, `f16(${x})`);
    assert.equal(f16BitsOf(NaN) & 0x7c00, 0x7c00);
    assert.ok(f16BitsOf(NaN) & 0x3ff);
  });

  test('fp16, exhaustively: every half value round-trips, every midpoint goes to the even neighbour', () => {
    for (let h = 0; h < 0x7c00; h++) {
      for (const s of [0, 0x8000]) {
        const v = fromF16Bits(h | s);
        assert.equal(f16BitsOf(v), h | s);
        if (h === 0x7bff) continue; // the midpoint above 65504 is 65520: overflow (tested above)
        const next = fromF16Bits((h + 1) | s);
        const mid = (v + next) / 2; // 12 significant bits: exact in float32
        assert.equal(f16BitsOf(mid), (h & 1 ? h + 1 : h) | s, `midpoint after ${h.toString(16)}`);
        const below = Math.fround(mid - (next - v) / 64);
        const above = Math.fround(mid + (next - v) / 64);
        assert.equal(f16BitsOf(below), h | s);
        assert.equal(f16BitsOf(above), (h + 1) | s);
      }
    }
  });

  test('bf16: top half of the float32 bits, round to nearest even', () => {
    const cases: [number, number][] = [
      [1, 0x3f80], [-2, 0xc000], [1 + 2 ** -8, 0x3f80], [1 + 3 * 2 ** -8, 0x3f82], [1 + 2 ** -8 + 2 ** -20, 0x3f81],
      [3.4028234663852886e38, 0x7f80], [-0, 0x8000], [Infinity, 0x7f80], [2 ** -133, 0x0001],
    ];
    for (const [x, bits] of cases) assert.equal(bf16BitsOf(x), bits, `bf16(${x})`);
    assert.equal(bf16BitsOf(NaN) & 0x7f80, 0x7f80);
    assert.ok(bf16BitsOf(NaN) & 0x7f);
  });

  test('encodeFloats writes little-endian elements', () => {
    assert.deepEqual([...encodeFloats(Float32Array.of(1, -2), 'F16')], le16(0x3c00, 0xc000));
    assert.deepEqual([...encodeFloats(Float32Array.of(1, -2), 'BF16')], le16(0x3f80, 0xc000));
    assert.deepEqual([...encodeFloats(Float32Array.of(1), 'F32')], [0, 0, 0x80, 0x3f]);
  });
});

describe('safetensors writer', () => {
  test('a one-tensor file, byte by byte', async () => {
    const file = path.join(tmp.dir, 'hand.safetensors');
    await writeSafetensorsFile(file, [{ name: 'a', dtype: 'F16', shape: [2], bytes: encodeFloats(Float32Array.of(1, -2), 'F16') }], { format: 'pt' });
    const json = '{"__metadata__":{"format":"pt"},"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}'; // 85 bytes
    const expected = [...le64(88), ...ascii(json), 0x20, 0x20, 0x20, ...le16(0x3c00, 0xc000)];
    assert.deepEqual([...readFileSync(file)], expected);
  });

  test('F32/F16/BF16 tensors read back through the safetensors reader in order, with metadata', async () => {
    const file = path.join(tmp.dir, 'rt.safetensors');
    const a = Float32Array.from({ length: 12 }, (_, i) => (i - 5) / 8); // exact in every dtype
    const b = Float32Array.of(0.1, -3.3, 1000.7);
    await writeSafetensorsFile(file, [
      { name: 'w.f32', dtype: 'F32', shape: [3, 4], bytes: encodeFloats(a, 'F32') },
      { name: 'w.f16', dtype: 'F16', shape: [3], bytes: encodeFloats(b, 'F16') },
      { name: 'w.bf16', dtype: 'BF16', shape: [2, 6], bytes: encodeFloats(a, 'BF16') },
    ], { format: 'pt', note: 'x' });
    const ck = await openCheckpoint(file);
    try {
      assert.equal(ck.format, 'safetensors');
      assert.deepEqual(ck.tensors.map((t) => [t.name, t.dtype, t.shape]), [['w.f32', 'F32', [3, 4]], ['w.f16', 'F16', [3]], ['w.bf16', 'BF16', [2, 6]]]);
      assert.deepEqual(ck.metadata, { format: 'pt', note: 'x' });
      assert.deepEqual([...(await ck.read('w.f32'))], [...a]);
      assert.deepEqual([...(await ck.read('w.bf16'))], [...a]);
      // nearest fp16 values: spacing 2^-14 below 0.125, 2^-9 in [2, 4), 0.5 in [512, 1024)
      assert.deepEqual([...(await ck.read('w.f16'))], [0.0999755859375, -3.30078125, 1000.5]);
      const off = ck.tensors.map((t) => t.byteOffset);
      assert.ok(off[0] < off[1] && off[1] < off[2] && (off[0] - 8) % 8 === 0);
    } finally {
      await ck.close();
    }
  });

  test('refuses mismatched sizes, duplicates and existing files; leaves no temp file', async () => {
    const file = path.join(tmp.dir, 'bad.safetensors');
    await assert.rejects(
      writeSafetensorsFile(file, [{ name: 'x', dtype: 'F16', shape: [3], bytes: new Uint8Array(4) }]),
      (e: unknown) => e instanceof QuantLensError && e.where.tensor === 'x' && /needs 6 bytes, found 4/.test(e.message),
    );
    const t = { name: 'x', dtype: 'F32', shape: [1], bytes: new Uint8Array(4) };
    await assert.rejects(writeSafetensorsFile(file, [t, t]), (e: unknown) => e instanceof QuantLensError && e.code === 'bad-tensor');
    await assert.rejects(writeSafetensorsFile(file, [{ ...t, dtype: 'Q4' }]), (e: unknown) => e instanceof QuantLensError && e.code === 'bad-dtype');
    assert.equal(existsSync(file), false);
    writeFileSync(file, 'precious');
    await assert.rejects(writeSafetensorsFile(file, [t]), (e: unknown) => e instanceof QuantLensError && e.code === 'output-exists');
    assert.equal(readFileSync(file, 'utf8'), 'precious');
    await writeSafetensorsFile(file, [t], undefined, { overwrite: true });
    assert.equal(readFileSync(file).length, 8 + 56 + 4);
    assert.deepEqual(readdirSync(tmp.dir).filter((n) => n.endsWith('.tmp')), []);
  });
});

describe('GGUF writer', () => {
  test('a one-KV, one-tensor file, byte by byte', async () => {
    const file = path.join(tmp.dir, 'hand.gguf');
    await writeGgufFile(file, {
      kv: [['general.architecture', kv.str('llama')]],
      tensors: [{ name: 't', ne: [2], type: 0, data: encodeFloats(Float32Array.of(1, 2), 'F32') }],
    });
    const header = [
      ...ascii('GGUF'), ...le32(3), ...le64(1), ...le64(1),
      ...le64(20), ...ascii('general.architecture'), ...le32(8), ...le64(5), ...ascii('llama'), // 69 bytes so far
      ...le64(1), ...ascii('t'), ...le32(1), ...le64(2), ...le32(0), ...le64(0), // 102
    ];
    const expected = [...header, ...new Array(128 - 102).fill(0), 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, ...new Array(24).fill(0)];
    assert.deepEqual([...readFileSync(file)], expected);
  });

  test('metadata of every model type and F32/F16 tensors read back (ours and @huggingface/gguf)', async () => {
    const file = path.join(tmp.dir, 'rt.gguf');
    const w = Float32Array.from({ length: 24 }, (_, i) => (i - 11) / 4);
    const tokens = Array.from({ length: 300 }, (_, i) => `<t${i}>`); // longer than the reader inlines
    await writeGgufFile(file, {
      kv: [
        ['general.architecture', kv.str('llama')],
        ['general.alignment', kv.u32(64)],
        ['x.u32', kv.u32(4000000000)],
        ['x.i32', kv.i32(-7)],
        ['x.f32', kv.f32(1e-5)],
        ['x.bool', kv.bool(true)],
        ['x.tokens', kv.strings(tokens)],
        ['x.scores', kv.f32s([0.5, -1.25])],
        ['x.types', kv.i32s([6, 3, -1])],
      ],
      tensors: [
        { name: 'blk.0.attn_q.weight', ne: [6, 4], type: 1, data: encodeFloats(w, 'F16') },
        { name: 'blk.0.attn_norm.weight', ne: [6], type: 0, data: encodeFloats(w.subarray(0, 6), 'F32') },
      ],
    });
    const ck = await openCheckpoint(file);
    try {
      assert.deepEqual(ck.tensors.map((t) => [t.name, t.dtype, t.shape, t.byteOffset % 64]), [
        ['blk.0.attn_q.weight', 'F16', [4, 6], 0],
        ['blk.0.attn_norm.weight', 'F32', [6], 0],
      ]);
      assert.deepEqual([...(await ck.read('blk.0.attn_q.weight'))], [...w]);
      assert.deepEqual([...(await ck.read('blk.0.attn_norm.weight'))], [...w.subarray(0, 6)]);
      const flat = ck.metadata;
      assert.equal(flat['x.u32'], 4000000000);
      assert.equal(flat['x.i32'], -7);
      assert.equal(flat['x.bool'], true);
      assert.equal(flat['general.architecture'], 'llama');
    } finally {
      await ck.close();
    }
    const hf = await gguf(file, { allowLocalFile: true });
    const md = hf.metadata as Record<string, unknown>;
    assert.deepEqual(md['x.tokens'], tokens);
    assert.deepEqual(md['x.scores'], [0.5, -1.25]);
    assert.deepEqual(md['x.types'], [6, 3, -1]);
    assert.ok(Math.abs((md['x.f32'] as number) - 1e-5) < 1e-12);
    assert.equal(Number(hf.tensorDataOffset) % 64, 0);
    assert.deepEqual(hf.tensorInfos.map((t) => [t.name, t.shape.map(Number), t.dtype]), [['blk.0.attn_q.weight', [6, 4], 1], ['blk.0.attn_norm.weight', [6], 0]]);
  });

  test('refuses data that does not fit ne × type, unknown types, duplicate keys, a bad alignment', async () => {
    const file = path.join(tmp.dir, 'bad.gguf');
    const bad = async (spec: Parameters<typeof writeGgufFile>[1], code: string, re: RegExp) =>
      assert.rejects(writeGgufFile(file, spec), (e: unknown) => e instanceof QuantLensError && e.code === code && re.test(e.message));
    await bad({ tensors: [{ name: 'a', ne: [4, 2], type: 1, data: new Uint8Array(8) }] }, 'bad-shape', /\[a\].*needs 16 bytes, found 8/);
    await bad({ tensors: [{ name: 'a', ne: [16], type: 8, data: new Uint8Array(34) }] }, 'bad-shape', /multiple of the Q8_0 block of 32/);
    await bad({ tensors: [{ name: 'a', ne: [1], type: 99, data: new Uint8Array(4) }] }, 'bad-dtype', /unknown ggml type 99/);
    await bad({ kv: [['k', kv.u32(1)], ['k', kv.u32(2)]] }, 'bad-metadata', /duplicate metadata key k/);
    await bad({ kv: [['general.alignment', kv.u32(24)]] }, 'bad-metadata', /power of two/);
    assert.equal(existsSync(file), false);
  });
});
