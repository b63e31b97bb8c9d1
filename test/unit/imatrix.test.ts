// llama.cpp imatrix import: both file layouts byte by byte from their description, the HF → GGUF name mapping,
// and the Hessian-diagonal score tr(ΔW H ΔWᵀ) = Σ ΔW_ij² · 2E[x_j²] against a direct computation.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { analyzeCheckpoint } from '../../server/src/analysis';
import { getFormat } from '../../server/src/quant';
import { hessianDiagonal, readImatrix } from '../../server/src/sensitivity/imatrix';
import { randn, tempDir } from '../fixtures/common';
import { encodeF32, GGML, writeGguf } from '../fixtures/gguf';
import { writeFixtureSafetensors } from '../fixtures/safetensors';

const { dir, cleanup } = tempDir();
after(cleanup);

/** Legacy layout: i32 count; per entry i32 len, name, i32 ncall, i32 nval, f32 × nval; i32 last_call, i32 len, name. */
function legacyBytes(entries: { name: string; ncall: number; values: number[] }[], dataset?: string): Buffer {
  const parts: Buffer[] = [];
  const i32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    parts.push(b);
  };
  i32(entries.length);
  for (const e of entries) {
    i32(Buffer.byteLength(e.name));
    parts.push(Buffer.from(e.name));
    i32(e.ncall);
    i32(e.values.length);
    const f = Buffer.alloc(4 * e.values.length);
    e.values.forEach((v, i) => f.writeFloatLE(v, 4 * i));
    parts.push(f);
  }
  if (dataset !== undefined) {
    i32(10);
    i32(Buffer.byteLength(dataset));
    parts.push(Buffer.from(dataset));
  }
  return Buffer.concat(parts);
}

test('legacy .dat: values / ncall is E[x²]; trailer gives chunks and dataset', async () => {
  const file = path.join(dir, 'legacy.dat');
  writeFileSync(file, legacyBytes([{ name: 'blk.0.attn_q.weight', ncall: 4, values: [8, 2, 0.5, 4] }], 'wiki.train.raw'));
  const im = await readImatrix(file);
  assert.equal(im.layout, 'legacy');
  assert.deepEqual([...im.entries.get('blk.0.attn_q.weight')!.meanSq], [2, 0.5, 0.125, 1]);
  assert.equal(im.chunks, 10);
  assert.deepEqual(im.datasets, ['wiki.train.raw']);
  // HF name → GGUF name; H_jj = 2·E[x_j²]; repeated across output channels when the view row spans them.
  const h = hessianDiagonal(im, 'model.layers.0.self_attn.q_proj.weight', 3, 4)!;
  assert.deepEqual([...h.diag], [4, 1, 0.25, 2]);
  assert.equal(hessianDiagonal(im, 'model.layers.0.mlp.up_proj.weight', 3, 4), undefined);
  assert.throws(() => hessianDiagonal(im, 'model.layers.0.self_attn.q_proj.weight', 3, 6), /imatrix entry blk\.0\.attn_q\.weight \(1 × 4 inputs\) does not fit the tensor: 6 input columns/);
});

test('legacy .dat: truncated and absurd headers are located errors', async () => {
  const good = legacyBytes([{ name: 'blk.0.ffn_up.weight', ncall: 1, values: [1, 2, 3] }]);
  const cut = path.join(dir, 'cut.dat');
  writeFileSync(cut, good.subarray(0, good.length - 2));
  await assert.rejects(readImatrix(cut), /cut\.dat @ byte 31: blk\.0\.ffn_up\.weight: 3 values do not fit in the 10 bytes left/);
  const huge = path.join(dir, 'huge.dat');
  const b = Buffer.from(good);
  b.writeInt32LE(2 ** 30, 0);
  writeFileSync(huge, b);
  await assert.rejects(readImatrix(huge), /huge\.dat @ byte 0: entry count 1073741824 does not fit/);
});

test('GGUF imatrix: in_sum2 / counts per expert; a GGUF 3-D expert tensor maps experts to view rows', async () => {
  const file = path.join(dir, 'imatrix.gguf');
  // Two experts × 2 inputs: sums [[6, 2], [1, 9]], counts [2, 0] → expert 1 saw no tokens (weighs 0).
  writeGguf(file, {
    kv: [['general.type', { type: 'STRING', value: 'imatrix' }], ['imatrix.chunk_count', { type: 'UINT32', value: 7 }]],
    tensors: [
      { name: 'blk.3.ffn_up_exps.weight.in_sum2', ne: [2, 2], type: GGML.F32, data: encodeF32([6, 2, 1, 9]) },
      { name: 'blk.3.ffn_up_exps.weight.counts', ne: [1, 2], type: GGML.F32, data: encodeF32([2, 0]) },
    ],
  });
  const im = await readImatrix(file);
  assert.equal(im.layout, 'gguf');
  assert.equal(im.chunks, 7);
  assert.deepEqual([...im.entries.get('blk.3.ffn_up_exps.weight')!.meanSq], [3, 1, 0, 0]);
  // HF per-expert tensor: its own expert's row.
  const e0 = hessianDiagonal(im, 'model.layers.3.mlp.experts.0.up_proj.weight', 5, 2)!;
  assert.deepEqual([...e0.diag], [6, 2]);
  // GGUF [2 experts, 3 out, 2 in] viewed as 2 rows × 6 columns.
  const stacked = hessianDiagonal(im, 'blk.3.ffn_up_exps.weight', 2, 6)!;
  assert.deepEqual([...stacked.diag], [6, 2, 6, 2, 6, 2, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([0, 1].map(stacked.matOfRow), [0, 1]);
});

test('analyze --imatrix: hessianDiag = Σ_ij ΔW_ij² · 2E[x_j²] for every format, in full and sampled mode', async () => {
  const rows = 64;
  const cols = 256;
  const w = randn(rows * cols, 5);
  const model = path.join(dir, 'model.safetensors');
  writeFixtureSafetensors(model, [{ name: 'model.layers.0.mlp.down_proj.weight', shape: [rows, cols], data: w }], 'F32');
  const meanSq = Array.from({ length: cols }, (_, j) => 0.1 + (j % 7));
  const im = path.join(dir, 'down.dat');
  writeFileSync(im, legacyBytes([{ name: 'blk.0.ffn_down.weight', ncall: 3, values: meanSq.map((v) => v * 3) }]));
  const formats = ['int4_g128_asym', 'int8_ch_sym', 'mxfp4'];
  const { report } = await analyzeCheckpoint(model, { formats, imatrix: im }, { threads: 1, cacheDir: false });
  assert.deepEqual(report.imatrix, { file: im, layout: 'legacy', entries: 1, matched: 1, chunks: null, datasets: [] });
  for (const id of formats) {
    const q = getFormat(id).quantizeDequantize(w, [rows, cols], 'out_in');
    let expected = 0;
    for (let i = 0; i < rows * cols; i++) expected += (q[i] - w[i]) ** 2 * 2 * Math.fround(meanSq[i % cols]);
    const got = report.layers[0].errors[id].hessianDiag!;
    // E[x²] passes through float32 (file values, ÷ ncall): agreement to float32 precision.
    assert.ok(Math.abs(got - expected) <= 1e-6 * expected, `${id}: ${got} vs ${expected}`);
  }
  const sampled = await analyzeCheckpoint(model, { formats, imatrix: im, sample: 0.5 }, { threads: 0, cacheDir: false });
  for (const id of formats) {
    const full = report.layers[0].errors[id].hessianDiag!;
    const est = sampled.report.layers[0].errors[id].hessianDiag!;
    assert.ok(Math.abs(est - full) < 0.25 * full, `${id}: sampled ${est} vs full ${full}`);
  }
});
