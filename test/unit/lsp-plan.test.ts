// Plan-file features over a real LSP connection (spawned server, stdio): diagnostics with codes and ranges,
// code lenses whose numbers are worked out here by hand from the fixture's shapes and the formats' storage
// definitions, hovers, completion, quick fixes and their edits, config.json lenses, and a failing handler
// that does not take the server down.
//
// Storage rules used for the expected numbers (from the format definitions, [rows, cols] = [out, in]):
//   intB_gG_asym: B·n + (16 + B)·rows·⌈cols/G⌉      intB_gG_sym / intB_ch_sym: B·n + 16·rows·⌈cols/G⌉ (ch: G = cols)
//   a vector [k] is one row of k; keeping a tensor costs its stored bytes.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import { cacheKey, writeCache } from '../../server/src/analysis/cache';
import { DEFAULT_OPTIONS, type AnalysisReport, type LayerReport } from '../../server/src/analysis/types';
import { openCheckpoint } from '../../server/src/formats/registry';
import { tempDir } from '../fixtures/common';
import { applyEdits, bundle, LspClient, writeSafetensors, type LspDiagnostic, type LspTextEdit, type StDtype } from '../helpers/lsp-client';

const { dir, cleanup } = tempDir();
const FIXTURES = path.resolve('test/fixtures/plans');
let lsp: LspClient;

/** Two LLaMA blocks, hidden 16, MLP 32, vocab 32; plus one int64 buffer (64 bytes the plan cannot quantize). */
function tinyTensors(): { name: string; dtype: StDtype; shape: number[] }[] {
  const t: { name: string; dtype: StDtype; shape: number[] }[] = [{ name: 'model.embed_tokens.weight', dtype: 'F32', shape: [32, 16] }];
  for (const b of [0, 1]) {
    const p = `model.layers.${b}`;
    for (const x of ['q', 'k', 'v', 'o']) t.push({ name: `${p}.self_attn.${x}_proj.weight`, dtype: 'F16', shape: [16, 16] });
    t.push({ name: `${p}.mlp.gate_proj.weight`, dtype: 'F16', shape: [32, 16] });
    t.push({ name: `${p}.mlp.up_proj.weight`, dtype: 'F16', shape: [32, 16] });
    t.push({ name: `${p}.mlp.down_proj.weight`, dtype: 'F16', shape: [16, 32] });
    t.push({ name: `${p}.input_layernorm.weight`, dtype: 'F32', shape: [16] });
  }
  t.push({ name: 'model.norm.weight', dtype: 'F32', shape: [16] }, { name: 'lm_head.weight', dtype: 'F32', shape: [32, 16] });
  t.push({ name: 'model.position_ids', dtype: 'I64', shape: [8] });
  return t;
}

function layer(name: string, errors: Record<string, number>, sumSq: number): LayerReport {
  return {
    name, block: '', layer: '', params: 0, shape: [], layout: 'out_in', dtype: 'F16', sumSq,
    stats: { kurtosis: 0.5, outlierShare: 0.001, maxOverStd: 4, mean: 0, std: 1, maxAbs: 4, superWeights: [] },
    errors: Object.fromEntries(Object.entries(errors).map(([f, relMse]) => [f, { relMse, sqnrDb: -10 * Math.log10(relMse), maxAbsErr: 0, entropyBits: 0, bitsPerWeight: f === 'int8_ch_sym' ? 8.5 : 5.25 }])),
  };
}

const uriOf = (name: string) => pathToFileURL(path.join(dir, name)).href;
const fixture = (name: string) => readFileSync(path.join(FIXTURES, name), 'utf8');
const at = (diags: LspDiagnostic[], code: string) => diags.filter((d) => d.code === code).map((d) => d.range.start.line);

before(async () => {
  const server = await bundle('server/src/server.ts', 'lsp-plan');
  for (const m of ['tiny', 'plain']) {
    mkdirSync(path.join(dir, m));
    writeSafetensors(path.join(dir, m, 'model.safetensors'), tinyTensors());
  }
  writeFileSync(path.join(dir, 'tiny', 'config.json'), JSON.stringify({
    architectures: ['LlamaForCausalLM'], model_type: 'llama', num_hidden_layers: 2, hidden_size: 16, intermediate_size: 32,
    num_attention_heads: 4, vocab_size: 32, tie_word_embeddings: false,
    quantization_config: { quant_method: 'gptq', bits: 4, group_size: 128, sym: true },
  }, null, 2));
  writeFileSync(path.join(dir, 'tiny', 'quantize_config.json'), JSON.stringify({ bits: 8, group_size: -1, sym: true, desc_act: false }, null, 2));
  // A cached data-free analysis of tiny/ (numbers chosen here), where the server looks for it.
  const ck = await openCheckpoint(path.join(dir, 'tiny'));
  await ck.close();
  const report: AnalysisReport = {
    version: 'datafree-2',
    formats: [{ id: 'int4_g128_asym', bitsPerWeight: 4.16 }, { id: 'int8_ch_sym', bitsPerWeight: 8.004 }],
    options: { sigma: 6, sample: null, confidence: null, ratios: [] },
    model: { path: ck.path, format: 'safetensors', files: ck.files, tensors: 0, params: 0, analyzedTensors: 0, analyzedParams: 0,
      totals: { int8_ch_sym: { relMse: 5e-4, sqnrDb: 33, bitsPerWeight: 8.5, bytes: 0 } } },
    layers: [
      layer('model.layers.0.mlp.down_proj.weight', { int8_ch_sym: 1e-4 }, 2),
      layer('model.layers.1.mlp.down_proj.weight', { int8_ch_sym: 4e-4 }, 6),
      layer('model.layers.0.self_attn.k_proj.weight', { int4_g128_asym: 1e-2 }, 2),
    ],
    skipped: { count: 0, params: 0, byReason: {}, tensors: [] },
  };
  await writeCache(path.join(dir, 'cache', 'quantlens'), await cacheKey(ck.path, ck.files, DEFAULT_OPTIONS), report);
  lsp = LspClient.spawn(server, ['--stdio'], { XDG_CACHE_HOME: path.join(dir, 'cache') });
  const init = await lsp.initialize();
  assert.ok(init.capabilities.codeLensProvider && init.capabilities.hoverProvider && init.capabilities.completionProvider && init.capabilities.codeActionProvider);
});

after(() => {
  lsp?.kill();
  cleanup();
});

type Lens = { range: LspTextEdit['range']; command?: { title: string; command: string; arguments?: unknown[] } };
const lenses = (uri: string) => lsp.request<Lens[]>('textDocument/codeLens', { textDocument: { uri } });
const titlesAt = (ls: Lens[], line: number) => ls.filter((l) => l.range.start.line === line).map((l) => l.command!.title);

// Expected bits, by hand: int4_g128_asym on [16,16] = 4·256 + 20·16 = 1344; [32,16] = 4·512 + 20·32 = 2688;
// [16,32] = 4·512 + 20·16 = 2368; [16] = 4·16 + 20 = 84. int8_ch_sym: [16,16] = 8·256 + 16·16 = 2304;
// [16,32] = 8·512 + 16·16 = 4352. Keeping an F32 [16] norm: 512 bits.
const basicUri = uriOf('basic.quant.yaml');
let basicDiags: LspDiagnostic[];

test('plan fixture: diagnostics with their codes and ranges', async () => {
  basicDiags = await lsp.open(basicUri, fixture('basic.quant.yaml'));
  assert.deepEqual(at(basicDiags, 'dead-rule'), [11]);
  assert.deepEqual(at(basicDiags, 'shadowed-rule'), [9]);
  assert.deepEqual(at(basicDiags, 'split-fused-group').sort(), [3, 7]); // defaults (k, v) and rules[1] (q)
  const over = basicDiags.find((d) => d.code === 'over-budget')!;
  assert.deepEqual(over.range, { start: { line: 2, character: 20 }, end: { line: 2, character: 23 } }); // the 4.5
  // Total bits: down 2·4352 + q 2·2304 + norms kept 3·512 + defaults (embed 2688, lm_head 2688, k/v/o 6·1344,
  // gate/up 4·2688) = 8704 + 4608 + 1536 + 24192 = 39040 over 6192 params = 6.305 bits/weight; 4880 + 64 bytes.
  assert.match(over.message, /needs 6\.305 bits\/weight \(4\.83 KiB\), over the budget of 4\.5 bits\/weight/);
  assert.equal(over.severity, 2);
  assert.ok(basicDiags.every((d) => d.source === 'quantlens'));
});

test('plan fixture: code lenses with sizes, bits and predicted errors', async () => {
  const ls = await lenses(basicUri);
  const top = titlesAt(ls, 0);
  // Predicted total: (1e-4·2 + 4e-4·6 + 1e-2·2) / (2 + 6 + 2) = 2.26e-3 → 26.5 dB.
  assert.equal(top[0], 'Plan: 4.83 KiB · 6.305 bits/weight · predicted relMSE 2.26e-3 (26.5 dB) · budget 4.5 bits/weight ✗ over');
  assert.deepEqual(top.slice(1), ['Analyze', 'Fit budget', 'Quantize model', 'Open report']);
  const analyze = ls.find((l) => l.command?.title === 'Analyze')!.command!;
  assert.equal(analyze.command, 'quantlens.analyzeSensitivity');
  assert.deepEqual(analyze.arguments, [uriOf('tiny')]);
  // rules[0]: the two down_proj at int8_ch_sym: 8704 bits over 1024 params = 8.5, 1088 bytes = 1.06 KiB;
  // error (1e-4·2 + 4e-4·6) / 8 = 3.25e-4 → 34.9 dB.
  assert.deepEqual(titlesAt(ls, 5), ['2 tensors · 1024 params · 8.5 bits/weight · 1.06 KiB · relMSE 3.25e-4 (34.9 dB)', 'Quantize layer', 'Show in explorer']);
  const q = ls.find((l) => l.range.start.line === 5 && l.command?.title === 'Quantize layer')!.command!;
  assert.equal(q.command, 'quantlens.quantizeLayer');
  assert.deepEqual(q.arguments, [basicUri, ['model.layers.0.mlp.down_proj.weight', 'model.layers.1.mlp.down_proj.weight']]);
  assert.equal(ls.find((l) => l.range.start.line === 5 && l.command?.title === 'Show in explorer')!.command!.command, 'quantlens.showInExplorer');
  // rules[1]: the two q_proj, 4608 bits over 512 params = 9 bits/weight, 576 bytes; not in the analysis.
  assert.equal(titlesAt(ls, 7)[0], '2 tensors · 512 params · 9 bits/weight · 576 B · no analysis for this format');
  assert.deepEqual(titlesAt(ls, 9), ['never applies: taken by rules[0]']);
  assert.deepEqual(titlesAt(ls, 11), ['matches no tensor']);
  // rules[4] keeps the three F32 norms: 1536 bits over 48 params = 32 bits/weight, 192 bytes.
  assert.equal(titlesAt(ls, 13)[0], '3 tensors · 48 params · 32 bits/weight · 192 B · no analysis for this format');
  // defaults: 24192 bits over 4608 params = 5.25, 3024 bytes; k_proj of block 0 analyzed: 256 / 4608 params.
  assert.equal(titlesAt(ls, 3)[0], 'defaults: 12 tensors · 4608 params · 5.25 bits/weight · 2.95 KiB · relMSE 1.00e-2 (20.0 dB) over 6% of params');
});

test('hovers: pattern matches, single-layer sensitivity, format definition', async () => {
  const hover = (line: number, character: number) =>
    lsp.request<{ contents: { value: string } } | null>('textDocument/hover', { textDocument: { uri: basicUri }, position: { line, character } });
  const h0 = (await hover(5, 15))!.contents.value;
  assert.match(h0, /matches \*\*2\*\* tensors; this rule decides 2/);
  assert.match(h0, /- `model\.layers\.0\.mlp\.down_proj\.weight` \[16×32\]\n- `model\.layers\.1\.mlp\.down_proj\.weight` \[16×32\]/);
  const h2 = (await hover(9, 15))!.contents.value;
  assert.match(h2, /matches \*\*1\*\* tensor; this rule decides 0/);
  assert.match(h2, /taken by rules\[0\]/);
  assert.match(h2, /\*\*Layer `model\.layers\.1\.mlp\.down_proj`\*\*: int8_ch_sym, 8\.5 bits\/weight/);
  assert.match(h2, /\| int8_ch_sym \(plan\) \| 8\.5 \| relMSE 4\.00e-4 \(34\.0 dB\) \|/);
  const hf = (await hover(6, 14))!.contents.value;
  // int8_ch_sym on 4096×4096: 8 + 16/4096 = 8.0039 bits/weight.
  assert.match(hf, /^\*\*int8_ch_sym\*\* \(int\)/);
  assert.match(hf, /8\.004 bits\/weight on a 4096×4096 matrix/);
  assert.match(hf, /Here \(rules\[0\]\): 8\.5 bits\/weight over 2 tensors, 1\.06 KiB/);
  assert.equal(await hover(0, 3), null); // a comment
});

test('completion: patterns and names, format ids, keys', async () => {
  const complete = (uri: string, line: number, character: number) =>
    lsp.request<{ items: { label: string; insertText?: string }[] }>('textDocument/completion', { textDocument: { uri }, position: { line, character } });
  const names = (await complete(basicUri, 5, '  - match: "model.layers.'.length)).items.map((i) => i.label);
  assert.deepEqual(names.slice(0, 8), [
    'model.layers.*.self_attn.q_proj', 'model.layers.*.self_attn.k_proj', 'model.layers.*.self_attn.v_proj', 'model.layers.*.self_attn.o_proj',
    'model.layers.*.mlp.gate_proj', 'model.layers.*.mlp.up_proj', 'model.layers.*.mlp.down_proj', 'model.layers.*.input_layernorm',
  ]);
  assert.ok(names.includes('model.layers.1.mlp.down_proj') && names.includes('model.layers.1.mlp.down_proj.weight'));
  assert.ok(!names.includes('model.norm.weight'));
  const formats = (await complete(basicUri, 6, '    format: int8'.length)).items.map((i) => i.label);
  assert.ok(formats.includes('int8_ch_sym') && formats.includes('int8_g128_asym'));
  assert.ok(formats.every((f) => f.startsWith('int8')));

  const draftUri = uriOf('draft.quant.yaml');
  await lsp.open(draftUri, 'model: ./tiny\nbud\nrules:\n  - match: x\n    fo\n  - \nmethod: \n');
  const labels = async (line: number, character: number) => (await complete(draftUri, line, character)).items.map((i) => i.label);
  assert.deepEqual(await labels(1, 3), ['budget']);
  assert.deepEqual(await labels(4, 6), ['format']);
  assert.deepEqual(await labels(5, 4), ['match', 'format', 'ratio', 'skip']);
  assert.deepEqual(await labels(6, 8), ['datafree', 'hessian', 'fisher', 'gwq', 'empirical']);
  await lsp.close(draftUri);
});

type Action = { title: string; kind: string; edit?: { changes: Record<string, LspTextEdit[]> }; isPreferred?: boolean };
const actions = (uri: string, diagnostics: LspDiagnostic[]) =>
  lsp.request<Action[]>('textDocument/codeAction', { textDocument: { uri }, range: diagnostics[0]?.range ?? { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }, context: { diagnostics } });

test('quick fixes: remove dead rule, remove shadowed rule, align fused group', async () => {
  const text = fixture('basic.quant.yaml');
  const lines = text.split('\n');
  const dead = basicDiags.filter((d) => d.code === 'dead-rule');
  const [remove] = await actions(basicUri, dead);
  assert.equal(remove.title, 'Remove dead rule');
  assert.equal(applyEdits(text, remove.edit!.changes[basicUri]), [...lines.slice(0, 11), ...lines.slice(13)].join('\n'));

  const [shadow] = await actions(basicUri, basicDiags.filter((d) => d.code === 'shadowed-rule'));
  assert.equal(shadow.title, 'Remove shadowed rule');
  assert.equal(applyEdits(text, shadow.edit!.changes[basicUri]), [...lines.slice(0, 9), ...lines.slice(11)].join('\n'));

  const split = basicDiags.filter((d) => d.code === 'split-fused-group' && d.range.start.line === 7);
  const [align] = await actions(basicUri, split);
  assert.equal(align.title, 'Align fused group: use int4_g128_asym for rules[1]');
  assert.deepEqual(align.edit!.changes[basicUri], [{ range: { start: { line: 8, character: 12 }, end: { line: 8, character: 23 } }, newText: 'int4_g128_asym' }]);
});

test('quick fix: a did-you-mean suggestion replaces the misspelt key', async () => {
  const uri = uriOf('typo.quant.yaml');
  const text = 'model: ./plain\nbudgett: { avg_bits: 4 }\n';
  const diags = await lsp.open(uri, text);
  const typo = diags.filter((d) => d.code === 'unknown-key');
  assert.equal(typo.length, 1);
  const [fix] = await actions(uri, typo);
  assert.equal(fix.title, "Change to 'budget'");
  assert.equal(applyEdits(text, fix.edit!.changes[uri]), 'model: ./plain\nbudget: { avg_bits: 4 }\n');
  await lsp.close(uri);
});

test('Fit budget: the rewritten plan meets the budget (no analysis: bits-only proxy)', async () => {
  const uri = uriOf('fit.quant.yaml');
  const text = fixture('basic.quant.yaml').replace('model: ./tiny', 'model: ./plain');
  const diags = await lsp.open(uri, text);
  const over = diags.filter((d) => d.code === 'over-budget');
  assert.equal(over.length, 1);
  const fit = (await actions(uri, over)).find((a) => a.title.startsWith('Fit budget'))!;
  assert.match(fit.title, /^Fit budget: rewrite rules for [0-9.]+ bits\/weight \(bits-only proxy, not analyzed\)$/);
  assert.equal(fit.kind, 'quickfix');
  const fitted = applyEdits(text, fit.edit!.changes[uri]);
  // The skip rule survives, first; the dead and shadowed rules are gone.
  assert.match(fitted, /rules:\n {2}- match: "\*\*norm"\n {4}skip: true\n/);
  assert.ok(!fitted.includes('experts') && !fitted.includes('nf4_g64'));
  const after = await lsp.replace(uri, 2, fitted);
  assert.deepEqual(at(after, 'over-budget'), []);
  assert.deepEqual(at(after, 'dead-rule'), []);
  assert.deepEqual(at(after, 'split-fused-group'), [], JSON.stringify(after));
  const top = titlesAt(await lenses(uri), 0)[0];
  const avg = Number(/· ([0-9.]+) bits\/weight/.exec(top)![1]);
  assert.ok(avg <= 4.5 && avg > 4, top);

  // The same fix through the lens command, executed by the server as workspace/applyEdit.
  await lsp.replace(uri, 3, text);
  const r = await lsp.request<{ applied: boolean }>('workspace/executeCommand', { command: 'quantlens.fitBudget', arguments: [uri] });
  assert.equal(r.applied, true);
  const applied = lsp.applied.at(-1) as { edit: { changes: Record<string, LspTextEdit[]> } };
  assert.equal(applyEdits(text, applied.edit.changes[uri]), fitted);
  await lsp.close(uri);
});

test('infeasible budget: an error stating the minimum achievable size', async () => {
  const uri = uriOf('infeasible.quant.yaml');
  const diags = await lsp.open(uri, fixture('infeasible.quant.yaml'));
  const d = diags.find((x) => x.code === 'infeasible-budget')!;
  assert.equal(d.severity, 1);
  assert.equal(d.range.start.line, 2);
  // Smallest: every tensor at int2_g64_asym (2·n + 18·rows·⌈cols/64⌉): [32,16] 1600 ×4, [16,16] 800 ×8,
  // [16,32] 1312 ×2, [16] 50 ×3 = 18774 bits over 6192 params = 3.032; ⌈18774/8⌉ + 64 = 2411 bytes.
  assert.match(d.message, /budget 1 bits\/weight cannot be met: the smallest achievable is 2\.35 KiB \(3\.032 bits\/weight\)/);
  assert.ok(!diags.some((x) => x.code === 'over-budget'));
  assert.deepEqual((await actions(uri, [d])).filter((a) => a.title.startsWith('Fit')), []);
  await lsp.close(uri);
});

test('targets: a format the backend cannot run is a warning at the rule, from that backend\'s exporter', async () => {
  const uri = uriOf('targets.quant.yaml');
  const text = 'model: ./plain\ndefaults: { format: int4_g128_asym }\nrules:\n  - match: "model.layers.*.mlp.down_proj"\n    format: nf4_g64\ntargets: [onnxruntime]\n';
  const firstP = lsp.nextDiagnostics(uri);
  const second = firstP.then(() => lsp.nextDiagnostics(uri));
  await lsp.rpc.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'quantplan', version: 1, text } });
  const first = await firstP;
  assert.deepEqual(at(first, 'target-format'), []); // the backend pass never delays the plan's own diagnostics
  const d = (await second).filter((x) => x.code === 'target-format' && x.range.start.line === 4);
  assert.equal(d.length, 1);
  assert.equal(d[0].severity, 2);
  assert.match(d[0].message, /^onnxruntime: .*nf4_g64/);
  await lsp.close(uri);
});

test('config.json and quantize_config.json: what the fields imply, whether the checkpoint matches', async () => {
  const cfgUri = pathToFileURL(path.join(dir, 'tiny', 'config.json')).href;
  const cfgText = readFileSync(path.join(dir, 'tiny', 'config.json'), 'utf8');
  await lsp.open(cfgUri, cfgText, 'json');
  const ls = await lenses(cfgUri);
  const line = (key: string) => cfgText.split('\n').findIndex((l) => l.includes(`"${key}"`));
  // Per layer: attention 4·16² = 1024, MLP 3·16·32 = 1536, two norms 32 → 2592.
  assert.deepEqual(titlesAt(ls, line('num_hidden_layers')), ['2 layers × 2592 params each (estimate) · checkpoint: 2 blocks ✓']);
  // 6200 params stored; at int4_g128_asym: 31868 bits of weights (norms 84 each) → 3984 bytes + 64 = 4048.
  assert.deepEqual(titlesAt(ls, line('hidden_size')), ['6200 params in the checkpoint · at int4_g128_asym: 3.95 KiB']);
  // GPTQ 4-bit, group 128, symmetric: 4 + 16/128 = 4.125 bits/weight; this model: 30448 bits → 3806 + 64 bytes.
  assert.deepEqual(titlesAt(ls, line('quantization_config')), [
    'gptq: ≈ int4_g128_sym (4.125 bits/weight) · this model at int4_g128_sym: 3.78 KiB · not analyzed',
    'checkpoint does not match: no quantized tensors (20 tensors, e.g. model.embed_tokens.weight)',
  ]);

  const qUri = pathToFileURL(path.join(dir, 'tiny', 'quantize_config.json')).href;
  const qText = readFileSync(path.join(dir, 'tiny', 'quantize_config.json'), 'utf8');
  await lsp.open(qUri, qText, 'json');
  // int8_ch_sym: 55216 bits → 6902 + 64 bytes; the cached analysis has its model total.
  assert.deepEqual(titlesAt(await lenses(qUri), 1), [
    'gptq: ≈ int8_ch_sym (8.004 bits/weight) · this model at int8_ch_sym: 6.80 KiB · predicted relMSE 5.00e-4 (33.0 dB)',
    'checkpoint does not match: no quantized tensors (20 tensors, e.g. model.embed_tokens.weight)',
  ]);
});

test('llama.cpp tensor-type file: what each entry decides in the model of the plan it was exported from', async () => {
  const uri = uriOf('basic.tensor-types.txt'); // beside basic.quant.yaml, whose model is tiny/
  const text = '# exported\nblk\\.[0-9]+\\.ffn_down=q8_0 attn_q=q4_0\nblk\\.1\\.ffn_down=q4_k nomatch=q4_0\n^output\\.weight=f32 bad=zz4 (a+)+=q4_0\n';
  await lsp.open(uri, text, 'plaintext');
  const ls = await lenses(uri);
  const byToken = (line: number) => ls.filter((l) => l.range.start.line === line).sort((a, b) => a.range.start.character - b.range.start.character).map((l) => l.command!.title);
  // q8_0 = int8_g32_sym: [16,32] → 8·512 + 16·16·1 = 4352 bits each; q4_0 = int4_g32_sym: [16,16] → 4·256 + 16·16 = 1280.
  assert.deepEqual(byToken(1), [
    '2 tensors (blk.0.ffn_down.weight, …) · q8_0 ≈ int8_g32_sym · 1024 params · 8.5 bits/weight · 1.06 KiB · no analysis for this format',
    '2 tensors (blk.0.attn_q.weight, …) · q4_0 ≈ int4_g32_sym · 512 params · 5 bits/weight · 320 B · no analysis for this format',
  ]);
  assert.deepEqual(byToken(2), ['never applies: earlier entries take its 1 tensors', 'matches no tensor']);
  // Searched, not anchored: `output\.weight` alone would also take blk.N.attn_output.weight.
  assert.deepEqual(byToken(3), [
    '1 tensor (output.weight) · f32: kept in float · 512 params · 32 bits/weight · 2.00 KiB',
    "unknown GGML type 'zz4'",
    'nested quantifiers (exponential backtracking): not evaluated',
  ]);
  await lsp.close(uri);
});

test('malformed YAML: diagnostics, lenses and hovers still answer', async () => {
  const uri = uriOf('broken.quant.yaml');
  const diags = await lsp.open(uri, fixture('broken.quant.yaml'));
  assert.ok(diags.some((d) => d.code === 'yaml-syntax' && d.severity === 1), JSON.stringify(diags));
  assert.ok(Array.isArray(await lenses(uri)));
  await lsp.request('textDocument/hover', { textDocument: { uri }, position: { line: 3, character: 14 } });
  await lsp.close(uri);
});

test('a handler exception fails that request only; the server keeps serving', async () => {
  await assert.rejects(lsp.request('textDocument/codeLens', {}), (e: { code: number; message: string }) => {
    assert.equal(e.code, -32603);
    assert.match(e.message, /internal error in textDocument\/codeLens/);
    return true;
  });
  assert.ok((await lenses(basicUri)).length > 0);
  assert.equal(await lsp.shutdown(), 0, lsp.stderr);
});
