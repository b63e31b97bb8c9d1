// Dialect details on listed models (no files needed): GGUF checkpoints keep their own tensor names for
// llama.cpp, ONNX checkpoints give MatMulNBits the real node names, Hugging Face names map to GGUF names, and
// experts that GGUF merges into one tensor cannot take different types. Expected texts written by hand.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { contextFor } from '../../server/src/export/context';
import { ggufName } from '../../server/src/export/ggml';
import { dialect } from '../../server/src/export/index';
import { layerOf } from '../../server/src/formats/layers';
import type { TensorInfo, WeightLayout } from '../../server/src/formats/types';

function info(name: string, shape: number[], layout: WeightLayout, extra: Partial<TensorInfo> = {}): TensorInfo {
  const params = shape.reduce((a, b) => a * b, 1);
  return { name, dtype: 'F16', shape, params, file: '/m/x', byteOffset: 0, byteLength: 2 * params, analyzable: true, layout, layer: layerOf(name), ...extra };
}

const run = (id: string, plan: string, format: string, modelPath: string, tensors: TensorInfo[]) => {
  const ctx = contextFor(plan, '/m/p.quant.yaml', format, modelPath, tensors);
  return { out: dialect(id).export(ctx), warnings: ctx.warnings };
};

test('Hugging Face → GGUF tensor names (llama.cpp convert_hf_to_gguf tensor map)', () => {
  assert.deepEqual([
    'model.embed_tokens.weight', 'lm_head.weight', 'model.norm.weight', 'model.layers.7.self_attn.o_proj.weight',
    'model.layers.7.self_attn.q_proj.bias', 'model.layers.2.mlp.experts.5.up_proj.weight', 'model.layers.2.mlp.gate.weight',
    'model.layers.3.post_attention_layernorm.weight', 'model.layers.3.mystery.weight', 'rotary.inv_freq',
  ].map(ggufName), [
    'token_embd.weight', 'output.weight', 'output_norm.weight', 'blk.7.attn_output.weight',
    'blk.7.attn_q.bias', 'blk.2.ffn_up_exps.weight', 'blk.2.ffn_gate_inp.weight',
    'blk.3.ffn_norm.weight', undefined, undefined,
  ]);
});

test('llama.cpp on a GGUF checkpoint: its own names, and the command quantizes that file', () => {
  const tensors = [
    info('token_embd.weight', [32, 8], 'embedding'),
    info('blk.0.attn_q.weight', [8, 8], 'out_in'), info('blk.0.attn_k.weight', [8, 8], 'out_in'),
    info('blk.1.attn_q.weight', [8, 8], 'out_in'), info('blk.1.attn_k.weight', [8, 8], 'out_in'),
    info('output_norm.weight', [8], 'vector'),
  ];
  const plan = 'model: ./model.gguf\ndefaults: { format: int4_g32_sym }\nrules:\n  - match: "blk.*.attn_q.weight"\n    format: int8_g32_sym\n';
  const { out, warnings } = run('llama.cpp', plan, 'gguf', '/m/model.gguf', tensors);
  assert.deepEqual(warnings, []);
  assert.equal(out.files[0].text, '^blk\\.\\d+\\.attn_q\\.weight$=q8_0\n^(?:token_embd\\.weight|blk\\.\\d+\\.attn_k\\.weight)$=q4_0\n');
  assert.equal(out.commandLine, 'llama-quantize --tensor-type-file {file} /m/model.gguf /m/model-quantlens.gguf Q4_0');
});

test('llama.cpp: experts of one projection share a GGUF tensor, so a split gets a warning at the later rule', () => {
  const tensors = [0, 1].map((e) => info(`model.layers.0.mlp.experts.${e}.down_proj.weight`, [8, 16], 'out_in'));
  const plan = [
    'model: ./m',
    'defaults: { format: int4_g32_sym }',
    'rules:',
    '  - match: "model.layers.0.mlp.experts.1.down_proj"',
    '    format: int8_g32_sym',
    '',
  ].join('\n');
  const { out, warnings } = run('llama.cpp', plan, 'safetensors', '/m/m', tensors);
  // The model has one block, so the pattern covers "every block".
  assert.equal(out.files[0].text, '^blk\\.\\d+\\.ffn_down_exps\\.weight$=q8_0\n');
  assert.deepEqual(warnings, [{
    range: { start: { line: 1, character: 20 }, end: { line: 1, character: 32 } },
    message: 'GGUF stores blk.0.ffn_down_exps.weight as one tensor (all experts together): it gets q8_0 from an earlier rule, not q4_0',
  }]);
});

test('onnxruntime MatMulNBits on an ONNX checkpoint: node names from the graph; skip → nodes_to_exclude', () => {
  const mm = (w: string, node: string) => info(w, [8, 8], 'in_out', { consumers: [{ op: 'MatMul', node, input: 1 }] });
  const tensors = [mm('onnx::MatMul_10', '/l0/q/MatMul'), mm('onnx::MatMul_11', '/l0/k/MatMul'), mm('onnx::MatMul_12', '/l0/v/MatMul'), info('ln.weight', [8], 'vector')];
  const plan = [
    'model: ./m.onnx',
    'defaults: { format: int4_g64_asym }',
    'rules:',
    '  - match: "onnx::MatMul_11"',
    '    format: int8_g64_asym',
    '  - match: "onnx::MatMul_12"',
    '    skip: true',
    '',
  ].join('\n');
  const { out, warnings } = run('ort-matmulnbits', plan, 'onnx', '/m/m.onnx', tensors);
  assert.deepEqual(warnings, []);
  assert.equal(out.files[0].text, [
    '{',
    '  "bits": 4,',
    '  "block_size": 64,',
    '  "is_symmetric": false,',
    '  "op_types_to_quantize": ["MatMul"],',
    '  "nodes_to_exclude": [',
    '    "/l0/v/MatMul"',
    '  ],',
    '  "customized_weight_config": {',
    '    "/l0/k/MatMul": { "bits": 8 }',
    '  }',
    '}',
    '',
  ].join('\n'));
});

test('HQQ: one projection with different formats in different blocks is exported by majority, with a warning', () => {
  const tensors = [0, 1, 2].map((b) => info(`model.layers.${b}.mlp.down_proj.weight`, [8, 16], 'out_in'));
  const plan = 'model: ./m\ndefaults: { format: int4_g64_asym }\nrules:\n  - match: "model.layers.2.mlp.down_proj"\n    format: int2_g64_asym\n';
  const { out, warnings } = run('hqq', plan, 'safetensors', '/m/m', tensors);
  assert.match(out.files[0].text, /^ {4}"mlp\.down_proj": BaseQuantizeConfig\(nbits=4, group_size=64\),$/m);
  assert.deepEqual(warnings.map((w) => [w.range?.start.line, w.message]), [
    [4, "HQQ sets one config per linear tag for all blocks: 'mlp.down_proj' is exported as nbits=4, group_size=64, not nbits=2, group_size=64"],
  ]);
});
