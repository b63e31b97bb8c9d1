// Predicted vs measured from finished jobs: the JSON reports beside a model → job results → Plotly traces.
// Expected values are worked out by hand: measured relative error = 10^(−SQNR/10) (SQNR 20 dB → 0.01).
import assert from 'node:assert/strict';
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { JOB_ERROR_UNITS, predictedMeasured, predictedMeasuredChart } from '../../server/src/report/charts';
import { findJobResults } from '../../server/src/report/jobs';
import { tempDir } from '../fixtures/common';

const { dir, cleanup } = tempDir('report-jobs-');
after(cleanup);

const model = path.join(dir, 'mlp.onnx');

/** The fields of a quantize report the chart reads (the rest of a real report is ignored). */
function report(out: string, weights: { name: string; format: string }[], relMse: number, metrics: { kl: number; top1: number; sqnrDb: number } | null, source = model) {
  return { model: source, output: path.join(dir, out), method: 'rtn', weights, predicted: { relMse }, metrics };
}

function write(name: string, body: unknown, mtime: number): void {
  const file = path.join(dir, name);
  writeFileSync(file, typeof body === 'string' ? body : JSON.stringify(body));
  utimesSync(file, mtime, mtime);
}

test('job reports beside the model: newest first, other models, non-reports and broken JSON skipped', async () => {
  writeFileSync(model, 'not read');
  write('mlp.fc1.weight.int4.quant.report.json', report('mlp.fc1.weight.int4.quant.onnx', [{ name: 'fc1.weight', format: 'int4_g32_sym' }], 0.004, { kl: 0.002, top1: 0.99, sqnrDb: 20 }), 1000);
  write('mlp.quant.report.json', report('mlp.quant.onnx', [{ name: 'fc1.weight', format: 'int8_ch_sym' }, { name: 'fc2.weight', format: 'int4_g32_sym' }], 0.0025, { kl: 0.001, top1: 1, sqnrDb: 30 }), 2000);
  write('mlp.fc2.weight.nf4.quant.report.json', report('mlp.fc2.weight.nf4.quant.onnx', [{ name: 'fc2.weight', format: 'nf4' }], 0.01, null), 3000);
  write('other.quant.report.json', report('other.quant.onnx', [{ name: 'x', format: 'nf4' }], 0.5, { kl: 1, top1: 0, sqnrDb: 0 }, path.join(dir, 'other.onnx')), 4000);
  write('broken.report.json', '{"model": ', 5000);
  write('analysis.report.json', { model, layers: [] }, 6000);
  mkdirSync(path.join(dir, 'folder.report.json'));

  const jobs = await findJobResults(model);
  assert.deepEqual(
    jobs.map((j) => [path.basename(j.report), j.name, j.weights, j.predictedRelMse, j.measured]),
    [
      ['mlp.fc2.weight.nf4.quant.report.json', 'fc2.weight → nf4', 1, 0.01, null],
      ['mlp.quant.report.json', '2 weights (mlp.quant.onnx)', 2, 0.0025, { relMse: 0.001, kl: 0.001, top1: 1 }],
      ['mlp.fc1.weight.int4.quant.report.json', 'fc1.weight → int4_g32_sym', 1, 0.004, { relMse: 0.01, kl: 0.002, top1: 0.99 }],
    ],
  );
  // A model with no jobs, and a folder that does not exist: nothing, no error.
  assert.deepEqual(await findJobResults(path.join(dir, 'other-model.onnx')), []);
  assert.deepEqual(await findJobResults(path.join(dir, 'missing', 'm.onnx')), []);
});

test('jobs → Plotly traces: evaluated jobs as points, y = x across both axes, log axes over two decades', async () => {
  const jobs = await findJobResults(model);
  const points = predictedMeasured(jobs);
  assert.deepEqual(points, [
    { name: '2 weights (mlp.quant.onnx)', predicted: 0.0025, measured: 0.001 },
    { name: 'fc1.weight → int4_g32_sym', predicted: 0.004, measured: 0.01 },
  ]);
  const chart = predictedMeasuredChart(points, JOB_ERROR_UNITS);
  assert.equal(chart.data.length, 2);
  const [dots, diag] = chart.data as { x: number[]; y: number[]; text?: string[]; mode: string }[];
  assert.deepEqual(dots.x, [0.0025, 0.004]);
  assert.deepEqual(dots.y, [0.001, 0.01]);
  assert.deepEqual(dots.text, ['2 weights (mlp.quant.onnx)', 'fc1.weight → int4_g32_sym']);
  assert.equal(dots.mode, 'markers');
  // The diagonal spans the smallest to the largest value of either axis: 0.001 … 0.01.
  assert.deepEqual([diag.x, diag.y, diag.mode], [[0.001, 0.01], [0.001, 0.01], 'lines']);
  // 0.001 … 0.01 is exactly one decade: log axes, 1-2-5 ticks.
  assert.deepEqual([chart.layout.xaxis?.type, chart.layout.xaxis?.dtick], ['log', 'D2']);
  assert.equal((chart.layout.xaxis?.title as { text: string }).text, 'predicted relative error');
  assert.equal((chart.layout.yaxis?.title as { text: string }).text, 'measured relative error');
});

test('an exact job (SQNR +∞) measures 0 error, which keeps the axes linear', () => {
  const points = predictedMeasured([{ report: 'r', output: 'o', name: 'w → int8', weights: 1, predictedRelMse: 1e-5, measured: { relMse: Math.pow(10, -Infinity / 10), kl: 0, top1: 1 }, mtimeMs: 0 }]);
  assert.deepEqual(points, [{ name: 'w → int8', predicted: 1e-5, measured: 0 }]);
  const chart = predictedMeasuredChart(points, JOB_ERROR_UNITS);
  assert.equal(chart.layout.xaxis?.type, 'linear');
  assert.deepEqual((chart.data[1] as { x: number[] }).x, [0, 1e-5]);
});
