// The reader fuzzer on the side inputs inside `npm test` (imatrix, .npy, .npz): valid seeds, reproducible cases and a
// deterministic 200-case run per format; the full campaign is `npm run fuzz`. Plus hand-built hostile inputs whose
// refusal must name the place and not allocate what the header claims.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { readNpyFile, readNpz } from '../../server/src/calib';
import { QuantLensError } from '../../server/src/formats/errors';
import { readImatrix } from '../../server/src/sensitivity/imatrix';
import { tempDir } from '../fixtures/common';
import { casesRebuild, seedsAreValid, smokeRun } from '../fuzz/smoke';
import { INPUT_TARGETS } from '../fuzz/targets';
import { npyBytes, npyOf, zip } from './calib-fixtures';

test('every side-input seed is valid: it reads before any mutation', () => seedsAreValid(INPUT_TARGETS));

test('a side-input case is rebuilt byte for byte from (seed, format, index)', () => casesRebuild(INPUT_TARGETS));

test('fuzz smoke: 200 mutated inputs per side-input format, no crash, hang or huge allocation', () => smokeRun(INPUT_TARGETS, 200));

/** Expect a located QuantLensError naming `file`; RSS may not grow by what the input claims. */
async function refused(file: string, read: (f: string) => Promise<unknown>, where: (e: QuantLensError) => void): Promise<void> {
  const rss = process.memoryUsage.rss();
  const err = await read(file).then(
    () => assert.fail(`${file} was accepted`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof QuantLensError, String((err as Error)?.stack ?? err));
  assert.ok(err.message.includes(file), err.message);
  where(err);
  assert.ok(process.memoryUsage.rss() - rss < 64 * 2 ** 20);
}

test('headers claiming huge sizes are refused before allocation, at the byte that claims them', async () => {
  const { dir, cleanup } = tempDir('quantlens-fuzz-inputs-');
  try {
    // .npy: shape (2^40,) float32 over 4 data bytes; the header dict starts at byte 10 (version 1.0 preamble).
    const npy = path.join(dir, 'huge.npy');
    writeFileSync(npy, npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }", new Uint8Array(4)));
    await refused(npy, readNpyFile, (e) => assert.equal(e.where.offset, 10));
    // .npz: a deflated member whose headers declare 2^32 − 1 bytes (the zip32 maximum): beyond deflate's ratio.
    const npz = path.join(dir, 'huge.npz');
    writeFileSync(npz, zip([{ name: 'x.npy', data: npyOf('<f4', [4], new Float32Array(4)), deflate: true, declared: 2 ** 32 - 1 }]));
    await refused(npz, readNpz, (e) => assert.equal(e.where.tensor, 'x.npy'));
    // legacy imatrix: one entry claiming 2^31 − 1 values (i32 count, i32 name length, name, i32 ncall, i32 nval).
    const dat = path.join(dir, 'huge.dat');
    const b = Buffer.alloc(4 + 4 + 1 + 4 + 4 + 8);
    b.writeInt32LE(1, 0);
    b.writeInt32LE(1, 4);
    b.write('w', 8);
    b.writeInt32LE(1, 9);
    b.writeInt32LE(2 ** 31 - 1, 13);
    writeFileSync(dat, b);
    await refused(dat, readImatrix, (e) => assert.equal(e.where.offset, 13));
  } finally {
    cleanup();
  }
});
