// `quantlens ratios` and `quantlens allocate <model>` as a user runs them: built bundle, real process.
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { openCheckpoint } from '../../server/src/formats/registry';
import { analyzePlan, type PlanTensor } from '../../server/src/plan';
import { getFormat } from '../../server/src/quant';
import { randn, tempDir, type FixtureTensor } from '../fixtures/common';
import { encodeF32, GGML, writeGguf } from '../fixtures/gguf';
import { writeFixtureSafetensors } from '../fixtures/safetensors';
import { tinyMlp, writeTinyModel } from '../fixtures/tiny-models';
import { runCli } from '../helpers/cli';

const { dir, cleanup } = tempDir();
after(cleanup);

// Two blocks of q/k/v/o (fused q/k/v groups) with different scales, a planted outlier, and a norm (kept as stored).
const tensors: FixtureTensor[] = [];
for (let b = 0; b < 2; b++) {
  for (const [i, p] of ['q_proj', 'k_proj', 'v_proj', 'o_proj'].entries()) {
    tensors.push({ name: `model.layers.${b}.self_attn.${p}.weight`, shape: [32, 128], data: randn(4096, 10 + 4 * b + i, 0.02 * (1 + b)) });
  }
}
tensors[3].data[100] = 0.7;
tensors.push({ name: 'model.layers.0.input_layernorm.weight', shape: [128], data: randn(128, 99, 1) });
const model = path.join(dir, 'model.safetensors');
writeFixtureSafetensors(model, tensors);
const NORM_BYTES = 128 * 4;

test('ratios on a safetensors checkpoint: four strategies, weights only, C diagonal', () => {
  const r = runCli('ratios', model, '--json', '--hi', '8', '--lo', '2');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.deepEqual(j.strategies.map((s: { id: string }) => s.id), ['uniform-bits', 'fixed-ratio', 'diagonal', 'full-qp']);
  assert.equal(j.layers.length, 8);
  assert.equal(j.interactions.measured, false);
  const [uni, fixed, diag, full] = j.strategies;
  assert.ok(full.predicted <= diag.predicted + 1e-15 && diag.predicted <= fixed.predicted + 1e-15 && diag.predicted <= uni.predicted + 1e-15);
  for (const s of j.strategies) assert.ok(s.modelAvgBits <= j.budgetBits + 1e-9);
  assert.ok(diag.kkt.stationarity < 1e-6);

  // The same weights as F32 GGUF tensors: the same report.
  const gguf = path.join(dir, 'model.gguf');
  writeGguf(gguf, {
    kv: [['general.architecture', { type: 'STRING', value: 'llama' }]],
    tensors: tensors.map((t) => ({ name: t.name, ne: [...t.shape].reverse(), type: GGML.F32, data: encodeF32(t.data) })),
  });
  const g = runCli('ratios', gguf, '--json', '--hi', '8', '--lo', '2');
  assert.equal(g.code, 0, g.stderr);
  const gj = JSON.parse(g.stdout);
  assert.deepEqual(gj.strategies, j.strategies);
  assert.deepEqual(gj.layers, j.layers);

  const table = runCli('ratios', model, '--budget-bits', '2.6');
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /budget 2\.6000 bits\/weight/);
  assert.match(table.stdout, /interactions: none: the model is not runnable here \(weights only\), so C is diagonal/);
  assert.match(table.stdout, /full-qp/);
  assert.match(table.stdout, /model\.layers\.1\.self_attn\.o_proj\.weight/);
});

test('ratios: bad input exits 2 with a clear message', () => {
  let r = runCli('ratios', model, '--budget-bits', '1');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--budget-bits 1: below the minimum achievable 2\.\d{4} bits\/weight/);
  r = runCli('ratios', model, '--hi', 'int4_g128_asym');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--hi: expected fp16, 16, int<b>_ch_sym or a bit width/);
  r = runCli('ratios', model, '--r-max', '2');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--r-max: expected a ratio in \(0, 1\]/);
});

test('ratios on a runnable ONNX MLP: interactions by co-perturbation, measured ΔL per strategy', () => {
  const onnx = writeTinyModel(tinyMlp(), dir, 'mlp.onnx');
  const r = runCli('ratios', onnx, '--json', '--hi', 'fp16', '--lo', '3', '--samples', '4');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.lossModel, 'co-perturbation');
  assert.equal(j.interactions.measured, true);
  assert.equal(j.interactions.description, 'all 3 pairs of 3 layers');
  assert.equal(j.interactions.runs, 7);
  assert.deepEqual(j.layers.map((l: { name: string }) => l.name), ['fc0.weight', 'fc1.weight', 'fc2.weight']);
  for (const s of j.strategies) assert.ok(typeof s.measured === 'number' && s.measured > 0, s.id);
  assert.match(j.runtime, /^ran on \w+; synthetic calibration data/);
  const [, , diag, full] = j.strategies;
  assert.ok(full.predicted <= diag.predicted + 1e-12);
  const weightsOnly = JSON.parse(runCli('ratios', onnx, '--json', '--datafree').stdout);
  assert.equal(weightsOnly.interactions.measured, false);
});

/** The analyzed tensors' relMse·‖W‖² per format, via `analyze --json` (the allocation's objective, computed apart). */
function layerErrors(formats: string[]): Map<string, Record<string, { err: number; bits: number }>> {
  const a = runCli('analyze', model, '--json', '--no-cache', '--no-high-impact', '--threads', '0', '--formats', formats.join(','));
  assert.equal(a.code, 0, a.stderr);
  const rep = JSON.parse(a.stdout) as { layers: { name: string; sumSq: number; errors: Record<string, { relMse: number; bitsPerWeight: number }> }[] };
  return new Map(rep.layers.map((l) => [l.name, Object.fromEntries(formats.map((f) => [f, { err: l.errors[f].relMse * l.sumSq, bits: l.errors[f].bitsPerWeight }]))]));
}

test('allocate <model> --budget: exact optimum over fused groups (checked by brute force), sizes and bits', () => {
  const formats = ['int2_g64_asym', 'int4_g128_asym', 'int8_ch_sym'];
  const r = runCli('allocate', model, '--budget', '4', '--formats', formats.join(','), '--json', '--no-cache');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.result.feasible, true);
  assert.equal(j.groups.length, 2, 'q/k/v of each block');
  const errs = layerErrors(formats);
  // Brute force: 2 groups × 3 + 2 o_proj × 3 → 81 choices; every layer has 4096 weights.
  const units = [0, 1].flatMap((b) => [['q_proj', 'k_proj', 'v_proj'], ['o_proj']].map((ps) => ps.map((p) => `model.layers.${b}.self_attn.${p}.weight`)));
  let best = { err: Infinity, pick: [] as string[] };
  for (let c = 0; c < 81; c++) {
    const pick = units.map((_, u) => formats[Math.floor(c / 3 ** u) % 3]);
    let bits = 0;
    let err = 0;
    units.forEach((names, u) => names.forEach((n) => ((bits += errs.get(n)![pick[u]].bits), (err += errs.get(n)![pick[u]].err))));
    if (bits / 8 <= 4 && err < best.err) best = { err, pick };
  }
  assert.ok(Math.abs(j.result.totalError - best.err) <= 1e-12 * best.err, `${j.result.totalError} vs brute force ${best.err}`);
  units.forEach((names, u) => names.forEach((n) => assert.equal(j.result.choice[n], best.pick[u], n)));
  assert.ok(j.result.avgBits <= 4);
  assert.equal(j.keptBytes, NORM_BYTES);
  assert.equal(j.bytes, Math.ceil((j.result.avgBits * 8 * 4096) / 8) + NORM_BYTES);

  // A size budget: the norm's bytes come off first, the rest is bits per analyzed weight.
  const s = runCli('allocate', model, '--budget', '16kB', '--formats', formats.join(','), '--json', '--no-cache');
  assert.equal(s.code, 0, s.stderr);
  const k = JSON.parse(s.stdout);
  assert.ok(Math.abs(k.budget.avgBits - (16000 * 8 - NORM_BYTES * 8) / 32768) < 1e-12);
  assert.ok(k.bytes <= 16000);
});

test('allocate <model>: infeasible budgets and bad options exit 2 stating the minimum', () => {
  let r = runCli('allocate', model, '--budget', '1.5', '--formats', 'int2_g64_asym,int4_g128_asym', '--no-cache');
  assert.equal(r.code, 2);
  const min = getFormat('int2_g64_asym').bitsPerWeight([32, 128], 'out_in');
  assert.ok(r.stderr.includes(`the minimum achievable with formats int2_g64_asym, int4_g128_asym is ${min.toFixed(4)} bits/weight (${(min * 32768) / 8 + NORM_BYTES} bytes`), r.stderr);
  r = runCli('allocate', model, '--budget', '2kB', '--no-cache');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /budget 2kB \(2000 bytes; .*\) is infeasible: the minimum achievable/);
  r = runCli('allocate', model, '--budget', '4', '--method', 'fisher');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /'fisher' needs calibration-based layer scores/);
  r = runCli('allocate', model);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /missing --budget/);
});

test('allocate <model> --plan writes a new plan that resolves every tensor to its chosen format', async () => {
  const plan = path.join(dir, 'out.quant.yaml');
  const r = runCli('allocate', model, '--budget', '3.5', '--plan', plan, '--json', '--no-cache');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.plan, plan);
  const text = readFileSync(plan, 'utf8');
  assert.match(text, /^model: "\.\/model\.safetensors"$/m);
  assert.match(text, /^budget: \{ avg_bits: 3\.5 \}$/m);
  const ckpt = await openCheckpoint(model);
  const planTensors: PlanTensor[] = ckpt.tensors.map((t) => ({ name: t.name, layer: t.layer, params: t.params, analyzable: t.analyzable, shape: t.shape, layout: t.layout, bytes: t.byteLength }));
  await ckpt.close();
  const isFormat = (id: string) => {
    try {
      return getFormat(id) !== undefined;
    } catch {
      return false;
    }
  };
  const a = analyzePlan(text, plan, { isFormat, formatIds: () => [], tensors: planTensors, checkPath: false });
  assert.deepEqual(a.diagnostics.filter((d) => d.severity === 'error'), []);
  for (const l of j.layers) assert.equal(a.assignment.get(l.name)?.format, l.format, l.name);
  assert.equal(a.assignment.get('model.layers.0.input_layernorm.weight')?.format ?? null, null, 'the norm keeps its precision');

  // No overwrite without --force; the file is untouched. With --force it is replaced.
  const before = statSync(plan).mtimeMs;
  const again = runCli('allocate', model, '--budget', '3', '--plan', plan, '--no-cache');
  assert.equal(again.code, 2);
  assert.match(again.stderr, /out\.quant\.yaml: the plan file already exists; pass --force/);
  assert.equal(readFileSync(plan, 'utf8'), text);
  assert.equal(statSync(plan).mtimeMs, before);
  const forced = runCli('allocate', model, '--budget', '3', '--plan', plan, '--force', '--no-cache');
  assert.equal(forced.code, 0, forced.stderr);
  assert.match(readFileSync(plan, 'utf8'), /^budget: \{ avg_bits: 3 \}$/m);
});

test('allocate --problem still solves the stable contract', () => {
  const file = path.join(dir, 'problem.json');
  writeFileSync(file, JSON.stringify({ layers: [{ name: 'A', params: 10, options: [{ id: 'a', bits: 4, error: 1 }, { id: 'b', bits: 8, error: 0.5 }] }] }));
  const r = runCli('allocate', '--problem', file, '--budget-bits', '8', '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout).choice, { A: 'b' });
});
