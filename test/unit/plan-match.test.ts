// Rule patterns: glob semantics by hand, regex rules, and the index prefilter against a brute-force scan.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { layerOf } from '../../server/src/formats/layers';
import { compilePattern, layerPath, TensorIndex, type CompiledPattern, type PlanTensor } from '../../server/src/plan/index';
import { rng } from '../fixtures/common';

function compiled(p: string): CompiledPattern {
  const c = compilePattern(p);
  assert.ok(!('error' in c), `${p}: ${'error' in c ? c.error : ''}`);
  return c;
}

/** [pattern, name, expected] — expectations written from the documented semantics. */
const CASES: [string, string, boolean][] = [
  // `*` stays inside one dotted part, may be empty; the whole name must match.
  ['model.layers.*.mlp', 'model.layers.3.mlp', true],
  ['model.layers.*.mlp', 'model.layers.3.x.mlp', false],
  ['model.layers.*.mlp', 'model.layers..mlp', true],
  ['*.weight', 'lm_head.weight', true],
  ['*.weight', 'model.norm.weight', false],
  ['model.layers.*.mlp.down_proj*', 'model.layers.12.mlp.down_proj', true],
  ['model.layers.*.mlp.down_proj*', 'model.layers.12.mlp.down_proj_2', true],
  ['model.layers.*.mlp.down_proj*', 'model.layers.12.mlp.down_proj.weight', false],
  ['down_proj', 'model.layers.0.mlp.down_proj', false],
  ['model.layers.1*.mlp', 'model.layers.17.mlp', true],
  ['model.layers.1*.mlp', 'model.layers.1.mlp', true],
  ['model.layers.1*.mlp', 'model.layers.21.mlp', false],
  // `**` crosses dots.
  ['**.weight', 'model.norm.weight', true],
  ['**', 'a.b.c', true],
  ['**down_proj*', 'model.layers.0.mlp.down_proj', true],
  ['model.**.q_proj', 'model.layers.0.self_attn.q_proj', true],
  ['model.**.q_proj', 'model.q_proj', false],
  // `?` is exactly one character, never a dot.
  ['model.layers.?.mlp', 'model.layers.7.mlp', true],
  ['model.layers.?.mlp', 'model.layers.12.mlp', false],
  ['model.layers.??.mlp', 'model.layers.12.mlp', true],
  ['a?b', 'a.b', false],
  // Classes.
  ['self_attn.[qkv]_proj', 'self_attn.q_proj', true],
  ['self_attn.[qkv]_proj', 'self_attn.o_proj', false],
  ['self_attn.[!qk]_proj', 'self_attn.v_proj', true],
  ['self_attn.[!qk]_proj', 'self_attn.q_proj', false],
  ['self_attn.[^qk]_proj', 'self_attn.k_proj', false],
  ['layers.[0-3]', 'layers.2', true],
  ['layers.[0-3]', 'layers.4', false],
  ['x[!a]y', 'x.y', false],
  ['x[+-/]y', 'x.y', false], // the range spans '.', which a class never matches
  ['x[+-/]y', 'x,y', true],
  ['[]]x', ']x', true],
  // Dots and regex metacharacters are literal.
  ['model.layers', 'modelXlayers', false],
  ['a+b(c)', 'a+b(c)', true],
  ['a+b(c)', 'aab(c)', false],
  ['a\\*b', 'a*b', true],
  ['a\\*b', 'axb', false],
  ['model\\.norm', 'model.norm', true],
  ['/model/layers.0/*', '/model/layers.0/MatMul', true], // ONNX-style names: a glob, not a regex
  // Regex rules are searched anywhere, like llama.cpp --tensor-type.
  ['/q_proj|k_proj/', 'model.layers.0.self_attn.k_proj.weight', true],
  ['/q_proj|k_proj/', 'model.layers.0.self_attn.v_proj.weight', false],
  ['/^lm_head/', 'lm_head.weight', true],
  ['/^lm_head/', 'model.lm_head.weight', false],
  ['/Q_PROJ/i', 'model.layers.0.self_attn.q_proj.weight', true],
  ['/layers\\.(1|2)\\d\\./', 'model.layers.17.mlp', true],
  ['/layers\\.(1|2)\\d\\./', 'model.layers.37.mlp', false],
];

test('glob and regex semantics (hand cases)', () => {
  for (const [p, name, want] of CASES) assert.equal(compiled(p).re.test(name), want, `${p} vs ${name}`);
  assert.equal(compiled('**').kind, 'glob');
  assert.equal(compiled('/a/').kind, 'regex');
});

test('bad patterns say what is wrong', () => {
  const error = (p: string) => {
    const c = compilePattern(p);
    assert.ok('error' in c, p);
    return c.error;
  };
  assert.match(error('model.[abc'), /unclosed '\['/);
  assert.match(error('[a.b]'), /'\.' cannot be in a \[\.\.\.\] class/);
  assert.match(error('[z-a]'), /bad range 'z-a'/);
  assert.match(error('abc\\'), /lone \\/);
  assert.match(error('/a/g'), /flag 'g' is not allowed/);
  assert.match(error('/(/'), /invalid regex/);
  assert.match(error(''), /empty/);
});

/** A mixed model: LLaMA names, MoE experts, ONNX-style names, non-analyzable buffers. */
function tensors(): PlanTensor[] {
  const names: string[] = ['model.embed_tokens.weight', 'lm_head.weight', 'model.norm.weight', 'onnx::MatMul_991', '/model/layers.0/attn/MatMul.weight'];
  for (let b = 0; b < 24; b++) {
    for (const p of ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate', 'input_layernorm']) {
      names.push(`model.layers.${b}.${p}.weight`);
      if (p.endsWith('_proj')) names.push(`model.layers.${b}.${p}.bias`);
    }
    for (let e = 0; e < 12; e++) for (const p of ['w1', 'w2', 'w3']) names.push(`model.layers.${b}.mlp.experts.${e}.${p}.weight`);
  }
  return names.map((name, i) => ({ name, layer: layerOf(name), params: 100 + i, analyzable: !name.includes('inv_freq') }))
    .concat([{ name: 'model.rotary.inv_freq', layer: layerOf('model.rotary.inv_freq'), params: 4, analyzable: false }]);
}

test('the index finds exactly what a scan over every tensor finds', () => {
  const list = tensors();
  const index = new TensorIndex(list);
  assert.equal(index.notAnalyzable, 1);
  const analyzable = list.filter((t) => t.analyzable);
  const scan = (p: CompiledPattern) =>
    analyzable.flatMap((t, i) => (p.re.test(t.name) || p.re.test(layerPath(t.layer)) ? [i] : []));
  const fixed = [
    'model.layers.*.self_attn.[qkv]_proj', 'model.layers.1?.mlp.experts.*.w2', '**.experts.1?.w[13]', '**layernorm*', 'lm_head',
    'model.layers.3.**', '*.weight', '**', 'model.**.weight', 'onnx::MatMul_*', '/model/layers.0/*', 'model.layers.2[0-3].*',
    '/experts\\.(3|4)\\.w\\d/', '/^model\\.layers\\.1\\d\\.mlp\\.experts\\.7\\./', '/_proj\\.bias$/', '/w[12]/', '/(q|k)_proj/',
    '/layers\\.5\\./', '/MatMul/', '/EXPERTS/i', 'nothing.here', '**.nope.**', 'model.layers.*.mlp',
  ];
  for (const p of fixed) assert.deepEqual([...index.matches(compiled(p))], scan(compiled(p)), p);
  // Random globs and regexes derived from real names: parts kept, wildcarded, or swapped for another part.
  const rand = rng(7);
  const pick = <T>(a: readonly T[]) => a[Math.floor(rand() * a.length)];
  const vocab = [...new Set(analyzable.flatMap((t) => t.name.split('.')))];
  const mutate = (part: string): [glob: string, regex: string] => {
    const esc = (x: string) => x.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
    const k = Math.floor(rand() * part.length);
    if (!part) return ['', ''];
    switch (Math.floor(rand() * 7)) {
      case 0: return ['*', '[^.]*'];
      case 1: return [`${part.slice(0, k)}?${part.slice(k + 1)}`, `${esc(part.slice(0, k))}.${esc(part.slice(k + 1))}`];
      case 2: return [`${part.slice(0, k)}*`, `${esc(part.slice(0, k))}[^.]*`];
      case 3: return [`${part.slice(0, k)}[${part[k]}x]${part.slice(k + 1)}`, `${esc(part.slice(0, k))}[${esc(part[k])}x]${esc(part.slice(k + 1))}`];
      case 4: { const o = pick(vocab); return [o, esc(o)]; }
      default: return [part, esc(part)];
    }
  };
  let nonEmpty = 0;
  for (let i = 0; i < 300; i++) {
    const t = pick(analyzable);
    const parts = (rand() < 0.5 ? t.name : layerPath(t.layer)).split('.');
    const from = Math.floor(rand() * 2);
    const m = parts.slice(from).map(mutate);
    const glob = `${from ? '**.' : ''}${m.map((x) => x[0]).join('.')}`;
    const want = scan(compiled(glob));
    assert.deepEqual([...index.matches(compiled(glob))], want, glob);
    if (want.length > 0) nonEmpty++;
    const rx = `/${m.map((x) => x[1]).join('\\.')}${rand() < 0.5 ? '$' : ''}/`;
    assert.deepEqual([...index.matches(compiled(rx))], scan(compiled(rx)), rx);
  }
  assert.ok(nonEmpty >= 60, `only ${nonEmpty} random globs matched anything`);
  // Cached results are the same objects' contents on the second call.
  assert.deepEqual([...index.matches(compiled('**.experts.1?.w[13]'))], scan(compiled('**.experts.1?.w[13]')));
});
