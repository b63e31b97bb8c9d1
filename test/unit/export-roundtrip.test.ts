// Imports: hand-written llama.cpp tensor-type files and GPTQModel configs become plans that decide every tensor as
// the tool would (expected formats worked out by hand from each tool's matching rule), and import(export(plan))
// gives back the plan's per-tensor formats for plans the dialect can express.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { exportPlan, importPlan } from '../../server/src/export/index';
import { QuantLensError } from '../../server/src/formats/errors';
import { layerOf } from '../../server/src/formats/layers';
import { analyzePlan, type PlanTensor } from '../../server/src/plan/index';
import { getFormat } from '../../server/src/quant/registry';
import { tempDir, tinyLlamaTensors } from '../fixtures/common';
import { writeFixtureSafetensors } from '../fixtures/safetensors';

const FIX = tinyLlamaTensors();
const TENSORS: PlanTensor[] = FIX.map((t) => ({ name: t.name, layer: layerOf(t.name), params: t.data.length, analyzable: true }));
const MATRICES = FIX.filter((t) => t.shape.length === 2).map((t) => t.name);
const isFormat = (id: string) => {
  try {
    getFormat(id);
    return true;
  } catch {
    return false;
  }
};

let dir: string;
let cleanup: () => void;
let model: string;

before(() => {
  ({ dir, cleanup } = tempDir('quantlens-import-'));
  model = path.join(dir, 'model.safetensors');
  writeFixtureSafetensors(model, FIX, 'F16');
});
after(() => cleanup());

/** name → format (null: original precision) for the plan text, resolved the plan engine's way. */
function formats(planText: string): Map<string, string | null> {
  const a = analyzePlan(planText, path.join(dir, 'p.quant.yaml'), { isFormat, formatIds: () => [], tensors: TENSORS, checkPath: false });
  assert.deepEqual(a.diagnostics.filter((d) => d.severity === 'error' || d.code === 'dead-rule' || d.code === 'shadowed-rule'), []);
  return new Map(TENSORS.map((t) => [t.name, a.assignment.get(t.name)!.format]));
}

const write = (name: string, text: string) => {
  const f = path.join(dir, name);
  writeFileSync(f, text);
  return f;
};

const block = (b: number, layers: string[]) => layers.map((l) => `model.layers.${b}.${l}.weight`);
const ATTN = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj'];
const MLP = ['mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'];
const NORMS = ['model.layers.0.input_layernorm.weight', 'model.layers.0.post_attention_layernorm.weight',
  'model.layers.1.input_layernorm.weight', 'model.layers.1.post_attention_layernorm.weight', 'model.norm.weight'];

test('llama.cpp import: first matching line wins, unmatched tensors take --default, 1-D tensors stay float', async () => {
  const file = write('mix.txt', '# my mix\nffn_down=q6_K\nattn_.*=Q8_0\n  output\\.weight=f16\tffn_gate=q4_0\n');
  const plan = await importPlan(file, 'llama.cpp', { model, planPath: path.join(dir, 'p.quant.yaml'), defaultType: 'q4_K' });
  const got = formats(plan);
  const want = new Map<string, string | null>();
  want.set('model.embed_tokens.weight', 'int4_g32_asym'); // token_embd: no line → q4_K
  for (const b of [0, 1]) {
    for (const n of block(b, ATTN)) want.set(n, 'int8_g32_sym'); // attn_output matches attn_.* before output\.weight
    want.set(`model.layers.${b}.mlp.gate_proj.weight`, 'int4_g32_sym');
    want.set(`model.layers.${b}.mlp.up_proj.weight`, 'int4_g32_asym');
    want.set(`model.layers.${b}.mlp.down_proj.weight`, 'int6_g16_sym');
  }
  want.set('lm_head.weight', null); // output.weight=f16
  for (const n of NORMS) want.set(n, null);
  assert.deepEqual(got, want);
  assert.match(plan, /^model: '\.\/model\.safetensors'$/m);
});

test('llama.cpp import: malformed entries are located errors', async () => {
  const bad = write('bad.txt', 'ffn_down=q6_K\n  attn_q\n');
  await assert.rejects(importPlan(bad, 'llama.cpp', { model }), (e: unknown) =>
    e instanceof QuantLensError && e.code === 'bad-entry' && e.where.line === 2 && e.where.column === 3);
  const type = write('type.txt', 'ffn_down=q9_9\n');
  await assert.rejects(importPlan(type, 'llama.cpp', { model }), (e: unknown) => e instanceof QuantLensError && e.code === 'unknown-type' && e.where.line === 1);
  const re = write('re.txt', 'ffn_(down=q8_0\n');
  await assert.rejects(importPlan(re, 'llama.cpp', { model }), (e: unknown) => e instanceof QuantLensError && e.code === 'bad-pattern');
  // A pattern that backtracks exponentially is refused before it runs on any name.
  const redos = write('redos.txt', 'ffn_down=q8_0 (a+)+$=q4_0\n');
  await assert.rejects(importPlan(redos, 'llama.cpp', { model }), (e: unknown) =>
    e instanceof QuantLensError && e.code === 'bad-pattern' && e.where.line === 1 && e.where.column === 15 && /nested quantifiers/.test(e.message));
});

test('GPTQModel import: -: skips, first key wins, lm_head only with lm_head: true', async () => {
  const cfg = {
    bits: 4, group_size: 128, sym: false, lm_head: false,
    dynamic: {
      '-:model\\.layers\\.0\\.mlp\\.down_proj': {},
      '.*\\.1\\..*': { bits: 8, group_size: 32 },
      '+:.*down_proj': { bits: 2 }, // block 0's is skipped first, block 1's taken by the key above: decides nothing
    },
  };
  const plan = await importPlan(write('q.json', JSON.stringify(cfg, null, 2)), 'gptqmodel', { model, planPath: path.join(dir, 'p.quant.yaml') });
  const want = new Map<string, string | null>();
  want.set('model.embed_tokens.weight', null);
  for (const n of [...block(0, ATTN), ...block(0, ['mlp.gate_proj', 'mlp.up_proj'])]) want.set(n, 'int4_g128_asym');
  want.set('model.layers.0.mlp.down_proj.weight', null);
  for (const n of block(1, [...ATTN, ...MLP])) want.set(n, 'int8_g32_asym');
  want.set('lm_head.weight', null);
  for (const n of NORMS) want.set(n, null);
  assert.deepEqual(formats(plan), want);
  assert.match(plan, /# \+:\.\*down_proj: matches no tensor of the model/);
  await assert.rejects(importPlan(write('b.json', '{"bits": 4, "dynamic": {"x": {"bits": 5}}}'), 'gptqmodel', { model }), (e: unknown) =>
    e instanceof QuantLensError && e.code === 'bad-config' && e.where.line === 1 && /bits must be one of 2, 3, 4, 8, found 5/.test(e.message));
  await assert.rejects(importPlan(write('c.json', '{"bits": 4,\n "dynamic": '), 'gptqmodel', { model }), (e: unknown) => e instanceof QuantLensError && e.code === 'bad-json');
});

const ROUND_TRIPS: [string, string, string[], string?][] = [
  ['llama.cpp', '.tensor-types.txt', [
    'defaults: { format: int4_g32_sym }',
    'rules:',
    '  - match: model.embed_tokens',
    '    skip: true',
    '  - match: "model.layers.*.self_attn.[qkv]_proj"',
    '    format: int8_g32_sym',
    '  - match: "model.layers.1.mlp.*"',
    '    format: int4_g32_asym',
    '  - match: "/layers\\\\.0\\\\.mlp\\\\.down/"',
    '    format: int5_g32_asym',
    '  - match: lm_head',
    '    format: mxfp4',
  ], 'Q4_0'],
  ['gptqmodel', '.gptqmodel.json', [
    'defaults: { format: int4_g128_asym }',
    'rules:',
    '  - match: "model.layers.0.mlp.*"',
    '    skip: true',
    '  - match: "model.layers.*.self_attn.[qk]_proj"',
    '    format: int8_ch_sym',
    '  - match: "**.down_proj"',
    '    format: int2_g64_asym',
    '  - match: model.embed_tokens',
    '    skip: true',
  ]],
];

for (const [dialect, suffix, body, defaultType] of ROUND_TRIPS) {
  test(`round trip: import(export(plan)) keeps every matrix's format (${dialect})`, async () => {
    const text = ['model: ./model.safetensors', ...body, ''].join('\n');
    const plan = write(`rt.quant.yaml`, text);
    const out = await exportPlan(plan, dialect);
    assert.deepEqual(out.warnings, []);
    assert.equal(out.files[0].name, `rt${suffix}`);
    const exported = write(out.files[0].name, out.files[0].text);
    const back = await importPlan(exported, dialect, { model, planPath: path.join(dir, 'back.quant.yaml'), defaultType });
    const a = formats(text);
    const b = formats(back);
    for (const n of MATRICES) assert.equal(b.get(n), a.get(n), n);
  });
}
