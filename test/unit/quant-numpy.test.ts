// Cross-check of every listed format against the independent numpy reference test/helpers/numpy-ref.py.
// Needs python3 with numpy; where they are missing the test prints why and passes (the hand-computed spec
// vectors in the other quant-*.test.ts files are the primary tests).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { formatIds, getFormat } from '../../server/src/quant/registry';
import { randn, tempDir } from '../fixtures/common';

const SCRIPT = path.join(__dirname, '..', 'helpers', 'numpy-ref.py');

/** One unit in the last place of a float32 of magnitude |x| (the subnormal spacing at 0). */
function ulp32(x: number): number {
  const a = Math.abs(x);
  return a < 2 ** -126 ? 2 ** -149 : 2 ** (Math.floor(Math.log2(a)) - 23);
}

test('numpy cross-check (needs python3 + numpy): every listed format within 1 ulp of an independent reference', (t) => {
  const probe = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    const why = probe.error ? probe.error.message : probe.stderr.trim().split('\n').pop();
    console.log(`numpy cross-check NOT RUN: python3 with numpy unavailable (${why}); the spec-vector tests still apply`);
    t.diagnostic('python3 + numpy unavailable: cross-check not run');
    return;
  }
  const rows = 24;
  const cols = 160; // partial last groups for 64/128-sized groups
  const w = randn(rows * cols, 99, 0.03);
  for (let r = 0; r < rows; r++) w[r * cols + 17] *= 12; // an outlier input channel
  w[5 * cols + 90] = 0.9; // a lone super weight
  for (let c = 130; c < 160; c++) w[3 * cols + c] = 0; // an all-zero group tail
  const ids = formatIds();
  const { dir, cleanup } = tempDir('quantlens-numpy-');
  try {
    writeFileSync(path.join(dir, 'w.bin'), new Uint8Array(w.buffer));
    writeFileSync(path.join(dir, 'spec.json'), JSON.stringify({ rows, cols, ids }));
    const run = spawnSync('python3', [SCRIPT, dir], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(run.status, 0, `numpy-ref.py failed: ${run.stderr}`);
    for (let k = 0; k < ids.length; k++) {
      const ref = new Float32Array(readFileSync(path.join(dir, `out-${k}.bin`)).buffer.slice(0));
      const got = getFormat(ids[k]).quantizeDequantize(w, [rows, cols], 'out_in');
      assert.equal(ref.length, got.length, ids[k]);
      // A +had output is a sum of h products: cancellation leaves rounding residue around the exact value, so
      // there the ulp is taken of the row's largest magnitude instead of the element's.
      const rowScale = new Float64Array(rows);
      if (ids[k].includes('+had')) for (let i = 0; i < got.length; i++) rowScale[Math.floor(i / cols)] = Math.max(rowScale[Math.floor(i / cols)], Math.abs(ref[i]));
      for (let i = 0; i < got.length; i++) {
        const tol = ulp32(Math.max(Math.abs(got[i]), Math.abs(ref[i]), rowScale[Math.floor(i / cols)]));
        if (!(Math.abs(got[i] - ref[i]) <= tol)) {
          assert.fail(`${ids[k]}: element ${i} (row ${Math.floor(i / cols)}, col ${i % cols}, w=${w[i]}): ours ${got[i]}, numpy ${ref[i]}`);
        }
      }
    }
  } finally {
    cleanup();
  }
});
