// Plan checks beyond YAML shape: format ids through the catalogue, paths, patterns, sections that must agree.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { analyzePlan, type AnalyzeOptions } from '../../server/src/plan/index';
import { tempDir } from '../fixtures/common';

const FORMATS = ['int4_g128_asym', 'int8_ch_sym', 'int2_g64_asym', 'nf4_g64', 'fp8_e4m3'];
const opts = (more: Partial<AnalyzeOptions> = {}): AnalyzeOptions => ({
  isFormat: (id) => FORMATS.includes(id), formatIds: () => FORMATS, checkPath: false, ...more,
});
const diags = (text: string, more?: Partial<AnalyzeOptions>) => analyzePlan(text, '/plans/x.quant.yaml', opts(more)).diagnostics;

test('unknown format ids are errors with the closest known id', () => {
  const ds = diags('model: m\ndefaults: { format: int4_g128_asm }\nhigh_impact: { hi: int8_chsym, lo: q4_k_m }\nrules:\n  - match: x\n    format: nf4_g46\n');
  assert.deepEqual(ds.map((d) => [d.code, d.range.start.line, d.range.start.character, d.suggestion]), [
    ['unknown-format', 1, 20, 'int4_g128_asym'],
    ['unknown-format', 2, 19, 'int8_ch_sym'],
    ['unknown-format', 2, 35, undefined],
    ['unknown-format', 5, 12, 'nf4_g64'],
  ]);
  assert.equal(ds[0].severity, 'error');
  assert.match(ds[0].message, /defaults\.format: unknown number format 'int4_g128_asm' — did you mean 'int4_g128_asym'\?/);
  // The catalogue decides: ids it accepts beyond its listed ones are valid.
  assert.deepEqual(diags('model: m\ndefaults: { format: int3_g32_sym }\n', { isFormat: (id) => /^int\d_g\d+_(a?sym)$/.test(id) }), []);
});

test('model and calibration paths resolve against the plan folder and are checked through the hook', () => {
  const { dir, cleanup } = tempDir();
  try {
    mkdirSync(path.join(dir, 'calib'));
    const planPath = path.join(dir, 'plans', 'a.quant.yaml');
    const text = 'model: ../model.safetensors\ncalibration: ../calib\n';
    const missing = analyzePlan(text, planPath, opts({ checkPath: undefined })).diagnostics;
    assert.deepEqual(missing.map((d) => [d.code, d.severity, d.range.start.line, d.range.start.character, d.range.end.character]), [
      ['model-path', 'error', 0, 7, 27],
    ]);
    assert.equal(missing[0].message, `model not found: ${path.join(dir, 'model.safetensors')}`);
    writeFileSync(path.join(dir, 'model.safetensors'), '');
    assert.deepEqual(analyzePlan(text, planPath, opts({ checkPath: undefined })).diagnostics, []);
    // The language server's hook reports the reader's own located error instead.
    const seen: string[] = [];
    const hooked = analyzePlan(text, planPath, opts({
      checkPath: (p, key) => {
        seen.push(`${key}:${p}`);
        return key === 'model' ? `${p} @ byte 0: expected an 8-byte header length` : undefined;
      },
    })).diagnostics;
    assert.deepEqual(seen, [`model:${path.join(dir, 'model.safetensors')}`, `calibration:${path.join(dir, 'calib')}`]);
    assert.deepEqual(hooked.map((d) => [d.code, d.message]), [['model-path', `${path.join(dir, 'model.safetensors')} @ byte 0: expected an 8-byte header length`]]);
  } finally {
    cleanup();
  }
});

test('rule checks: patterns, empty rules, skip with format', () => {
  const ds = diags([
    'model: m',
    'defaults: { format: int4_g128_asym }',
    'rules:',
    '  - match: "model.[abc"', // 3
    '    format: int8_ch_sym',
    '  - match: "/x/g"', // 5
    '    format: int8_ch_sym',
    '  - match: lm_head', // 7
    '  - match: "**.norm"', // 8
    '    skip: true',
    '    format: int8_ch_sym', // 10
    '',
  ].join('\n'));
  assert.deepEqual(ds.map((d) => [d.code, d.severity, d.range.start.line]), [
    ['bad-pattern', 'error', 3], ['bad-pattern', 'error', 5], ['empty-rule', 'warning', 7], ['skip-with-format', 'warning', 10],
  ]);
  assert.match(ds[0].message, /rules\[0\]: unclosed '\['/);
});

test('section consistency: ratio needs high_impact, r_max bounds ratios, data-driven methods need calibration, targets once', () => {
  assert.deepEqual(diags('model: m\ndefaults: { format: int4_g128_asym, ratio: 0.1 }\n').map((d) => d.code), ['ratio-without-high-impact']);
  const rmax = diags('model: m\nhigh_impact: { hi: int8_ch_sym, lo: int2_g64_asym, ratio: 0.2, r_max: 0.05 }\n');
  assert.deepEqual(rmax.map((d) => d.code), ['ratio-above-r-max']);
  assert.match(rmax[0].message, /ratio 0\.2 is above high_impact\.r_max 0\.05/);
  for (const m of ['hessian', 'fisher', 'gwq', 'empirical']) assert.deepEqual(diags(`model: m\nmethod: ${m}\n`).map((d) => d.code), ['needs-calibration'], m);
  assert.deepEqual(diags('model: m\nmethod: datafree\n'), []);
  assert.deepEqual(diags('model: m\nmethod: hessian\ncalibration: c\n'), []);
  const dup = diags('model: m\ntargets: [llama.cpp, vllm, llama.cpp]\n');
  assert.deepEqual(dup.map((d) => [d.code, d.range.start.character]), [['duplicate-target', 27]]);
});
