// Rule resolution on the tiny LLaMA tensor list: first match wins, dead / shadowed rules, split fused groups.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { layerOf } from '../../server/src/formats/layers';
import { analyzePlan, type PlanTensor } from '../../server/src/plan/index';
import { tinyLlamaTensors } from '../fixtures/common';

const FORMATS = ['int4_g128_asym', 'int8_ch_sym', 'int2_g64_asym', 'nf4_g64', 'fp8_e4m3'];
const TENSORS: PlanTensor[] = tinyLlamaTensors().map((t) => ({ name: t.name, layer: layerOf(t.name), params: t.data.length, analyzable: true }));

function analyze(text: string, tensors: readonly PlanTensor[] = TENSORS) {
  return analyzePlan(text, '/plans/x.quant.yaml', { isFormat: (id) => FORMATS.includes(id), formatIds: () => FORMATS, tensors, checkPath: false });
}

const plan = (rules: string, defaults = 'defaults: { format: int4_g128_asym }\n') => `model: ./m\n${defaults}rules:\n${rules}`;

test('first matching rule wins; unmatched tensors take defaults', () => {
  const res = analyze(plan([
    '  - match: "model.layers.1.**"', // 0: every tensor of block 1
    '    format: int8_ch_sym',
    '  - match: "model.layers.*.mlp.*"', // 1: mlp layers (matches the layer path); block 1 is taken
    '    format: nf4_g64',
    '  - match: lm_head', // 2: a root layer path
    '    skip: true',
    '  - match: /norm/', // 3: regex, searched anywhere
    '    format: fp8_e4m3',
    '',
  ].join('\n')));
  assert.deepEqual(res.diagnostics, []);
  assert.equal(res.resolved, true);
  const block1 = ['input_layernorm', 'self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj',
    'post_attention_layernorm', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'].map((l) => `model.layers.1.${l}.weight`);
  // Hand-computed: norms 8, attention 8×8, gate/up 16×8, down 8×16 parameters.
  assert.deepEqual(res.rules.map((r) => [r.tensors, r.params, r.matched, r.dead, r.shadowedBy]), [
    [block1, 656, 9, false, []],
    [['mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'].map((l) => `model.layers.0.${l}.weight`), 384, 6, false, []],
    [['lm_head.weight'], 256, 1, false, []],
    [['model.layers.0.input_layernorm.weight', 'model.layers.0.post_attention_layernorm.weight', 'model.norm.weight'], 24, 5, false, []],
  ]);
  assert.deepEqual(res.defaults, { tensors: 5, params: 512 });
  const a = res.assignment;
  assert.equal(a.size, 21);
  assert.deepEqual(a.get('model.layers.1.mlp.down_proj.weight'), { format: 'int8_ch_sym', rule: 0 });
  assert.deepEqual(a.get('model.layers.0.mlp.up_proj.weight'), { format: 'nf4_g64', rule: 1 });
  assert.deepEqual(a.get('lm_head.weight'), { format: null, rule: 2 });
  assert.deepEqual(a.get('model.norm.weight'), { format: 'fp8_e4m3', rule: 3 });
  assert.deepEqual(a.get('model.embed_tokens.weight'), { format: 'int4_g128_asym', rule: -1 });
  assert.deepEqual(a.get('model.layers.0.self_attn.q_proj.weight'), { format: 'int4_g128_asym', rule: -1 });
  assert.equal(a.get('no.such.tensor'), undefined);
  assert.equal([...a.keys()].length, 21);
  assert.deepEqual(new Map(a).get('lm_head.weight'), { format: null, rule: 2 });
});

test('the example plan sends both down_proj tensors to int8 and the rest to defaults', () => {
  const text = plan('  - match: "model.layers.*.mlp.down_proj*"\n    format: int8_ch_sym\n');
  const res = analyze(text);
  assert.deepEqual(res.rules[0].tensors, ['model.layers.0.mlp.down_proj.weight', 'model.layers.1.mlp.down_proj.weight']);
  assert.equal(res.rules[0].params, 256);
  assert.deepEqual(res.defaults, { tensors: 19, params: 1832 - 256 });
});

test('rules inherit what they leave out from defaults; ratio follows the deciding rule', () => {
  const res = analyze(plan(
    '  - match: "**.q_proj"\n    ratio: 0.02\n  - match: "**.k_proj"\n    format: nf4_g64\n',
    'defaults: { format: int4_g128_asym, ratio: 0.01 }\nhigh_impact: { hi: int8_ch_sym, lo: int2_g64_asym, ratio: auto }\n',
  ));
  assert.deepEqual(res.assignment.get('model.layers.0.self_attn.q_proj.weight'), { format: 'int4_g128_asym', rule: 0, ratio: 0.02 });
  assert.deepEqual(res.assignment.get('model.layers.0.self_attn.k_proj.weight'), { format: 'nf4_g64', rule: 1, ratio: 0.01 });
  assert.deepEqual(res.assignment.get('lm_head.weight'), { format: 'int4_g128_asym', rule: -1, ratio: 0.01 });
});

test('a rule that matches nothing is dead, with a hint when a dot-crossing variant would match', () => {
  const res = analyze(plan([
    '  - match: "model.layers.*.attn.q_proj"',
    '    format: int8_ch_sym',
    '  - match: "*.down_proj"',
    '    format: int8_ch_sym',
    '  - match: down_proj',
    '    format: int8_ch_sym',
    '  - match: /^transformer\\./',
    '    format: int8_ch_sym',
    '',
  ].join('\n')));
  const dead = res.diagnostics.filter((d) => d.code === 'dead-rule');
  assert.deepEqual(res.rules.map((r) => r.dead), [true, true, true, true]);
  assert.equal(dead.length, 4);
  assert.deepEqual(dead[0].range, { start: { line: 3, character: 11 }, end: { line: 3, character: 39 } });
  assert.equal(dead[0].severity, 'warning');
  assert.doesNotMatch(dead[0].message, /would match/);
  assert.match(dead[1].message, /`\*` stops at dots: '\*\*\.down_proj' would match 2/);
  assert.match(dead[2].message, /whole tensor name or layer path: '\*\*down_proj\*\*' would match 2/);
  assert.match(dead[3].message, /rules\[3\] \("\/\^transformer\\\.\/"\) matches no tensor$/);
});

test('a rule whose every tensor is taken earlier is shadowed, naming the earlier rules', () => {
  const res = analyze(plan([
    '  - match: "**.q_proj"', // 0
    '    format: int8_ch_sym',
    '  - match: "**.k_proj"', // 1
    '    format: int8_ch_sym',
    '  - match: "model.layers.*.self_attn.[qk]_proj"', // 2: shadowed by 0 and 1
    '    format: nf4_g64',
    '  - match: "model.layers.*.self_attn.[qkv]_proj"', // 3: still decides v_proj
    '    format: nf4_g64',
    '',
  ].join('\n')));
  const shadowed = res.diagnostics.filter((d) => d.code === 'shadowed-rule');
  assert.equal(shadowed.length, 1);
  assert.deepEqual(res.rules[2].shadowedBy, [0, 1]);
  assert.equal(res.rules[2].matched, 4);
  assert.deepEqual(res.rules[2].tensors, []);
  assert.deepEqual(shadowed[0].range.start, { line: 7, character: 11 });
  assert.match(shadowed[0].message, /rules\[2\] .* never applies: all 4 tensors it matches are taken first by rules\[0\] \("\*\*\.q_proj"\), rules\[1\]/);
  assert.deepEqual(shadowed[0].related?.map((r) => r.range.start.line), [3, 5]);
  assert.deepEqual(res.rules[3].shadowedBy, []);
  assert.deepEqual(res.rules[3].tensors, ['model.layers.0.self_attn.v_proj.weight', 'model.layers.1.self_attn.v_proj.weight']);
});

test('a fused group split across formats warns at every rule involved', () => {
  const res = analyze(plan('  - match: "model.layers.*.self_attn.q_proj"\n    format: int8_ch_sym\n'));
  const split = res.diagnostics.filter((d) => d.code === 'split-fused-group');
  assert.equal(split.length, 2);
  const atRule = split.find((d) => d.range.start.line === 3)!;
  const atDefaults = split.find((d) => d.range.start.line === 1)!;
  assert.deepEqual(atRule.range, { start: { line: 3, character: 11 }, end: { line: 3, character: 44 } });
  assert.deepEqual(atDefaults.range, { start: { line: 1, character: 20 }, end: { line: 1, character: 34 } });
  for (const d of split) {
    assert.match(d.message, /fused group 'model\.layers\.0\.self_attn\.qkv'/);
    assert.match(d.message, /int8_ch_sym \(self_attn\.q_proj\) vs int4_g128_asym \(self_attn\.k_proj, self_attn\.v_proj\)/);
    assert.match(d.message, /\(and 1 more group\);/);
  }
  assert.equal(atRule.related?.[0].range.start.line, 1);
  // The whole group at one format: no warning. gate/up split by skip: warned.
  const whole = analyze(plan('  - match: "model.layers.*.self_attn.[qkv]_proj"\n    format: int8_ch_sym\n'));
  assert.deepEqual(whole.diagnostics, []);
  const skip = analyze(plan('  - match: "model.layers.0.mlp.up_proj"\n    skip: true\n'));
  assert.match(skip.diagnostics[0].message, /'model\.layers\.0\.mlp\.gate_up' across formats: int4_g128_asym \(mlp\.gate_proj\) vs original precision \(mlp\.up_proj\)/);
});

test('non-analyzable tensors are never assigned, only counted', () => {
  const tensors = [...TENSORS, { name: 'model.rotary_emb.inv_freq', layer: layerOf('model.rotary_emb.inv_freq'), params: 4, analyzable: false }];
  const res = analyze(plan('  - match: "model.rotary_emb.*"\n    format: int8_ch_sym\n'), tensors);
  assert.equal(res.notAnalyzable, 1);
  assert.equal(res.assignment.size, 21);
  assert.equal(res.assignment.get('model.rotary_emb.inv_freq'), undefined);
  assert.equal(res.rules[0].dead, true);
});

test('without tensors the plan is checked but not resolved', () => {
  const res = analyzePlan(plan('  - match: "**"\n    format: int8_ch_sym\n'), '/plans/x.quant.yaml', {
    isFormat: (id) => FORMATS.includes(id), formatIds: () => FORMATS, checkPath: false,
  });
  assert.equal(res.resolved, false);
  assert.equal(res.assignment.size, 0);
  assert.deepEqual(res.rules.map((r) => [r.index, r.pattern, r.dead, r.matchRange?.start]), [[0, '**', false, { line: 3, character: 11 }]]);
});
