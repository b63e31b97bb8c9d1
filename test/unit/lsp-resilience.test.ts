// A language server that stays up: a worker thread that dies in the middle of a quantize job or an analysis fails
// that request only (a located or internal error, no output left, the job queue free again) and the next request
// works; a corrupt analysis-cache entry or a job output changed on disk is detected and recomputed.
// The crash is real: the worker bundles the server loads are wrapped so that, while a marker file exists, the worker
// dies right after its first progress message (process.exit, or an uncaught exception on its event loop).
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { ResponseError } from 'vscode-jsonrpc/node';
import { Requests, type AnalyzeResponse, type QuantizeLayerResult } from '../../server/src/protocol';
import { randn, tempDir } from '../fixtures/common';
import { writeSafetensors } from '../fixtures/safetensors';
import { tinyMlp, writeTinyModel } from '../fixtures/tiny-models';
import { bundleServer, LspClient } from '../helpers/lsp-client';

const { dir, cleanup } = tempDir('quantlens-resilience-');
const MARKER = path.join(dir, 'crash-mode');
const model = writeTinyModel(tinyMlp(), dir, 'mlp.onnx');
const st = path.join(dir, 'model.safetensors');
const cacheDir = path.join(dir, 'cache');
let client: LspClient;

/** Replace `<worker>.js` beside the server with a wrapper around the real bundle that crashes on demand. */
function wrapWorker(bundleDir: string, worker: string): void {
  const real = path.join(bundleDir, `${worker}.real.js`);
  renameSync(path.join(bundleDir, `${worker}.js`), real);
  writeFileSync(
    path.join(bundleDir, `${worker}.js`),
    `const fs = require('node:fs');
const { parentPort } = require('node:worker_threads');
const mode = fs.existsSync(${JSON.stringify(MARKER)}) ? fs.readFileSync(${JSON.stringify(MARKER)}, 'utf8') : '';
if (mode) {
  const post = parentPort.postMessage.bind(parentPort);
  parentPort.postMessage = (m) => {
    post(m);
    if (m && m.type !== 'progress') return;
    if (mode === 'exit') process.exit(70);
    setImmediate(() => { throw new Error('simulated worker crash'); });
  };
}
require(${JSON.stringify(real)});
`,
  );
}

before(async () => {
  const server = await bundleServer('lsp-resilience', ['analysis-worker', 'quantize-worker']);
  for (const w of ['analysis-worker', 'quantize-worker']) wrapWorker(path.dirname(path.dirname(server)), w);
  const f32 = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  writeSafetensors(st, [
    { name: 'model.layers.0.mlp.up_proj.weight', dtype: 'F32', shape: [64, 256], bytes: f32(randn(64 * 256, 1)) },
    { name: 'model.layers.0.mlp.down_proj.weight', dtype: 'F32', shape: [256, 64], bytes: f32(randn(256 * 64, 2)) },
  ]);
  client = LspClient.spawn(server, ['--stdio'], { ORT_DISABLE_TELEMETRY: '1' });
  await client.initialize();
});

after(() => {
  client?.kill();
  cleanup();
});

const failure = (p: Promise<unknown>) =>
  p.then(
    () => assert.fail('the request succeeded although its worker crashed'),
    (e: unknown) => e,
  );

/** The server answers an ordinary request after the crash. */
async function stillServing(): Promise<void> {
  const r = await client.request<{ tensors: unknown[] }>(Requests.inspect.method, { path: st });
  assert.equal(r.tensors.length, 2);
}

const job = { model, layer: 'fc1.weight', format: 'int4_g4_sym', maxSamples: 8 };

for (const mode of ['exit', 'throw'] as const) {
  test(`a quantize worker that dies mid-job (${mode}) fails that job only; no output is left; the next job runs`, async () => {
    const out = path.join(dir, `crash-${mode}.onnx`);
    writeFileSync(MARKER, mode);
    try {
      const err = await failure(client.request(Requests.quantizeLayer.method, { ...job, out, workDoneToken: `q-${mode}` }));
      assert.ok(err instanceof ResponseError, String(err));
      assert.match(err.message, mode === 'exit' ? /quantize worker exited with code 70/ : /simulated worker crash/);
    } finally {
      rmSync(MARKER);
    }
    // Progress was reported before the crash, and the progress of the failed job was ended.
    const values = client.ofToken(`q-${mode}`);
    assert.ok(values.some((v) => v.kind === 'report'), JSON.stringify(values));
    assert.equal(values.at(-1)?.kind, 'end');
    assert.ok(!existsSync(out));
    assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), []);
    await stillServing();
    // The queue is free again: the next job does not wait, and it works.
    const ok = await client.request<QuantizeLayerResult>(Requests.quantizeLayer.method, { ...job, out });
    assert.equal(ok.waitedFor, 0);
    assert.equal(ok.cached, false);
    assert.ok(existsSync(out));
    rmSync(out);
  });

  test(`an analysis worker that dies mid-analysis (${mode}) fails that analysis only; the next one works`, async () => {
    writeFileSync(MARKER, mode);
    try {
      const err = await failure(client.request(Requests.analyze.method, { path: st, formats: ['int8_ch_sym'], cacheDir: '' }));
      assert.ok(err instanceof ResponseError, String(err));
      assert.match(err.message, mode === 'exit' ? /analysis worker exited with code 70/ : /simulated worker crash/);
    } finally {
      rmSync(MARKER);
    }
    await stillServing();
    const r = await client.request<AnalyzeResponse>(Requests.analyze.method, { path: st, formats: ['int8_ch_sym'], cacheDir: '' });
    assert.equal(r.report.layers.length, 2);
  });
}

test('a corrupt analysis-cache entry is detected and recomputed, and the entry is rewritten', async () => {
  const params = { path: st, formats: ['int8_ch_sym', 'int4_g128_asym'], cacheDir };
  const first = await client.request<AnalyzeResponse>(Requests.analyze.method, params);
  assert.equal(first.cache, 'miss');
  assert.equal((await client.request<AnalyzeResponse>(Requests.analyze.method, params)).cache, 'hit');
  const [entry] = readdirSync(cacheDir).filter((f) => f.endsWith('.json'));
  const file = path.join(cacheDir, entry);
  const good = readFileSync(file);
  const corruptions: [string, Buffer][] = [
    ['one flipped bit in the body', Buffer.from(good.map((b, i) => (i === good.length - 10 ? b ^ 4 : b)))],
    ['truncated', good.subarray(0, good.length >> 1)],
    ['empty', Buffer.alloc(0)],
    ['not JSON, checksum line kept', Buffer.concat([good.subarray(0, good.indexOf(10) + 1), Buffer.from('{"layers": [')])],
  ];
  for (const [what, bytes] of corruptions) {
    writeFileSync(file, bytes);
    const r = await client.request<AnalyzeResponse>(Requests.analyze.method, params);
    assert.equal(r.cache, 'miss', what);
    assert.deepEqual(r.report.layers, first.report.layers, what);
    assert.deepEqual(readFileSync(file), good, `${what}: the entry is rewritten`);
  }
});

test('a job output changed or removed on disk is not served from the job cache: the job runs again', async () => {
  // The default output (beside the model) belongs to the layer job, which replaces it on a rerun.
  const first = await client.request<QuantizeLayerResult>(Requests.quantizeLayer.method, job);
  assert.equal(first.cached, false);
  assert.equal((await client.request<QuantizeLayerResult>(Requests.quantizeLayer.method, job)).cached, true);
  const bytes = readFileSync(first.output);
  writeFileSync(first.output, bytes.subarray(0, bytes.length >> 1)); // truncated by something else
  const again = await client.request<QuantizeLayerResult>(Requests.quantizeLayer.method, job);
  assert.equal(again.cached, false);
  assert.deepEqual(readFileSync(first.output), bytes, 'the output is written whole again');
  rmSync(first.output);
  const third = await client.request<QuantizeLayerResult>(Requests.quantizeLayer.method, job);
  assert.equal(third.cached, false);
  assert.ok(existsSync(first.output));
});
