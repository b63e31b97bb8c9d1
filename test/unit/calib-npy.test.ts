// .npy reader/writer against numpy's own bytes (pasted below, produced once by numpy 2.4 with np.save /
// np.lib.format.write_array) and against headers written by hand from the format spec.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { QuantLensError } from '../../server/src/formats/errors';
import { memorySource, readNpy, readNpyFile, writeNpy } from '../../server/src/calib/npy';
import type { ArrayValue } from '../../server/src/calib/types';
import { tempDir, toF16Bits } from '../fixtures/common';
import { npyBytes } from './calib-fixtures';

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));

// numpy: np.save(f, np.arange(6, dtype='<f4').reshape(2, 3)) etc.
const NUMPY = {
  f4: '934e554d5059010076007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c2033292c207d202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a000000000000803f0000004000004040000080400000a040',
  // np.array([1, -2, 3], dtype='>i4')
  beI4: '934e554d5059010076007b276465736372273a20273e6934272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028332c292c207d2020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a00000001fffffffe00000003',
  // np.asfortranarray(np.arange(6, dtype='<f8').reshape(2, 3))
  fortF8: '934e554d5059010076007b276465736372273a20273c6638272c2027666f727472616e5f6f72646572273a20547275652c20277368617065273a2028322c2033292c207d20202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a00000000000000000000000000000840000000000000f03f000000000000104000000000000000400000000000001440',
  // write_array(f, np.array([1.5, -2.0], dtype='<f2'), version=(2, 0))
  v2F2: '934e554d50590200740000007b276465736372273a20273c6632272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c292c207d202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a003e00c0',
  // write_array(f, np.array([7, 255], dtype='u1'), version=(3, 0))
  v3U1: '934e554d50590300740000007b276465736372273a20277c7531272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c292c207d202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a07ff',
  // np.array([True, False, True])
  b1: '934e554d5059010076007b276465736372273a20277c6231272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028332c292c207d2020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a010001',
  // np.array([[-1], [2**40]], dtype='<i8')
  i8: '934e554d5059010076007b276465736372273a20273c6938272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c2031292c207d202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200affffffffffffffff0000000000010000',
  // np.array(-5, dtype='i1') (a 0-d array)
  i1: '934e554d5059010076007b276465736372273a20277c6931272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028292c207d20202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200afb',
};

const parse = (bytes: Uint8Array, name = 'm.npy') => readNpy(memorySource(bytes, name));

async function rejects(bytes: Uint8Array, code: string, pattern: RegExp, offset?: number): Promise<void> {
  await assert.rejects(parse(bytes), (e: unknown) => {
    assert.ok(e instanceof QuantLensError, String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, pattern);
    assert.match(e.message, /^m\.npy/);
    if (offset !== undefined) assert.equal(e.where.offset, offset, e.message);
    return true;
  });
}

describe('npy reader on numpy bytes', () => {
  test('<f4 2×3 C order', async () => {
    const v = await parse(hex(NUMPY.f4));
    assert.equal(v.dtype, 'float32');
    assert.deepEqual(v.dims, [2, 3]);
    assert.deepEqual([...v.data], [0, 1, 2, 3, 4, 5]);
  });
  test('>i4 big-endian is converted', async () => {
    const v = await parse(hex(NUMPY.beI4));
    assert.equal(v.dtype, 'int32');
    assert.ok(v.data instanceof Int32Array);
    assert.deepEqual([...v.data], [1, -2, 3]);
  });
  test('fortran_order True is transposed to C order', async () => {
    const v = await parse(hex(NUMPY.fortF8));
    assert.equal(v.dtype, 'float64');
    assert.deepEqual(v.dims, [2, 3]);
    assert.deepEqual([...v.data], [0, 1, 2, 3, 4, 5]);
  });
  test('version 2.0 header, <f2 kept as half bits', async () => {
    const v = await parse(hex(NUMPY.v2F2));
    assert.equal(v.dtype, 'float16');
    assert.ok(v.data instanceof Uint16Array);
    assert.deepEqual([...v.data], [0x3e00, 0xc000]); // 1.5, -2.0
  });
  test('version 3.0 header (utf-8), |u1', async () => {
    const v = await parse(hex(NUMPY.v3U1));
    assert.equal(v.dtype, 'uint8');
    assert.deepEqual([...v.data], [7, 255]);
  });
  test('|b1', async () => {
    const v = await parse(hex(NUMPY.b1));
    assert.equal(v.dtype, 'bool');
    assert.deepEqual([...v.data], [1, 0, 1]);
  });
  test('<i8 beyond 2^32', async () => {
    const v = await parse(hex(NUMPY.i8));
    assert.equal(v.dtype, 'int64');
    assert.deepEqual(v.dims, [2, 1]);
    assert.deepEqual([...v.data], [-1n, 2n ** 40n]);
  });
  test('|i1 0-d array', async () => {
    const v = await parse(hex(NUMPY.i1));
    assert.equal(v.dtype, 'int8');
    assert.deepEqual(v.dims, []);
    assert.deepEqual([...v.data], [-5]);
  });
});

describe('npy reader on hand-written headers', () => {
  test('>f8 and >f2 big-endian', async () => {
    const be8 = new Uint8Array(16);
    new DataView(be8.buffer).setFloat64(0, -0.25, false);
    new DataView(be8.buffer).setFloat64(8, 1e300, false);
    const v = await parse(npyBytes("{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }", be8));
    assert.deepEqual([...v.data], [-0.25, 1e300]);
    const v2 = await parse(npyBytes("{'descr': '>f2', 'fortran_order': False, 'shape': (1,), }", new Uint8Array([0x3c, 0x00])));
    assert.deepEqual([...v2.data], [0x3c00]); // 1.0
  });
  test('3-D fortran order int32, double quotes, no trailing comma, unpadded', async () => {
    // element (i, j, k) = 100i + 10j + k, stored with i fastest (column-major)
    const dims = [2, 3, 4];
    const data = new Int32Array(24);
    let n = 0;
    for (let k = 0; k < 4; k++) for (let j = 0; j < 3; j++) for (let i = 0; i < 2; i++) data[n++] = 100 * i + 10 * j + k;
    const v = await parse(npyBytes('{"shape": (2, 3, 4), "fortran_order": True, "descr": "<i4"}', new Uint8Array(data.buffer), 1, false));
    assert.deepEqual(v.dims, dims);
    const want: number[] = [];
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) want.push(100 * i + 10 * j + k);
    assert.deepEqual([...v.data], want);
  });
  test('fortran order with 8-byte elements, big-endian', async () => {
    const raw = new Uint8Array(4 * 8);
    const dv = new DataView(raw.buffer);
    [10n, 20n, 11n, 21n].forEach((x, i) => dv.setBigInt64(i * 8, x, false)); // (2, 2): column-major 10 20 | 11 21
    const v = await parse(npyBytes("{'descr': '>i8', 'fortran_order': True, 'shape': (2, 2), }", raw));
    assert.deepEqual([...v.data], [10n, 11n, 20n, 21n]);
  });
});

describe('npy reader rejects bad input with located errors', () => {
  const f4 = (shape: string, n: number) => npyBytes(`{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }`, new Uint8Array(n));
  test('truncated data', async () => {
    const good = hex(NUMPY.f4);
    await rejects(good.subarray(0, good.length - 1), 'truncated', /needs 24 data bytes, found 23/, 128);
  });
  test('trailing bytes after the data', async () => rejects(f4('(2,)', 9), 'bad-npy', /needs 8 data bytes, found 9/, 128));
  test('header claiming a huge shape is refused before allocation', async () => {
    await rejects(f4('(100000, 100000, 100000)', 4), 'too-large', /more than 100000000 elements/, 10);
    await rejects(f4('(4000000, 4)', 4), 'truncated', /needs 64000000 data bytes, found 4/, 128);
  });
  test('negative dimension', async () => rejects(f4('(-2, 3)', 0), 'bad-npy', /non-negative/));
  test('bad magic and version', async () => {
    const b = hex(NUMPY.f4);
    b[1] = 0x4f;
    await rejects(b, 'bad-npy', /magic/, 0);
    const c = hex(NUMPY.f4);
    c[6] = 4;
    await rejects(c, 'bad-npy', /version 1\.0, 2\.0 or 3\.0, found 4\.0/, 6);
  });
  test('header length beyond the file', async () => {
    const b = hex(NUMPY.f4);
    b[8] = 0xff;
    b[9] = 0x7f;
    await rejects(b, 'truncated', /header declares 32767 bytes/, 8);
    await rejects(new Uint8Array([0x93, 0x4e, 0x55, 0x4d]), 'bad-npy', /at least 10 bytes/);
  });
  test('unsupported and structured descr', async () => {
    await rejects(npyBytes("{'descr': '<u2', 'fortran_order': False, 'shape': (1,), }", new Uint8Array(2)), 'bad-npy', /unsupported descr '<u2'/);
    await rejects(npyBytes("{'descr': '|f4', 'fortran_order': False, 'shape': (1,), }", new Uint8Array(4)), 'bad-npy', /unsupported descr '\|f4'/);
    await rejects(npyBytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", new Uint8Array(4)), 'bad-npy', /structured/);
  });
  test('wrong keys, bad fortran_order, code instead of literals', async () => {
    await rejects(npyBytes("{'descr': '<f4', 'shape': (1,), }", new Uint8Array(4)), 'bad-npy', /found descr, shape/);
    await rejects(npyBytes("{'descr': '<f4', 'fortran_order': 1, 'shape': (1,), }", new Uint8Array(4)), 'bad-npy', /fortran_order True or False, found 1/);
    // The offset points at the first byte the literal parser could not accept (10 + index of `__import__`).
    const evil = "{'descr': __import__('os').system('x'), 'fortran_order': False, 'shape': (1,), }";
    await rejects(npyBytes(evil, new Uint8Array(4)), 'bad-npy', /invalid \.npy header: expected a string/, 10 + evil.indexOf('__import__'));
    await rejects(npyBytes("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", new Uint8Array(4)), 'bad-npy', /repeated key 'descr'/);
    await rejects(npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1,) ", new Uint8Array(4)), 'bad-npy', /expected ',' or '}'/);
    await rejects(npyBytes("{'descr': " + '('.repeat(40), new Uint8Array(0)), 'bad-npy', /nesting deeper than 8/);
  });
});

describe('writeNpy', () => {
  test('writes exactly numpy’s bytes', () => {
    const f = writeNpy({ dtype: 'float32', dims: [2, 3], data: Float32Array.from([0, 1, 2, 3, 4, 5]) });
    assert.deepEqual(Buffer.from(f).toString('hex'), NUMPY.f4);
    assert.deepEqual(Buffer.from(writeNpy({ dtype: 'bool', dims: [3], data: Uint8Array.from([1, 0, 1]) })).toString('hex'), NUMPY.b1);
    assert.deepEqual(Buffer.from(writeNpy({ dtype: 'int8', dims: [], data: Int8Array.from([-5]) })).toString('hex'), NUMPY.i1);
    assert.deepEqual(Buffer.from(writeNpy({ dtype: 'int64', dims: [2, 1], data: BigInt64Array.from([-1n, 2n ** 40n]) })).toString('hex'), NUMPY.i8);
  });
  test('round-trips every dtype through a file', async () => {
    const { dir, cleanup } = tempDir();
    after(cleanup);
    const values: ArrayValue[] = [
      { dtype: 'float32', dims: [2, 2], data: Float32Array.from([1, -2, 3.5, 1e-8]) },
      { dtype: 'float16', dims: [3], data: Uint16Array.from([toF16Bits(0.5), toF16Bits(-3), toF16Bits(65504)]) },
      { dtype: 'float64', dims: [1, 2], data: Float64Array.from([Math.PI, -1e-300]) },
      { dtype: 'int64', dims: [2], data: BigInt64Array.from([-(2n ** 62n), 7n]) },
      { dtype: 'int32', dims: [2], data: Int32Array.from([-(2 ** 31), 2 ** 31 - 1]) },
      { dtype: 'int8', dims: [2], data: Int8Array.from([-128, 127]) },
      { dtype: 'uint8', dims: [1, 1, 2], data: Uint8Array.from([0, 255]) },
      { dtype: 'bool', dims: [2], data: Uint8Array.from([0, 1]) },
    ];
    for (const v of values) {
      const file = path.join(dir, `${v.dtype}.npy`);
      writeFileSync(file, writeNpy(v));
      const back = await readNpyFile(file);
      assert.equal(back.dtype, v.dtype);
      assert.deepEqual(back.dims, v.dims);
      assert.deepEqual([...back.data], [...v.data]);
    }
  });
});

describe('npy reader on mutated bytes', () => {
  test('any mutation of numpy files gives a consistent value or a QuantLensError', async () => {
    const seeds = Object.values(NUMPY).map(hex);
    await fc.assert(
      fc.asyncProperty(
        fc.nat(seeds.length - 1),
        fc.array(fc.tuple(fc.nat(200), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
        fc.option(fc.nat(200)),
        async (k, edits, cut) => {
          const b = seeds[k].slice();
          for (const [at, v] of edits) if (at < b.length) b[at] = v;
          try {
            const v = await parse(cut === null ? b : b.subarray(0, cut));
            assert.equal(v.data.length, v.dims.reduce((a, d) => a * d, 1));
          } catch (e) {
            assert.ok(e instanceof QuantLensError, String(e));
          }
        },
      ),
      { numRuns: 500, seed: 1 },
    );
  });
});
