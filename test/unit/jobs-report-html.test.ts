// The HTML report a quantize job writes beside its output: self-contained (CSP admits exactly its inline scripts),
// the job's numbers in tables, the predicted error per weight and predicted vs measured with earlier jobs.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { writeNpy } from '../../server/src/calib';
import { runQuantize, type QuantizeReport } from '../../server/src/jobs/pipeline';
import { jobHtmlPath, renderJobReportHtml } from '../../server/src/report/job-html';
import { tempDir } from '../fixtures/common';
import { tinyFeeds, tinyMlp, writeTinyModel } from '../fixtures/tiny-models';

ort.env.logLevel = 'error';
const tmp = tempDir('jobs-report-html');
after(() => tmp.cleanup());

interface ChartJson {
  id: string;
  data: { name?: string; x?: unknown[]; y?: number[]; mode?: string }[];
}

function parse(html: string): { charts: ChartJson[]; scripts: string[]; csp: string; text: string } {
  const charts = JSON.parse(/<script type="application\/json" id="charts">([\s\S]*?)<\/script>/.exec(html)![1]) as ChartJson[];
  const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]);
  const csp = /http-equiv="Content-Security-Policy" content="([^"]*)"/.exec(html)![1];
  return { charts, scripts, csp, text: html.replace(/<script[\s\S]*?<\/script>/g, '') };
}

const sha = (s: string) => `'sha256-${createHash('sha256').update(s, 'utf8').digest('base64')}'`;

function report(over: Partial<QuantizeReport> = {}): QuantizeReport {
  return {
    model: '/m/model.onnx',
    output: '/m/model.quant.onnx',
    method: 'rtn',
    executionProvider: 'cpu',
    simulated: true,
    weights: [
      { name: 'fc<1>.weight', format: 'int4_g128_asym', storage: 'int4', simulated: false, params: 100, relMse: 0.01 },
      { name: 'fc2.weight', format: 'mxfp4', storage: 'float', simulated: true, reason: 'no kernel', params: 50, relMse: 1e-4, hessian: 2 },
    ],
    skipped: [],
    metrics: { kl: 0.1, top1: 0.9, sqnrDb: 20 },
    predicted: { relMse: 0.0067 },
    sizeBytes: { original: 1 << 20, quantized: 1 << 19 },
    evaluation: {
      executionProvider: 'cpu',
      attempts: [],
      output: 'logits',
      batches: 1,
      rows: 4,
      latencyMs: { original: 2, quantized: 1.5 },
      data: { source: 'eval.npy', synthetic: false, samples: 4 },
    },
    report: '/m/model.quant.report.json',
    ...over,
  };
}

describe('job HTML report', () => {
  it('is self-contained: the CSP admits exactly the two inline scripts, nothing remote', () => {
    const { scripts, csp, text } = parse(renderJobReportHtml(report(), [], 'window.Plotly = {};'));
    assert.equal(scripts.length, 2);
    assert.equal(scripts[0], 'window.Plotly = {};');
    assert.match(csp, /^default-src 'none'; script-src /);
    for (const s of scripts) assert.ok(csp.includes(sha(s)), 'script hash in the CSP');
    assert.doesNotMatch(text, /https?:\/\//);
    assert.doesNotMatch(text, /<[^>]*\ssrc=/);
  });

  it('tables: sizes, measured and predicted numbers, names escaped', () => {
    const { text } = parse(renderJobReportHtml(report(), [], ''));
    assert.ok(text.includes('fc&#60;1&#62;.weight'));
    assert.ok(!text.includes('fc<1>'));
    assert.ok(text.includes('1.0 MiB → 512.0 KiB (50.0 %)'));
    assert.ok(text.includes('20.00 dB'));
    assert.ok(text.includes('90.00 %'));
    assert.ok(text.includes('6.700e-3'));
    assert.ok(text.includes('2 (150 parameters), 1 simulated'));
    assert.ok(text.includes('2.00 ms → 1.50 ms'));
    assert.ok(text.includes('pred. tr(ΔWHΔWᵀ)') && text.includes('2.000e+0'));
    // No weight with a Hessian score (round-to-nearest jobs): no such column.
    const rtn = parse(renderJobReportHtml(report({ weights: report().weights.map(({ hessian: _h, ...w }) => w) }), [], '')).text;
    assert.ok(!rtn.includes('tr(ΔWHΔWᵀ)'));
  });

  it('charts: error per weight by format; this job at (predicted, 10^(−SQNR/10)) among the earlier ones', () => {
    const { charts } = parse(renderJobReportHtml(report(), [{ name: 'older job', predicted: 0.5, measured: 0.25 }], ''));
    const weights = charts.find((c) => c.id === 'weights')!;
    assert.deepEqual(
      weights.data.map((t) => [t.name, t.x, t.y]),
      [
        ['int4_g128_asym', ['fc<1>.weight'], [0.01]],
        ['mxfp4', ['fc2.weight'], [1e-4]],
      ],
    );
    const jobs = charts.find((c) => c.id === 'jobs')!;
    const all = jobs.data.find((t) => t.name === 'jobs')!;
    assert.deepEqual(all.x, [0.5, 0.0067]);
    // SQNR 20 dB: the output's relative squared error is 10^−2.
    assert.ok(Math.abs(all.y![1] - 0.01) < 1e-15 && all.y![0] === 0.25);
    const self = jobs.data.find((t) => t.name === 'this job')!;
    assert.deepEqual(self.x, [0.0067]);
    assert.ok(Math.abs(self.y![0] - 0.01) < 1e-15);
  });

  it('a job without evaluation says so instead of drawing a point', () => {
    const html = renderJobReportHtml(report({ metrics: null, evaluation: undefined }), [{ name: 'older', predicted: 1, measured: 1 }], '');
    const { charts, text } = parse(html);
    assert.deepEqual(
      charts.map((c) => c.id),
      ['weights'],
    );
    assert.ok(text.includes('not evaluated'));
  });

  it('runQuantize writes it beside the output and the JSON report; a second job shows the first as an earlier point', async () => {
    const mlp = tinyMlp();
    const model = writeTinyModel(mlp, tmp.dir, 'mlp.onnx');
    const data = path.join(tmp.dir, 'eval.npy');
    writeFileSync(data, writeNpy(tinyFeeds(mlp, 8, 5).x));
    const first = await runQuantize({ model, layer: 'fc2.weight', format: 'int2_ch_sym', out: path.join(tmp.dir, 'a.onnx'), eval: data });
    assert.equal(first.reportHtml, path.join(tmp.dir, 'a.report.html'));
    assert.equal(jobHtmlPath(path.join(tmp.dir, 'a.onnx')), first.reportHtml);
    assert.equal(JSON.parse(readFileSync(first.report!, 'utf8')).reportHtml, first.reportHtml);
    const second = await runQuantize({ model, layer: 'fc1.weight', format: 'int3_ch_sym', out: path.join(tmp.dir, 'b.onnx'), eval: data });
    assert.ok(existsSync(second.reportHtml!));
    const { charts, text } = parse(readFileSync(second.reportHtml!, 'utf8'));
    assert.ok(text.includes('QuantLens job — b.onnx'));
    const points = charts.find((c) => c.id === 'jobs')!.data.find((t) => t.name === 'jobs')!;
    assert.deepEqual(points.x, [first.predicted.relMse, second.predicted.relMse]);
    assert.deepEqual(points.y, [10 ** (-first.metrics!.sqnrDb / 10), 10 ** (-second.metrics!.sqnrDb / 10)]);
    assert.deepEqual(readdirSync(tmp.dir).filter((n) => n.endsWith('.tmp')), []);
  });
});
