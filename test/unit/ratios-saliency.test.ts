// The saliency that ranks high-impact weights (allocate/ratios-saliency.ts): the OBS saliency of a MatMul weight
// whose input is the model input, against H = (2/N)·XᵀX and a Gauss–Jordan inverse computed here; the view →
// storage reordering by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hessianSaliency, parseSaliency, toStorageOrder } from '../../server/src/allocate/ratios-saliency';
import { QuantLensError } from '../../server/src/formats/errors';
import { ModelRunner } from '../../server/src/runtime/model-runner';
import { tempDir } from '../fixtures/common';
import { tinyFeeds, tinyMlp, writeTinyModel } from '../fixtures/tiny-models';

test('view → storage order: [in, out] weights are stored transposed', () => {
  // shape [2 in, 3 out], in_out: view row r = output r, column c = input c → storage c·3 + r.
  const view = Float32Array.from([1, 2, 3, 4, 5, 6]); // rows (outputs) 0..2, each [in0, in1]
  assert.deepEqual(Array.from(toStorageOrder(view, [2, 3], 'in_out')), [1, 3, 5, 2, 4, 6]);
  assert.deepEqual(Array.from(toStorageOrder(view, [3, 2], 'out_in')), [1, 2, 3, 4, 5, 6]);
});

/** Inverse of a small SPD matrix by Gauss–Jordan elimination (reference). */
function inverse(a: number[][]): number[][] {
  const n = a.length;
  const m = a.map((row, i) => [...row, ...Array.from({ length: n }, (_, j) => (i === j ? 1 : 0))]);
  for (let c = 0; c < n; c++) {
    const p = m[c][c];
    for (let j = 0; j < 2 * n; j++) m[c][j] /= p;
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = m[r][c];
      for (let j = 0; j < 2 * n; j++) m[r][j] -= f * m[c][j];
    }
  }
  return m.map((row) => row.slice(n));
}

test('hessian saliency of fc0 (input = the model input): w² / [(H + 0.01·mean diag H·I)⁻¹]_jj, storage order', async () => {
  const { dir, cleanup } = tempDir('ratios-saliency');
  const mlp = tinyMlp();
  const runner = await ModelRunner.open(writeTinyModel(mlp, dir, 'mlp.onnx'));
  try {
    const feeds = tinyFeeds(mlp, 24, 9);
    const { saliency, fallback } = await hessianSaliency(runner, [feeds], ['fc0.weight']);
    assert.deepEqual(fallback, []);
    const x = feeds.x.data as Float32Array;
    const [n, d, out] = [24, 8, 16];
    const H = Array.from({ length: d }, (_, i) => Array.from({ length: d }, (_, j) => {
      let s = 0;
      for (let k = 0; k < n; k++) s += x[k * d + i] * x[k * d + j];
      return (2 / n) * s;
    }));
    const damp = (0.01 * H.reduce((s, row, i) => s + row[i], 0)) / d;
    const inv = inverse(H.map((row, i) => row.map((v, j) => (i === j ? v + damp : v))));
    const w = runner.read('fc0.weight'); // [8 in, 16 out]
    const got = saliency.get('fc0.weight')!;
    assert.equal(got.length, d * out);
    for (let j = 0; j < d; j++) {
      for (let o = 0; o < out; o++) {
        const want = (w[j * out + o] ** 2) / inv[j][j];
        assert.ok(Math.abs(got[j * out + o] - want) <= 1e-4 * want + 1e-9, `(${j}, ${o}): ${got[j * out + o]} vs ${want}`);
      }
    }
  } finally {
    await runner.close();
    cleanup();
  }
});

test('--saliency accepts magnitude and hessian only', () => {
  assert.equal(parseSaliency('hessian'), 'hessian');
  assert.throws(() => parseSaliency('fisher'), (e: unknown) => e instanceof QuantLensError && e.where.file === '--saliency' && /expected magnitude or hessian, found 'fisher'/.test(e.message));
});
