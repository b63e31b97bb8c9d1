// The tiny LM as an ONNX graph `input_ids` int64 [batch, seq] → `logits` float32 [batch, seq, vocab], with the
// math of Hugging Face's LlamaForCausalLM written in plain ops that the autodiff differentiates (training builds
// its gradient model from this same graph): RMSNorm as x / √(mean(x²) + ε) · w, rotary embeddings with
// rotate_half (Split, Neg, Concat), causal softmax attention with an additive mask, SwiGLU MLP, residuals.
// Linear weights are stored transposed ([in, out], the MatMul layout) under their Hugging Face names, so
// QuantLens's readers and analyses see ordinary MatMul weights; the embedding stays [vocab, hidden] for Gather.
// Linears run on token rows [batch·seq, hidden] (their inputs are plain 2-D activations, their weight gradients
// one 2-D MatMul each); only attention splits the rows into [batch, heads, seq, headDim].
import { check } from '../formats/errors';
import { GraphBuilder, type Dim } from '../runtime/graph';
import { headDim, layerName, tensorShapes, validateConfig, type TinyLlamaConfig, type TinyTensor, type TinyWeights } from './config';

export const INPUT_IDS = 'input_ids';
export const LOGITS = 'logits';
/** Large enough that exp underflows to 0 after the max subtraction, finite so no inf − inf appears. */
const MASKED = -1e9;

export interface ForwardShape {
  /** Fixed batch size; a symbolic `batch` dimension when absent. */
  batch?: number;
  /** Fixed sequence length (≤ maxPositions); a symbolic `seq` dimension when absent. */
  seqLen?: number;
}

/** A Hugging Face Linear ([out, in]) or lm_head: stored transposed in the graph. */
export function isLinear(name: string, dims: readonly number[]): boolean {
  return dims.length === 2 && name !== 'model.embed_tokens.weight';
}

export function transpose2d(t: TinyTensor): TinyTensor {
  const [rows, cols] = t.dims;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let k = 0; k < cols; k++) out[k * rows + r] = t.data[r * cols + k];
  return { dims: [cols, rows], data: out };
}

/** Hugging Face layouts → graph layouts (and back: transposing twice is the identity). */
export function toGraphLayout(w: TinyWeights): TinyWeights {
  return new Map([...w].map(([name, t]) => [name, isLinear(name, t.dims) ? transpose2d(t) : t]));
}
export const fromGraphLayout = toGraphLayout;

/** HF rotary tables cos/sin [positions, headDim]: angle p·θ^(−2i/d), the half-size frequency list repeated twice. */
export function rotaryTables(c: TinyLlamaConfig, positions: number): { cos: Float32Array; sin: Float32Array } {
  const d = headDim(c);
  const cos = new Float32Array(positions * d);
  const sin = new Float32Array(positions * d);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < d / 2; i++) {
      const angle = p * Math.pow(c.ropeTheta, (-2 * i) / d);
      cos[p * d + i] = cos[p * d + i + d / 2] = Math.cos(angle);
      sin[p * d + i] = sin[p * d + i + d / 2] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

export function buildForwardModel(c: TinyLlamaConfig, weights: TinyWeights, opts: ForwardShape = {}): Uint8Array {
  validateConfig(c);
  const T = opts.seqLen;
  check(T === undefined || (Number.isInteger(T) && T >= 1 && T <= c.maxPositions), 'bad-config', `seqLen must be an integer in 1..${c.maxPositions}, found ${T}`, { file: '<tiny LM graph>' });
  for (const [name, dims] of tensorShapes(c)) {
    const t = weights.get(name);
    const found = t === undefined ? 'nothing' : `[${t.dims.join(', ')}] with ${t.data.length} values`;
    check(t !== undefined && t.dims.join() === dims.join() && t.data.length === dims.reduce((a, b) => a * b, 1), 'bad-weights', `expected a tensor [${dims.join(', ')}], found ${found}`, { file: '<tiny LM weights>', tensor: name });
  }
  const g = new GraphBuilder('tiny-llama');
  const H = c.hiddenSize;
  const d = headDim(c);
  const batch: Dim = opts.batch ?? 'batch';
  const seq: Dim = opts.seqLen ?? 'seq';
  g.input(INPUT_IDS, 'int64', [batch, seq]);

  for (const [name, t] of toGraphLayout(weights)) g.initializer(name, t.data, t.dims);
  const scalar = (name: string, v: number) => g.initializer(name, Float32Array.of(v), []);
  const eps = scalar('rms_eps', c.rmsEps);
  const scale = scalar('attn_scale', 1 / Math.sqrt(d));
  const lastAxis = g.int64s('last_axis', [-1]);
  const tokensShape = g.int64s('tokens_shape', [-1, H]);

  // Rotary tables and the causal mask for the sequence: stored at the fixed length, or sliced to the input's;
  // the shapes that split the token rows into [batch, seq, …] likewise fixed or taken from the input.
  const tables = rotaryTables(c, T ?? c.maxPositions);
  const maskSize = T ?? c.maxPositions;
  const mask = new Float32Array(maskSize * maskSize);
  for (let i = 0; i < maskSize; i++) for (let j = i + 1; j < maskSize; j++) mask[i * maskSize + j] = MASKED;
  let cos = g.initializer('rope_cos', tables.cos, [maskSize, d]);
  let sin = g.initializer('rope_sin', tables.sin, [maskSize, d]);
  let causal = g.initializer('causal_mask', mask, [maskSize, maskSize]);
  let headsShape: string;
  let logitsShape: string;
  if (T === undefined) {
    const shape = g.node('Shape', [INPUT_IDS], ['ids_shape'])[0];
    const len = g.node('Slice', [shape, g.int64s('one', [1]), g.int64s('two', [2])], ['seq_len'])[0];
    const zero = g.int64s('zero', [0]);
    cos = g.node('Slice', ['rope_cos', zero, len, zero], ['cos'])[0];
    sin = g.node('Slice', ['rope_sin', zero, len, zero], ['sin'])[0];
    const ends = g.node('Concat', [len, len], ['mask_ends'], { axis: 0 })[0];
    causal = g.node('Slice', ['causal_mask', g.int64s('zeros2', [0, 0]), ends, g.int64s('axes01', [0, 1])], ['mask'])[0];
    headsShape = g.node('Concat', [g.int64s('minus_one', [-1]), len, g.int64s('head_dims', [c.numHeads, d])], ['heads_shape'], { axis: 0 })[0];
    logitsShape = g.node('Concat', [shape, g.int64s('vocab', [c.vocabSize])], ['logits_shape'], { axis: 0 })[0];
  } else {
    headsShape = g.int64s('heads_shape', [-1, T, c.numHeads, d]);
    logitsShape = g.int64s('logits_shape', [-1, T, c.vocabSize]);
  }

  const rmsNorm = (x: string, w: string, p: string): string => {
    g.node('Mul', [x, x], [`${p}/sq`]);
    g.node('ReduceMean', [`${p}/sq`, lastAxis], [`${p}/ms`], { keepdims: 1 });
    g.node('Add', [`${p}/ms`, eps], [`${p}/ms_eps`]);
    g.node('Sqrt', [`${p}/ms_eps`], [`${p}/rms`]);
    g.node('Div', [x, `${p}/rms`], [`${p}/normed`]);
    return g.node('Mul', [`${p}/normed`, w], [`${p}/out`])[0];
  };
  // Token rows [B·T, H] → [B, heads, T, d]
  const heads = (x: string, p: string): string => {
    g.node('Reshape', [x, headsShape], [`${p}/split_heads`]);
    return g.node('Transpose', [`${p}/split_heads`], [`${p}/heads`], { perm: [0, 2, 1, 3] })[0];
  };
  // x·cos + rotate_half(x)·sin with rotate_half(x) = [−x₂, x₁] over the two halves of the head.
  const rope = (x: string, p: string): string => {
    g.node('Split', [x], [`${p}/x1`, `${p}/x2`], { axis: -1, num_outputs: 2 });
    g.node('Neg', [`${p}/x2`], [`${p}/neg_x2`]);
    g.node('Concat', [`${p}/neg_x2`, `${p}/x1`], [`${p}/rot`], { axis: -1 });
    g.node('Mul', [x, cos], [`${p}/xcos`]);
    g.node('Mul', [`${p}/rot`, sin], [`${p}/rsin`]);
    return g.node('Add', [`${p}/xcos`, `${p}/rsin`], [`${p}/roped`])[0];
  };
  const linear = (x: string, w: string, out: string) => g.node('MatMul', [x, w], [out])[0];

  g.node('Reshape', [INPUT_IDS, g.int64s('flat', [-1])], ['ids_flat']);
  let x = g.node('Gather', ['model.embed_tokens.weight', 'ids_flat'], ['embeds'], { axis: 0 })[0];
  for (let i = 0; i < c.numLayers; i++) {
    const p = `layers.${i}`;
    const h = rmsNorm(x, layerName(i, 'input_layernorm'), `${p}/input_norm`);
    const q = rope(heads(linear(h, layerName(i, 'self_attn.q_proj'), `${p}/q`), `${p}/q`), `${p}/q`);
    const k = rope(heads(linear(h, layerName(i, 'self_attn.k_proj'), `${p}/k`), `${p}/k`), `${p}/k`);
    const v = heads(linear(h, layerName(i, 'self_attn.v_proj'), `${p}/v`), `${p}/v`);
    g.node('Transpose', [k], [`${p}/kT`], { perm: [0, 1, 3, 2] });
    g.node('MatMul', [q, `${p}/kT`], [`${p}/scores_raw`]);
    g.node('Mul', [`${p}/scores_raw`, scale], [`${p}/scores_scaled`]);
    g.node('Add', [`${p}/scores_scaled`, causal], [`${p}/scores`]);
    g.node('Softmax', [`${p}/scores`], [`${p}/probs`], { axis: -1 });
    g.node('MatMul', [`${p}/probs`, v], [`${p}/ctx_heads`]);
    g.node('Transpose', [`${p}/ctx_heads`], [`${p}/ctx_t`], { perm: [0, 2, 1, 3] });
    g.node('Reshape', [`${p}/ctx_t`, tokensShape], [`${p}/ctx`]);
    linear(`${p}/ctx`, layerName(i, 'self_attn.o_proj'), `${p}/attn_out`);
    x = g.node('Add', [x, `${p}/attn_out`], [`${p}/resid_attn`])[0];

    const h2 = rmsNorm(x, layerName(i, 'post_attention_layernorm'), `${p}/post_norm`);
    const gate = linear(h2, layerName(i, 'mlp.gate_proj'), `${p}/gate`);
    g.node('Sigmoid', [gate], [`${p}/gate_sig`]);
    g.node('Mul', [gate, `${p}/gate_sig`], [`${p}/gate_silu`]);
    const up = linear(h2, layerName(i, 'mlp.up_proj'), `${p}/up`);
    g.node('Mul', [`${p}/gate_silu`, up], [`${p}/swiglu`]);
    linear(`${p}/swiglu`, layerName(i, 'mlp.down_proj'), `${p}/mlp_out`);
    x = g.node('Add', [x, `${p}/mlp_out`], [`${p}/resid_mlp`])[0];
  }
  const final = rmsNorm(x, 'model.norm.weight', 'final_norm');
  linear(final, 'lm_head.weight', 'logits_flat');
  g.node('Reshape', ['logits_flat', logitsShape], [LOGITS]);
  g.output(LOGITS, 'float32', [batch, seq, c.vocabSize]);
  return g.build();
}
