// The tiny LM graph against a float64 reference forward written here straight from the Hugging Face Llama math
// (RMSNorm, rotate_half rotary, causal softmax attention, SwiGLU, residuals), and the autodiff gradients of its
// cross-entropy against central finite differences of that reference on chosen weight entries of every kind.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { buildGradientModel, LOSS_INPUTS } from '../../server/src/autodiff';
import { QuantLensError } from '../../server/src/formats/errors';
import { decode, encode, hfConfigJson, initWeights, TINY_LLAMA, type TinyLlamaConfig, type TinyWeights } from '../../server/src/tinylm/config';
import { buildForwardModel, INPUT_IDS, LOGITS, toGraphLayout } from '../../server/src/tinylm/graph';
import { randn } from '../fixtures/common';

const C: TinyLlamaConfig = {
  vocabSize: 20, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 2, maxPositions: 12,
  ropeTheta: 10000, rmsEps: 1e-5, bosId: 18, eosId: 19,
};

/** Random weights large enough that attention is far from uniform and every path carries gradient. */
function randomWeights(c: TinyLlamaConfig, seed: number): TinyWeights {
  const w = initWeights(c, seed);
  let s = seed;
  for (const [, t] of w) {
    const noise = randn(t.data.length, s++, t.dims.length === 1 ? 0.2 : 0.35);
    for (let k = 0; k < t.data.length; k++) t.data[k] = (t.dims.length === 1 ? 1 : 0) + noise[k];
  }
  return w;
}

type W64 = Map<string, Float64Array>;
const to64 = (w: TinyWeights): W64 => new Map([...w].map(([k, t]) => [k, Float64Array.from(t.data)]));

/** y[t][o] = Σ_i W[o][i] x[t][i] with W in the Hugging Face [out, in] layout. */
function linear(x: Float64Array, W: Float64Array, T: number, nIn: number, nOut: number): Float64Array {
  const y = new Float64Array(T * nOut);
  for (let t = 0; t < T; t++) for (let o = 0; o < nOut; o++) {
    let s = 0;
    for (let i = 0; i < nIn; i++) s += W[o * nIn + i] * x[t * nIn + i];
    y[t * nOut + o] = s;
  }
  return y;
}

function rms(x: Float64Array, w: Float64Array, T: number, H: number, eps: number): Float64Array {
  const y = new Float64Array(T * H);
  for (let t = 0; t < T; t++) {
    let ms = 0;
    for (let i = 0; i < H; i++) ms += x[t * H + i] ** 2;
    const r = 1 / Math.sqrt(ms / H + eps);
    for (let i = 0; i < H; i++) y[t * H + i] = x[t * H + i] * r * w[i];
  }
  return y;
}

/** In place: (x₁, x₂) → (x₁cos − x₂sin, x₂cos + x₁sin) per head, angle t·θ^(−2j/d). */
function rotary(q: Float64Array, T: number, heads: number, d: number, theta: number): void {
  for (let t = 0; t < T; t++) for (let n = 0; n < heads; n++) for (let j = 0; j < d / 2; j++) {
    const a = t * Math.pow(theta, (-2 * j) / d);
    const at = t * heads * d + n * d + j;
    const x1 = q[at];
    const x2 = q[at + d / 2];
    q[at] = x1 * Math.cos(a) - x2 * Math.sin(a);
    q[at + d / 2] = x2 * Math.cos(a) + x1 * Math.sin(a);
  }
}

/** Logits [T, V] of one sequence. */
function referenceForward(c: TinyLlamaConfig, w: W64, ids: number[]): Float64Array {
  const T = ids.length;
  const H = c.hiddenSize;
  const I = c.intermediateSize;
  const nh = c.numHeads;
  const d = H / nh;
  const x = new Float64Array(T * H);
  const emb = w.get('model.embed_tokens.weight')!;
  ids.forEach((id, t) => x.set(emb.subarray(id * H, id * H + H), t * H));
  const L = (i: number, part: string) => w.get(`model.layers.${i}.${part}.weight`)!;
  for (let i = 0; i < c.numLayers; i++) {
    const h = rms(x, L(i, 'input_layernorm'), T, H, c.rmsEps);
    const q = linear(h, L(i, 'self_attn.q_proj'), T, H, H);
    const k = linear(h, L(i, 'self_attn.k_proj'), T, H, H);
    const v = linear(h, L(i, 'self_attn.v_proj'), T, H, H);
    rotary(q, T, nh, d, c.ropeTheta);
    rotary(k, T, nh, d, c.ropeTheta);
    const ctx = new Float64Array(T * H);
    for (let n = 0; n < nh; n++) for (let t = 0; t < T; t++) {
      const s = new Float64Array(t + 1);
      for (let u = 0; u <= t; u++) {
        for (let j = 0; j < d; j++) s[u] += q[t * H + n * d + j] * k[u * H + n * d + j];
        s[u] /= Math.sqrt(d);
      }
      const m = Math.max(...s);
      let z = 0;
      for (let u = 0; u <= t; u++) z += (s[u] = Math.exp(s[u] - m));
      for (let u = 0; u <= t; u++) for (let j = 0; j < d; j++) ctx[t * H + n * d + j] += (s[u] / z) * v[u * H + n * d + j];
    }
    const o = linear(ctx, L(i, 'self_attn.o_proj'), T, H, H);
    for (let k2 = 0; k2 < x.length; k2++) x[k2] += o[k2];
    const h2 = rms(x, L(i, 'post_attention_layernorm'), T, H, c.rmsEps);
    const gate = linear(h2, L(i, 'mlp.gate_proj'), T, H, I);
    const up = linear(h2, L(i, 'mlp.up_proj'), T, H, I);
    for (let k2 = 0; k2 < gate.length; k2++) gate[k2] = (gate[k2] / (1 + Math.exp(-gate[k2]))) * up[k2];
    const down = linear(gate, L(i, 'mlp.down_proj'), T, I, H);
    for (let k2 = 0; k2 < x.length; k2++) x[k2] += down[k2];
  }
  return linear(rms(x, w.get('model.norm.weight')!, T, H, c.rmsEps), w.get('lm_head.weight')!, T, H, c.vocabSize);
}

/** Mean next-token cross-entropy over every position of every sequence (as the autodiff's ce-labels). */
function referenceLoss(c: TinyLlamaConfig, w: W64, ids: number[][], labels: number[][]): number {
  const V = c.vocabSize;
  let sum = 0;
  let count = 0;
  ids.forEach((seq, b) => {
    const logits = referenceForward(c, w, seq);
    for (let t = 0; t < seq.length; t++) {
      const row = logits.subarray(t * V, t * V + V);
      const m = Math.max(...row);
      const lse = m + Math.log(row.reduce((a, z) => a + Math.exp(z - m), 0));
      sum += lse - row[labels[b][t]];
      count++;
    }
  });
  return sum / count;
}

function tokens(B: number, T: number, V: number, seed: number): number[][] {
  const r = randn(B * T, seed, 1);
  return Array.from({ length: B }, (_, b) => Array.from({ length: T }, (_, t) => Math.floor(Math.abs(r[b * T + t] * 7919)) % V));
}

const idsTensor = (ids: number[][]) => new ort.Tensor('int64', BigInt64Array.from(ids.flat(), BigInt), [ids.length, ids[0].length]);

test('the ONNX graph computes the reference logits, with dynamic and with fixed shapes', async () => {
  const w = randomWeights(C, 11);
  const w64 = to64(w);
  for (const [shape, ids] of [[{}, tokens(2, 7, C.vocabSize, 3)], [{}, tokens(1, C.maxPositions, C.vocabSize, 4)], [{ batch: 3, seqLen: 5 }, tokens(3, 5, C.vocabSize, 5)]] as const) {
    const session = await ort.InferenceSession.create(buildForwardModel(C, w, shape));
    const out = (await session.run({ [INPUT_IDS]: idsTensor(ids as number[][]) }))[LOGITS];
    assert.deepEqual(out.dims, [ids.length, ids[0].length, C.vocabSize]);
    const got = out.data as Float32Array;
    let worst = 0;
    ids.forEach((seq, b) => {
      const ref = referenceForward(C, w64, seq);
      for (let k = 0; k < ref.length; k++) worst = Math.max(worst, Math.abs(got[b * ref.length + k] - ref[k]));
    });
    assert.ok(worst < 1e-4, `max |ORT − reference| = ${worst}`);
    await session.release();
  }
});

test('the rotary embedding makes logits depend on position (a prefix gives the same logits, a shift does not)', async () => {
  const w = randomWeights(C, 12);
  const session = await ort.InferenceSession.create(buildForwardModel(C, w));
  const run = async (ids: number[]) => (await session.run({ [INPUT_IDS]: idsTensor([ids]) }))[LOGITS].data as Float32Array;
  const full = await run([1, 2, 3, 4, 5]);
  const prefix = await run([1, 2, 3]);
  for (let k = 0; k < prefix.length; k++) assert.ok(Math.abs(full[k] - prefix[k]) < 1e-5, 'causal: later tokens changed earlier logits');
  const shifted = await run([7, 1, 2, 3]);
  const V = C.vocabSize;
  let diff = 0;
  for (let k = 0; k < V; k++) diff = Math.max(diff, Math.abs(shifted[V * 3 + k] - prefix[V * 2 + k]));
  assert.ok(diff > 1e-3, 'the same context at other positions gave the same logits');
  await session.release();
});

test('autodiff gradients of the cross-entropy match float64 finite differences on every kind of weight', async () => {
  const w = randomWeights(C, 13);
  const B = 2;
  const T = 6;
  const ids = tokens(B, T, C.vocabSize, 21);
  const labels = tokens(B, T, C.vocabSize, 22);
  const names = [...w.keys()];
  const gm = buildGradientModel(buildForwardModel(C, w, { batch: B, seqLen: T }), { weights: names, loss: { kind: 'ce-labels' }, weightInputs: true });
  const session = await ort.InferenceSession.create(gm.model);
  const feeds: Record<string, ort.Tensor> = { [INPUT_IDS]: idsTensor(ids), [LOSS_INPUTS.labels]: idsTensor(labels) };
  for (const [name, t] of toGraphLayout(w)) feeds[name] = new ort.Tensor('float32', t.data, t.dims);
  const r = await session.run(feeds);
  const w64 = to64(w);
  const loss = (r[gm.lossOutput].data as Float32Array)[0];
  assert.ok(Math.abs(loss - referenceLoss(C, w64, ids, labels)) < 1e-4, 'loss value differs from the reference');

  const h = 1e-5;
  const used = new Set(ids.flat());
  let checked = 0;
  for (const [name, t] of w) {
    const grad = r[gm.gradients.get(name)!].data as Float32Array;
    const [rows, cols] = t.dims.length === 2 ? t.dims : [1, t.dims[0]];
    // Entries (row, col) in the Hugging Face layout; the graph stores Linear weights transposed ([in, out]).
    const picks = name === 'model.embed_tokens.weight' ? [[[...used][0], 1], [[...used][1], cols - 1]] : [[0, 0], [rows - 1, cols - 1], [rows >> 1, cols >> 2]];
    for (const [row, col] of picks) {
      const at = row * cols + col;
      const graphAt = t.dims.length === 2 && name !== 'model.embed_tokens.weight' ? col * rows + row : at;
      const p = w64.get(name)!;
      const keep = p[at];
      p[at] = keep + h;
      const lp = referenceLoss(C, w64, ids, labels);
      p[at] = keep - h;
      const lm = referenceLoss(C, w64, ids, labels);
      p[at] = keep;
      const numeric = (lp - lm) / (2 * h);
      // float32 forward/backward vs a float64 central difference (truncation ~h², rounding ~1e-16/h).
      const tol = 2e-5 + 2e-3 * Math.abs(numeric);
      assert.ok(Math.abs(grad[graphAt] - numeric) <= tol, `${name}[${row}, ${col}]: autodiff ${grad[graphAt]} vs finite difference ${numeric}`);
      if (Math.abs(numeric) > 1e-4) checked++;
    }
  }
  // Every kind of weight contributed non-trivial checks (zero gradients prove nothing).
  assert.ok(checked >= w.size, `only ${checked} non-trivial checks`);
  await session.release();
});

test('an unused embedding row gets exactly zero gradient', async () => {
  const w = randomWeights(C, 14);
  const ids = [[1, 2, 3]];
  const gm = buildGradientModel(buildForwardModel(C, w, { batch: 1, seqLen: 3 }), { weights: ['model.embed_tokens.weight'], loss: { kind: 'ce-labels' } });
  const session = await ort.InferenceSession.create(gm.model);
  const r = await session.run({ [INPUT_IDS]: idsTensor(ids), [LOSS_INPUTS.labels]: idsTensor([[2, 3, 4]]) });
  const g = r[gm.gradients.get('model.embed_tokens.weight')!].data as Float32Array;
  const H = C.hiddenSize;
  assert.ok(g.subarray(5 * H, 6 * H).every((v) => v === 0));
  assert.ok(g.subarray(1 * H, 2 * H).some((v) => v !== 0));
  await session.release();
});

test('config.json, byte tokenizer and bad input', () => {
  const j = hfConfigJson(TINY_LLAMA);
  assert.equal(j.model_type, 'llama');
  assert.deepEqual(j.architectures, ['LlamaForCausalLM']);
  assert.equal(j.hidden_size, 256);
  assert.equal(j.num_hidden_layers, 4);
  assert.equal(j.num_attention_heads, 4);
  assert.equal(j.num_key_value_heads, 4);
  assert.equal(j.vocab_size, 258);
  assert.equal(j.tie_word_embeddings, false);
  assert.deepEqual(encode('Aé'), [0x41, 0xc3, 0xa9]);
  assert.equal(decode([256, 0x41, 0xc3, 0xa9, 257]), 'Aé');
  const w = initWeights(C, 1);
  assert.equal(w.size, 2 + 9 * C.numLayers + 1);
  assert.deepEqual(w.get('model.layers.1.mlp.down_proj.weight')!.dims, [C.hiddenSize, C.intermediateSize]);
  assert.deepEqual(initWeights(C, 1).get('lm_head.weight')!.data, w.get('lm_head.weight')!.data);
  assert.throws(() => buildForwardModel({ ...C, numHeads: 3 }, w), QuantLensError);
  assert.throws(() => buildForwardModel(C, w, { seqLen: C.maxPositions + 1 }), QuantLensError);
  const broken = new Map(w);
  broken.delete('model.norm.weight');
  assert.throws(() => buildForwardModel(C, broken), /model\.norm\.weight.*expected a tensor \[16\], found nothing/);
});
