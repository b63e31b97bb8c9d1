// The same weights written in every format read back identically, and `quantlens inspect` handles all
// five inputs (plus sharded safetensors and ONNX external data) — and truncated copies exit 2, located.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { openCheckpoint } from '../../server/src/formats/registry';
import { tempDir, tinyLlamaTensors, type FixtureTensor } from '../fixtures/common';
import { writeFixtureSafetensors, writeShardedSafetensors } from '../fixtures/safetensors';
import { writeTorchCheckpoint } from '../fixtures/pytorch';
import { GGML, encodeF16, writeGguf } from '../fixtures/gguf';
import { f16Bytes, graph, model, node, rawTensor, T, valueInfo, writeModel } from '../fixtures/onnx';
import { runCli } from '../helpers/cli';

const tensors = tinyLlamaTensors();
const params = tensors.reduce((s, t) => s + t.data.length, 0);
const { dir, cleanup } = tempDir('quantlens-agree-');
const files: Record<string, string> = {};

/** Every weight as an fp16 initializer consumed by Identity; half of them in an external data file. */
function writeOnnx(file: string, ts: readonly FixtureTensor[]): void {
  const ext = path.join(path.dirname(file), 'weights.bin');
  const chunks: Uint8Array[] = [];
  let offset = 0;
  const inits = ts.map((t, i) => {
    const bytes = f16Bytes(t.data);
    if (i % 2 === 0) return rawTensor(t.name, T.FLOAT16, t.shape, bytes);
    chunks.push(bytes);
    const loc = { name: t.name, dataType: T.FLOAT16, dims: t.shape, dataLocation: 1, externalData: [
      { key: 'location', value: 'weights.bin' }, { key: 'offset', value: String(offset) }, { key: 'length', value: String(bytes.length) },
    ] };
    offset += bytes.length;
    return loc;
  });
  writeFileSync(ext, Buffer.concat(chunks));
  const nodes = ts.map((t, i) => node('Identity', [t.name], [`y${i}`], `id${i}`));
  writeModel(file, model(graph('agree', { nodes, initializers: inits, outputs: ts.map((t, i) => valueInfo(`y${i}`, T.FLOAT16, t.shape)) })));
}

before(() => {
  files.safetensors = path.join(dir, 'model.safetensors');
  writeFixtureSafetensors(files.safetensors, tensors, 'F16');
  const sharded = path.join(dir, 'sharded');
  mkdirSync(sharded);
  files.sharded = writeShardedSafetensors(sharded, tensors, 3, 'F16').index;
  files.pytorch = path.join(dir, 'pytorch_model.bin');
  writeTorchCheckpoint(files.pytorch, tensors, 'F16');
  files.gguf = path.join(dir, 'model.gguf');
  // GGUF lists ne innermost-first: [in, out] for an [out, in] matrix.
  writeGguf(files.gguf, {
    kv: [['general.architecture', { type: 'STRING', value: 'llama' }]],
    tensors: tensors.map((t) => ({ name: t.name, ne: [...t.shape].reverse(), type: GGML.F16, data: encodeF16(t.data) })),
  });
  mkdirSync(path.join(dir, 'onnx'));
  files.onnx = path.join(dir, 'onnx', 'model.onnx');
  writeOnnx(files.onnx, tensors);
  files.config = path.join(dir, 'config.json');
  writeFileSync(files.config, JSON.stringify({ architectures: ['LlamaForCausalLM'], num_hidden_layers: 2, hidden_size: 8, intermediate_size: 16, num_attention_heads: 2, vocab_size: 32 }));
});
after(cleanup);

for (const fmt of ['safetensors', 'sharded', 'pytorch', 'gguf', 'onnx']) {
  test(`${fmt}: every tensor reads back bit-exactly with the same shape and layer`, async () => {
    const ck = await openCheckpoint(files[fmt]);
    try {
      assert.equal(ck.tensors.length, tensors.length);
      for (const want of tensors) {
        const t = ck.tensors.find((x) => x.name === want.name);
        assert.ok(t, `${want.name} listed`);
        assert.deepEqual(t.shape, want.shape, want.name);
        assert.equal(t.dtype, 'F16');
        assert.equal(t.params, want.data.length);
        assert.deepEqual(await ck.read(want.name), want.data, want.name);
      }
      const q = ck.tensors.find((x) => x.name === 'model.layers.1.self_attn.q_proj.weight')!;
      assert.deepEqual(q.layer, { block: 'model.layers.1', layer: 'self_attn.q_proj', fusedGroup: 'model.layers.1.self_attn.qkv' });
    } finally {
      await ck.close();
    }
  });
}

test('quantlens inspect --json on all five inputs', () => {
  for (const fmt of ['safetensors', 'sharded', 'pytorch', 'gguf', 'onnx']) {
    const r = runCli('inspect', files[fmt], '--json');
    assert.equal(r.code, 0, `${fmt}: ${r.stderr}`);
    const j = JSON.parse(r.stdout);
    assert.equal(j.params, params, fmt);
    assert.equal(j.tensors.length, tensors.length, fmt);
    const down = j.tensors.find((t: { name: string }) => t.name === 'model.layers.1.mlp.down_proj.weight');
    assert.deepEqual([down.shape, down.layer, down.params], [[8, 16], 'mlp.down_proj', 128], fmt);
  }
  const r = runCli('inspect', files.config, '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).config.numLayers, 2);
  // The table form names the blocks.
  const table = runCli('inspect', files.safetensors);
  assert.equal(table.code, 0);
  assert.match(table.stdout, /model\.layers\.1\s+self_attn\.q_proj\s+1\s+64\s+F16\s+\[8×8\]/);
});

test('truncated copies of each format exit 2 with a located one-line error', () => {
  for (const fmt of ['safetensors', 'pytorch', 'gguf', 'onnx']) {
    const bytes = readFileSync(files[fmt]);
    const cut = path.join(dir, `cut-${fmt}${path.extname(files[fmt])}`);
    writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    const r = runCli('inspect', cut);
    assert.equal(r.code, 2, `${fmt}: exit ${r.code}\n${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, `${fmt}: one line`);
    assert.ok(r.stderr.includes(cut), `${fmt}: names the file: ${r.stderr}`);
    assert.match(r.stderr, /@ byte \d+|\[[^\]]+\]/, `${fmt}: has an offset or tensor: ${r.stderr}`);
  }
});
