// GGUF seeds: v3 with every metadata value type (a token array, a nested array) and float, block-quantized
// (Q8_0, Q4_K, Q6_K) and integer tensors; v2 with general.alignment 64. Structure: from the fixture
// writer's layout — version, tensor/KV counts, every key/string length, value type, array type/count,
// n_dims, each dim, ggml type and data offset. Spec-level mutations rebuild the file with a changed spec.
import { tinyLlamaTensors } from '../../fixtures/common';
import { BLOCK, encodeF16, encodeF32, GGML, ggufBytes, quantizeQ8_0, randomBlocks, VALUE_TYPE_ID, type GgufSpec, type GgufTensor, type GgufValue, type ValueType } from '../../fixtures/gguf';
import type { IntField, Rand, SeedFile } from '../mutators';
import { openAndRead, type FuzzTarget, type Seed } from '../target';

/** Header fields of a file built from `spec`, found by walking the layout the writer returns. */
export function ggufStructure(spec: GgufSpec): SeedFile {
  const layout = ggufBytes(spec);
  const b = layout.bytes;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const fields: IntField[] = [
    { at: 4, width: 4, label: 'version' },
    { at: 8, width: 8, label: 'tensor_count' },
    { at: 16, width: 8, label: 'kv_count' },
  ];
  const points = [0, 24, layout.dataStart, b.length];
  for (const kv of layout.kv) {
    fields.push({ at: kv.at, width: 8, label: `kv ${kv.key}.key_len` }, { at: kv.typeAt, width: 4, label: `kv ${kv.key}.type` });
    points.push(kv.at);
    const type = dv.getUint32(kv.typeAt, true);
    if (type === VALUE_TYPE_ID.STRING) fields.push({ at: kv.typeAt + 4, width: 8, label: `kv ${kv.key}.str_len` });
    if (type === VALUE_TYPE_ID.ARRAY) {
      fields.push({ at: kv.typeAt + 4, width: 4, label: `kv ${kv.key}.item_type` }, { at: kv.typeAt + 8, width: 8, label: `kv ${kv.key}.count` });
      if (dv.getUint32(kv.typeAt + 4, true) === VALUE_TYPE_ID.STRING) fields.push({ at: kv.typeAt + 16, width: 8, label: `kv ${kv.key}[0].len` });
    }
  }
  for (const t of layout.tensors) {
    const nDims = dv.getUint32(t.nDimsAt, true);
    fields.push({ at: t.at, width: 8, label: `${t.name}.name_len` }, { at: t.nDimsAt, width: 4, label: `${t.name}.n_dims` });
    for (let k = 0; k < nDims; k++) fields.push({ at: t.nDimsAt + 4 + 8 * k, width: 8, label: `${t.name}.ne[${k}]` });
    fields.push({ at: t.typeAt, width: 4, label: `${t.name}.type` }, { at: t.offsetAt, width: 8, label: `${t.name}.offset` });
    points.push(t.at, t.dataAt, t.dataAt + 17);
  }
  return { name: 'model.gguf', bytes: b, fields, points };
}

const str = (value: string): GgufValue => ({ type: 'STRING', value });
const u32 = (value: number): GgufValue => ({ type: 'UINT32', value });

function v3Spec(): GgufSpec {
  const w = tinyLlamaTensors();
  const byName = new Map(w.map((t) => [t.name, t]));
  const f = (name: string) => byName.get(name)!;
  const ne = (name: string) => [...f(name).shape].reverse();
  const blocks = (type: number, n: number): GgufTensor => ({ name: `blk.1.ffn_${type}.weight`, ne: [BLOCK[type][0], n], type, data: randomBlocks(type, n, type) });
  return {
    version: 3,
    kv: [
      ['general.architecture', str('llama')],
      ['general.name', str('fuzz seed')],
      ['llama.block_count', u32(2)],
      ['llama.embedding_length', { type: 'UINT64', value: 8n }],
      ['llama.rope.freq_base', { type: 'FLOAT32', value: 10000 }],
      ['llama.attention.layer_norm_rms_epsilon', { type: 'FLOAT64', value: 1e-5 }],
      ['general.flag', { type: 'BOOL', value: true }],
      ['general.small', { type: 'INT8', value: -3 }],
      ['general.file_type', { type: 'INT16', value: 7 }],
      ['general.neg', { type: 'INT64', value: -5n }],
      ['general.u8', { type: 'UINT8', value: 200 }],
      ['general.u16', { type: 'UINT16', value: 60000 }],
      ['general.i32', { type: 'INT32', value: -70000 }],
      ['tokenizer.ggml.tokens', { type: 'ARRAY', itemType: 'STRING', items: Array.from({ length: 300 }, (_, i) => `tok${i}`) }],
      ['tokenizer.ggml.scores', { type: 'ARRAY', itemType: 'FLOAT32', items: Array.from({ length: 40 }, (_, i) => -i) }],
      ['general.nested', { type: 'ARRAY', itemType: 'ARRAY', items: [{ type: 'ARRAY', itemType: 'INT32', items: [1, 2, 3] }] }],
    ],
    tensors: [
      { name: 'token_embd.weight', ne: ne('model.embed_tokens.weight'), type: GGML.F16, data: encodeF16(f('model.embed_tokens.weight').data) },
      { name: 'blk.0.attn_norm.weight', ne: ne('model.layers.0.input_layernorm.weight'), type: GGML.F32, data: encodeF32(f('model.layers.0.input_layernorm.weight').data) },
      { name: 'blk.0.attn_q.weight', ne: [32, 2], type: GGML.Q8_0, data: quantizeQ8_0(f('model.layers.0.mlp.gate_proj.weight').data.subarray(0, 64)).bytes },
      blocks(GGML.Q4_K, 2),
      blocks(GGML.Q6_K, 1),
      { name: 'blk.0.ids', ne: [4], type: GGML.I32, data: new Uint8Array(16) },
      { name: 'output.weight', ne: ne('lm_head.weight'), type: GGML.F32, data: encodeF32(f('lm_head.weight').data) },
    ],
  };
}

function v2Spec(): GgufSpec {
  const [embed] = tinyLlamaTensors();
  return {
    version: 2,
    kv: [['general.architecture', str('llama')], ['general.alignment', u32(64)]],
    tensors: [
      { name: 'token_embd.weight', ne: [8, 32], type: GGML.F32, data: encodeF32(embed.data) },
      { name: 'blk.0.ffn_down.weight', ne: [32, 1], type: GGML.Q4_0, data: randomBlocks(GGML.Q4_0, 1, 4) },
    ],
  };
}

const HUGE = [0, 1, 2 ** 31, 2 ** 32, 2 ** 40, 2 ** 53 - 1, 2 ** 62];
const VALUE_TYPES = Object.keys(VALUE_TYPE_ID) as ValueType[];

/** The alignment value to write over general.alignment after layout (the writer itself needs a sane one). */
interface Edit {
  desc: string;
  alignment?: number;
}

/** Spec-level edits: shapes, ggml types, data lengths, metadata types/values/nesting, counts. */
function mutateSpec(r: Rand, spec: GgufSpec): Edit {
  let alignment: number | undefined;
  const tensors = spec.tensors!;
  const kv = spec.kv!;
  const t = r.pick(tensors);
  const edits: [string, () => void][] = [
    ['ne huge/zero', () => (t.ne = t.ne.map((d, i) => (i === r.int(t.ne.length) ? r.pick(HUGE) : d)))],
    ['ne product overflows', () => (t.ne = [2 ** 30, 2 ** 30, 2 ** 30])],
    ['5 dims', () => (t.ne = [...t.ne, 1, 1, 1, 1].slice(0, 5))],
    ['0 dims', () => (t.ne = [])],
    ['ne not a block multiple', () => (t.ne = [(t.ne[0] ?? 0) + 1, ...t.ne.slice(1)])],
    ['ggml type odd', () => (t.type = r.pick([3, 4, 5, 16, 17, 18, 19, 21, 22, 29, 31, 36, 37, 38, 39, 40, 41, 99, 2 ** 31]))],
    ['ggml type swapped', () => (t.type = r.pick(Object.values(GGML)))],
    ['data short', () => (t.data = t.data.subarray(0, r.int(t.data.length)))],
    ['data long', () => (t.data = new Uint8Array(t.data.length + r.range(1, 100)))],
    ['name duplicated', () => (t.name = r.pick(tensors).name)],
    ['name odd', () => (t.name = r.pick(['', '\u0000', 'x'.repeat(70000), '../x']))],
    ['many tensors', () => { for (let i = 0; i < 2000; i++) tensors.push({ name: `extra.${i}`, ne: [1], type: GGML.F32, data: new Uint8Array(4) }); }],
    ['alignment odd', () => {
      const v = r.pick([0, 1, 3, 48, 2 ** 31, 2 ** 32 - 1, -1, -2]);
      if (v >= 0) {
        alignment = v;
        kv.push(['general.alignment', u32(32)]);
      } else kv.push(['general.alignment', v === -1 ? { type: 'UINT64', value: 64n } : str('32')]);
    }],
    ['kv type swapped', () => { const e = r.pick(kv); e[1] = { type: r.pick(VALUE_TYPES.filter((x) => x !== 'ARRAY')) as Exclude<ValueType, 'ARRAY'>, value: 1 }; }],
    ['kv array item type odd', () => kv.push(['x.arr', { type: 'ARRAY', itemType: r.pick(VALUE_TYPES), items: [] }])],
    ['kv nested 10 deep', () => {
      let v: GgufValue = { type: 'ARRAY', itemType: 'UINT8', items: [1] };
      for (let i = 0; i < 10; i++) v = { type: 'ARRAY', itemType: 'ARRAY', items: [v] };
      kv.push(['x.deep', v]);
    }],
    ['kv long array', () => kv.push(['x.long', { type: 'ARRAY', itemType: 'UINT8', items: new Array<number>(200000).fill(7) }])],
    ['kv key duplicated', () => kv.push([r.pick(kv)[0], str('again')])],
    ['kv key odd', () => kv.push([r.pick(['', '__proto__', 'constructor', 'x'.repeat(70000)]), u32(1)])],
    ['kv string huge', () => kv.push(['x.big', str('y'.repeat(3_000_000))])],
    ['version odd', () => (spec.version = r.pick([0, 1, 2, 4, 2 ** 31]))],
  ];
  const [what, edit] = r.pick(edits);
  edit();
  return { desc: `${t.name.slice(0, 40)}: ${what}${alignment !== undefined ? ` (${alignment})` : ''}`, alignment };
}

function seedOf(label: string, make: () => GgufSpec): Seed {
  return {
    label,
    files: [ggufStructure(make())],
    open: 'model.gguf',
    structured: [
      {
        name: 'spec',
        run(r) {
          const spec = make();
          const edits = [mutateSpec(r, spec)];
          if (r.chance(0.3)) edits.push(mutateSpec(r, spec));
          const layout = ggufBytes(spec);
          const alignment = edits.find((e) => e.alignment !== undefined)?.alignment;
          const kv = layout.kv.filter((k) => k.key === 'general.alignment').pop();
          if (alignment !== undefined && kv) new DataView(layout.bytes.buffer).setUint32(kv.typeAt + 4, alignment, true);
          return { files: { 'model.gguf': layout.bytes }, desc: edits.map((e) => e.desc).join('; ') };
        },
      },
    ],
  };
}

export const ggufTarget: FuzzTarget = {
  name: 'gguf',
  seeds: () => [seedOf('gguf-v3', v3Spec), seedOf('gguf-v2-align64', v2Spec)],
  run: openAndRead,
};
