// The shipped JSON schema is the schema object, and the schema agrees with the parser on sizes and keys.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { parsePlan, parseSize, PLAN_SCHEMA, SIZE_PATTERN } from '../../server/src/plan/index';

const ROOT = path.join(__dirname, '..', '..');

test('media/quant-plan.schema.json equals PLAN_SCHEMA', () => {
  const shipped = JSON.parse(readFileSync(path.join(ROOT, 'media', 'quant-plan.schema.json'), 'utf8'));
  assert.deepEqual(shipped, JSON.parse(JSON.stringify(PLAN_SCHEMA)),
    'regenerate: write JSON.stringify(PLAN_SCHEMA, null, 2) + "\\n" from server/src/plan/schema.ts to media/quant-plan.schema.json');
  assert.equal(shipped.$schema, 'http://json-schema.org/draft-07/schema#');
});

test('the schema size pattern accepts exactly what parseSize reads (apart from values out of range)', () => {
  const re = new RegExp(SIZE_PATTERN);
  for (const s of ['3.9GB', '512MiB', '1.2e9', '4096', '1.5 GiB', '2tb', '7B', '.5MB', '3.9G', '1Ki']) {
    assert.ok(re.test(s), s);
    assert.ok('bytes' in parseSize(s), s);
  }
  for (const s of ['3.9XB', '-1GB', 'GB', '1.2.3GB', '', '3.9 GB extra', '1e9e9']) {
    assert.ok(!re.test(s), s);
    assert.ok('error' in parseSize(s), s);
  }
});

test('every key the schema declares is accepted by the parser, and nothing else', () => {
  const rule = Object.keys(PLAN_SCHEMA.definitions.rule.properties).map((k) => `    ${k}: ${k === 'skip' ? 'true' : k === 'ratio' ? '0.1' : 'x'}`).join('\n');
  const text = [
    'model: m', 'calibration: c', 'budget: { avg_bits: 4 }', 'method: datafree', 'defaults: { format: f, ratio: auto }',
    'high_impact: { hi: a, lo: b, ratio: 0.5, r_max: 0.9 }', 'targets: [vllm]', 'rules:', `  - match: "**"\n${rule.split('\n').slice(1).join('\n')}`,
  ].join('\n');
  assert.deepEqual(Object.keys(PLAN_SCHEMA.properties).sort(), ['budget', 'calibration', 'defaults', 'high_impact', 'method', 'model', 'rules', 'targets']);
  assert.deepEqual(parsePlan(text, '/p/x.quant.yaml').diagnostics, []);
  assert.deepEqual(parsePlan('model: m\nbudget: { avg_bits: 4, bits: 3 }\n', '/p/x.quant.yaml').diagnostics.map((d) => d.code), ['unknown-key']);
});
