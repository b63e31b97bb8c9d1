// HF config.json seeds, opened as a model folder: a Llama config alone, a multimodal MoE config
// (text_config, quantization_config) alone, and a config beside a small safetensors file (only the
// config is mutated there). JSON-level mutations plus the fields the parser reads, set to hostile values.
import { tinyLlamaTensors } from '../../fixtures/common';
import { layoutTensors, safetensorsBytes, toRaw } from '../../fixtures/safetensors';
import { mutateJson, stringifyJson, type Json, type Rand, type SeedFile } from '../mutators';
import { openAndRead, type FuzzTarget, type Seed } from '../target';

const llama = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 8,
  intermediate_size: 16,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  vocab_size: 32,
  torch_dtype: 'float16',
  tie_word_embeddings: false,
  rope_theta: 10000,
};

const multimodal = {
  architectures: ['MixtralForConditionalGeneration', 7],
  model_type: 'llava',
  text_config: { ...llama, num_local_experts: 8, num_experts_per_tok: 2, model_type: 'mixtral' },
  vision_config: { hidden_size: 32, patch_size: 14 },
  quantization_config: { quant_method: 'gptq', bits: 4, group_size: 128, desc_act: false },
};

/** The keys parseHfConfig reads (and their aliases): the most interesting targets. */
const FIELDS = [
  'architectures', 'model_type', 'num_hidden_layers', 'n_layer', 'hidden_size', 'n_embd', 'intermediate_size', 'num_attention_heads',
  'num_key_value_heads', 'vocab_size', 'num_local_experts', 'num_experts_per_tok', 'torch_dtype', 'dtype', 'tie_word_embeddings',
  'quantization_config', 'text_config',
];
const VALUES: Json[] = [0, -1, 0.5, 1e308, -1e308, 2 ** 53, 2 ** 64, '12', '', null, true, [], {}, [1, 2], { a: 1 }, 'x'.repeat(100000)];

function configSeed(label: string, config: object, withWeights: boolean): Seed {
  const text = new TextEncoder().encode(JSON.stringify(config, null, 2));
  const files: SeedFile[] = [{ name: 'config.json', bytes: text, fields: [], points: [0, 1, text.length - 1, text.length] }];
  if (withWeights) {
    const { header, data } = layoutTensors(toRaw(tinyLlamaTensors().slice(0, 3), 'F16'));
    files.push({ name: 'model.safetensors', bytes: safetensorsBytes(header, data), fields: [], points: [], weight: 0 });
  }
  const rewrite = (r: Rand, edit: (j: Record<string, Json>) => string) => {
    const j = JSON.parse(JSON.stringify(config)) as Record<string, Json>;
    const desc = edit(j);
    return { files: { 'config.json': new TextEncoder().encode(stringifyJson(r, j, 2)) }, desc };
  };
  return {
    label,
    files,
    open: '',
    structured: [
      { name: 'json', weight: 2, run: (r) => rewrite(r, (j) => mutateJson(r, j)) },
      {
        name: 'fields',
        weight: 2,
        run: (r) =>
          rewrite(r, (j) => {
            const target = j.text_config && r.chance(0.5) ? (j.text_config as Record<string, Json>) : j;
            const k = r.pick(FIELDS);
            const v = r.pick(VALUES);
            target[k] = v;
            return `${target === j ? '' : 'text_config.'}${k} := ${JSON.stringify(v).slice(0, 40)}`;
          }),
      },
      { name: 'not an object', run: (r) => ({ files: { 'config.json': new TextEncoder().encode(r.pick(['[]', 'null', '"x"', '1', '', '\ufeff{}', '{"a":1}{'])) }, desc: 'top level not an object' }) },
    ],
  };
}

export const hfConfigTarget: FuzzTarget = {
  name: 'hf-config',
  seeds: () => [configSeed('config-llama', llama, false), configSeed('config-multimodal', multimodal, false), configSeed('config-with-weights', llama, true)],
  run: openAndRead,
};
