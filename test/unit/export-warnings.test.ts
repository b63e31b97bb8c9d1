// What a dialect cannot express is a warning at the plan's source range (0-based LSP positions, counted by
// hand from the plan text below); the export still writes what it can, and fails only when nothing maps.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { QuantLensError } from '../../server/src/formats/errors';
import { exportPlan, exportWarnings } from '../../server/src/export/index';
import { tempDir, tinyLlamaTensors } from '../fixtures/common';
import { writeFixtureSafetensors } from '../fixtures/safetensors';

const PLAN = [
  'model: ./model.safetensors', //                                   0
  'defaults: { format: int4_g128_asym }', //                          1: value at 20..34
  'high_impact: { hi: int8_ch_sym, lo: int2_g64_asym }', //           2: key at 0..11
  'rules:', //                                                        3
  '  - match: "model.layers.*.mlp.down_proj"', //                    4
  '    format: nf4_g64', //                                           5: value at 12..19
  '    ratio: 0.1', //                                                6: key at 4..9
  '  - match: "model.layers.0.self_attn.[qkv]_proj"', //             7
  '    format: int7_g32_sym', //                                      8: value at 12..24
  '  - match: "model.layers.1.self_attn.[qkv]_proj"', //             9
  '    format: int4_g128_asym+had64', //                              10: value at 12..32
  '',
].join('\n');

const at = (line: number, a: number, b: number) => ({ start: { line, character: a }, end: { line, character: b } });
const HI = 'cannot keep a share of salient weights at a higher precision';

let dir: string;
let cleanup: () => void;
let plan: string;

before(() => {
  ({ dir, cleanup } = tempDir('quantlens-export-'));
  writeFixtureSafetensors(path.join(dir, 'model.safetensors'), tinyLlamaTensors(), 'F16');
  plan = path.join(dir, 'w.quant.yaml');
  writeFileSync(plan, PLAN);
});
after(() => cleanup());

test('GPTQModel: each inexpressible setting is warned at its range, in plan order', async () => {
  const r = await exportPlan(plan, 'gptqmodel');
  assert.deepEqual(r.warnings, [
    { range: at(1, 20, 34), message: "GPTQModel quantizes only the decoder's Linear layers and lm_head: model.embed_tokens.weight stay in original precision" },
    { range: at(2, 0, 11), message: `high_impact is not exported: GPTQModel ${HI}; each tensor gets its base format only` },
    { range: at(5, 12, 19), message: 'GPTQ stores integer weights only; nf4_g64 has no GPTQModel setting: model.layers.0.mlp.down_proj, model.layers.1.mlp.down_proj get the base config' },
    { range: at(6, 4, 9), message: `rules[0].ratio is not exported: GPTQModel ${HI}` },
    { range: at(8, 12, 24), message: 'GPTQ supports 2, 3, 4, 8 bits, not 7 (int7_g32_sym): model.layers.0.self_attn.q_proj, model.layers.0.self_attn.k_proj, model.layers.0.self_attn.v_proj get the base config' },
    { range: at(10, 12, 32), message: "format modifiers '+had64' (outliers / reordering / rotation) are not exported: deployment configs take the base format int4_g128_asym" },
  ]);
  // … and the export still carries what GPTQModel can say: int4 g128 asymmetric everywhere else.
  const cfg = JSON.parse(r.files[0].text);
  assert.deepEqual([cfg.bits, cfg.group_size, cfg.sym, cfg.lm_head, cfg.dynamic], [4, 128, false, true, {}]);
});

test('llama.cpp: a 7-bit format is widened to q8_0 with a warning; nf4 maps to iq4_nl silently', async () => {
  const r = await exportPlan(plan, 'llama.cpp');
  assert.deepEqual(r.warnings.map((w) => [w.range?.start.line, w.message]), [
    [2, `high_impact is not exported: llama.cpp ${HI}; each tensor gets its base format only`],
    [6, `rules[0].ratio is not exported: llama.cpp ${HI}`],
    [8, 'int7_g32_sym is exported as q8_0: 7-bit integers have no GGML type'],
    [10, "format modifiers '+had64' (outliers / reordering / rotation) are not exported: deployment configs take the base format int4_g128_asym"],
  ]);
  assert.match(r.files[0].text, /^\^blk\\\.\\d\+\\\.ffn_down\\\.weight\$=iq4_nl$/m);
});

test('exportWarnings gives the same warnings without writing anything', async () => {
  const before = readFileSync(plan, 'utf8');
  const ws = await exportWarnings(PLAN, plan, 'gptqmodel');
  assert.equal(ws.length, 6);
  assert.deepEqual(ws[0].range, at(1, 20, 34));
  assert.equal(readFileSync(plan, 'utf8'), before);
});

test('nothing expressible → a located error; plan errors are located too', async () => {
  const none = path.join(dir, 'none.quant.yaml');
  writeFileSync(none, 'model: ./model.safetensors\ndefaults: { format: nf4_g64 }\n');
  await assert.rejects(exportPlan(none, 'gptqmodel'), (e: unknown) => e instanceof QuantLensError && e.code === 'nothing-to-export' && e.where.file === none);
  const bad = path.join(dir, 'bad.quant.yaml');
  writeFileSync(bad, 'model: ./model.safetensors\ndefaults: { format: int4_g128_asym }\nrules:\n  - match: lm_head\n    format: int9_bogus\n');
  await assert.rejects(exportPlan(bad, 'llama.cpp'), (e: unknown) => e instanceof QuantLensError && e.code === 'plan-error' && e.where.line === 5 && e.where.column === 13);
  await assert.rejects(exportPlan(plan, 'tflite'), (e: unknown) => e instanceof QuantLensError && e.code === 'unknown-dialect');
});
