// The mixed high-impact quantize job (jobs/mixed-job.ts through runQuantize): ratios from a `quantlens ratios`
// report or solved in the job, written fake-quantized with exact bits; checked against an independent
// re-implementation of the two grids, hand-computed bit counts, and located errors that leave nothing behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import { writeNpy } from '../../server/src/calib';
import { QuantLensError } from '../../server/src/formats/errors';
import { runQuantize } from '../../server/src/jobs/pipeline';
import { tempDir } from '../fixtures/common';
import { tinyFeeds, tinyMlp, writeTinyModel } from '../fixtures/tiny-models';

const { dir, cleanup } = tempDir('mixed-job');
test.after(cleanup);
const mlp = tinyMlp();
const model = writeTinyModel(mlp, dir, 'mlp.onnx');
const data = path.join(dir, 'calib.npy');
writeFileSync(data, writeNpy(tinyFeeds(mlp, 32, 5).x));
const original = (name: string) => initializer(model, name);

function initializer(file: string, name: string): Float32Array {
  const t = onnx.ModelProto.decode(readFileSync(file)).graph!.initializer!.find((x) => x.name === name)!;
  const raw = t.rawData!;
  return new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
}

/** Independent references: fp16 rounding (normal range), round half to even. */
function fp16(x: number): number {
  if (x === 0) return 0;
  const ulp = 2 ** (Math.floor(Math.log2(Math.abs(x))) - 10);
  return rne(x / ulp) * ulp;
}
function rne(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function ratiosFile(name: string, layers: { name: string; ratio: number }[], extra: object = {}): string {
  const file = path.join(dir, name);
  writeFileSync(file, JSON.stringify({ hi: 'int8_ch_sym', lo: 'int2_g4_asym', saliency: 'magnitude', ...extra, layers: layers.map((l) => ({ name: l.name, ratio: { 'full-qp': l.ratio, diagonal: 0 } })) }));
  return file;
}

test('--ratios, RTN: top-r by |w| on the int8 grid of the kept weights, the rest on int2 groups fit without them; exact bits', async () => {
  const file = ratiosFile('r1.json', [
    { name: 'fc1.weight', ratio: 0.125 },
    { name: 'fc0.weight', ratio: 0 },
  ]);
  const out = path.join(dir, 'm1.onnx');
  const r = await runQuantize({ model, mixed: { ratiosFile: file }, eval: false, out });
  assert.deepEqual(r.weights.map((w) => [w.name, w.format, w.simulated]), [
    ['fc0.weight', 'int2_g4_asym', true],
    ['fc1.weight', 'int2_g4_asym + 12.50% int8_ch_sym', true],
  ]);
  const m = r.mixed!;
  assert.equal(m.saliency, 'magnitude');
  assert.deepEqual(m.ratios, { source: 'file', file });
  // fc1 [16 in, 16 out]: int2 codes 256·2 + 64 groups·(16 + 2) = 1664; int8 scales 16·16; 32 kept·8;
  // CSR 32·⌈log2 16⌉ + 16·⌈log2 17⌉ = 208 < bitmask 256. fc0 [8, 16], nothing kept: 128·2 + 32·18 = 832.
  const fc1 = m.layers.find((l) => l.name === 'fc1.weight')!;
  assert.deepEqual([fc1.kept, fc1.bitsPerWeight, fc1.rounding], [32, (1664 + 256 + 256 + 208) / 256, 'rtn']);
  assert.equal(m.layers.find((l) => l.name === 'fc0.weight')!.bitsPerWeight, 832 / 128);
  assert.equal(m.avgBits, (1664 + 256 + 256 + 208 + 832) / 384);
  // The written values, position by position ([in, out] storage: output channel o = column).
  const w = original('fc1.weight');
  const q = initializer(out, 'fc1.weight');
  const kept = new Set(Array.from(w.keys()).sort((a, b) => Math.abs(w[b]) - Math.abs(w[a])).slice(0, 32));
  for (let o = 0; o < 16; o++) {
    const col = Array.from({ length: 16 }, (_, i) => i * 16 + o);
    const k = col.filter((i) => kept.has(i));
    const s8 = fp16(Math.max(0, ...k.map((i) => Math.abs(w[i]))) / 127);
    // (=== : a value rounded to zero may carry either sign)
    for (const i of k) assert.ok(q[i] === Math.fround(Math.max(-128, Math.min(127, rne(w[i] / s8))) * s8), `kept ${i}`);
    for (let g = 0; g < 16; g += 4) {
      const cells = col.slice(g, g + 4);
      const v = cells.map((i) => (kept.has(i) ? 0 : w[i]));
      const [mn, mx] = [Math.min(0, ...v), Math.max(0, ...v)];
      const s = fp16((mx - mn) / 3);
      const z = Math.max(0, Math.min(3, rne(-mn / s)));
      for (const i of cells.filter((c) => !kept.has(c))) assert.ok(q[i] === Math.fround(Math.max(-z, Math.min(3 - z, rne(w[i] / s))) * s), `low ${i}: ${q[i]}`);
    }
  }
  assert.deepEqual(initializer(out, 'fc2.weight'), original('fc2.weight'), 'a layer the file does not list is left as it is');
});

test('--mixed with GPTQ: ratios solved in the job (four strategies, within the budget), Hessian saliency, GPTQ rounding, time split', async () => {
  const out = path.join(dir, 'm2.onnx');
  const r = await runQuantize({ model, mixed: { hi: '8', lo: 'int2_g4_asym', budgetBits: 7 }, method: 'gptq', calib: data, eval: data, out });
  const m = r.mixed!;
  assert.equal(m.ratios.source, 'solved');
  if (m.ratios.source !== 'solved') return;
  assert.deepEqual(m.ratios.strategies.map((s) => s.id), ['uniform-bits', 'fixed-ratio', 'diagonal', 'full-qp']);
  for (const s of m.ratios.strategies) assert.ok(s.avgBits <= 7 + 1e-9, `${s.id} ${s.avgBits}`);
  assert.ok(m.avgBits <= 7 + 1e-9 && m.avgBits > 832 / 128 - 0.5);
  assert.equal(m.saliency, 'hessian');
  assert.deepEqual(m.fallback, []);
  assert.deepEqual(m.layers.map((l) => l.rounding), ['gptq', 'gptq', 'gptq']);
  assert.ok(m.layers.some((l) => l.kept > 0));
  for (const k of ['saliency', 'ratios', 'quantize', 'evaluate'] as const) assert.ok(m.timings[k]! >= 0, k);
  assert.ok(r.metrics && r.metrics.kl >= 0 && r.predicted.hessian !== undefined);
  assert.ok(existsSync(out) && existsSync(r.report!));
});

test('--ratios from a weights-only report: a tensor of the model the job cannot rewrite is skipped and said so', async () => {
  const file = ratiosFile('r-skip.json', [
    { name: 'fc1.weight', ratio: 0 },
    { name: 'fc1.bias', ratio: 0 },
  ]);
  const r = await runQuantize({ model, mixed: { ratiosFile: file }, eval: false, out: path.join(dir, 'm-skip.onnx') });
  assert.deepEqual(r.weights.map((w) => w.name), ['fc1.weight']);
  assert.deepEqual(r.skipped.map((x) => x.name), ['fc1.bias']);
});

test('bad input: unknown layer, bad ratio, not JSON, GPTQ with a non-integer low format — located, nothing written', async () => {
  const out = path.join(dir, 'bad.onnx');
  const cases: [string, RegExp][] = [
    [ratiosFile('b1.json', [{ name: 'fc9.weight', ratio: 0.1 }]), /layers\[0\]: "fc9\.weight" is not a MatMul\/Gemm\/Conv weight of mlp\.onnx \(did you mean fc\d\.weight\?\)/],
    [ratiosFile('b2.json', [{ name: 'fc1.weight', ratio: 1.5 }]), /layers\[0\]\.ratio\["full-qp"\]: expected a ratio in \[0, 1\]/],
  ];
  const notJson = path.join(dir, 'b3.json');
  writeFileSync(notJson, 'hi: 8');
  cases.push([notJson, /not JSON .*expected the output of quantlens ratios --json/]);
  for (const [file, re] of cases) {
    await assert.rejects(runQuantize({ model, mixed: { ratiosFile: file }, eval: false, out }), (e: unknown) => e instanceof QuantLensError && e.where.file === file && re.test(e.message));
  }
  await assert.rejects(
    runQuantize({ model, mixed: { hi: '8', lo: 'nf4_g64', budgetBits: 5 }, method: 'gptq', eval: false, out }),
    (e: unknown) => e instanceof QuantLensError && /plain integer --lo format .* found nf4_g64/.test(e.message),
  );
  await assert.rejects(runQuantize({ model, mixed: { hi: '8', lo: '2' }, eval: false, out }), /needs a budget/);
  assert.equal(existsSync(out), false);
});
