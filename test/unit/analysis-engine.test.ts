// Whole-checkpoint analysis: tensor selection, options, worker pool (threads, progress, cancellation), totals.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { analyzeCheckpoint, OptionError, resolveOptions } from '../../server/src/analysis/engine';
import { DEFAULT_FORMATS } from '../../server/src/analysis/types';
import { getFormat } from '../../server/src/quant';
import { randn, tempDir, tinyLlamaTensors } from '../fixtures/common';
import { writeFixtureSafetensors } from '../fixtures/safetensors';

const { dir, cleanup } = tempDir();
const tiny = path.join(dir, 'tiny.safetensors');
const big = path.join(dir, 'big.safetensors');
before(() => {
  writeFixtureSafetensors(tiny, tinyLlamaTensors(), 'F16');
  const tensors = [0, 1, 2, 3, 4, 5].map((i) => ({ name: `model.layers.${i}.mlp.down_proj.weight`, shape: [512, 512], data: randn(512 * 512, i + 10) }));
  writeFixtureSafetensors(big, tensors, 'F16');
});
after(cleanup);

test('weights are analyzed; norms (1-D) are skipped and counted; totals are Σ‖ΔW‖²/Σ‖W‖² and exact bits', async () => {
  const { report } = await analyzeCheckpoint(tiny, {}, { threads: 0, cacheDir: false });
  const fixture = tinyLlamaTensors();
  const weights = fixture.filter((t) => t.shape.length === 2);
  assert.deepEqual(report.layers.map((l) => l.name), weights.map((t) => t.name));
  assert.deepEqual(report.skipped.byReason, { vector: 5 });
  assert.equal(report.skipped.count, 5);
  assert.deepEqual(report.formats.map((f) => f.id), DEFAULT_FORMATS);
  assert.equal(report.model.analyzedParams, weights.reduce((s, t) => s + t.data.length, 0));
  for (const id of DEFAULT_FORMATS) {
    const num = report.layers.reduce((s, l) => s + l.errors[id].relMse * l.sumSq, 0);
    const den = report.layers.reduce((s, l) => s + l.sumSq, 0);
    assert.ok(Math.abs(report.model.totals[id].relMse - num / den) < 1e-15);
    const bits = weights.reduce((s, t) => s + getFormat(id).storageBits(t.shape, t.name.includes('embed') ? 'embedding' : 'out_in'), 0);
    assert.equal(report.model.totals[id].bytes, Math.ceil(bits / 8));
    assert.equal(report.formats.find((f) => f.id === id)!.bitsPerWeight, bits / report.model.analyzedParams);
  }
  const only = await analyzeCheckpoint(tiny, { only: 'layers\\.1\\.mlp' }, { threads: 0, cacheDir: false });
  assert.deepEqual(only.report.layers.map((l) => l.layer), ['mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj']);
  assert.equal(only.report.skipped.byReason.filtered, 13);
});

test('worker threads give the same report as in-process analysis, with progress up to the total', async () => {
  const seen: [number, number][] = [];
  const inline = await analyzeCheckpoint(big, {}, { threads: 0, cacheDir: false });
  const pooled = await analyzeCheckpoint(big, {}, { threads: 2, cacheDir: false, onProgress: (d, t) => seen.push([d, t]) });
  assert.deepEqual(pooled.report, inline.report);
  assert.ok(seen.length >= 6);
  assert.deepEqual(seen.at(-1), [6 * 512 * 512, 6 * 512 * 512]);
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i][0] >= seen[i - 1][0]);
});

test('cancellation stops the workers and rejects with the abort reason', async () => {
  const ac = new AbortController();
  const t0 = performance.now();
  const p = analyzeCheckpoint(big, {}, { threads: 2, cacheDir: false, blockElems: 512 * 8, signal: ac.signal, onProgress: () => ac.abort(new Error('stop now')) });
  await assert.rejects(p, /stop now/);
  assert.ok(performance.now() - t0 < 10_000);
  const pre = new AbortController();
  pre.abort(new Error('before start'));
  await assert.rejects(analyzeCheckpoint(big, {}, { threads: 0, cacheDir: false, signal: pre.signal }), /before start/);
});

test('a located error in a worker reaches the caller as a QuantLensError', async () => {
  const { dir: d, cleanup: c } = tempDir();
  try {
    const bad = path.join(d, 'bad.safetensors');
    const data = randn(64 * 32, 1);
    data[5 * 32 + 7] = NaN;
    writeFixtureSafetensors(bad, [{ name: 'model.layers.0.self_attn.q_proj.weight', shape: [64, 32], data }], 'F32');
    await assert.rejects(analyzeCheckpoint(bad, {}, { threads: 1, cacheDir: false }), (e: Error) => {
      assert.equal(e.name, 'QuantLensError');
      assert.match(e.message, /bad\.safetensors \[model\.layers\.0\.self_attn\.q_proj\.weight\]: non-finite weight NaN at \[5, 7\]/);
      return true;
    });
  } finally {
    c();
  }
});

test('options are checked', () => {
  const bad = (o: Parameters<typeof resolveOptions>[0], option: string, re: RegExp) =>
    assert.throws(() => resolveOptions(o), (e: unknown) => e instanceof OptionError && e.option === option && re.test(e.message));
  bad({ formats: ['int4_g128_asym', 'int9_g1_sym'] }, 'formats', /unknown number format 'int9_g1_sym'/);
  bad({ formats: [] }, 'formats', /no formats/);
  bad({ formats: ['nvfp4', 'nvfp4'] }, 'formats', /twice/);
  bad({ sigma: 0 }, 'sigma', /positive/);
  bad({ sample: 0 }, 'sample', /\(0, 1\]/);
  bad({ sample: 1.5 }, 'sample', /\(0, 1\]/);
  bad({ only: '(' }, 'only', /regular expression/);
  assert.deepEqual(resolveOptions({ sigma: undefined }).formats, DEFAULT_FORMATS);
});

test('a worker that dies mid-run fails that run with a clear error; the next run succeeds', async () => {
  const { dir: d, cleanup: c } = tempDir();
  try {
    // A worker that takes its first task and then exits, as a crash (or an OOM kill of the thread) would.
    const crash = path.join(d, 'crash-worker.js');
    writeFileSync(crash, "require('node:worker_threads').parentPort.once('message', () => process.exit(7));\n");
    await assert.rejects(analyzeCheckpoint(big, {}, { threads: 2, cacheDir: false, workerScript: crash }), /analysis worker exited with code 7/);
    const again = await analyzeCheckpoint(big, { formats: ['int8_ch_sym'] }, { threads: 2, cacheDir: false });
    assert.equal(again.report.layers.length, 6);
  } finally {
    c();
  }
});
