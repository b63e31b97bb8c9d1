// The tiny LM's exports (issue 9, second check): safetensors, GGUF and ONNX written by exportTinyLlama, read back by
// QuantLens's own readers, rebuilt into the forward graph and run on onnxruntime give the same logits as the
// weights they came from. References are independent: fp16 rounding from the fixtures' own IEEE encoder, and the
// rotary layouts written out from their definitions (Hugging Face rotate_half vs llama.cpp adjacent pairs).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gguf } from '@huggingface/gguf';
import { Tensor } from 'onnxruntime-node';
import { openCheckpoint } from '../../server/src/formats/registry';
import type { Checkpoint } from '../../server/src/formats/types';
import { createSession } from '../../server/src/runtime/session';
import { tensorShapes, type TinyLlamaConfig, type TinyWeights } from '../../server/src/tinylm/config';
import { exportTinyLlama } from '../../server/src/tinylm/export';
import { permuteRope, weightsFromGguf } from '../../server/src/tinylm/gguf-llama';
import { buildForwardModel, fromGraphLayout, INPUT_IDS, LOGITS } from '../../server/src/tinylm/graph';
import { randn, tempDir, toF16Bits } from '../fixtures/common';
import { fromF16Bits } from '../fixtures/gguf';

const C: TinyLlamaConfig = {
  vocabSize: 258, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 2, maxPositions: 16,
  ropeTheta: 10000, rmsEps: 1e-5, bosId: 256, eosId: 257,
};
const B = 2;
const T = 7;
const IDS = BigInt64Array.from({ length: B * T }, (_, i) => BigInt((i * 97 + 13) % C.vocabSize));

/** Random weights large enough for logits that differ by several units (norms around 1, not exactly 1). */
function weights(): TinyWeights {
  let seed = 100;
  return new Map(tensorShapes(C).map(([name, dims]) => {
    const n = dims.reduce((a, b) => a * b, 1);
    const data = randn(n, seed++, dims.length === 1 ? 0.2 : 0.35);
    if (dims.length === 1) for (let i = 0; i < n; i++) data[i] += 1;
    return [name, { dims, data }];
  }));
}

const f16 = (x: Float32Array) => Float32Array.from(x, (v) => fromF16Bits(toF16Bits(v)));
const rounded = (w: TinyWeights, which: (dims: number[]) => boolean): TinyWeights =>
  new Map([...w].map(([k, t]) => [k, which(t.dims) ? { dims: t.dims, data: f16(t.data) } : t]));

async function logitsOf(w: TinyWeights): Promise<Float32Array> {
  const { session } = await createSession(buildForwardModel(C, w));
  try {
    return (await session.run({ [INPUT_IDS]: new Tensor('int64', IDS, [B, T]) }))[LOGITS].data as Float32Array;
  } finally {
    await session.release();
  }
}

function maxAbs(a: Float32Array): number {
  return a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

async function withCheckpoint<R>(file: string, f: (ck: Checkpoint) => Promise<R>): Promise<R> {
  const ck = await openCheckpoint(file);
  try {
    return await f(ck);
  } finally {
    await ck.close();
  }
}

describe('rotary permutation (Hugging Face rotate_half ↔ llama.cpp adjacent pairs)', () => {
  test('rows move within each head: i + j·d/2 → 2i + j', () => {
    const rows = Float32Array.from({ length: 8 }, (_, i) => i); // 2 heads of d = 4, one column
    assert.deepEqual([...permuteRope(rows, 8, 1, 2)], [0, 2, 1, 3, 4, 6, 5, 7]);
    assert.deepEqual([...permuteRope(Float32Array.of(0, 2, 1, 3, 4, 6, 5, 7), 8, 1, 2, true)], [...rows]);
    const m = randn(12 * 3, 5, 1);
    assert.deepEqual([...permuteRope(permuteRope(m, 12, 3, 2), 12, 3, 2, true)], [...m]);
  });

  test('llama.cpp rope on permuted q/k gives Hugging Face attention scores', () => {
    const d = 8;
    const heads = 2;
    const H = 5;
    const Wq = randn(heads * d * H, 11, 1);
    const Wk = randn(heads * d * H, 12, 1);
    const matvec = (W: Float32Array, x: Float32Array) => Float64Array.from({ length: heads * d }, (_, r) => x.reduce((s, v, c) => s + W[r * H + c] * v, 0));
    const angle = (p: number, i: number) => p * 10000 ** ((-2 * i) / d);
    const hfRope = (x: Float64Array, p: number) => {
      const y = new Float64Array(x.length);
      for (let h = 0; h < heads; h++) {
        for (let i = 0; i < d / 2; i++) {
          const [a, b] = [x[h * d + i], x[h * d + i + d / 2]];
          y[h * d + i] = a * Math.cos(angle(p, i)) - b * Math.sin(angle(p, i));
          y[h * d + i + d / 2] = b * Math.cos(angle(p, i)) + a * Math.sin(angle(p, i));
        }
      }
      return y;
    };
    const ggmlRope = (x: Float64Array, p: number) => {
      const y = new Float64Array(x.length);
      for (let h = 0; h < heads; h++) {
        for (let i = 0; i < d / 2; i++) {
          const [a, b] = [x[h * d + 2 * i], x[h * d + 2 * i + 1]];
          y[h * d + 2 * i] = a * Math.cos(angle(p, i)) - b * Math.sin(angle(p, i));
          y[h * d + 2 * i + 1] = a * Math.sin(angle(p, i)) + b * Math.cos(angle(p, i));
        }
      }
      return y;
    };
    const score = (q: Float64Array, k: Float64Array, h: number) => q.slice(h * d, (h + 1) * d).reduce((s, v, i) => s + v * k[h * d + i], 0);
    const Pq = permuteRope(Wq, heads * d, H, heads);
    const Pk = permuteRope(Wk, heads * d, H, heads);
    for (const [pq, pk] of [[3, 1], [5, 5], [7, 0]]) {
      const xq = randn(H, 20 + pq, 1);
      const xk = randn(H, 40 + pk, 1);
      for (let h = 0; h < heads; h++) {
        const want = score(hfRope(matvec(Wq, xq), pq), hfRope(matvec(Wk, xk), pk), h);
        const got = score(ggmlRope(matvec(Pq, xq), pq), ggmlRope(matvec(Pk, xk), pk), h);
        assert.ok(Math.abs(want - got) < 1e-9 * (1 + Math.abs(want)), `head ${h}: ${want} vs ${got}`);
      }
    }
  });
});

describe('exportTinyLlama', () => {
  const tmp = tempDir('quantlens-tinylm-export-');
  const w = weights();
  let files: string[] = [];
  let reference: Float32Array;
  before(async () => {
    files = await exportTinyLlama(tmp.dir, C, w, { heldoutPerplexity: 3.14159, note: 'test' });
    reference = await logitsOf(w);
  });
  after(() => tmp.cleanup());

  test('writes the four files', () => {
    assert.deepEqual(files.map((f) => path.basename(f)), ['model.safetensors', 'config.json', 'model.onnx', 'model.gguf']);
    const config = JSON.parse(readFileSync(files[1], 'utf8'));
    assert.deepEqual([config.architectures, config.num_hidden_layers, config.hidden_size, config.vocab_size], [['LlamaForCausalLM'], 2, 16, 258]);
  });

  test('model.onnx runs as written, with any batch and length (the first positions do not see later ones)', async () => {
    const { session } = await createSession(files[2]);
    try {
      const run = async (ids: BigInt64Array, b: number, t: number) => (await session.run({ [INPUT_IDS]: new Tensor('int64', ids, [b, t]) }))[LOGITS];
      const full = await run(IDS, B, T);
      assert.deepEqual(full.dims, [B, T, C.vocabSize]);
      assert.ok(maxDiff(full.data as Float32Array, reference) <= 1e-6 * maxAbs(reference));
      const prefix = await run(IDS.slice(T, T + 3), 1, 3); // row 1, first 3 tokens
      const want = reference.subarray(T * C.vocabSize, (T + 3) * C.vocabSize);
      assert.ok(maxDiff(prefix.data as Float32Array, want) <= 1e-5 * maxAbs(reference));
    } finally {
      await session.release();
    }
  });

  test('ONNX initializers read back give the fp32 logits', async () => {
    const back = await withCheckpoint(files[2], async (ck) => {
      const graph: TinyWeights = new Map();
      for (const [name] of tensorShapes(C)) {
        const t = ck.tensors.find((x) => x.name === name)!;
        graph.set(name, { dims: t.shape, data: await ck.read(name) });
      }
      return fromGraphLayout(graph);
    });
    assert.ok(maxDiff(await logitsOf(back), reference) <= 1e-6 * maxAbs(reference));
  });

  test('safetensors (fp16) read back: the fp16-rounded weights\' logits, within fp16 tolerance of fp32', async () => {
    const back = await withCheckpoint(files[0], async (ck) => {
      assert.deepEqual(ck.metadata, { format: 'pt', heldout_perplexity: '3.1416', note: 'test' });
      const out: TinyWeights = new Map();
      for (const [name, dims] of tensorShapes(C)) {
        const t = ck.tensors.find((x) => x.name === name)!;
        assert.deepEqual([t.dtype, t.shape], ['F16', dims]);
        out.set(name, { dims, data: await ck.read(name) });
      }
      return out;
    });
    const logits = await logitsOf(back);
    const scale = maxAbs(reference);
    assert.ok(scale > 1, `logits scale ${scale}`);
    assert.ok(maxDiff(logits, await logitsOf(rounded(w, () => true))) <= 1e-5 * scale);
    const err = maxDiff(logits, reference);
    assert.ok(err > 0 && err <= 1e-2 * scale, `fp16 error ${err} vs scale ${scale}`);
  });

  test('GGUF read back (names mapped, q/k un-permuted, F16 matrices, F32 norms) gives the same logits', async () => {
    const back = await withCheckpoint(files[3], async (ck) => {
      const byName = new Map(ck.tensors.map((t) => [t.name, t]));
      assert.deepEqual([byName.get('token_embd.weight')?.shape, byName.get('token_embd.weight')?.dtype], [[258, 16], 'F16']);
      assert.deepEqual([byName.get('blk.1.ffn_down.weight')?.shape, byName.get('blk.1.attn_norm.weight')?.dtype], [[16, 24], 'F32']);
      assert.deepEqual(['output.weight', 'output_norm.weight', 'blk.0.attn_output.weight', 'blk.0.ffn_gate.weight'].map((n) => byName.has(n)), [true, true, true, true]);
      // q is stored permuted: its row 1 is Hugging Face row d/2 = 4 of head 0.
      const q = await ck.read('blk.0.attn_q.weight');
      const hfQ = w.get('model.layers.0.self_attn.q_proj.weight')!.data;
      assert.deepEqual([...q.subarray(16, 32)], [...f16(hfQ.subarray(4 * 16, 5 * 16))]);
      return weightsFromGguf(ck, C);
    });
    const logits = await logitsOf(back);
    const scale = maxAbs(reference);
    assert.ok(maxDiff(logits, await logitsOf(rounded(w, (dims) => dims.length === 2))) <= 1e-5 * scale);
    assert.ok(maxDiff(logits, reference) <= 1e-2 * scale);
  });

  test('GGUF metadata: llama hyper-parameters and a byte vocabulary with the model\'s own ids', async () => {
    const hf = await gguf(files[3], { allowLocalFile: true });
    const md = hf.metadata as Record<string, unknown>;
    assert.deepEqual(
      ['general.architecture', 'llama.block_count', 'llama.embedding_length', 'llama.feed_forward_length', 'llama.attention.head_count',
        'llama.attention.head_count_kv', 'llama.rope.dimension_count', 'llama.context_length', 'general.file_type', 'tokenizer.ggml.model',
        'tokenizer.ggml.bos_token_id', 'tokenizer.ggml.eos_token_id', 'tokenizer.ggml.add_bos_token'].map((k) => md[k]),
      ['llama', 2, 16, 24, 2, 2, 8, 16, 1, 'llama', 256, 257, false],
    );
    assert.ok(Math.abs((md['llama.attention.layer_norm_rms_epsilon'] as number) - 1e-5) < 1e-12);
    assert.equal(md['llama.rope.freq_base'], 10000);
    const tokens = md['tokenizer.ggml.tokens'] as string[];
    const types = md['tokenizer.ggml.token_type'] as number[];
    assert.equal(tokens.length, 258);
    assert.deepEqual([tokens[0], tokens[10], tokens[65], tokens[255], tokens[256], tokens[257]], ['<0x00>', '<0x0A>', '<0x41>', '<0xFF>', '<s>', '</s>']);
    assert.deepEqual([types[0], types[65], types[255], types[256], types[257]], [6, 6, 6, 3, 3]);
    assert.equal((md['tokenizer.ggml.scores'] as number[]).length, 258);
    assert.match(md['general.description'] as string, /heldout_perplexity: 3\.1416/);
  });

  test('QuantLens opens the folder as a Llama checkpoint: fp16 safetensors + config, fused q/k/v and gate/up', async () => {
    await withCheckpoint(tmp.dir, async (ck) => {
      assert.equal(ck.format, 'safetensors');
      assert.deepEqual([ck.config?.architectures, ck.config?.numLayers, ck.config?.hiddenSize, ck.config?.vocabSize], [['LlamaForCausalLM'], 2, 16, 258]);
      const t = (name: string) => ck.tensors.find((x) => x.name === name)!;
      assert.deepEqual(t('model.layers.1.self_attn.k_proj.weight').layer, { block: 'model.layers.1', layer: 'self_attn.k_proj', fusedGroup: 'model.layers.1.self_attn.qkv' });
      assert.deepEqual(t('model.layers.0.mlp.up_proj.weight').layer, { block: 'model.layers.0', layer: 'mlp.up_proj', fusedGroup: 'model.layers.0.mlp.gate_up' });
      assert.equal(t('model.layers.0.mlp.down_proj.weight').layer.fusedGroup, undefined);
      assert.deepEqual([t('model.embed_tokens.weight').layout, t('lm_head.weight').layout, t('model.norm.weight').layout], ['embedding', 'out_in', 'vector']);
    });
  });
});
