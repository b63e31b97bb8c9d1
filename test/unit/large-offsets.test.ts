// Tensors past the 4 GiB mark, in sparse files (the hole is never written, so the test needs no disk space): GGUF
// tensor data and ONNX external data. Offsets that fit 32 bits would pass with 32-bit arithmetic; these do not.
// (safetensors and PyTorch zip64 have the same test in their own files.)
import assert from 'node:assert/strict';
import { closeSync, openSync, statSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { openCheckpoint } from '../../server/src/formats/registry';
import { tempDir } from '../fixtures/common';
import { encodeF32, GGML, ggufBytes } from '../fixtures/gguf';
import { externalTensor, graph, model, node, T, writeModel } from '../fixtures/onnx';

const { dir, cleanup } = tempDir('quantlens-large-');
after(cleanup);

const GIB = 2 ** 30;
const SMALL = [10, 20, 30, 40];
const BIG = [1.5, -2.25, 3e-5, 65504, -0.125, 7, 8, 9];

/** Write each `[position, bytes]` into `file` at its position; the gaps stay holes. */
function sparse(file: string, parts: [number, Uint8Array][]): void {
  const fd = openSync(file, 'w');
  try {
    for (const [at, bytes] of parts) writeSync(fd, bytes, 0, bytes.length, at);
  } finally {
    closeSync(fd);
  }
}

test('GGUF: a tensor whose data starts 4.5 GiB into the file reads back exactly', async () => {
  const file = path.join(dir, 'big.gguf');
  // Two tensors; the second's relative offset is patched past 4 GiB (a multiple of the 32-byte alignment).
  const layout = ggufBytes({
    kv: [['general.architecture', { type: 'STRING', value: 'llama' }]],
    tensors: [
      { name: 'blk.0.attn_norm.weight', ne: [4], type: GGML.F32, data: encodeF32(SMALL) },
      { name: 'blk.0.ffn_up.weight', ne: [4, 2], type: GGML.F32, data: encodeF32(BIG) },
    ],
  });
  const rel = 4.5 * GIB;
  const head = layout.bytes.slice(0, layout.dataStart);
  new DataView(head.buffer).setBigUint64(layout.tensors[1].offsetAt, BigInt(rel), true);
  const abs = layout.dataStart + rel;
  sparse(file, [[0, head], [layout.dataStart, encodeF32(SMALL)], [abs, encodeF32(BIG)]]);
  assert.equal(statSync(file).size, abs + 32);

  const ck = await openCheckpoint(file);
  try {
    const big = ck.tensors.find((t) => t.name === 'blk.0.ffn_up.weight')!;
    assert.equal(big.byteOffset, abs);
    assert.deepEqual(await ck.read('blk.0.attn_norm.weight'), Float32Array.from(SMALL));
    assert.deepEqual(await ck.read('blk.0.ffn_up.weight'), Float32Array.from(BIG));
    assert.deepEqual(await ck.read('blk.0.ffn_up.weight', { start: 5, count: 3 }), Float32Array.from([7, 8, 9]));
  } finally {
    await ck.close();
  }
});

test('ONNX external data: an initializer at offset 4 GiB + 4 KiB of its data file reads back exactly', async () => {
  const file = path.join(dir, 'ext.onnx');
  const at = 4 * GIB + 4096;
  writeModel(
    file,
    model(
      graph('g', {
        nodes: [node('MatMul', ['x', 'w'], ['y'], 'mm'), node('Mul', ['y', 's'], ['z'], 'mul')],
        initializers: [externalTensor('w', T.FLOAT, [2, 4], 'w.bin', at, 32), externalTensor('s', T.FLOAT, [4], 'w.bin', 0, 16)],
      }),
    ),
  );
  sparse(path.join(dir, 'w.bin'), [[0, encodeF32(SMALL)], [at, encodeF32(BIG)]]);

  const ck = await openCheckpoint(file);
  try {
    const w = ck.tensors.find((t) => t.name === 'w')!;
    assert.equal(w.analyzable, true);
    assert.equal(w.byteOffset, at);
    assert.deepEqual(await ck.read('w'), Float32Array.from(BIG));
    assert.deepEqual(await ck.read('w', { start: 5, count: 3 }), Float32Array.from([7, 8, 9]));
    assert.deepEqual(await ck.read('s'), Float32Array.from(SMALL));
  } finally {
    await ck.close();
  }
});
