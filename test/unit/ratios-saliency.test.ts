// The saliency that ranks high-impact weights (allocate/ratios-saliency.ts): the OBS saliency of a MatMul weight
// whose input is the model input, against H = (2/N)·XᵀX and a Gauss–Jordan inverse computed here; the view →
// storage reordering by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { dataSaliency, hessianSaliency, parseSaliency, toStorageOrder } from '../../server/src/allocate/ratios-saliency';
import { GraphBuilder } from '../../server/src/runtime/graph';
import { QuantLensError } from '../../server/src/formats/errors';
import { ModelRunner } from '../../server/src/runtime/model-runner';
import { tempDir } from '../fixtures/common';
import { gaussJordanInverse } from '../helpers/linalg';
import { tinyFeeds, tinyMlp, writeTinyModel } from '../fixtures/tiny-models';

test('view → storage order: [in, out] weights are stored transposed', () => {
  // shape [2 in, 3 out], in_out: view row r = output r, column c = input c → storage c·3 + r.
  const view = Float32Array.from([1, 2, 3, 4, 5, 6]); // rows (outputs) 0..2, each [in0, in1]
  assert.deepEqual(Array.from(toStorageOrder(view, [2, 3], 'in_out')), [1, 3, 5, 2, 4, 6]);
  assert.deepEqual(Array.from(toStorageOrder(view, [3, 2], 'out_in')), [1, 2, 3, 4, 5, 6]);
});


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
    const inv = gaussJordanInverse(H.map((row, i) => row.map((v, j) => (i === j ? v + damp : v))));
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

test('--saliency accepts magnitude, hessian, fisher and gwq', () => {
  assert.equal(parseSaliency('hessian'), 'hessian');
  assert.equal(parseSaliency('gwq'), 'gwq');
  assert.throws(() => parseSaliency('obs'), (e: unknown) => e instanceof QuantLensError && e.where.file === '--saliency' && /expected magnitude, hessian, fisher, gwq, found 'obs'/.test(e.message));
});

test('fisher and gwq saliency of a linear classifier: F·w² and |ḡ·w| against per-sample gradients written out here', async () => {
  // logits z = x·W (W [4 in, 3 out]); no labels → cross-entropy against the model's own top-1 t:
  // ∂L/∂W[i][c] = x_i·(softmax(z)_c − [c = t]) for each sample.
  const [d, k, n] = [4, 3, 6];
  const W = Float32Array.from({ length: d * k }, (_, i) => Math.sin(1.3 * i + 0.2));
  const X = Float32Array.from({ length: n * d }, (_, i) => Math.cos(0.7 * i * i + 1));
  const g = new GraphBuilder();
  g.input('x', 'float32', ['N', d]);
  g.initializer('W', W, [d, k]);
  g.node('MatMul', ['x', 'W'], ['logits']);
  g.output('logits', 'float32', ['N', k]);
  const { dir, cleanup } = tempDir('ratios-saliency-grad');
  const file = path.join(dir, 'linear.onnx');
  writeFileSync(file, g.build());
  const runner = await ModelRunner.open(file);
  try {
    const F = new Float64Array(d * k);
    const G = new Float64Array(d * k);
    for (let s = 0; s < n; s++) {
      const x = X.subarray(s * d, s * d + d);
      const z = Array.from({ length: k }, (_, c) => x.reduce((a, xi, i) => a + xi * W[i * k + c], 0));
      const t = z.indexOf(Math.max(...z));
      const e = z.map((v) => Math.exp(v - z[t]));
      const sum = e.reduce((a, b) => a + b);
      for (let i = 0; i < d; i++) for (let c = 0; c < k; c++) {
        const grad = x[i] * (e[c] / sum - (c === t ? 1 : 0));
        F[i * k + c] += (grad * grad) / n;
        G[i * k + c] += grad / n;
      }
    }
    const calib = { batches: [{ x: { dtype: 'float32' as const, dims: [n, d], data: X } }], samples: n, synthetic: false, source: 'test' };
    const fisher = (await dataSaliency('fisher', runner, calib, ['W'])).saliency.get('W')!;
    const gwq = (await dataSaliency('gwq', runner, calib, ['W'])).saliency.get('W')!;
    for (let j = 0; j < d * k; j++) {
      const wantF = F[j] * W[j] * W[j];
      const wantG = Math.abs(G[j] * W[j]);
      assert.ok(Math.abs(fisher[j] - wantF) <= 1e-4 * wantF + 1e-7, `fisher ${j}: ${fisher[j]} vs ${wantF}`);
      assert.ok(Math.abs(gwq[j] - wantG) <= 1e-4 * wantG + 1e-7, `gwq ${j}: ${gwq[j]} vs ${wantG}`);
    }
  } finally {
    await runner.close();
    cleanup();
  }
});
