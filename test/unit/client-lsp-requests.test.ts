// The requests behind the editor's Reveal in Plan, Quantize Model, Export Plan and the panel's predicted-vs-measured
// chart, over a real LSP connection (the bundled server over stdio, as the extension talks to it). Rule ranges and
// edits are worked out by hand from the plan texts; job numbers are checked against the engine run directly.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import { ResponseError } from 'vscode-jsonrpc/node';
import { writeNpy } from '../../server/src/calib';
import { runQuantize } from '../../server/src/jobs/pipeline';
import { ErrorCodes, Requests, type ExportPlanResult, type JobResult, type QuantizeModelResult, type RuleForResult } from '../../server/src/protocol';
import { tempDir } from '../fixtures/common';
import { tinyFeeds, tinyMlp, writeTinyModel } from '../fixtures/tiny-models';
import { applyEdits, bundleServer, LspClient, writeSafetensors } from '../helpers/lsp-client';

const { dir, cleanup } = tempDir('client-lsp-');
let lsp: LspClient;

const uriOf = (name: string) => pathToFileURL(path.join(dir, name)).href;

before(async () => {
  writeSafetensors(path.join(dir, 'model.safetensors'), [
    { name: 'model.layers.0.self_attn.q_proj.weight', dtype: 'F16', shape: [16, 16] },
    { name: 'model.layers.0.mlp.down_proj.weight', dtype: 'F16', shape: [16, 32] },
    { name: 'model.layers.1.self_attn.q_proj.weight', dtype: 'F16', shape: [16, 16] },
    { name: 'model.layers.1.mlp.down_proj.weight', dtype: 'F16', shape: [16, 32] },
    { name: 'lm_head.weight', dtype: 'F32', shape: [32, 16] },
  ]);
  lsp = LspClient.spawn(await bundleServer('client-lsp', ['quantize-worker']), ['--stdio'], { ORT_DISABLE_TELEMETRY: '1' });
  await lsp.initialize();
});

after(() => {
  lsp?.kill();
  cleanup();
});

const PLAN = [
  'model: ./model.safetensors',
  'defaults: { format: int4_g32_asym }',
  'rules:',
  '  - match: "model.layers.*.mlp.down_proj"',
  '    format: int8_ch_sym',
  '  - match: "**.q_proj"',
  '    format: int4_g128_asym',
  '',
].join('\n');

const ruleFor = (uri: string, tensors: string[], layer?: string) => lsp.request<RuleForResult>(Requests.ruleFor.method, { uri, tensors, layer });

test('ruleFor: the first rule taking the layer, with the range of its match value', async () => {
  const uri = uriOf('reveal.quant.yaml');
  await lsp.open(uri, PLAN);
  const down = await ruleFor(uri, ['model.layers.1.mlp.down_proj.weight']);
  assert.equal(down.modelPath, path.join(dir, 'model.safetensors'));
  assert.deepEqual([down.rule, down.pattern, down.format, down.tensor], [0, 'model.layers.*.mlp.down_proj', 'int8_ch_sym', 'model.layers.1.mlp.down_proj.weight']);
  // `  - match: ` is 11 characters; the quoted pattern 30 more.
  assert.deepEqual(down.range, { start: { line: 3, character: 11 }, end: { line: 3, character: 41 } });
  assert.equal(down.newRule, undefined);
  const q = await ruleFor(uri, ['model.layers.0.self_attn.q_proj.weight']);
  assert.deepEqual([q.rule, q.pattern, q.format, q.range?.start.line], [1, '**.q_proj', 'int4_g128_asym', 5]);
  // A tensor the model does not have: nothing decides it, nothing to add.
  const none = await ruleFor(uri, ['model.layers.9.mlp.down_proj.weight']);
  assert.deepEqual([none.rule, none.tensor, none.newRule], [-1, undefined, undefined]);
});

test('ruleFor: only defaults decide → the defaults key, and an edit appending a rule that then decides it', async () => {
  const uri = uriOf('add.quant.yaml');
  await lsp.open(uri, PLAN);
  const r = await ruleFor(uri, ['lm_head.weight'], 'lm_head');
  assert.deepEqual([r.rule, r.format, r.tensor], [-1, 'int4_g32_asym', 'lm_head.weight']);
  assert.deepEqual(r.range, { start: { line: 1, character: 0 }, end: { line: 1, character: 8 } });
  assert.ok(r.newRule);
  const text = applyEdits(PLAN, [{ range: r.newRule.range, newText: `${r.newRule.before}int8_ch_sym${r.newRule.after}` }]);
  assert.equal(text, `${PLAN}  - match: "lm_head"\n    format: int8_ch_sym\n`);
  await lsp.replace(uri, 2, text);
  const after = await ruleFor(uri, ['lm_head.weight'], 'lm_head');
  assert.deepEqual([after.rule, after.format, after.range?.start.line], [2, 'int8_ch_sym', 7]);
});

test('ruleFor: a plan without rules gets a `rules:` list; `rules: []` becomes one; names are escaped to match only themselves', async () => {
  const bare = 'model: ./model.safetensors\ndefaults: { format: int4_g32_asym }';
  const uri = uriOf('bare.quant.yaml');
  await lsp.open(uri, bare);
  const r = await ruleFor(uri, ['lm_head.weight'], 'lm_head');
  assert.equal(applyEdits(bare, [{ range: r.newRule!.range, newText: `${r.newRule!.before}nf4_g64${r.newRule!.after}` }]), `${bare}\nrules:\n  - match: "lm_head"\n    format: nf4_g64\n`);

  const empty = 'model: ./model.safetensors\nrules: []\ndefaults: { format: int4_g32_asym }\n';
  const uri2 = uriOf('empty.quant.yaml');
  await lsp.open(uri2, empty);
  const e = await ruleFor(uri2, ['model.layers.0.mlp.down_proj.weight'], 'model.layers.0.mlp.down_proj');
  const edited = applyEdits(empty, [{ range: e.newRule!.range, newText: `${e.newRule!.before}int8_ch_sym${e.newRule!.after}` }]);
  assert.equal(edited, 'model: ./model.safetensors\nrules:\n  - match: "model.layers.0.mlp.down_proj"\n    format: int8_ch_sym\ndefaults: { format: int4_g32_asym }\n');
  await lsp.replace(uri2, 2, edited);
  const now = await ruleFor(uri2, ['model.layers.0.mlp.down_proj.weight']);
  assert.deepEqual([now.rule, now.format], [0, 'int8_ch_sym']);
  // Its sibling in block 1 is not taken by the new rule (the name is literal, not a pattern).
  const sibling = await ruleFor(uri2, ['model.layers.1.mlp.down_proj.weight']);
  assert.equal(sibling.rule, -1);
});

test('ruleFor: a closed document or missing tensors are invalid params, and the server keeps serving', async () => {
  await assert.rejects(ruleFor(uriOf('never-opened.quant.yaml'), ['x']), (e: ResponseError<unknown>) => e.code === -32602);
  await assert.rejects(ruleFor(uriOf('reveal.quant.yaml'), []), (e: ResponseError<unknown>) => e.code === -32602);
  assert.equal((await ruleFor(uriOf('reveal.quant.yaml'), ['lm_head.weight'])).format, 'int4_g32_asym');
});

test('exportPlan: the dialect file beside the plan from the open buffer; an existing file is refused, then replaced on force', async () => {
  const dialects = await lsp.request<{ id: string }[]>(Requests.exportDialects.method, {});
  assert.deepEqual(dialects.map((d) => d.id).sort(), ['gptqmodel', 'hqq', 'llama.cpp', 'llm-compressor', 'modelopt', 'ort-matmulnbits']);
  const uri = uriOf('deploy.quant.yaml');
  // On disk: no rules; in the editor: the rules of PLAN (the buffer is what gets exported).
  writeFileSync(path.join(dir, 'deploy.quant.yaml'), 'model: ./model.safetensors\ndefaults: { format: int4_g32_asym }\n');
  await lsp.open(uri, PLAN);
  const r = await lsp.request<ExportPlanResult>(Requests.exportPlan.method, { uri, dialect: 'llama.cpp' });
  const file = path.join(dir, 'deploy.tensor-types.txt');
  assert.deepEqual(r.files, [file]);
  const text = readFileSync(file, 'utf8');
  // llama.cpp names: blk.N.ffn_down / blk.N.attn_q; int8_ch_sym has no GGML type of its own → q8_0 (nearest).
  assert.match(text, /ffn_down[^\n]*=q8_0/);
  assert.match(r.commandLine ?? '', /llama-quantize .*--tensor-type-file .*deploy\.tensor-types\.txt/);
  await assert.rejects(lsp.request(Requests.exportPlan.method, { uri, dialect: 'llama.cpp' }), (e: ResponseError<{ code: string; file: string }>) => e.code === ErrorCodes.located && e.data?.code === 'output-exists' && e.data.file === file);
  writeFileSync(file, 'edited by hand\n');
  await lsp.request(Requests.exportPlan.method, { uri, dialect: 'llama.cpp', force: true });
  assert.equal(readFileSync(file, 'utf8'), text);
  await assert.rejects(lsp.request(Requests.exportPlan.method, { uri, dialect: 'tflite' }), (e: ResponseError<unknown>) => e.code === ErrorCodes.located && /unknown export dialect/.test(e.message));
});

test('quantizeModel: the plan on the job queue, the engine\'s numbers, then jobResults reads the report back', async () => {
  const mlp = tinyMlp();
  const model = writeTinyModel(mlp, dir, 'mlp.onnx');
  const data = path.join(dir, 'eval.npy');
  writeFileSync(data, writeNpy(tinyFeeds(mlp, 16, 3).x));
  const planPath = path.join(dir, 'mlp.quant.yaml');
  const planText = 'model: ./mlp.onnx\ndefaults: { format: int8_ch_sym }\nrules:\n  - match: fc1.weight\n    format: int3_g4_sym\n';
  writeFileSync(planPath, planText);
  const r = await lsp.request<QuantizeModelResult>(Requests.quantizeModel.method, { model, plan: planPath, eval: data, workDoneToken: 'qm' });
  assert.equal(r.report.output, path.join(dir, 'mlp.quant.onnx'));
  assert.ok(existsSync(r.report.output));
  assert.deepEqual(r.report.weights.map((w) => [w.name, w.format]), [['fc0.weight', 'int8_ch_sym'], ['fc1.weight', 'int3_g4_sym'], ['fc2.weight', 'int8_ch_sym']]);
  const direct = await runQuantize({ model, plan: planPath, eval: data, out: path.join(dir, 'direct.onnx') });
  assert.deepEqual(r.report.metrics, direct.metrics);
  assert.equal(r.report.predicted.relMse, direct.predicted.relMse);
  const progress = lsp.ofToken('qm');
  assert.deepEqual([progress[0].kind, progress.at(-1)!.kind], ['begin', 'end']);

  // The same job again: from the cache. An edited plan (unsaved text) must not silently replace the output.
  assert.equal((await lsp.request<QuantizeModelResult>(Requests.quantizeModel.method, { model, plan: planPath, eval: data })).cached, true);
  const edited = planText.replace('int3_g4_sym', 'int4_g4_sym');
  await assert.rejects(lsp.request(Requests.quantizeModel.method, { model, plan: planPath, planText: edited, eval: data }), (e: ResponseError<{ code: string }>) => e.data?.code === 'output-exists');
  const forced = await lsp.request<QuantizeModelResult>(Requests.quantizeModel.method, { model, plan: planPath, planText: edited, eval: data, force: true });
  assert.equal(forced.report.weights[1].format, 'int4_g4_sym');

  // Two reports beside the model: the forced job (mlp.quant) and the direct run; the measured error is 10^(−SQNR/10).
  const jobs = await lsp.request<JobResult[]>(Requests.jobResults.method, { path: model });
  const byOut = new Map(jobs.map((j) => [path.basename(j.output), j]));
  assert.deepEqual([...byOut.keys()].sort(), ['direct.onnx', 'mlp.quant.onnx']);
  const mine = byOut.get('mlp.quant.onnx')!;
  assert.equal(mine.predictedRelMse, forced.report.predicted.relMse);
  assert.equal(mine.measured!.relMse, 10 ** (-forced.report.metrics!.sqnrDb / 10));
  assert.equal(mine.name, '3 weights (mlp.quant.onnx)');
});
