// `quantlens/quantizeLayer` over a real LSP connection: the job runs on a worker thread of the server process,
// reports `$/progress`, waits in the queue behind a running job, answers a cancel with RequestCancelled and
// leaves no output behind.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { CancellationTokenSource, ResponseError } from 'vscode-jsonrpc/node';
import { writeNpy } from '../../server/src/calib';
import { runQuantize } from '../../server/src/jobs/pipeline';
import { Requests, type QuantizeLayerResult } from '../../server/src/protocol';
import { tempDir } from '../fixtures/common';
import { tinyFeeds, tinyMlp, writeTinyModel } from '../fixtures/tiny-models';
import { bundleServer, LspClient } from '../helpers/lsp-client';

let client: LspClient;
const { dir, cleanup } = tempDir('jobs-lsp');
const mlp = tinyMlp();
const model = writeTinyModel(mlp, dir, 'mlp.onnx');
const data = path.join(dir, 'eval.npy');

before(async () => {
  writeFileSync(data, writeNpy(tinyFeeds(mlp, 16, 3).x));
  client = LspClient.spawn(await bundleServer('jobs-lsp', ['quantize-worker']), ['--stdio'], { ORT_DISABLE_TELEMETRY: '1' });
  await client.initialize();
});

after(() => {
  client?.kill();
  cleanup();
});

test('quantizeLayer: the engine\'s measurement as deltas, the output path, progress from begin to end', async () => {
  const r = await client.request<QuantizeLayerResult>(Requests.quantizeLayer.method, { model, layer: 'fc1.weight', format: 'int3_g4_sym', eval: data, workDoneToken: 't1' });
  assert.equal(r.output, path.join(dir, 'mlp.fc1.weight.int3_g4_sym.quant.onnx'));
  assert.ok(existsSync(r.output));
  assert.equal(r.layer, 'fc1.weight');
  assert.equal(r.simulated, false);
  assert.equal(r.executionProvider, 'cpu');
  const direct = await runQuantize({ model, layer: 'fc1.weight', format: 'int3_g4_sym', eval: data, out: path.join(dir, 'direct.onnx') });
  assert.equal(r.delta.kl, direct.metrics!.kl);
  assert.equal(r.delta.top1, direct.metrics!.top1 - 1);
  assert.equal(r.delta.sqnrDb, direct.metrics!.sqnrDb);
  assert.ok(r.delta.kl > 0 && r.delta.sizeBytes < 0);
  const mine = client.ofToken('t1');
  assert.deepEqual([mine[0].kind, mine.at(-1)!.kind], ['begin', 'end']);
  const pcts = mine.filter((v) => v.kind === 'report').map((v) => v.percentage!);
  assert.deepEqual(pcts, [...pcts].sort((a, b) => a - b));
  assert.equal(pcts.at(-1), 100);
  assert.equal(r.cached, false);
  // The same request again: answered from the cache while the output is the one written.
  const same = { model, layer: 'fc1.weight', format: 'int3_g4_sym', eval: data };
  const again = await client.request<QuantizeLayerResult>(Requests.quantizeLayer.method, same);
  assert.equal(again.cached, true);
  assert.deepEqual(again.delta, r.delta);
  // A changed model file (same bytes, new identity) runs again and replaces its own earlier output.
  const bytes = readFileSync(model);
  unlinkSync(model);
  writeFileSync(model, bytes);
  const rerun = await client.request<QuantizeLayerResult>(Requests.quantizeLayer.method, same);
  assert.equal(rerun.cached, false);
  assert.equal(rerun.delta.kl, r.delta.kl);
  // So does a job whose output was removed.
  unlinkSync(rerun.output);
  assert.equal((await client.request<QuantizeLayerResult>(Requests.quantizeLayer.method, same)).cached, false);
});

test('one job at a time: a second request waits, says so, then runs', async () => {
  const slow = client.request<QuantizeLayerResult>(Requests.quantizeLayer.method, { model, layer: 'fc0.weight', format: 'int4_g4_sym', maxSamples: 3000, workDoneToken: 'q1' });
  await client.waitForProgress('q1', (v) => v.kind === 'report', 10_000);
  const queued = client.request<QuantizeLayerResult>(Requests.quantizeLayer.method, { model, layer: 'fc2.weight', format: 'int8_ch_sym', eval: data, workDoneToken: 'q2' });
  const [a, b] = await Promise.all([slow, queued]);
  assert.equal(a.waitedFor, 0);
  assert.equal(b.waitedFor, 1);
  assert.ok(client.ofToken('q2').some((v) => v.message === 'waiting for 1 job ahead'));
});

test('a cancelled job answers RequestCancelled, writes nothing, and the server keeps serving', async () => {
  const source = new CancellationTokenSource();
  const out = path.join(dir, 'cancelled.onnx');
  const pending = client.request(Requests.quantizeLayer.method, { model, layer: 'fc0.weight', format: 'int4_g4_sym', maxSamples: 200_000, out, workDoneToken: 'c1' }, source.token);
  await client.waitForProgress('c1', (v) => v.kind === 'report' && /evaluat/.test(v.message ?? ''), 10_000);
  source.cancel();
  const err = await pending.then(
    () => assert.fail('the job finished although it was cancelled'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ResponseError);
  assert.equal(err.code, -32800, err.message);
  assert.ok(!existsSync(out));
  assert.deepEqual(readdirSync(dir).filter((n) => n.endsWith('.tmp')), []);
  const bad = await client.request(Requests.quantizeLayer.method, { model, layer: 'nope', format: 'int4_g4_sym' }).then(
    () => assert.fail('expected an error'),
    (e: unknown) => e as ResponseError<{ tensor?: string }>,
  );
  assert.match(bad.message, /no MatMul\/Gemm\/Conv weight, node or layer named "nope"/);
  assert.equal(bad.data?.tensor, 'nope');
});
