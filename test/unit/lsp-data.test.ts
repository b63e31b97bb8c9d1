// The plan's second diagnostics pass over LSP: calibration data checked against the ONNX model's inputs, and
// a model without analysis flagged as information (diagnostics never wait for an analysis).
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import { writeNpy } from '../../server/src/calib';
import { randn, tempDir } from '../fixtures/common';
import { tinyMlp, writeTinyModel } from '../fixtures/tiny-models';
import { bundle, LspClient, writeSafetensors, type LspDiagnostic } from '../helpers/lsp-client';

const { dir, cleanup } = tempDir();
let lsp: LspClient;
const at = (diags: LspDiagnostic[], code: string) => diags.filter((d) => d.code === code).map((d) => [d.range.start.line, d.severity]);

before(async () => {
  writeTinyModel(tinyMlp(), dir, 'mlp.onnx');
  writeFileSync(path.join(dir, 'good.npy'), writeNpy({ dtype: 'float32', dims: [4, 8], data: randn(32, 1, 1) }));
  writeFileSync(path.join(dir, 'bad.npy'), writeNpy({ dtype: 'float32', dims: [4, 9], data: randn(36, 1, 1) }));
  writeSafetensors(path.join(dir, 'llm.safetensors'), [{ name: 'model.layers.0.mlp.down_proj.weight', dtype: 'F32', shape: [8, 8] }]);
  lsp = LspClient.spawn(await bundle('server/src/server.ts', 'lsp-data'), ['--stdio'], { XDG_CACHE_HOME: path.join(dir, 'cache') });
  await lsp.initialize();
});
after(() => {
  lsp?.kill();
  cleanup();
});

test('calibration that does not fit the ONNX inputs is an error at the calibration value; fitting data is silent', async () => {
  const plan = (calib: string) => `model: ./mlp.onnx\ncalibration: ./${calib}\nmethod: hessian\ndefaults: { format: int4_g32_sym }\n`;
  const bad = await secondPass('bad.quant.yaml', plan('bad.npy'));
  assert.deepEqual(at(bad, 'calibration-mismatch'), [[1, 1]]);
  assert.match(bad.find((d) => d.code === 'calibration-mismatch')!.message, /bad\.npy: input 'x' expects shape \[N, 8\] \(float32\), found \[4, 9\]/);
  // No analysis in the (empty) cache: an information diagnostic at the model value.
  assert.deepEqual(at(bad, 'not-analyzed'), [[0, 3]]);
  const good = await secondPass('good.quant.yaml', plan('good.npy'));
  assert.deepEqual(at(good, 'calibration-mismatch'), []);
});

test('calibration next to a safetensors model is a warning pointing to imatrix', async () => {
  const d = await secondPass('llm.quant.yaml', 'model: ./llm.safetensors\ncalibration: ./good.npy\ndefaults: { format: int4_g32_sym }\n');
  assert.deepEqual(at(d, 'calibration-unused'), [[1, 2]]);
  assert.match(d.find((x) => x.code === 'calibration-unused')!.message, /imatrix/);
});

/** The second diagnostics publication of a freshly opened plan (fast checks first, then the data checks). */
async function secondPass(name: string, text: string): Promise<LspDiagnostic[]> {
  const uri = pathToFileURL(path.join(dir, name)).href;
  const first = lsp.nextDiagnostics(uri, 1);
  const second = first.then(() => lsp.nextDiagnostics(uri, 1));
  await lsp.rpc.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'quantplan', version: 1, text } });
  const fast = await first;
  assert.deepEqual(at(fast, 'calibration-mismatch'), [], 'the fast pass never reads calibration data');
  return second;
}

test('quantize_config.json dynamic entries: what each key decides (first match wins, -: skips), format, params, bits', async () => {
  const folder = path.join(dir, 'gptq');
  mkdirSync(folder);
  const t = (name: string, shape: number[]) => ({ name, dtype: 'F32' as const, shape });
  writeSafetensors(path.join(folder, 'model.safetensors'), [
    t('model.layers.0.self_attn.q_proj.weight', [64, 64]),
    t('model.layers.0.self_attn.k_proj.weight', [64, 64]),
    t('model.layers.1.self_attn.q_proj.weight', [64, 64]),
    t('model.layers.0.mlp.down_proj.weight', [64, 128]),
    t('model.layers.1.mlp.down_proj.weight', [64, 128]),
    t('model.norm.weight', [64]),
  ]);
  const text = JSON.stringify({ bits: 4, group_size: 32, sym: true, dynamic: { '+:.*\\.0\\.self_attn\\..*': { bits: 8 }, '-:.*mlp\\.down_proj': {}, '+:.*self_attn.*': { bits: 2 } } }, null, 2);
  const file = path.join(folder, 'quantize_config.json');
  writeFileSync(file, text);
  const uri = pathToFileURL(file).href;
  await lsp.open(uri, text, 'json');
  const lenses = await lsp.request<{ range: { start: { line: number } }; command: { title: string } }[]>('textDocument/codeLens', { textDocument: { uri } });
  const lineOf = (key: string) => text.split('\n').findIndex((l) => l.includes(JSON.stringify(key)));
  const titles = (key: string) => lenses.filter((l) => l.range.start.line === lineOf(key)).map((l) => l.command.title);
  // Block 0's q and k: int8 groups of 32 = 8 + 16/32 = 8.5 bits/weight over 2·4096 params.
  assert.match(titles('+:.*\\.0\\.self_attn\\..*')[0], /^2 modules \(model\.layers\.0\.self_attn\.q_proj\.weight, …\) · int8_g32_sym · 8192 params · 8\.5 bits\/weight/);
  assert.match(titles('-:.*mlp\\.down_proj')[0], /^2 modules .* skipped: kept in float · 16\.4K params · 32 bits\/weight/);
  // Only block 1's q_proj is left for the last key.
  assert.match(titles('+:.*self_attn.*')[0], /^1 module \(model\.layers\.1\.self_attn\.q_proj\.weight\) · int2_g32_sym · 4096 params · 2\.5 bits\/weight/);
});

test('llm-compressor recipe: each config group lists the Linear modules it takes (ignore honoured, first group wins)', async () => {
  const folder = path.join(dir, 'gptq'); // the model written by the quantize_config test
  const text = [
    'quant_stage:',
    '  quant_modifiers:',
    '    QuantizationModifier:',
    '      ignore: ["re:.*down_proj"]',
    '      config_groups:',
    '        attn0:',
    "          targets: ['re:model\\.layers\\.0\\.self_attn\\.']",
    '          weights: {num_bits: 8, type: int, symmetric: true, strategy: channel}',
    '        rest:',
    '          targets: [Linear]',
    '          weights: {num_bits: 4, type: int, symmetric: false, strategy: group, group_size: 32}',
    '',
  ].join('\n');
  const file = path.join(folder, 'recipe.yaml');
  writeFileSync(file, text);
  const uri = pathToFileURL(file).href;
  await lsp.open(uri, text, 'yaml');
  const lenses = await lsp.request<{ range: { start: { line: number } }; command: { title: string } }[]>('textDocument/codeLens', { textDocument: { uri } });
  const at = (line: number) => lenses.filter((l) => l.range.start.line === line).map((l) => l.command.title);
  // int8 per channel: 8 bits + one fp16 scale per 64-wide row = 8.25 bits/weight.
  assert.match(at(5)[0], /^attn0: 2 modules \(model\.layers\.0\.self_attn\.q_proj, …\) · int8_ch_sym · 8192 params · 8\.25 bits\/weight/);
  // Only block 1's q_proj is left (down_proj ignored); int4 asym g32 = 4 + (16 + 4)/32 = 4.625 bits/weight.
  assert.match(at(8)[0], /^rest: 1 module \(model\.layers\.1\.self_attn\.q_proj\) · int4_g32_asym · 4096 params · 4\.625 bits\/weight .* 2 more taken by earlier groups$/);
});
