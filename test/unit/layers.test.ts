import assert from 'node:assert/strict';
import { test } from 'node:test';
import { guessLayout, layerOf } from '../../server/src/formats/layers';

test('HF Llama names → block, layer, fused group', () => {
  assert.deepEqual(layerOf('model.layers.3.self_attn.q_proj.weight'), {
    block: 'model.layers.3',
    layer: 'self_attn.q_proj',
    fusedGroup: 'model.layers.3.self_attn.qkv',
  });
  assert.deepEqual(layerOf('model.layers.3.mlp.up_proj.weight'), {
    block: 'model.layers.3',
    layer: 'mlp.up_proj',
    fusedGroup: 'model.layers.3.mlp.gate_up',
  });
  assert.deepEqual(layerOf('model.layers.3.mlp.down_proj.weight'), { block: 'model.layers.3', layer: 'mlp.down_proj' });
  assert.deepEqual(layerOf('model.layers.12.input_layernorm.weight'), { block: 'model.layers.12', layer: 'input_layernorm' });
  assert.deepEqual(layerOf('lm_head.weight'), { block: '(root)', layer: 'lm_head' });
  assert.deepEqual(layerOf('model.embed_tokens.weight'), { block: '(root)', layer: 'model.embed_tokens' });
});

test('GGUF, MoE, BERT and Paddle names', () => {
  assert.deepEqual(layerOf('blk.0.attn_k.weight'), { block: 'blk.0', layer: 'attn_k', fusedGroup: 'blk.0.attn_qkv' });
  assert.deepEqual(layerOf('blk.5.ffn_gate.weight'), { block: 'blk.5', layer: 'ffn_gate', fusedGroup: 'blk.5.ffn_gate_up' });
  assert.deepEqual(layerOf('model.layers.1.block_sparse_moe.experts.7.w3.weight'), {
    block: 'model.layers.1',
    layer: 'block_sparse_moe.experts.7.w3',
    fusedGroup: 'model.layers.1.block_sparse_moe.experts.*.w1_w3',
  });
  assert.deepEqual(layerOf('model.layers.1.mlp.experts.0.down_proj.weight').fusedGroup, 'model.layers.1.mlp.experts.*.down_proj');
  assert.deepEqual(layerOf('bert.encoder.layer.2.attention.self.query.weight'), {
    block: 'bert.encoder.layer.2',
    layer: 'attention.self.query',
    fusedGroup: 'bert.encoder.layer.2.attention.self.qkv',
  });
  assert.deepEqual(layerOf('conv2d_12.w_0'), { block: '(root)', layer: 'conv2d_12' });
});

test('layout guesses follow HF conventions', () => {
  assert.equal(guessLayout('model.layers.0.mlp.up_proj.weight', [11008, 4096]), 'out_in');
  assert.equal(guessLayout('model.embed_tokens.weight', [32000, 4096]), 'embedding');
  assert.equal(guessLayout('model.norm.weight', [4096]), 'vector');
  assert.equal(guessLayout('backbone.conv1.weight', [64, 3, 7, 7]), 'conv');
});
