// `allocate <model>` helpers: the budget syntax, literal plan globs, and the plan text.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { literalGlob, parseBudget, planText, type ModelAllocation } from '../../server/src/commands/allocate-model';
import { compilePattern, type CompiledPattern } from '../../server/src/plan';
import { QuantLensError } from '../../server/src/formats/errors';

test('budget: a bare number is bits per weight, a number with a unit is an exact size', () => {
  assert.deepEqual(parseBudget('4.5'), { avgBits: 4.5 });
  assert.deepEqual(parseBudget(' 3 '), { avgBits: 3 });
  assert.deepEqual(parseBudget('3.9GB'), { bytes: 3_900_000_000, text: '3.9GB' });
  assert.deepEqual(parseBudget('512MiB'), { bytes: 536_870_912, text: '512MiB' });
  assert.deepEqual(parseBudget('1200B'), { bytes: 1200, text: '1200B' });
  for (const [bad, msg] of [['0', /positive average bits/], ['-2', /positive average bits/], ['300', /for a size add a unit \(300B/], ['4 bits', /expected average bits per weight \(4\.5\) or a size/]] as const) {
    assert.throws(() => parseBudget(bad), (e: unknown) => e instanceof QuantLensError && msg.test(e.message), bad);
  }
});

test('literal globs match exactly the tensor name, special characters included', () => {
  for (const name of ['model.layers.0.mlp.down_proj.weight', 'w[0]*?', '/odd/name', 'back\\slash']) {
    const p = compilePattern(literalGlob(name));
    assert.ok(!('error' in p), `${name}: ${JSON.stringify(p)}`);
    const { re, kind } = p as CompiledPattern;
    assert.equal(kind, 'glob');
    assert.equal(re.test(name), true, name);
    assert.equal(re.test(`${name}x`), false, name);
    assert.equal(re.test(name.slice(1)), false, name);
  }
});

test('plan text: model path relative to the plan, the budget as given, one rule per tensor', () => {
  const a = {
    model: '/data/m/model.safetensors', method: 'datafree', params: 10, relError: 0.01, bytes: 9,
    budget: { avgBits: 3.2, bytes: 1000, text: '1kB' },
    result: { feasible: true, minAvgBits: 2, avgBits: 3.125 },
    layers: [{ name: 'a.weight', params: 10, format: 'int4_g128_asym', bits: 4, relMse: 0.01 }],
  } as unknown as ModelAllocation;
  const text = planText(a, '/data/plans/x.quant.yaml');
  assert.match(text, /^model: "\.\.\/m\/model\.safetensors"$/m);
  assert.match(text, /^budget: \{ size: 1000 \}$/m);
  assert.match(text, /^method: datafree$/m);
  assert.match(text, /^rules:\n {2}- match: "a\.weight"\n {4}format: int4_g128_asym$/m);
});
