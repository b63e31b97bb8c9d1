import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { QuantLensError } from '../../server/src/formats/errors';
import { parseProblem, readProblemFile, solveProblem } from '../../server/src/allocate/problem';
import { tempDir } from '../fixtures/common';

const valid = () => ({
  layers: [
    { name: 'q', params: 100, options: [{ id: 'int4', bits: 4.125, error: 2 }, { id: 'int8', bits: 8.0625, error: 0.5 }] },
    { name: 'k', params: 100, options: [{ id: 'int4', bits: 4.125, error: 1 }, { id: 'int8', bits: 8.0625, error: 0.25 }] },
    { name: 'mlp', params: 400, options: [{ id: 'q3', bits: 3.4375, error: 6 }, { id: 'q4', bits: 4.5, error: 2 }, { id: 'q6', bits: 6.5625, error: 0.3 }] },
  ],
  groups: [['q', 'k']],
});

test('solveProblem: text in, JSON-ready result out (groups honoured, exact units)', async () => {
  const r = await solveProblem(JSON.stringify(valid()), 5);
  // q,k share: int4 (825 bits) or int8 (1612.5). mlp: 1375 / 1800 / 2625. Budget 5·600 = 3000 bits.
  // int4+q4 = 2625 (err 3+2 = 5); int8+q3 = 2987.5 (err 0.75+6 = 6.75); int4+q6 = 3450 over → int4+q4.
  assert.deepEqual(r.choice, { q: 'int4', k: 'int4', mlp: 'q4' });
  assert.equal(r.totalError, 5);
  assert.equal(r.avgBits, 2625 / 600);
  assert.equal(r.minAvgBits, 2200 / 600);
  assert.equal(r.feasible, true);
  assert.equal(r.optimal, true);
  assert.equal(r.discretization!.exact, true);
  assert.deepEqual(JSON.parse(JSON.stringify(r)), r);
  const low = await solveProblem(valid(), 3);
  assert.deepEqual({ feasible: low.feasible, minAvgBits: low.minAvgBits }, { feasible: false, minAvgBits: 2200 / 600 });
  const viaMip = await solveProblem(valid(), 5, { solver: 'mip' });
  assert.deepEqual(viaMip.choice, r.choice);
});

function rejects(input: unknown, pathAndMessage: RegExp): void {
  assert.throws(
    () => parseProblem(input, 'plan/problem.json'),
    (e: unknown) => {
      assert.ok(e instanceof QuantLensError, String(e));
      assert.equal(e.where.file, 'plan/problem.json');
      assert.match(e.message, pathAndMessage);
      return true;
    },
  );
}

test('malformed problems are located errors with the JSON path', () => {
  const p1 = valid();
  (p1.layers[2].options[1] as { bits: unknown }).bits = -3;
  rejects(p1, /^plan\/problem\.json: layers\[2\]\.options\[1\]\.bits: expected a positive number, found -3$/);
  const p2 = valid();
  p2.layers[1].name = 'q';
  rejects(p2, /layers\[1\]\.name: expected a unique layer name \("q" is already layers\[0\]\)/);
  const p3 = valid();
  p3.groups = [['q', 'nope']];
  rejects(p3, /groups\[0\]\[1\]: expected the name of a layer in "layers", found "nope"/);
  const p4 = valid();
  p4.layers[0].options = [];
  rejects(p4, /layers\[0\]\.options: expected a non-empty array of options, found \[\]/);
  const p5 = valid();
  p5.layers[1].params = -5;
  rejects(p5, /layers\[1\]\.params: expected a positive integer number of weights, found -5/);
  const p6 = valid();
  p6.groups = [['q', 'mlp']];
  rejects(p6, /groups\[0\]\[1\]: expected a layer with the same option ids as q \(int4, int8\), found "mlp with q3, q4, q6"/);
  rejects({ ...valid(), limits: { latency: 10 } }, /layers\[0\]\.options\[0\]\.latency: expected a number \(limits\.latency is set\), found nothing/);
  rejects({ ...valid(), limits: { power: 10 } }, /limits\.power: expected one of latency, memory/);
  rejects({ layers: [] }, /layers: expected a non-empty array/);
  rejects([1], /\(root\): expected an object/);
  const p7 = valid();
  (p7.layers[0].options[0] as { error: unknown }).error = 'big';
  rejects(p7, /layers\[0\]\.options\[0\]\.error: expected a finite number/);
  const p8 = valid();
  (p8.layers[0].options[1] as { id: string }).id = 'int4';
  rejects(p8, /layers\[0\]\.options\[1\]\.id: expected an option id unique within q/);
  rejects({ layers: [{ ...valid().layers[0], minBits: 6, maxBits: 4 }] }, /layers\[0\]\.maxBits: expected a number ≥ minBits 6, found 4/);
  assert.throws(
    () => parseProblem('{"layers": [', 'p.json'),
    (e: unknown) => e instanceof QuantLensError && e.code === 'bad-json' && e.where.file === 'p.json',
  );
});

test('a bad budget is a located error; an impossible bit range is an infeasible result', async () => {
  await assert.rejects(solveProblem(valid(), -1, { file: 'x.json' }), /x\.json: --budget-bits: expected a positive number of bits per weight, found -1/);
  await assert.rejects(solveProblem(valid(), Number.NaN), /--budget-bits/);
  const p = valid();
  (p.layers[2] as { minBits?: number }).minBits = 7;
  const r = await solveProblem(p, 16);
  assert.equal(r.feasible, false);
  assert.equal(r.minAvgBits, null);
  assert.deepEqual(r.binding!.map((b) => [b.constraint, b.layer]), [['minBits', 'mlp']]);
  const g = valid();
  (g.layers[0] as { maxBits?: number }).maxBits = 5;
  (g.layers[1] as { minBits?: number }).minBits = 6;
  const rg = await solveProblem(g, 16);
  assert.equal(rg.feasible, false);
  assert.deepEqual(rg.binding!.map((b) => [b.constraint, b.group]), [['group', ['q', 'k']]]);
});

test('readProblemFile reads and validates a file', async () => {
  const dir = tempDir();
  const f = path.join(dir.dir, 'problem.json');
  writeFileSync(f, JSON.stringify(valid()));
  assert.equal((await readProblemFile(f)).layers.length, 3);
  writeFileSync(f, '{"layers": 3}');
  await assert.rejects(readProblemFile(f), (e: unknown) => e instanceof QuantLensError && e.where.file === f && /layers: expected a non-empty array, found 3/.test(e.message));
  dir.cleanup();
});
