// .npz reader against numpy's own archives (np.savez / np.savez_compressed bytes pasted below) and against
// hostile archives built by the zip writer in calib-fixtures.ts.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { readNpz } from '../../server/src/calib/npz';
import { QuantLensError } from '../../server/src/formats/errors';
import { tempDir } from '../fixtures/common';
import { npyOf, zip } from './calib-fixtures';

// np.savez(f, x=np.arange(4, dtype='<f4').reshape(2, 2), ids=np.array([1, 2, 3], dtype='<i8')) — stored, zip64 local headers
const SAVEZ =
  '504b03042d00000000000000210091f4e7dbffffffffffffffff05001400782e6e70790100100090000000000000009000000000000000934e554d5059010076007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c2032292c207d202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a000000000000803f0000004000004040504b03042d000000000000002100bc91558effffffffffffffff070014006964732e6e70790100100098000000000000009800000000000000934e554d5059010076007b276465736372273a20273c6938272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028332c292c207d2020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a010000000000000002000000000000000300000000000000504b01022d032d00000000000000210091f4e7db9000000090000000050000000000000000000000800100000000782e6e7079504b01022d032d000000000000002100bc91558e98000000980000000700000000000000000000008001c70000006964732e6e7079504b0506000000000200020068000000980100000000';
// np.savez_compressed(f, x=np.zeros((2, 3), dtype='<f4')) — one deflated member (152 bytes from 73)
const SAVEZ_COMPRESSED =
  '504b03042d00000008000000210078b32618ffffffffffffffff05001400782e6e707901001000980000000000000049000000000000009bec17ea1b10c9c850c650ad9e925a9c5ca46ea5a06e9366a2aea3a09e965f54529498179f5f94920a12774bcc294e058a17672416a402f91a463a0ac69a3a0ab50a64032e061c0000504b01022d032d00000008000000210078b326184900000098000000050000000000000000000000800100000000782e6e7079504b0506000000000100010033000000800000000000';

const { dir, cleanup } = tempDir();
after(cleanup);
let n = 0;
function file(bytes: Uint8Array): string {
  const p = path.join(dir, `a${n++}.npz`);
  writeFileSync(p, bytes);
  return p;
}

async function rejects(bytes: Uint8Array, code: string, pattern: RegExp): Promise<void> {
  const p = file(bytes);
  await assert.rejects(readNpz(p), (e: unknown) => {
    assert.ok(e instanceof QuantLensError, String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, pattern);
    assert.ok(e.message.startsWith(p), e.message);
    return true;
  });
}

const npy = (values: number[]) => npyOf('<f4', [values.length], Float32Array.from(values));

describe('npz reader', () => {
  test('numpy np.savez with two arrays', async () => {
    const arrays = await readNpz(file(Buffer.from(SAVEZ, 'hex')));
    assert.deepEqual(arrays.map((a) => a.name), ['x', 'ids']);
    assert.equal(arrays[0].value.dtype, 'float32');
    assert.deepEqual(arrays[0].value.dims, [2, 2]);
    assert.deepEqual([...arrays[0].value.data], [0, 1, 2, 3]);
    assert.equal(arrays[1].value.dtype, 'int64');
    assert.deepEqual([...arrays[1].value.data], [1n, 2n, 3n]);
  });
  test('numpy np.savez_compressed (deflated member)', async () => {
    const [x] = await readNpz(file(Buffer.from(SAVEZ_COMPRESSED, 'hex')));
    assert.equal(x.name, 'x');
    assert.deepEqual(x.value.dims, [2, 3]);
    assert.deepEqual([...x.value.data], [0, 0, 0, 0, 0, 0]);
  });
  test('own zip: deflated and stored members, names with slashes are just names', async () => {
    const arrays = await readNpz(file(zip([{ name: '../a/b.npy', data: npy([1.5, -2]), deflate: true }, { name: 'c.npy', data: npy([7]) }])));
    assert.deepEqual(arrays.map((a) => a.name), ['../a/b', 'c']);
    assert.deepEqual([...arrays[0].value.data], [1.5, -2]);
    assert.deepEqual([...arrays[1].value.data], [7]);
  });
  test('rejects members that are not .npy, unknown methods, duplicates', async () => {
    await rejects(zip([{ name: 'readme.txt', data: new Uint8Array(3) }]), 'bad-npz', /expected only \.npy members, found 'readme\.txt'/);
    await rejects(zip([{ name: 'x.npy', data: npy([1]), method: 12 }]), 'bad-npz', /compression method 12/);
    await rejects(zip([{ name: 'x.npy', data: npy([1]) }, { name: 'x.npy', data: npy([2]) }]), 'bad-npz', /array 'x' appears twice/);
  });
  test('declared sizes are checked before inflating', async () => {
    // A deflated member claiming 3 GB from a few dozen bytes: refused by the ratio bound, nothing inflated.
    await rejects(zip([{ name: 'x.npy', data: npy([1, 2]), deflate: true, declared: 3_000_000_000 }]), 'bad-npz', /beyond deflate's maximum ratio/);
    // A member that inflates past its declared size is cut off, not buffered.
    await rejects(zip([{ name: 'x.npy', data: npy(new Array(100).fill(0)), deflate: true, declared: 200 }]), 'bad-npz', /member 'x\.npy'.*(too many bytes|beyond its declared)/);
  });
  test('a broken .npy inside is located by archive and member', async () => {
    const bad = npy([1, 2, 3]).subarray(0, 135);
    await rejects(zip([{ name: 'x.npy', data: bad }]), 'truncated', /!\/x\.npy @ byte 128: .*needs 12 data bytes, found 7/);
  });
  test('not a zip archive', async () => rejects(new Uint8Array(100), 'bad-npz', /expected a \.npz \(zip\) archive/));
});

describe('npz reader on mutated archives', () => {
  test('any mutation of numpy archives gives arrays or a QuantLensError', async () => {
    const seeds = [SAVEZ, SAVEZ_COMPRESSED].map((h) => Buffer.from(h, 'hex'));
    await fc.assert(
      fc.asyncProperty(
        fc.nat(1),
        fc.array(fc.tuple(fc.nat(800), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        async (k, edits) => {
          const b = Buffer.from(seeds[k]);
          for (const [at, v] of edits) b[at % b.length] = v;
          try {
            for (const a of await readNpz(file(b))) assert.equal(a.value.data.length, a.value.dims.reduce((x, d) => x * d, 1));
          } catch (e) {
            assert.ok(e instanceof QuantLensError, String(e));
          }
        },
      ),
      { numRuns: 150, seed: 1 },
    );
  });
});
