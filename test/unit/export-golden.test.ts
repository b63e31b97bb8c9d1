// Golden exports: the fixture plan against a generated tiny-LLaMA safetensors file must give, byte for byte, the
// files in test/fixtures/golden/export/ — written by hand from each tool's documented format (see the
// comment at the top of each exporter), not produced by the exporters.
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { DIALECT_IDS, exportPlan } from '../../server/src/export/index';
import { tempDir, tinyLlamaTensors } from '../fixtures/common';
import { writeFixtureSafetensors } from '../fixtures/safetensors';

const GOLDEN = path.resolve(__dirname, '../fixtures/golden/export');
const golden = (name: string) => readFileSync(path.join(GOLDEN, name), 'utf8');

let dir: string;
let cleanup: () => void;
let plan: string;

before(() => {
  ({ dir, cleanup } = tempDir('quantlens-export-'));
  writeFixtureSafetensors(path.join(dir, 'model.safetensors'), tinyLlamaTensors(), 'F16');
  plan = path.join(dir, 'golden.quant.yaml');
  copyFileSync(path.join(GOLDEN, 'golden.quant.yaml'), plan);
});
after(() => cleanup());

const FILES: Record<string, string> = {
  'llama.cpp': 'golden.tensor-types.txt',
  gptqmodel: 'golden.gptqmodel.json',
  hqq: 'golden.hqq.py',
  'ort-matmulnbits': 'golden.ort-matmulnbits.json',
  'llm-compressor': 'golden.recipe.yaml',
  modelopt: 'golden.modelopt.py',
};

test('every dialect has a golden file', () => {
  assert.deepEqual([...DIALECT_IDS].sort(), Object.keys(FILES).sort());
});

for (const [dialect, file] of Object.entries(FILES)) {
  test(`golden: ${dialect} → ${file}`, async () => {
    const r = await exportPlan(plan, dialect);
    assert.deepEqual(r.files.map((f) => f.name), [file]);
    assert.equal(r.files[0].text, golden(file));
  });
}

test('llama.cpp: the matching llama-quantize command line takes the defaults as its type argument', async () => {
  const r = await exportPlan(plan, 'llama.cpp');
  assert.equal(r.commandLine, 'llama-quantize --tensor-type-file {file} model-f16.gguf model-quantlens.gguf Q4_0');
  // llama-quantize reads whitespace-separated pattern=type tokens: no comments, no spaces.
  for (const token of r.files[0].text.trim().split('\n')) assert.match(token, /^[^\s#=][^\s=]*=[a-z0-9_]+$/i);
});

test('the golden patterns select exactly the tensors of their rule (checked with the tools’ matching rules)', () => {
  // llama.cpp searches lower-cased patterns in GGUF names; first match wins.
  const lines = golden('golden.tensor-types.txt').trim().split('\n').map((l) => l.split('='));
  const typeOf = (n: string) => lines.find(([p]) => new RegExp(p.toLowerCase()).test(n))?.[1];
  assert.equal(typeOf('blk.0.attn_k.weight'), 'q8_0');
  assert.equal(typeOf('blk.1.ffn_up.weight'), 'q4_1');
  assert.equal(typeOf('blk.0.ffn_up.weight'), 'q4_0');
  assert.equal(typeOf('blk.1.attn_output.weight'), 'q4_0');
  assert.equal(typeOf('output.weight'), 'q4_0');
  assert.equal(typeOf('token_embd.weight'), 'f16');
  assert.equal(typeOf('blk.0.attn_norm.weight'), undefined);
  // GPTQModel re.match-es dynamic keys (prefix stripped) against module names.
  const dyn = Object.keys(JSON.parse(golden('golden.gptqmodel.json')).dynamic).map((k) => new RegExp(`^(?:${k.slice(2)})`));
  const hit = (m: string) => dyn.findIndex((re) => re.test(m));
  assert.deepEqual(['model.layers.1.self_attn.v_proj', 'model.layers.1.mlp.down_proj', 'model.layers.0.mlp.down_proj', 'lm_head'].map(hit), [0, 1, -1, -1]);
});
