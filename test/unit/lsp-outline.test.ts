// The model outline (server/src/lsp/outline.ts): an inspect result → the read-only text shown for a binary
// checkpoint, and the line of every layer. Expected texts are written out by hand from the fixture below.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { modelOutline } from '../../server/src/lsp/outline';
import type { InspectResult, InspectTensor } from '../../server/src/protocol';

function tensor(name: string, block: string, layer: string, dtype: string, shape: number[]): InspectTensor {
  return { name, dtype, shape, params: shape.reduce((a, b) => a * b, 1), layer, block, layout: 'out_in', analyzable: true };
}

/** Two blocks (bias listed before its weight, as safetensors' sorted headers do) and a root layer. */
function fixture(): InspectResult {
  const tensors = [
    tensor('model.layers.0.self_attn.q_proj.bias', 'model.layers.0', 'self_attn.q_proj', 'F16', [64]),
    tensor('model.layers.0.self_attn.q_proj.weight', 'model.layers.0', 'self_attn.q_proj', 'F16', [64, 64]),
    tensor('model.layers.0.mlp.down_proj.weight', 'model.layers.0', 'mlp.down_proj', 'F16', [64, 256]),
    tensor('model.layers.1.mlp.down_proj.weight', 'model.layers.1', 'mlp.down_proj', 'BF16', [64, 256]),
    tensor('lm_head.weight', '(root)', 'lm_head', 'F32', [1000, 64]),
  ];
  const layers = [
    { block: 'model.layers.0', layer: 'self_attn.q_proj', tensors: [tensors[0].name, tensors[1].name], params: 4160, fusedGroup: 'model.layers.0.self_attn.qkv' },
    { block: 'model.layers.0', layer: 'mlp.down_proj', tensors: [tensors[2].name], params: 16384 },
    { block: 'model.layers.1', layer: 'mlp.down_proj', tensors: [tensors[3].name], params: 16384 },
    { block: '(root)', layer: 'lm_head', tensors: [tensors[4].name], params: 64000 },
  ];
  return {
    format: 'safetensors',
    path: '/m/model.safetensors',
    files: ['/m/model.safetensors'],
    tensorCount: 5,
    params: 100928,
    dtypes: { F16: { tensors: 3, params: 20544 }, BF16: { tensors: 1, params: 16384 }, F32: { tensors: 1, params: 64000 } },
    tensors,
    layers,
    blocks: [
      { block: 'model.layers.0', layers: 2, params: 20544 },
      { block: 'model.layers.1', layers: 1, params: 16384 },
      { block: '(root)', layers: 1, params: 64000 },
    ],
    metadata: {},
  };
}

const HEAD = [
  'QuantLens model outline (read-only): /m/model.safetensors',
  'safetensors · 5 tensors · 100.9 K parameters · 1 file(s)',
  'dtypes: F32 1 tensors / 64.0 K, F16 3 tensors / 20.5 K, BF16 1 tensors / 16.4 K',
  'Right-click a layer line: Quantize Layer, Reveal in Plan. Lenses show sensitivity and bits once the model is analyzed.',
];

test('outline: blocks, one line per layer (largest tensor describes it), and the line ↔ layer map', () => {
  const o = modelOutline(fixture());
  const expected = [
    ...HEAD,
    '',
    'model.layers.0 — 2 layers · 20.5 K params',
    '  self_attn.q_proj      4.2 K  F16 [64×64]  2 tensors  ⊂ self_attn.qkv',
    '  mlp.down_proj        16.4 K  F16 [64×256]',
    '',
    'model.layers.1 — 1 layer · 16.4 K params',
    '  mlp.down_proj     16.4 K  BF16 [64×256]',
    '',
    '(root) — 1 layer · 64.0 K params',
    '  lm_head     64.0 K  F32 [1000×64]',
  ];
  assert.equal(o.text, `${expected.join('\n')}\n`);
  assert.deepEqual(
    o.layers.map((l) => [l.line, l.path, l.tensors[0]]),
    [
      [6, 'model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.q_proj.weight'],
      [7, 'model.layers.0.mlp.down_proj', 'model.layers.0.mlp.down_proj.weight'],
      [10, 'model.layers.1.mlp.down_proj', 'model.layers.1.mlp.down_proj.weight'],
      [13, 'lm_head', 'lm_head.weight'],
    ],
  );
  // Every mapped line holds its layer's name.
  const lines = o.text.split('\n');
  for (const l of o.layers) assert.ok(lines[l.line].startsWith(`  ${l.layer} `), lines[l.line]);
  // The weight comes first, then the rest of the layer's tensors.
  assert.deepEqual(o.layers[0].tensors, ['model.layers.0.self_attn.q_proj.weight', 'model.layers.0.self_attn.q_proj.bias']);
});

test('outline: caps per block and in all; later blocks show totals only', () => {
  const o = modelOutline(fixture(), { perBlock: 1, total: 2 });
  const expected = [
    ...HEAD,
    '',
    'model.layers.0 — 2 layers · 20.5 K params',
    '  self_attn.q_proj      4.2 K  F16 [64×64]  2 tensors  ⊂ self_attn.qkv',
    '  … 1 more layers · 16.4 K params (Inspect Model lists every tensor)',
    '',
    'model.layers.1 — 1 layer · 16.4 K params',
    '  mlp.down_proj     16.4 K  BF16 [64×256]',
    '',
    '(root) — 1 layer · 64.0 K params (not listed: outline limit reached)',
  ];
  assert.equal(o.text, `${expected.join('\n')}\n`);
  assert.deepEqual(o.layers.map((l) => l.line), [6, 10]);
});

test('outline: a 60 000-tensor checkpoint lists at most the cap, quickly', () => {
  const tensors: InspectTensor[] = [];
  const layers: InspectResult['layers'] = [];
  const blocks: InspectResult['blocks'] = [];
  for (let b = 0; b < 60; b++) {
    const block = `model.layers.${b}`;
    for (let e = 0; e < 1000; e++) {
      const t = tensor(`${block}.mlp.experts.${e}.up_proj.weight`, block, `mlp.experts.${e}.up_proj`, 'BF16', [8, 8]);
      tensors.push(t);
      layers.push({ block, layer: t.layer, tensors: [t.name], params: 64 });
    }
    blocks.push({ block, layers: 1000, params: 64000 });
  }
  const r: InspectResult = { format: 'safetensors', path: '/moe', files: ['/moe/a.safetensors'], tensorCount: 60000, params: 3.84e6, dtypes: { BF16: { tensors: 60000, params: 3.84e6 } }, tensors, layers, blocks, metadata: {} };
  const t0 = performance.now();
  const o = modelOutline(r);
  const ms = performance.now() - t0;
  assert.equal(o.layers.length, 2000);
  // 10 blocks of 200 listed layers (+ a "more" line each), then 50 blocks with totals only.
  assert.equal(o.text.split('\n').filter((l) => l.endsWith('(not listed: outline limit reached)')).length, 50);
  assert.equal(o.text.split('\n').filter((l) => l.startsWith('  … 800 more layers')).length, 10);
  assert.ok(ms < 1500, `${ms} ms`); // ~60–250 ms on the 2-core dev machine
});

test('outline: a file without tensors says so', () => {
  const r: InspectResult = { ...fixture(), tensorCount: 0, params: 0, dtypes: {}, tensors: [], layers: [], blocks: [] };
  const o = modelOutline(r);
  assert.equal(o.layers.length, 0);
  assert.ok(o.text.endsWith('\nNo tensors: this file holds no weights.\n'));
});
