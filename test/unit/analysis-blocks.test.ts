// Row-block streaming must give the same numbers as quantizing the whole tensor, for every catalogue format:
// blockmode.ts decides which formats stream by rows, which get the appended column-max row, which need the whole
// tensor. A wrong decision changes the quantized values of some block, hence relMse.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { blockMode } from '../../server/src/analysis/blockmode';
import { analyzeTensor } from '../../server/src/analysis/datafree';
import { DEFAULT_OPTIONS } from '../../server/src/analysis/types';
import { formatIds, getFormat } from '../../server/src/quant';
import { randn } from '../fixtures/common';
import { memoryCheckpoint, tensorInfo } from '../helpers/memory-checkpoint';

const ROWS = 24;
const COLS = 160; // partial last groups for 64/128
const w = randn(ROWS * COLS, 21, 0.02);
for (let r = 0; r < ROWS; r++) w[r * COLS + 33] *= 12; // outlier input channel: +reorder / +ol have work to do
w[7 * COLS + 90] = 0.9;

test('every catalogue format: block-wise analysis equals whole-tensor quantization', async () => {
  const ckpt = memoryCheckpoint([{ name: 'l.weight', shape: [ROWS, COLS], data: w }]);
  const t = tensorInfo(ckpt, 'l.weight');
  const ids = formatIds();
  assert.ok(ids.length > 50);
  for (const id of ids) {
    const o = { ...DEFAULT_OPTIONS, formats: [id], highImpact: false };
    const whole = await analyzeTensor(ckpt, t, o, { blockElems: 1 << 30 });
    const blocked = await analyzeTensor(ckpt, t, o, { blockElems: 5 * COLS });
    assert.deepEqual(blocked.errors, whole.errors, `${id} (${blockMode(getFormat(id))})`);
    // And the whole-tensor run is the format itself.
    const q = getFormat(id).quantizeDequantize(w, [ROWS, COLS], 'out_in');
    let num = 0;
    let den = 0;
    for (let i = 0; i < w.length; i++) {
      num += (q[i] - w[i]) ** 2;
      den += w[i] ** 2;
    }
    assert.ok(Math.abs(whole.errors[id].relMse - num / den) <= 1e-12 * (num / den), id);
  }
});

test('block modes: per-tensor scales and +reorder are augmented; +had/+ol over them need the whole tensor', () => {
  assert.equal(blockMode(getFormat('int4_g128_asym')), 'rows');
  assert.equal(blockMode(getFormat('int8_ch_sym')), 'rows');
  assert.equal(blockMode(getFormat('mxfp4+had32')), 'rows');
  assert.equal(blockMode(getFormat('fp8_e4m3')), 'augment');
  assert.equal(blockMode(getFormat('nvfp4')), 'augment');
  assert.equal(blockMode(getFormat('int4_g128_asym+reorder')), 'augment');
  assert.equal(blockMode(getFormat('nvfp4+had16')), 'whole');
  assert.equal(blockMode(getFormat('fp8_e4m3+ol2')), 'whole');
});
