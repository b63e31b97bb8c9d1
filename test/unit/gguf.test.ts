import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { gguf } from '@huggingface/gguf';
import { LIMITS, QuantLensError } from '../../server/src/formats/errors';
import { ggufReader } from '../../server/src/formats/gguf';
import { GGML_TYPES } from '../../server/src/formats/gguf-dequant';
import { openCheckpoint, probeFile, readerFor } from '../../server/src/formats/registry';
import type { Checkpoint } from '../../server/src/formats/types';
import { inTempDir, randn, toF16Bits } from '../fixtures/common';
import {
  BLOCK,
  GGML,
  encodeF16,
  encodeF32,
  fromF16Bits,
  ggufBytes,
  quantizeQ8_0,
  randomBlocks,
  writeGguf,
  type GgufSpec,
  type GgufTensor,
  type GgufValue,
} from '../fixtures/gguf';

// ---------------------------------------------------------------------------------------------
// Helpers

const inTemp = (body: (dir: string) => Promise<void>) => inTempDir('quantlens-gguf-', body);

async function withCheckpoint(file: string, body: (ck: Checkpoint) => Promise<void>): Promise<void> {
  const ck = await ggufReader.open(file);
  try {
    await body(ck);
  } finally {
    await ck.close();
  }
}

/** Expect open(file) to fail with a QuantLensError of `code` located at `file` @ `offset`, mentioning every `parts`. */
async function rejectsAt(file: string, code: string, offset: number, parts: string[], tensor?: string): Promise<void> {
  await assert.rejects(ggufReader.open(file), (e: unknown) => {
    assert.ok(e instanceof QuantLensError, `expected a QuantLensError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.where.file, file);
    assert.equal(e.where.offset, offset, e.message);
    if (tensor !== undefined) assert.equal(e.where.tensor, tensor, e.message);
    assert.ok(e.message.includes(`@ byte ${offset}`), e.message);
    for (const p of parts) assert.ok(e.message.includes(p), `message should contain ${JSON.stringify(p)}: ${e.message}`);
    return true;
  });
}

/** Write `bytes` to a fresh file in `dir` and return its path. */
function put(dir: string, name: string, bytes: Uint8Array): string {
  const file = path.join(dir, name);
  writeFileSync(file, bytes);
  return file;
}

const patchU32 = (b: Uint8Array, at: number, v: number) => new DataView(b.buffer, b.byteOffset).setUint32(at, v, true);
const patchU64 = (b: Uint8Array, at: number, v: number | bigint) => new DataView(b.buffer, b.byteOffset).setBigUint64(at, BigInt(v), true);

/** A zeroed block of `size` bytes with the given bytes set. */
function block(size: number, set: Record<number, number>): Uint8Array {
  const b = new Uint8Array(size);
  for (const [i, v] of Object.entries(set)) b[Number(i)] = v;
  return b;
}

/** Dequantize blocks with the production decoder; −0 (a zero scale times a negative quant) compares as 0. */
function dequant(typeId: number, bytes: Uint8Array): number[] {
  const t = GGML_TYPES.get(typeId)!;
  const n = bytes.length / t.typeSize;
  const out = new Float32Array(n * t.blockSize);
  t.dequantize!(bytes, n, out);
  return Array.from(out, (x) => x + 0);
}

/** 256 (or 32) expected values: `fill` everywhere, then [from, to) ranges, then single elements. */
function expected(n: number, fill: number, ranges: [number, number, number][], singles: Record<number, number> = {}): number[] {
  const e = new Array<number>(n).fill(fill);
  for (const [from, to, v] of ranges) for (let i = from; i < to; i++) e[i] = v;
  for (const [i, v] of Object.entries(singles)) e[Number(i)] = v;
  return e;
}

/** x rounded to the nearest fp16, via the fixture's bit conversions. */
const f16Round = (x: number) => fromF16Bits(toF16Bits(x));

function assertClose(actual: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const tol = 1e-6 * Math.max(1, Math.abs(want[i]));
    if (!(Math.abs(actual[i] - want[i]) <= tol)) assert.fail(`${what}: element ${i} is ${actual[i]}, expected ${want[i]}`);
  }
}

// fp16 bit patterns used in the hand-computed blocks (sign | exponent | mantissa).
const H_HALF = 0x3800; // 0.5 = 2^(14−15)
const H_ONE = 0x3c00; // 1.0
const H_MINUS_TWO = 0xc000; // −2.0
const lo = (h: number) => h & 255;
const hi = (h: number) => h >> 8;

// ---------------------------------------------------------------------------------------------
// Hand-computed dequantization, one block per type

test('Q8_0 by hand: x = q·d with int8 q', () => {
  // d = 0.5; qs = −128, −1, 0, 1, 127, then 16 → −64, −0.5, 0, 0.5, 63.5, then 8.
  const b = block(34, { 0: lo(H_HALF), 1: hi(H_HALF), 2: 0x80, 3: 0xff, 4: 0x00, 5: 0x01, 6: 0x7f });
  for (let j = 5; j < 32; j++) b[2 + j] = 0x10;
  assert.deepEqual(dequant(GGML.Q8_0, b), [-64, -0.5, 0, 0.5, 63.5, ...new Array(27).fill(8)]);
});

test('Q4_0 by hand: low nibbles are elements 0..15, high nibbles 16..31, x = (q − 8)·d', () => {
  // d = 0.5; qs[j] = j | (15 − j) << 4 → element j = (j − 8)·0.5, element 16 + j = (15 − j − 8)·0.5.
  const b = block(18, { 0: lo(H_HALF), 1: hi(H_HALF) });
  for (let j = 0; j < 16; j++) b[2 + j] = j | ((15 - j) << 4);
  assert.deepEqual(
    dequant(GGML.Q4_0, b),
    [-4, -3.5, -3, -2.5, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 3.5, 3, 2.5, 2, 1.5, 1, 0.5, 0, -0.5, -1, -1.5, -2, -2.5, -3, -3.5, -4],
  );
});

test('Q4_1 by hand: x = q·d + m', () => {
  // d = 1, m = −2; qs[0] = 0xF0 (lo 0, hi 15), qs[1] = 0x3A (lo 10, hi 3), rest 0.
  // e0 = 0 − 2 = −2, e16 = 15 − 2 = 13, e1 = 10 − 2 = 8, e17 = 3 − 2 = 1, others 0 − 2 = −2.
  const b = block(20, { 0: lo(H_ONE), 1: hi(H_ONE), 2: lo(H_MINUS_TWO), 3: hi(H_MINUS_TWO), 4: 0xf0, 5: 0x3a });
  assert.deepEqual(dequant(GGML.Q4_1, b), expected(32, -2, [], { 16: 13, 1: 8, 17: 1 }));
});

test('Q5_0 by hand: fifth bit j of qh belongs to element j, x = (q − 16)·d', () => {
  // d = 0.5; qh = 08 00 20 00 → bits 3 and 21 set; qs[3] = 0x21, qs[5] = 0x4F, rest 0.
  // default (0 − 16)·0.5 = −8; e3: 1 | 16 = 17 → 0.5; e19: 2 → −7; e5: 15 → −0.5; e21: 4 | 16 = 20 → 2.
  const b = block(22, { 0: lo(H_HALF), 1: hi(H_HALF), 2: 0x08, 4: 0x20, [6 + 3]: 0x21, [6 + 5]: 0x4f });
  assert.deepEqual(dequant(GGML.Q5_0, b), expected(32, -8, [], { 3: 0.5, 19: -7, 5: -0.5, 21: 2 }));
});

test('Q5_1 by hand: x = q·d + m with a fifth bit', () => {
  // d = 1, m = 0.5; qh = 00 80 00 01 → bits 15 and 24; qs[15] = 0x1E, qs[8] = 0x70.
  // e15: 14 + 16 = 30 → 30.5; e31: 1 → 1.5; e8: 0 → 0.5; e24: 7 + 16 = 23 → 23.5; others 0.5.
  const b = block(24, { 0: lo(H_ONE), 1: hi(H_ONE), 2: lo(H_HALF), 3: hi(H_HALF), 5: 0x80, 7: 0x01, [8 + 15]: 0x1e, [8 + 8]: 0x70 });
  assert.deepEqual(dequant(GGML.Q5_1, b), expected(32, 0.5, [], { 15: 30.5, 31: 1.5, 8: 0.5, 24: 23.5 }));
});

test('Q2_K by hand: 4-bit scale/min per 16 elements, 2-bit quants at shifts 0/2/4/6', () => {
  // Layout: scales[16] @0, qs[64] @16, d @80 = 1, dmin @82 = 0.5. x = d·(sc & 15)·q − dmin·(sc >> 4).
  // Element e = 128h + 32j + 16p + l reads qs[32h + 16p + l] >> 2j, scale byte e >> 4.
  // scales[0] = 0x12 (sc 2, m 1): e0..15 have q 0 (qs[0] = 0xE4 at shift 0 → 0) → −0.5.
  // qs[0] = 0xE4 = 11 10 01 00: e32 (j1) q 1, e64 (j2) q 2, e96 (j3) q 3.
  // scales[2] = 0x04 → e32 = 4·1 = 4 (rest of 32..47: 0); scales[4] = 0x05 → e64 = 5·2 = 10;
  // scales[6] = 0x16 (sc 6, m 1) → e96 = 6·3 − 0.5 = 17.5, e97..111 = −0.5.
  // qs[53] = 0x0C (shift 2 → 3) → e181 = 128 + 32 + 16 + 5 with scales[11] = 0x32: 2·3 − 0.5·3 = 4.5; rest of 176..191: −1.5.
  // scales[15] = 0xF1 (sc 1, m 15): e240..255 read qs[48..63] >> 6 = 0 → −7.5.
  const b = block(84, { 0: 0x12, 2: 0x04, 4: 0x05, 6: 0x16, 11: 0x32, 15: 0xf1, 16: 0xe4, [16 + 53]: 0x0c, 80: lo(H_ONE), 81: hi(H_ONE), 82: lo(H_HALF), 83: hi(H_HALF) });
  const want = expected(256, 0, [[0, 16, -0.5], [96, 112, -0.5], [176, 192, -1.5], [240, 256, -7.5]], { 32: 4, 64: 10, 96: 17.5, 181: 4.5 });
  assert.deepEqual(dequant(GGML.Q2_K, b), want);
});

test('Q3_K by hand: hmask third bit, 6-bit scales offset by 32', () => {
  // Layout: hmask[32] @0, qs[64] @32, scales[12] @96, d @108 = 1. x = d·(sc − 32)·(q2 − (hbit ? 0 : 4)).
  // Scale s: low 4 bits from byte s (s < 8, low nibble) or byte s − 8 (high nibble); high 2 bits at bit 2(s >> 2) of byte 8 + (s & 3).
  // byte 96 = 0x01, byte 104 = 0x02 → s0 = 1 | 2 << 4 = 33 → 1. byte 101 = 0xE0, byte 105 = 0x40 → s13 = 14 | 1 << 4 = 30 → −2.
  // Every other scale is 0 → −32, and with q2 = 0, hbit = 0 their elements are −32·(0 − 4) = 128.
  // e0: qs[0] = 3, hmask[0] bit 0 set → q = 3 → 1·3 = 3; e1..15: q = −4 → −4.
  // s13 = elements 208..223 (h1, j2, second 16): default −2·−4 = 8; e215 reads qs[48 + 7] = 0x20 >> 4 = 2 and
  // hmask[16 + 7] bit 4·1 + 2 = 6 (0x40) → q = 2 → −4.
  const b = block(110, { 0: 0x01, 23: 0x40, 32: 0x03, [32 + 55]: 0x20, 96: 0x01, 101: 0xe0, 104: 0x02, 105: 0x40, 108: lo(H_ONE), 109: hi(H_ONE) });
  const want = expected(256, 128, [[1, 16, -4], [208, 224, 8]], { 0: 3, 215: -4 });
  assert.deepEqual(dequant(GGML.Q3_K, b), want);
});

test('Q4_K by hand: 6-bit scale/min packing, nibble halves per 64 elements', () => {
  // Layout: d @0 = 1, dmin @2 = 0.5, scales[12] @4, qs[128] @16. x = d·sc·q − dmin·m.
  // Sub-block 1 (sc 3, m 2): scales[1] = 3, scales[5] = 2. Elements 32..63 = high nibbles of qs[0..31];
  // qs[0] = 0x50 → e32 = 3·5 − 0.5·2 = 14, e33..63 = −1.
  // Sub-block 6 (sc 40 = 0b10_1000, m 17 = 0b01_0001): scales[10] = 8 | 1 << 4 = 0x18, top bits of scales[2] = 2 (0x80)
  // and of scales[6] = 1 (0x40). Elements 192..223 = low nibbles of qs[96..127]; qs[127] = 0x0F → e223 = 40·15 − 8.5 = 591.5,
  // e192..222 = −8.5. All other sub-blocks have sc = m = 0 → 0.
  const b = block(144, { 0: lo(H_ONE), 1: hi(H_ONE), 2: lo(H_HALF), 3: hi(H_HALF), [4 + 1]: 3, [4 + 5]: 2, [4 + 10]: 0x18, [4 + 2]: 0x80, [4 + 6]: 0x40, 16: 0x50, [16 + 127]: 0x0f });
  const want = expected(256, 0, [[32, 64, -1], [192, 224, -8.5]], { 32: 14, 223: 591.5 });
  assert.deepEqual(dequant(GGML.Q4_K, b), want);
});

test('Q5_K by hand: Q4_K scales plus a fifth bit from qh', () => {
  // Layout: d @0 = 1, dmin @2 = 0.5, scales @4, qh[32] @16, qs[128] @48. Fifth bit of sub-block s is bit s of qh[l].
  // Sub-block 0 (sc 2, m 1): e4 = low nibble of qs[4] = 7, qh[4] bit 0 → 23 → 2·23 − 0.5 = 45.5; e0..31 else −0.5.
  // Sub-block 5 (sc 17 = 0b01_0001, m 34 = 0b10_0010): scales[9] = 0x21, top bits scales[1] = 1 (0x40), scales[5] = 2 (0x80).
  // Elements 160..191 = high nibbles of qs[64..95]; qs[74] = 0x30, qh[10] bit 5 → 3 + 16 = 19 → e170 = 17·19 − 0.5·34 = 306;
  // e160..191 else −17.
  const b = block(176, { 0: lo(H_ONE), 1: hi(H_ONE), 2: lo(H_HALF), 3: hi(H_HALF), 4: 2, 8: 1, [4 + 9]: 0x21, [4 + 1]: 0x40, [4 + 5]: 0x80, [16 + 4]: 0x01, [16 + 10]: 0x20, [48 + 4]: 0x07, [48 + 74]: 0x30 });
  const want = expected(256, 0, [[0, 32, -0.5], [160, 192, -17]], { 4: 45.5, 170: 306 });
  assert.deepEqual(dequant(GGML.Q5_K, b), want);
});

test('Q6_K by hand: ql/qh 6-bit quants minus 32, int8 scale per 16 elements', () => {
  // Layout: ql[128] @0, qh[64] @128, scales int8[16] @192, d @208 = 0.5. x = d·scale·(q − 32); q = 0 → −32.
  // scales[0] = 1 → e0..15 = 0.5·1·−32 = −16; e5: ql[5] low nibble 15, qh[5] bits 0-1 = 3 → 63 − 32 = 31 → 15.5.
  // scales[6] = 3 → e96..111 = −48; e101 = 96 + 5: high nibble of ql[32 + 5] = 0, qh[5] bits 6-7 = 3 → 48 − 32 = 16 → 24.
  // scales[10] = −2 (0xFE) → e160..175 (h1, k1) = 32; e163: low nibble of ql[64 + 32 + 3] = 10, qh[32 + 3] bits 2-3 = 2 → 42 − 32 = 10 → −10.
  const b = block(210, { 5: 0x3f, [128 + 5]: 0xc3, [96 + 3]: 0x0a, [128 + 32 + 3]: 0x08, [192 + 0]: 1, [192 + 6]: 3, [192 + 10]: 0xfe, 208: lo(H_HALF), 209: hi(H_HALF) });
  const want = expected(256, 0, [[0, 16, -16], [96, 112, -48], [160, 176, 32]], { 5: 15.5, 101: 24, 163: -10 });
  assert.deepEqual(dequant(GGML.Q6_K, b), want);
});

// ---------------------------------------------------------------------------------------------
// Random blocks against a second, per-element implementation written here from the block layouts

const h16 = (b: Uint8Array, o: number) => fromF16Bits(b[o] | (b[o + 1] << 8));
const int8 = (x: number) => (x > 127 ? x - 256 : x);
/** Bit `i` of a little-endian bit string starting at byte `o`. */
const bitAt = (b: Uint8Array, o: number, i: number) => (b[o + (i >> 3)] >> (i & 7)) & 1;
/** Element e of a 32-element nibble block at byte `o`: low nibbles first, then high nibbles. */
const nib32 = (b: Uint8Array, o: number, e: number) => (e < 16 ? b[o + e] & 15 : b[o + e - 16] >> 4);
/** 6-bit (scale, min) of sub-block s in a Q4_K/Q5_K scales[12] at `o`. */
function k4(b: Uint8Array, o: number, s: number): [number, number] {
  if (s < 4) return [b[o + s] & 63, b[o + 4 + s] & 63];
  return [(b[o + 8 + s - 4] & 15) + 16 * (b[o + s - 4] >> 6), (b[o + 8 + s - 4] >> 4) + 16 * (b[o + s] >> 6)];
}

const REFERENCE: Record<number, (b: Uint8Array, e: number) => number> = {
  [GGML.Q4_0]: (b, e) => h16(b, 0) * (nib32(b, 2, e) - 8),
  [GGML.Q4_1]: (b, e) => h16(b, 0) * nib32(b, 4, e) + h16(b, 2),
  [GGML.Q5_0]: (b, e) => h16(b, 0) * (nib32(b, 6, e) + 16 * bitAt(b, 2, e) - 16),
  [GGML.Q5_1]: (b, e) => h16(b, 0) * (nib32(b, 8, e) + 16 * bitAt(b, 4, e)) + h16(b, 2),
  [GGML.Q8_0]: (b, e) => h16(b, 0) * int8(b[2 + e]),
  [GGML.Q2_K]: (b, e) => {
    const sc = b[e >> 4];
    const q = (b[16 + 32 * (e >> 7) + (e & 31)] >> (2 * ((e >> 5) & 3))) & 3;
    return h16(b, 80) * (sc & 15) * q - h16(b, 82) * (sc >> 4);
  },
  [GGML.Q3_K]: (b, e) => {
    const s = e >> 4;
    const low = s < 8 ? b[96 + s] & 15 : b[96 + s - 8] >> 4;
    const high = (b[104 + (s % 4)] >> (2 * Math.floor(s / 4))) & 3;
    const q2 = (b[32 + 32 * (e >> 7) + (e & 31)] >> (2 * ((e >> 5) & 3))) & 3;
    const hbit = (b[e & 31] >> (e >> 5)) & 1;
    return h16(b, 108) * (low + 16 * high - 32) * (q2 + 4 * hbit - 4);
  },
  [GGML.Q4_K]: (b, e) => {
    const [sc, m] = k4(b, 4, e >> 5);
    const byte = b[16 + 32 * (e >> 6) + (e & 31)];
    const q = (e >> 5) & 1 ? byte >> 4 : byte & 15;
    return h16(b, 0) * sc * q - h16(b, 2) * m;
  },
  [GGML.Q5_K]: (b, e) => {
    const [sc, m] = k4(b, 4, e >> 5);
    const byte = b[48 + 32 * (e >> 6) + (e & 31)];
    const q = ((e >> 5) & 1 ? byte >> 4 : byte & 15) + 16 * ((b[16 + (e & 31)] >> (e >> 5)) & 1);
    return h16(b, 0) * sc * q - h16(b, 2) * m;
  },
  [GGML.Q6_K]: (b, e) => {
    const h = e >> 7;
    const k = (e >> 5) & 3;
    const l = e & 31;
    const byte = b[64 * h + 32 * (k & 1) + l];
    const low4 = k >= 2 ? byte >> 4 : byte & 15;
    const high2 = (b[128 + 32 * h + l] >> (2 * k)) & 3;
    return h16(b, 208) * int8(b[192 + (e >> 4)]) * (low4 + 16 * high2 - 32);
  },
};

/** Reference decode of whole blocks. */
function referenceDecode(type: number, bytes: Uint8Array): Float32Array {
  const [bs, size] = BLOCK[type];
  const n = bytes.length / size;
  const out = new Float32Array(n * bs);
  for (let i = 0; i < n; i++) {
    const blk = bytes.subarray(i * size, (i + 1) * size);
    for (let e = 0; e < bs; e++) out[i * bs + e] = REFERENCE[type](blk, e);
  }
  return out;
}

const DECODABLE = ['Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q8_0', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K'] as const;

for (const [i, name] of DECODABLE.entries()) {
  test(`${name}: random blocks read through a GGUF file match the per-element reference`, async () => {
    await inTemp(async (dir) => {
      const type = GGML[name];
      const [bs] = BLOCK[type];
      const rows = 3;
      const perRow = 512 / bs; // two K-quant super-blocks or sixteen small blocks per row
      const data = randomBlocks(type, rows * perRow, 100 + i);
      const file = path.join(dir, 'r.gguf');
      writeGguf(file, { tensors: [{ name: 'blk.0.ffn_down.weight', ne: [perRow * bs, rows], type, data }] });
      await withCheckpoint(file, async (ck) => {
        const t = ck.tensors[0];
        assert.equal(t.dtype, name);
        assert.equal(t.quantForm, name);
        assert.deepEqual(t.shape, [rows, perRow * bs]);
        assert.equal(t.byteLength, data.length);
        assert.ok(t.analyzable);
        assertClose(await ck.read(t.name), referenceDecode(type, data), name);
      });
    });
  });
}

test('sanity: the per-element reference agrees with the hand-computed Q4_K block', () => {
  // Guards the reference itself: the same block as the hand test above, decoded by REFERENCE.
  const b = block(144, { 0: lo(H_ONE), 1: hi(H_ONE), 2: lo(H_HALF), 3: hi(H_HALF), [4 + 1]: 3, [4 + 5]: 2, [4 + 10]: 0x18, [4 + 2]: 0x80, [4 + 6]: 0x40, 16: 0x50, [16 + 127]: 0x0f });
  assert.deepEqual(Array.from(referenceDecode(GGML.Q4_K, b), (x) => x + 0), expected(256, 0, [[32, 64, -1], [192, 224, -8.5]], { 32: 14, 223: 591.5 }));
});

// ---------------------------------------------------------------------------------------------
// Whole files

/** Every metadata value type, plus arrays long enough to be summarized. */
function allKvTypes(): GgufSpec['kv'] {
  const tokens = Array.from({ length: 1000 }, (_, i) => `tok${i}`);
  return [
    ['general.architecture', { type: 'STRING', value: 'llama' }],
    ['general.alignment', { type: 'UINT32', value: 64 }],
    ['t.u8', { type: 'UINT8', value: 200 }],
    ['t.i8', { type: 'INT8', value: -5 }],
    ['t.u16', { type: 'UINT16', value: 65000 }],
    ['t.i16', { type: 'INT16', value: -30000 }],
    ['t.u32', { type: 'UINT32', value: 4000000000 }],
    ['t.i32', { type: 'INT32', value: -2000000000 }],
    ['t.f32', { type: 'FLOAT32', value: 1.5 }],
    ['t.f32nan', { type: 'FLOAT32', value: NaN }],
    ['t.bool', { type: 'BOOL', value: true }],
    ['t.u64', { type: 'UINT64', value: 12345n }],
    ['t.u64big', { type: 'UINT64', value: 2n ** 53n + 1n }],
    ['t.i64', { type: 'INT64', value: -7n }],
    ['t.f64', { type: 'FLOAT64', value: Math.PI }],
    ['t.unicode', { type: 'STRING', value: 'naïve ✓' }],
    ['t.arr_i32', { type: 'ARRAY', itemType: 'INT32', items: [1, -2, 3] }],
    ['t.arr_f32_long', { type: 'ARRAY', itemType: 'FLOAT32', items: Array.from({ length: 300 }, (_, i) => i / 2) }],
    ['tokenizer.ggml.tokens', { type: 'ARRAY', itemType: 'STRING', items: tokens }],
    ['t.nested', { type: 'ARRAY', itemType: 'ARRAY', items: [{ type: 'ARRAY', itemType: 'UINT8', items: [1, 2] }, { type: 'ARRAY', itemType: 'STRING', items: ['a'] }] }],
    ['t.after', { type: 'STRING', value: 'parsed past the skipped arrays' }],
  ];
}

test('round trip: F32, F16, BF16, Q8_0, I32 tensors and metadata of every KV type', async () => {
  await inTemp(async (dir) => {
    const embd = randn(32 * 8, 1, 0.05);
    const q = randn(8 * 8, 2, 0.05).map(f16Round);
    const up = randn(64 * 3, 3, 0.05);
    const q8 = quantizeQ8_0(up);
    const norm = Float32Array.from({ length: 8 }, (_, i) => 1 + i / 8);
    // bf16 is the top half of an f32; these values have zero low mantissa bits, so they are exact in bf16.
    const bf = Float32Array.from([1.5, -2.25, 0.125, 1024]);
    const bfBits = new Uint16Array(Array.from(new Uint32Array(bf.buffer), (u) => u >>> 16));
    const tensors: GgufTensor[] = [
      { name: 'token_embd.weight', ne: [8, 32], type: GGML.F32, data: encodeF32(embd) },
      { name: 'blk.0.attn_q.weight', ne: [8, 8], type: GGML.F16, data: encodeF16(q) },
      { name: 'blk.0.ffn_up.weight', ne: [64, 3], type: GGML.Q8_0, data: q8.bytes },
      { name: 'blk.0.attn_norm.weight', ne: [8], type: GGML.F32, data: encodeF32(norm) },
      { name: 'output.weight', ne: [4], type: GGML.BF16, data: new Uint8Array(bfBits.buffer) },
      { name: 'rope.positions', ne: [3], type: GGML.I32, data: new Uint8Array(Int32Array.from([7, -1, 9]).buffer) },
    ];
    const file = path.join(dir, 'm.gguf');
    const layout = writeGguf(file, { kv: allKvTypes(), tensors });
    assert.equal(layout.alignment, 64);
    await withCheckpoint(file, async (ck) => {
      assert.equal(ck.format, 'gguf');
      assert.deepEqual(ck.files, [file]);
      assert.deepEqual(
        ck.tensors.map((t) => [t.name, t.dtype, t.shape, t.params, t.byteOffset, t.byteLength, t.layout, t.storage]),
        [
          ['token_embd.weight', 'F32', [32, 8], 256, layout.tensors[0].dataAt, 1024, 'embedding', 'gguf'],
          ['blk.0.attn_q.weight', 'F16', [8, 8], 64, layout.tensors[1].dataAt, 128, 'out_in', 'gguf'],
          ['blk.0.ffn_up.weight', 'Q8_0', [3, 64], 192, layout.tensors[2].dataAt, 6 * 34, 'out_in', 'gguf'],
          ['blk.0.attn_norm.weight', 'F32', [8], 8, layout.tensors[3].dataAt, 32, 'vector', 'gguf'],
          ['output.weight', 'BF16', [4], 4, layout.tensors[4].dataAt, 8, 'vector', 'gguf'],
          ['rope.positions', 'I32', [3], 3, layout.tensors[5].dataAt, 12, 'vector', 'gguf'],
        ],
      );
      // Offsets honour general.alignment = 64.
      for (const t of layout.tensors) assert.equal((t.dataAt - layout.dataStart) % 64, 0);
      assert.equal(layout.dataStart % 64, 0);
      const qt = ck.tensors[1];
      assert.deepEqual(qt.layer, { block: 'blk.0', layer: 'attn_q', fusedGroup: 'blk.0.attn_qkv' });
      assert.equal(qt.quantForm, undefined);
      assert.equal(ck.tensors[2].quantForm, 'Q8_0');
      assert.deepEqual(ck.tensors[0].layer, { block: '(root)', layer: 'token_embd' });

      assert.deepEqual([...(await ck.read('token_embd.weight'))], [...embd]);
      assert.deepEqual([...(await ck.read('blk.0.attn_q.weight'))], [...q]);
      assert.deepEqual([...(await ck.read('blk.0.ffn_up.weight'))], [...q8.values]);
      assert.deepEqual([...(await ck.read('blk.0.attn_norm.weight'))], [...norm]);
      assert.deepEqual([...(await ck.read('output.weight'))], [...bf]);
      const ints = ck.tensors[5];
      assert.equal(ints.analyzable, false);
      assert.equal(ints.reason, 'integer tensor: listed, not analyzed');
      await assert.rejects(ck.read('rope.positions'), (e: unknown) => e instanceof QuantLensError && e.code === 'not-analyzable');

      const md = ck.metadata;
      assert.deepEqual(md, {
        'general.architecture': 'llama',
        'general.alignment': 64,
        't.u8': 200,
        't.i8': -5,
        't.u16': 65000,
        't.i16': -30000,
        't.u32': 4000000000,
        't.i32': -2000000000,
        't.f32': 1.5,
        't.f32nan': 'NaN',
        't.bool': true,
        't.u64': 12345,
        't.u64big': '9007199254740993',
        't.i64': -7,
        't.f64': Math.PI,
        't.unicode': 'naïve ✓',
        't.arr_i32': [1, -2, 3],
        't.arr_f32_long': { type: 'FLOAT32', length: 300, first: [0, 0.5, 1, 1.5, 2] },
        'tokenizer.ggml.tokens': { type: 'STRING', length: 1000, first: ['tok0', 'tok1', 'tok2', 'tok3', 'tok4'] },
        't.nested': [[1, 2], ['a']],
        't.after': 'parsed past the skipped arrays',
      });
      assert.deepEqual(JSON.parse(JSON.stringify(md)), md, 'metadata is JSON-safe');
    });
  });
});

test('headers larger than one read chunk: values and strings straddling 1 MiB boundaries', async () => {
  await inTemp(async (dir) => {
    // ~2.4 MB of vocabulary: the reader fetches the header in 1 MiB chunks, so lengths, strings and the
    // metadata and tensor infos after the array all land across chunk boundaries somewhere.
    const tokens = Array.from({ length: 200_000 }, (_, i) => `tok_${i}`);
    const file = path.join(dir, 'big.gguf');
    writeGguf(file, {
      kv: [
        ['tokenizer.ggml.tokens', { type: 'ARRAY', itemType: 'STRING', items: tokens }],
        ['tokenizer.ggml.scores', { type: 'ARRAY', itemType: 'FLOAT32', items: new Array(200_000).fill(0.5) }],
        ['t.last', { type: 'UINT64', value: 0x0102030405060708n }],
      ],
      tensors: Array.from({ length: 300 }, (_, i) => ({ name: `blk.${i}.attn_norm.weight`, ne: [4], type: GGML.F32, data: encodeF32([i, 1, 2, 3]) })),
    });
    await withCheckpoint(file, async (ck) => {
      assert.deepEqual(ck.metadata['tokenizer.ggml.tokens'], { type: 'STRING', length: 200_000, first: ['tok_0', 'tok_1', 'tok_2', 'tok_3', 'tok_4'] });
      assert.equal(ck.metadata['t.last'], '72623859790382856'); // 0x0102030405060708 > 2^53: kept exact as a string
      assert.equal(ck.tensors.length, 300);
      assert.deepEqual([...(await ck.read('blk.299.attn_norm.weight'))], [299, 1, 2, 3]);
    });
  });
});

test('metadata keeps at most 65536 array items in memory; later arrays are summarized', async () => {
  await inTemp(async (dir) => {
    // 257 short arrays of 256 items: the first 256 use up the budget exactly (256 × 256 = 65536).
    const kv: NonNullable<GgufSpec['kv']> = Array.from({ length: 257 }, (_, i) => [`a.${i}`, { type: 'ARRAY', itemType: 'UINT8', items: new Array(256).fill(i & 255) }]);
    kv.push(['z', { type: 'STRING', value: 'still parsed' }]);
    const file = path.join(dir, 'budget.gguf');
    writeGguf(file, { kv });
    await withCheckpoint(file, async (ck) => {
      assert.deepEqual(ck.metadata['a.255'], new Array(256).fill(255));
      assert.deepEqual(ck.metadata['a.256'], { type: 'UINT8', length: 256, first: [] });
      assert.equal(ck.metadata.z, 'still parsed');
    });
  });
});

test('the fixture writer agrees with an independent GGUF parser (@huggingface/gguf)', async () => {
  await inTemp(async (dir) => {
    const file = path.join(dir, 'hf.gguf');
    const layout = writeGguf(file, {
      kv: [
        ['general.architecture', { type: 'STRING', value: 'llama' }],
        ['general.alignment', { type: 'UINT32', value: 64 }],
        ['llama.block_count', { type: 'UINT32', value: 1 }],
      ],
      tensors: [
        { name: 'token_embd.weight', ne: [8, 4], type: GGML.F32, data: encodeF32(new Float32Array(32)) },
        { name: 'blk.0.ffn_up.weight', ne: [64, 2], type: GGML.Q8_0, data: new Uint8Array(4 * 34) },
      ],
    });
    const hf = await gguf(file, { allowLocalFile: true });
    assert.equal(Number(hf.tensorDataOffset), layout.dataStart);
    assert.equal((hf.metadata as Record<string, unknown>)['general.alignment'], 64);
    assert.deepEqual(
      hf.tensorInfos.map((t) => [t.name, t.shape.map(Number), t.dtype, Number(hf.tensorDataOffset) + Number(t.offset)]),
      layout.tensors.map((t, i) => [t.name, [[8, 4], [64, 2]][i], [GGML.F32, GGML.Q8_0][i], t.dataAt]),
    );
  });
});

test('shape is ne reversed: 3-D and 4-D tensors, MoE experts, scalars', async () => {
  await inTemp(async (dir) => {
    const file = path.join(dir, 's.gguf');
    const f32 = (n: number) => encodeF32(new Float32Array(n));
    writeGguf(file, {
      tensors: [
        { name: 'blk.1.ffn_gate_exps.weight', ne: [32, 4, 3], type: GGML.F32, data: f32(32 * 4 * 3) },
        { name: 'v.patch_embd.weight', ne: [2, 3, 5, 7], type: GGML.F32, data: f32(2 * 3 * 5 * 7) },
        { name: 'blk.1.ffn_down.weight', ne: [4, 32], type: GGML.F32, data: f32(128) },
        { name: 'scale', ne: [], type: GGML.F32, data: encodeF32([2.5]) }, // n_dims 0: one element
        { name: 'empty', ne: [0, 4], type: GGML.Q8_0, data: new Uint8Array(0) }, // ggml allows zero-sized dims
      ],
    });
    await withCheckpoint(file, async (ck) => {
      assert.deepEqual(ck.tensors.map((t) => [t.shape, t.params, t.byteLength, t.layout]), [
        [[3, 4, 32], 384, 384 * 4, 'out_in'],
        [[7, 5, 3, 2], 210, 210 * 4, 'conv'],
        [[32, 4], 128, 128 * 4, 'out_in'],
        [[], 1, 4, 'vector'],
        [[4, 0], 0, 0, 'out_in'],
      ]);
      assert.deepEqual([...(await ck.read('scale'))], [2.5]);
      assert.equal((await ck.read('empty')).length, 0);
      assert.deepEqual(ck.tensors[0].layer, { block: 'blk.1', layer: 'ffn_gate_exps' });
    });
  });
});

test('range reads decode only the covering blocks and cross block boundaries', async () => {
  await inTemp(async (dir) => {
    const q40 = randomBlocks(GGML.Q4_0, 8, 7); // ne [64, 4]: 8 blocks of 32
    const q6k = randomBlocks(GGML.Q6_K, 4, 8); // ne [512, 2]: 4 super-blocks
    const f16v = randn(96, 9, 1);
    const file = path.join(dir, 'r.gguf');
    writeGguf(file, {
      tensors: [
        { name: 'a', ne: [64, 4], type: GGML.Q4_0, data: q40 },
        { name: 'b', ne: [512, 2], type: GGML.Q6_K, data: q6k },
        { name: 'c', ne: [32, 3], type: GGML.F16, data: encodeF16(f16v) },
      ],
    });
    const fullA = referenceDecode(GGML.Q4_0, q40);
    const fullB = referenceDecode(GGML.Q6_K, q6k);
    const fullC = Float32Array.from(f16v, f16Round);
    await withCheckpoint(file, async (ck) => {
      for (const [start, count] of [[20, 50], [31, 2], [0, 256], [255, 1], [64, 64], [100, 0]]) {
        assertClose(await ck.read('a', { start, count }), fullA.subarray(start, start + count), `a[${start}+${count}]`);
      }
      for (const [start, count] of [[250, 300], [0, 1024], [511, 2], [768, 256]]) {
        assertClose(await ck.read('b', { start, count }), fullB.subarray(start, start + count), `b[${start}+${count}]`);
      }
      assertClose(await ck.read('c', { start: 30, count: 40 }), fullC.subarray(30, 70), 'c');
      for (const range of [{ start: 250, count: 7 }, { start: -1, count: 2 }, { start: 0.5, count: 1 }]) {
        await assert.rejects(ck.read('a', range), (e: unknown) => e instanceof QuantLensError && e.code === 'bad-range' && e.where.tensor === 'a');
      }
      await assert.rejects(ck.read('nope'), (e: unknown) => e instanceof QuantLensError && e.code === 'unknown-tensor');
    });
  });
});

test('unsupported block types are listed with exact sizes and a reason; read() refuses them', async () => {
  await inTemp(async (dir) => {
    // Bytes per block from ggml-common.h: IQ2_XXS 2 + 64 = 66 per 256; MXFP4 1 + 16 = 17 per 32;
    // TQ1_0 48 + 4 + 2 = 54 per 256; Q8_K 4 + 256 + 32 = 292 per 256; IQ4_NL 2 + 16 = 18 per 32; NVFP4 4 + 32 = 36 per 64.
    const cases: [string, number, number[], number, string][] = [
      ['blk.0.attn_k.weight', GGML.IQ2_XXS, [512, 2], 4 * 66, 'IQ2_XXS'],
      ['blk.0.ffn_up_exps.weight', GGML.MXFP4, [64, 2, 2], 8 * 17, 'MXFP4'],
      ['blk.0.attn_v.weight', GGML.TQ1_0, [256, 1], 54, 'TQ1_0'],
      ['blk.0.attn_output.weight', GGML.Q8_K, [256, 2], 2 * 292, 'Q8_K'],
      ['blk.0.ffn_gate.weight', GGML.IQ4_NL, [32, 3], 3 * 18, 'IQ4_NL'],
      ['blk.0.ffn_down.weight', GGML.NVFP4, [128, 1], 2 * 36, 'NVFP4'],
    ];
    const file = path.join(dir, 'u.gguf');
    writeGguf(file, { tensors: cases.map(([name, type, ne, bytes]) => ({ name, ne, type, data: new Uint8Array(bytes) })) });
    await withCheckpoint(file, async (ck) => {
      for (const [i, [name, , , bytes, ggml]] of cases.entries()) {
        const t = ck.tensors[i];
        assert.equal(t.name, name);
        assert.equal(t.byteLength, bytes, name);
        assert.equal(t.analyzable, false);
        assert.equal(t.reason, `GGUF type ${ggml} not supported for analysis`);
        assert.equal(t.quantForm, ggml);
        assert.equal(t.dtype, ggml);
        await assert.rejects(ck.read(name), (e: unknown) => e instanceof QuantLensError && e.code === 'not-analyzable' && e.message.includes(ggml));
      }
    });
  });
});

test('registry: GGUF magic picks this reader, folders open their .gguf', async () => {
  await inTemp(async (dir) => {
    const file = path.join(dir, 'model.gguf');
    writeGguf(file, { tensors: [{ name: 'output_norm.weight', ne: [4], type: GGML.F32, data: encodeF32([1, 2, 3, 4]) }] });
    assert.equal(ggufReader.match(await probeFile(file)), true);
    assert.equal((await readerFor(file)).format, 'gguf');
    assert.equal(ggufReader.match({ path: 'x.gguf', size: 3, head: new Uint8Array([0x47, 0x47, 0x55]) }), false);
    assert.equal(ggufReader.match({ path: 'x.gguf', size: 8, head: new TextEncoder().encode('GGMLxxxx') }), false);
    const sub = path.join(dir, 'folder');
    mkdirSync(sub);
    writeFileSync(path.join(sub, 'weights.gguf'), readFileSync(file));
    const ck = await openCheckpoint(sub);
    try {
      assert.equal(ck.format, 'gguf');
      assert.equal(ck.path, sub);
      assert.deepEqual([...(await ck.read('output_norm.weight'))], [1, 2, 3, 4]);
    } finally {
      await ck.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Hostile and broken inputs: every rejection is a QuantLensError with file and byte offset

/** A small valid file to corrupt: two KVs, two F32 tensors. */
function baseSpec(): GgufSpec {
  return {
    kv: [
      ['general.architecture', { type: 'STRING', value: 'llama' }],
      ['llama.block_count', { type: 'UINT32', value: 1 }],
    ],
    tensors: [
      { name: 'blk.0.attn_q.weight', ne: [8, 4], type: GGML.F32, data: encodeF32(new Float32Array(32)) },
      { name: 'blk.0.attn_k.weight', ne: [8, 4], type: GGML.F32, data: encodeF32(new Float32Array(32)) },
    ],
  };
}

test('bad magic', async () => {
  await inTemp(async (dir) => {
    const { bytes } = ggufBytes(baseSpec());
    bytes[3] = 0x47; // "GGUG"
    await rejectsAt(put(dir, 'm.gguf', bytes), 'bad-magic', 0, ['"GGUF"', '47 47 55 47']);
  });
});

test('version 1, version 4 and a byte-swapped version are refused', async () => {
  await inTemp(async (dir) => {
    const one = ggufBytes({ ...baseSpec(), version: 1 }).bytes;
    await rejectsAt(put(dir, 'v1.gguf', one), 'unsupported-version', 4, ['unsupported GGUF version 1']);
    const four = ggufBytes({ ...baseSpec(), version: 4 }).bytes;
    await rejectsAt(put(dir, 'v4.gguf', four), 'unsupported-version', 4, ['unsupported GGUF version 4', 'expected 2 or 3']);
    const be = ggufBytes(baseSpec()).bytes;
    be.set([0, 0, 0, 3], 4);
    await rejectsAt(put(dir, 'be.gguf', be), 'unsupported-version', 4, ['big-endian']);
    const two = ggufBytes({ ...baseSpec(), version: 2 }).bytes;
    await withCheckpoint(put(dir, 'v2.gguf', two), async (ck) => assert.equal(ck.tensors.length, 2));
  });
});

test('truncated header: every cut inside the header is a located truncation', async () => {
  await inTemp(async (dir) => {
    const layout = ggufBytes(baseSpec());
    const { bytes, dataStart } = layout;
    const headerEnd = layout.tensors[1].offsetAt + 8;
    for (const cut of [0, 2, 6, 12, 20, 30, 45, headerEnd - 3]) {
      const file = put(dir, `t${cut}.gguf`, bytes.subarray(0, cut));
      await assert.rejects(ggufReader.open(file), (e: unknown) => {
        assert.ok(e instanceof QuantLensError, String(e));
        assert.equal(e.code, 'truncated', e.message);
        assert.equal(e.where.file, file);
        assert.ok(e.where.offset !== undefined && e.where.offset <= cut, e.message);
        assert.ok(e.message.includes(`@ byte ${e.where.offset}`), e.message);
        return true;
      });
    }
    // Cutting the data section instead is a tensor range error.
    const file = put(dir, 'data.gguf', bytes.subarray(0, dataStart + 200));
    await rejectsAt(file, 'out-of-range', layout.tensors[1].offsetAt, ['runs past the end of the file'], 'blk.0.attn_k.weight');
  });
});

test('tensor count 2^40 and an oversized kv_count are refused before any loop', async () => {
  await inTemp(async (dir) => {
    const a = ggufBytes(baseSpec()).bytes;
    patchU64(a, 8, 2n ** 40n);
    await rejectsAt(put(dir, 'tc.gguf', a), 'too-many-tensors', 8, ['tensor_count is 1099511627776', `limit is ${LIMITS.maxTensors}`]);
    const b = ggufBytes(baseSpec()).bytes;
    patchU64(b, 16, 2n ** 62n);
    await rejectsAt(put(dir, 'kv.gguf', b), 'too-many-kv', 16, ['kv_count']);
    // Within the limit but more than the file could hold (13 bytes per KV at least).
    const c = ggufBytes(baseSpec()).bytes;
    patchU64(c, 16, 1000);
    await rejectsAt(put(dir, 'kv2.gguf', c), 'truncated', 16, ['kv_count is 1000', 'needs at least 13000 bytes']);
  });
});

test('string lengths: beyond EOF, beyond the limit', async () => {
  await inTemp(async (dir) => {
    const layout = ggufBytes(baseSpec());
    const a = layout.bytes.slice();
    patchU64(a, layout.kv[0].at, 1_000_000);
    await rejectsAt(put(dir, 'k.gguf', a), 'truncated', layout.kv[0].at, ['metadata key #0', 'length 1000000 runs past the end of the file']);
    const b = layout.bytes.slice();
    patchU64(b, layout.kv[0].typeAt + 4, 2n ** 40n); // the STRING value's length
    await rejectsAt(put(dir, 'v.gguf', b), 'bad-string', layout.kv[0].typeAt + 4, ['metadata general.architecture', `limit of ${LIMITS.maxStringBytes}`]);
    const c = layout.bytes.slice();
    patchU64(c, layout.tensors[1].at, 999_999);
    await rejectsAt(put(dir, 'n.gguf', c), 'truncated', layout.tensors[1].at, ['name of tensor #1']);
  });
});

test('metadata: unknown value type, huge array, duplicate key, nesting too deep', async () => {
  await inTemp(async (dir) => {
    const layout = ggufBytes(baseSpec());
    const a = layout.bytes.slice();
    patchU32(a, layout.kv[1].typeAt, 13);
    await rejectsAt(put(dir, 't.gguf', a), 'bad-value-type', layout.kv[1].typeAt, ['value type of metadata llama.block_count is 13']);

    const arr = ggufBytes({ kv: [['x', { type: 'ARRAY', itemType: 'UINT64', items: [1, 2] }]] });
    const b = arr.bytes.slice();
    patchU64(b, arr.kv[0].typeAt + 8, 2n ** 50n);
    await rejectsAt(put(dir, 'a.gguf', b), 'too-many-items', arr.kv[0].typeAt + 8, ['array length of metadata x']);
    const c = arr.bytes.slice();
    patchU64(c, arr.kv[0].typeAt + 8, 1000); // within limits, but 8000 bytes do not fit
    await rejectsAt(put(dir, 'a2.gguf', c), 'truncated', arr.kv[0].typeAt + 8, ['needs at least 8000 bytes']);

    const dup = ggufBytes({ kv: [['k', { type: 'UINT8', value: 1 }], ['k', { type: 'UINT8', value: 2 }]] });
    await rejectsAt(put(dir, 'd.gguf', dup.bytes), 'duplicate-key', dup.kv[1].at, ['"k" appears twice']);

    let v: GgufValue = { type: 'ARRAY', itemType: 'UINT8', items: [1] };
    for (let i = 0; i < 4; i++) v = { type: 'ARRAY', itemType: 'ARRAY', items: [v] };
    const deep = ggufBytes({ kv: [['deep', v]] });
    await assert.rejects(ggufReader.open(put(dir, 'deep.gguf', deep.bytes)), (e: unknown) => e instanceof QuantLensError && e.code === 'bad-value' && e.message.includes('nested deeper'));
  });
});

test('alignment must be a UINT32 power of two', async () => {
  await inTemp(async (dir) => {
    const odd = ggufBytes({ ...baseSpec(), kv: [['general.alignment', { type: 'UINT32', value: 48 }]] });
    await rejectsAt(put(dir, 'a.gguf', odd.bytes), 'bad-alignment', odd.kv[0].typeAt, ['48', 'power of two']);
    const wide = ggufBytes({ ...baseSpec(), kv: [['general.alignment', { type: 'UINT64', value: 32n }]] });
    await rejectsAt(put(dir, 'b.gguf', wide.bytes), 'bad-alignment', wide.kv[0].typeAt, ['UINT32', 'found UINT64']);
  });
});

test('tensor infos: n_dims 9, unknown type, ne beyond 2^53, duplicate name', async () => {
  await inTemp(async (dir) => {
    const layout = ggufBytes(baseSpec());
    const t1 = layout.tensors[1];
    const a = layout.bytes.slice();
    patchU32(a, t1.nDimsAt, 9);
    await rejectsAt(put(dir, 'd.gguf', a), 'bad-dims', t1.nDimsAt, ['n_dims is 9', 'at most 4'], 'blk.0.attn_k.weight');
    const b = layout.bytes.slice();
    patchU32(b, t1.typeAt, 4); // Q4_2: removed from ggml
    await rejectsAt(put(dir, 't.gguf', b), 'unknown-ggml-type', t1.typeAt, ['unknown ggml type id 4'], 'blk.0.attn_k.weight');
    const c = layout.bytes.slice();
    patchU64(c, t1.nDimsAt + 4, 2n ** 60n);
    await rejectsAt(put(dir, 'n.gguf', c), 'bad-value', t1.nDimsAt + 4, ['ne[0] of tensor blk.0.attn_k.weight is 1152921504606846976'], 'blk.0.attn_k.weight');
    const spec = baseSpec();
    spec.tensors![1].name = spec.tensors![0].name;
    const dup = ggufBytes(spec);
    await rejectsAt(put(dir, 'u.gguf', dup.bytes), 'duplicate-tensor', dup.tensors[1].at, [], 'blk.0.attn_q.weight');
  });
});

test('tensor data: offset beyond EOF, misaligned offset, overlap, row not a whole number of blocks', async () => {
  await inTemp(async (dir) => {
    const layout = ggufBytes(baseSpec());
    const t1 = layout.tensors[1];
    const a = layout.bytes.slice();
    patchU64(a, t1.offsetAt, 1 << 20);
    await rejectsAt(put(dir, 'e.gguf', a), 'out-of-range', t1.offsetAt, ['data offset 1048576', 'runs past the end of the file'], 'blk.0.attn_k.weight');
    const b = layout.bytes.slice();
    patchU64(b, t1.offsetAt, 8);
    await rejectsAt(put(dir, 'm.gguf', b), 'misaligned', t1.offsetAt, ['data offset 8', 'general.alignment (32)'], 'blk.0.attn_k.weight');
    const c = layout.bytes.slice();
    patchU64(c, t1.offsetAt, 96); // tensor 0 spans [0, 128)
    await rejectsAt(put(dir, 'o.gguf', c), 'overlap', t1.offsetAt, ['overlaps tensor blk.0.attn_q.weight [0, 128)'], 'blk.0.attn_k.weight');
    const q = ggufBytes({ tensors: [{ name: 'w', ne: [48, 2], type: GGML.Q8_0, data: new Uint8Array(3 * 34) }] });
    await rejectsAt(put(dir, 'q.gguf', q.bytes), 'bad-shape', q.tensors[0].nDimsAt + 4, ['ne[0] = 48', 'Q8_0 block size 32'], 'w');
  });
});

test('a tensor count the file cannot hold is refused up front', async () => {
  await inTemp(async (dir) => {
    const a = ggufBytes(baseSpec()).bytes;
    patchU64(a, 8, 5_000_000); // under LIMITS.maxTensors, but 24 bytes each exceed the file
    await rejectsAt(put(dir, 'c.gguf', a), 'truncated', 8, ['tensor_count is 5000000']);
  });
});
