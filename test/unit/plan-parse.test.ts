// Plan parsing: structure and exact source ranges, size units, syntax errors, unknown keys, wrong types.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { analyzePlan, parsePlan, parseSize, type PlanDiagnostic, type Range } from '../../server/src/plan/index';
import { rng } from '../fixtures/common';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'plans');
const EXAMPLE = path.join(FIXTURES, 'example.quant.yaml');
const r = (l0: number, c0: number, l1: number, c1: number): Range => ({ start: { line: l0, character: c0 }, end: { line: l1, character: c1 } });
const codes = (ds: PlanDiagnostic[]) => ds.map((d) => d.code);
const FORMATS = ['int4_g128_asym', 'int8_ch_sym', 'int2_g64_asym', 'nf4_g64', 'fp8_e4m3'];
const catalog = { isFormat: (id: string) => FORMATS.includes(id), formatIds: () => FORMATS, checkPath: false as const };

test('the README example parses to the structure it describes, with exact ranges', () => {
  const text = readFileSync(EXAMPLE, 'utf8');
  const { plan, diagnostics } = parsePlan(text, EXAMPLE);
  assert.deepEqual(diagnostics, []);
  // line 0: `model: ./model.safetensors`
  assert.equal(plan.model?.value.text, './model.safetensors');
  assert.equal(plan.model?.value.path, path.join(FIXTURES, 'model.safetensors'));
  assert.deepEqual(plan.model?.range, r(0, 7, 0, 26));
  assert.deepEqual(plan.model?.keyRange, r(0, 0, 0, 5));
  // line 1: `calibration: ./calib            # optional` (the comment is not part of the value)
  assert.equal(plan.calibration?.value.path, path.join(FIXTURES, 'calib'));
  assert.deepEqual(plan.calibration?.range, r(1, 13, 1, 20));
  // line 2: `budget: { avg_bits: 4.5 }       # or { size: 3.9GB }`
  assert.deepEqual(plan.budget?.range, r(2, 8, 2, 25));
  assert.equal(plan.budget?.value.avgBits?.value, 4.5);
  assert.deepEqual(plan.budget?.value.avgBits?.range, r(2, 20, 2, 23));
  assert.deepEqual(plan.budget?.value.avgBits?.keyRange, r(2, 10, 2, 18));
  assert.equal(plan.budget?.value.size, undefined);
  assert.equal(plan.method?.value, 'hessian');
  assert.deepEqual(plan.method?.range, r(3, 8, 3, 15));
  assert.equal(plan.defaults?.value.format?.value, 'int4_g128_asym');
  assert.deepEqual(plan.defaults?.value.format?.range, r(4, 20, 4, 34));
  const hi = plan.highImpact?.value;
  assert.deepEqual([hi?.hi?.value, hi?.lo?.value, hi?.ratio?.value, hi?.rMax], ['int8_ch_sym', 'int2_g64_asym', 'auto', undefined]);
  assert.equal(plan.rules.length, 1);
  const rule = plan.rules[0];
  assert.equal(rule.index, 0);
  // line 7: `  - match: "model.layers.*.mlp.down_proj*"` — the value range includes the quotes
  assert.equal(rule.match?.value, 'model.layers.*.mlp.down_proj*');
  assert.deepEqual(rule.match?.range, r(7, 11, 7, 42));
  assert.deepEqual(rule.match?.keyRange, r(7, 4, 7, 9));
  assert.equal(rule.format?.value, 'int8_ch_sym');
  assert.deepEqual(rule.format?.range, r(8, 12, 8, 23));
  assert.deepEqual(rule.range.start, { line: 7, character: 4 });
  assert.deepEqual(plan.targets?.value.map((t) => t.value), ['llama.cpp', 'onnxruntime']);
  assert.deepEqual(plan.targets?.value[1].range, r(9, 21, 9, 32));
  // And the whole analysis is clean with a catalogue knowing these formats.
  assert.deepEqual(analyzePlan(text, EXAMPLE, catalog).diagnostics, []);
});

test('the fixture plan with every feature is clean', () => {
  const file = path.join(FIXTURES, 'mixed.quant.yaml');
  const res = analyzePlan(readFileSync(file, 'utf8'), file, catalog);
  assert.deepEqual(res.diagnostics, []);
  const { plan } = res;
  assert.equal(plan.model?.value.path, path.join(FIXTURES, '..', 'model'));
  assert.equal(plan.budget?.value.size?.value, 3_900_000_000);
  assert.equal(plan.highImpact?.value.rMax?.value, 0.05);
  assert.deepEqual(plan.rules.map((r) => [r.match?.value, r.format?.value ?? null, r.skip?.value ?? false, r.ratio?.value ?? null]), [
    ['model.embed_tokens', null, true, null],
    ['lm_head', null, true, null],
    ['model.layers.*.self_attn.[qkv]_proj', 'int8_ch_sym', false, null],
    ['/^model\\.layers\\.(0|1|30|31)\\.mlp\\.down_proj/', 'int8_ch_sym', false, 0.05],
    ['model.layers.*.mlp.down_proj', 'nf4_g64', false, null],
  ]);
  assert.deepEqual(plan.targets?.value.map((t) => t.value), ['llama.cpp', 'onnxruntime', 'gptqmodel']);
});

test('size budgets: SI and IEC units are exact', () => {
  const cases: [string, number][] = [
    ['3.9GB', 3_900_000_000], ['512MiB', 536_870_912], ['1.2e9', 1_200_000_000], ['4096', 4096], ['1.5 GiB', 1_610_612_736],
    ['0.1GiB', 107_374_182], ['2TB', 2e12], ['1kB', 1000], ['1KiB', 1024], ['3.9G', 3_900_000_000], ['7B', 7],
    ['.5MB', 500_000], ['1.25e-3GB', 1_250_000], ['7.5GiB', 8_053_063_680], ['1PiB', 2 ** 50],
  ];
  for (const [text, bytes] of cases) assert.deepEqual(parseSize(text), { bytes }, text);
  for (const bad of ['3.9XB', '0GB', '-1GB', 'GB', '1e999999999GB', '9007199254740993', '1.2.3GB', '']) {
    assert.ok('error' in parseSize(bad), bad);
  }
  const viaYaml = (v: string) => parsePlan(`model: m\nbudget: { size: ${v} }\n`, '/p/x.quant.yaml');
  assert.equal(viaYaml('3.9GB').plan.budget?.value.size?.value, 3_900_000_000);
  assert.equal(viaYaml('512MiB').plan.budget?.value.size?.value, 536_870_912);
  assert.equal(viaYaml('1.2e9').plan.budget?.value.size?.value, 1_200_000_000); // a YAML number
  assert.deepEqual(viaYaml('1.2e9').plan.budget?.value.size?.range, r(1, 16, 1, 21));
  const bad = viaYaml('3.9 XB');
  assert.deepEqual(codes(bad.diagnostics), ['bad-size']);
  assert.deepEqual(bad.diagnostics[0].range, r(1, 16, 1, 22));
});

test('a YAML syntax error is a diagnostic at its line, never a throw', () => {
  const text = 'model: ./m\nmethod: hessian\n  bad: indent\n';
  const res = analyzePlan(text, '/p/x.quant.yaml', catalog);
  const syntax = res.diagnostics.filter((d) => d.code === 'yaml-syntax');
  assert.ok(syntax.length > 0);
  assert.deepEqual(syntax[0].range.start, { line: 1, character: 8 });
  assert.equal(syntax[0].severity, 'error');
  assert.match(syntax[0].message, /mapping|key/i);
  // Every prefix of the example (what the user has typed so far) analyses without throwing.
  const example = readFileSync(EXAMPLE, 'utf8');
  for (let i = 0; i <= example.length; i++) analyzePlan(example.slice(0, i), EXAMPLE, catalog);
  // Random edits of the example: never a throw, every range inside the text.
  const rand = rng(11);
  const lines = (t: string) => t.split('\n').length;
  for (let i = 0; i < 300; i++) {
    let t = example;
    for (let e = 0; e < 1 + Math.floor(rand() * 4); e++) {
      const at = Math.floor(rand() * t.length);
      const ch = ' :-[]{}"\'#&*!|>?,\n\tab1.'[Math.floor(rand() * 26)];
      t = rand() < 0.5 ? t.slice(0, at) + ch + t.slice(at) : t.slice(0, at) + t.slice(at + 1);
    }
    for (const d of analyzePlan(t, EXAMPLE, catalog).diagnostics) {
      assert.ok(d.range.start.line >= 0 && d.range.end.line < lines(t), JSON.stringify(d));
    }
  }
  for (const junk of ['', '---', '- a\n- b', '{', ']', '"', 'model: [', '? a', '&a *a', 'model: *nope', '\t\tmodel:', 'model: !!binary x', 'a: 1\n---\nb: 2']) {
    analyzePlan(junk, '/p/x.quant.yaml', catalog);
  }
});

test('unknown keys warn at the key, with a did-you-mean suggestion', () => {
  const text = 'model: m\nbudgett: { avg_bits: 4 }\ndefaults: { format: int4_g128_asym, ratoi: 0.1 }\nhighImpact: {}\nzzz: 1\n';
  const { diagnostics } = parsePlan(text, '/p/x.quant.yaml');
  const unknown = diagnostics.filter((d) => d.code === 'unknown-key').sort((a, b) => a.range.start.line - b.range.start.line);
  assert.equal(unknown.length, 4);
  assert.deepEqual(unknown[0].range, r(1, 0, 1, 7));
  assert.equal(unknown[0].severity, 'warning');
  assert.equal(unknown[0].suggestion, 'budget');
  assert.match(unknown[0].message, /did you mean 'budget'/);
  assert.equal(unknown[1].suggestion, 'ratio');
  assert.deepEqual(unknown[1].range, r(2, 36, 2, 41));
  assert.equal(unknown[2].suggestion, 'high_impact');
  assert.equal(unknown[3].suggestion, undefined);
  assert.match(unknown[3].message, /expected one of: model, calibration/);
});

test('wrong types are errors at the value', () => {
  const text = [
    'model: 5', // 0
    'budget: { avg_bits: -1 }', // 1
    'method: magic', // 2
    'defaults: { format: 4 }', // 3
    'high_impact: { hi: int8_ch_sym, lo: int2_g64_asym, ratio: 1.5 }', // 4
    'rules:', // 5
    '  - match: 3', // 6
    '    skip: yes', // 7
    '  - just a string', // 8
    'targets: llama.cpp', // 9
  ].join('\n');
  const { diagnostics, plan } = parsePlan(text, '/p/x.quant.yaml');
  const at = (code: string, line: number) => diagnostics.find((d) => d.code === code && d.range.start.line === line);
  assert.deepEqual(at('wrong-type', 0)?.range, r(0, 7, 0, 8));
  assert.match(at('wrong-type', 0)!.message, /model: expected a file or folder path, found the number 5/);
  assert.deepEqual(at('wrong-type', 1)?.range, r(1, 20, 1, 22));
  assert.deepEqual(at('unknown-method', 2)?.range, r(2, 8, 2, 13));
  assert.deepEqual(at('wrong-type', 3)?.range, r(3, 20, 3, 21));
  assert.deepEqual(at('wrong-type', 4)?.range, r(4, 58, 4, 61));
  assert.deepEqual(at('wrong-type', 6)?.range, r(6, 11, 6, 12));
  assert.deepEqual(at('wrong-type', 7)?.range, r(7, 10, 7, 13));
  assert.match(at('wrong-type', 7)!.message, /true or false, found the string 'yes'/);
  assert.deepEqual(at('wrong-type', 8)?.range, r(8, 4, 8, 17));
  assert.deepEqual(at('wrong-type', 9)?.range, r(9, 9, 9, 18));
  assert.ok(diagnostics.every((d) => d.severity === 'error'));
  assert.equal(diagnostics.length, 9);
  // What was well-formed is kept.
  assert.equal(plan.highImpact?.value.hi?.value, 'int8_ch_sym');
  assert.equal(plan.rules.length, 1);
});

test('budget shape, enums with suggestions, missing keys', () => {
  const one = (text: string) => parsePlan(text, '/p/x.quant.yaml').diagnostics;
  assert.deepEqual(codes(one('model: m\nbudget: { avg_bits: 4, size: 1GB }\n')), ['budget-conflict']);
  assert.deepEqual(codes(one('model: m\nbudget: {}\n')), ['missing-key']);
  const scalar = one('model: m\nbudget: 3.9GB\n');
  assert.match(scalar[0].message, /write \{ size: 3\.9GB \}/);
  const method = one('model: m\nmethod: hesian\n');
  assert.deepEqual([method[0].code, method[0].suggestion], ['unknown-method', 'hessian']);
  const target = one('model: m\ntargets: [llama.cpp, onnxruntim, tensorrt-llm]\n');
  assert.deepEqual(target.map((d) => [d.code, d.suggestion]), [['unknown-target', 'onnxruntime'], ['unknown-target', undefined]]);
  assert.deepEqual(target[0].range, r(1, 21, 1, 31));
  const missing = one('budget: { avg_bits: 4 }\nrules:\n  - format: int8_ch_sym\n');
  assert.deepEqual(codes(missing).sort(), ['missing-key', 'missing-key']);
  assert.ok(missing.some((d) => /needs `model:`/.test(d.message)));
  assert.ok(missing.some((d) => /rules\[0\] needs `match:`/.test(d.message)));
  assert.deepEqual(codes(one('model:\n')), ['missing-value']);
  assert.deepEqual(codes(one('')), ['missing-key']);
  assert.deepEqual(codes(one('- a\n- b\n')), ['wrong-type']);
  // Aliases resolve to their anchors.
  const alias = parsePlan('model: m\ndefaults: { format: &f int8_ch_sym }\nhigh_impact: { hi: *f, lo: int2_g64_asym }\n', '/p/x.quant.yaml');
  assert.deepEqual(alias.diagnostics, []);
  assert.equal(alias.plan.highImpact?.value.hi?.value, 'int8_ch_sym');
});
