import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { QuantLensError } from '../../server/src/formats/errors';
import { estimateParams, parseHfConfig } from '../../server/src/formats/hfconfig';
import { openCheckpoint } from '../../server/src/formats/registry';
import { tempDir } from '../fixtures/common';

// Llama-2-7B's published config.json fields.
const llama7b = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 4096,
  intermediate_size: 11008,
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 32,
  vocab_size: 32000,
  tie_word_embeddings: false,
  torch_dtype: 'float16',
};

test('config.json: Llama-2-7B fields and its well-known 6.74 B parameter count', () => {
  const c = parseHfConfig(JSON.stringify(llama7b), 'config.json');
  assert.deepEqual(c.architectures, ['LlamaForCausalLM']);
  assert.equal(c.numLayers, 32);
  assert.equal(c.hiddenSize, 4096);
  assert.equal(c.intermediateSize, 11008);
  assert.equal(c.torchDtype, 'float16');
  // 6 738 415 616 is the parameter count of meta-llama/Llama-2-7b-hf.
  assert.equal(c.estimatedParams, 6_738_415_616);
});

test('config.json: MoE, GQA, aliases and quantization_config', () => {
  const c = parseHfConfig(
    JSON.stringify({
      architectures: ['MixtralForCausalLM'],
      n_layer: 2,
      n_embd: 64,
      intermediate_size: 128,
      n_head: 8,
      num_key_value_heads: 2,
      num_local_experts: 4,
      num_experts_per_tok: 2,
      vocab_size: 100,
      tie_word_embeddings: true,
      quantization_config: { quant_method: 'gptq', bits: 4, group_size: 128 },
    }),
    'c.json',
  );
  assert.equal(c.numLayers, 2);
  assert.equal(c.hiddenSize, 64);
  assert.equal(c.numExperts, 4);
  assert.equal(c.numExpertsPerToken, 2);
  assert.deepEqual(c.quantizationConfig, { quant_method: 'gptq', bits: 4, group_size: 128 });
  // attention: q,o 64² each + k,v 64·16 each = 10240; experts 3·64·128·4 = 98304 + router 256; norms 128
  // per layer 108928; ×2 = 217856; tied embedding 6400; final norm 64 → 224320
  assert.equal(estimateParams(c), 224_320);
});

test('config.json: invalid JSON is a located error', () => {
  assert.throws(
    () => parseHfConfig('{"hidden_size": 12,, }', '/m/config.json'),
    (e: unknown) => e instanceof QuantLensError && /\/m\/config\.json @ byte \d+: invalid JSON/.test(e.message),
  );
  assert.throws(() => parseHfConfig('[1,2]', '/m/config.json'), /must be a JSON object/);
  // The exact byte offset of the stray comma (V8 does not report it).
  assert.throws(() => parseHfConfig('{"a": 1,, }', '/m/config.json'), /@ byte 8: invalid JSON/);
});

test('a folder with only config.json opens as hf-config', async () => {
  const { dir, cleanup } = tempDir();
  try {
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify(llama7b));
    const ck = await openCheckpoint(dir);
    assert.equal(ck.format, 'hf-config');
    assert.equal(ck.tensors.length, 0);
    assert.equal(ck.config?.numLayers, 32);
    await ck.close();
  } finally {
    cleanup();
  }
});
