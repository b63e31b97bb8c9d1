// Minimal reproducers of the crashes the reader fuzzer found (test/fuzz). Each input must be refused
// with a QuantLensError that names the file; until the reader is fixed, its test fails with the crash.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { QuantLensError } from '../../server/src/formats/errors';
import { analyzePlan } from '../../server/src/plan';
import { FORMAT_CATALOG } from '../../server/src/quant/registry';
import { tempDir } from '../fixtures/common';
import { safetensorsBytes } from '../fixtures/safetensors';
import { openAndRead } from '../fuzz/target';

/** Write `files` into a fresh folder, open+read `open` (relative; '' = the folder), expect a located refusal. */
async function refused(files: Record<string, Uint8Array | string>, open: string, check?: (e: QuantLensError) => void): Promise<void> {
  const { dir, cleanup } = tempDir('quantlens-fuzz-regression-');
  try {
    for (const [name, bytes] of Object.entries(files)) writeFileSync(path.join(dir, name), bytes);
    const target = path.join(dir, open);
    const err = await openAndRead(target).then(
      () => assert.fail('the input was accepted'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof QuantLensError, `expected a QuantLensError, got: ${(err as Error)?.stack ?? String(err)}`);
    assert.ok(err.message.includes(dir), err.message);
    check?.(err);
  } finally {
    cleanup();
  }
}

/** `[[[…]]]` nested `depth` deep, as JSON text. */
const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

// One root cause, three call sites: json.ts describe() renders "found …" values with JSON.stringify, which
// recurses; JSON.parse accepts the nesting, so any hostile header value nested ~10^4+ deep throws
// RangeError (Maximum call stack size exceeded) instead of a located QuantLensError.
// Fuzz: `npm run fuzz -- --format safetensors --seed 1 --case 78` (st-f32 | json-header: .dtype := deep nesting).

test('safetensors: a deeply nested dtype value is refused, not a stack overflow in describe()', () =>
  refused(
    { 'model.safetensors': safetensorsBytes(`{"w":{"dtype":${nested(100_000)},"shape":[1],"data_offsets":[0,4]}}`, new Uint8Array(4)) },
    'model.safetensors',
    (e) => assert.equal(e.where.tensor, 'w'),
  ));

test('safetensors: a deeply nested tensor entry is refused, not a stack overflow in describe()', () =>
  // Fuzz: --seed 2 --case 28 (st-f32 | json-header: [1] := deep nesting).
  refused({ 'model.safetensors': safetensorsBytes(`{"w":${nested(100_000)}}`) }, 'model.safetensors', (e) => assert.equal(e.where.tensor, 'w')));

test('safetensors index: a deeply nested weight_map value is refused, not a stack overflow in describe()', () =>
  // Fuzz: --seed 2 (st-sharded | json-index: .model.layers.N.input_layernorm.weight := deep nesting).
  // The first entry is ordinary so the file is still recognized as an index.
  refused(
    { 'model.safetensors.index.json': `{"weight_map":{"a":"model.safetensors","w":${nested(100_000)}}}` },
    'model.safetensors.index.json',
    (e) => assert.equal(e.where.tensor, 'w'),
  ));

test('plan: a rule key nested 30 flow maps deep is a diagnostic in well under a second, not a RangeError', () => {
  // Fuzz: --format plan --seed 20261101 --case 21 (plan-full | insert 1000 bytes of "{").
  const t0 = performance.now();
  const a = analyzePlan(`rules:\n  - match: x\n    ${'{'.repeat(30)}\n`, '/p/x.quant.yaml', { ...FORMAT_CATALOG, checkPath: false });
  assert.ok(performance.now() - t0 < 5000, 'a hang guard, not a speed target: the bug took 21 s');
  assert.ok(a.diagnostics.some((d) => d.severity === 'error'));
});
