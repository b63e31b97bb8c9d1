// `quantlens allocate --problem`: the documented contract, on a hand-worked instance.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../fixtures/common';
import { runCli } from '../helpers/cli';

// A: 100 params {a4: 4 b, err 1.0 | a8: 8 b, err 0.1}; B: 100 {b4: 4, 2.0 | b8: 8, 0.5}; C: 200 {c2: 2, 5.0 | c4: 4, 1.0}.
// Total bits per combination (budget avg × 400 params):
//   a4 b4 c4 = 1600 → err 4.0      a8 b4 c4 = 2000 → 3.1     a4 b8 c4 = 2000 → 2.5     a8 b8 c4 = 2400 → 1.6
//   a4 b4 c2 = 1200 → 8.0          a8 b4 c2 = 1600 → 7.1     a4 b8 c2 = 1600 → 6.5     a8 b8 c2 = 2000 → 5.6
// Budget 4.5 (≤ 1800 bits) → a4 b4 c4, error 4.0, avg 4.0. Budget 5 (≤ 2000) → a4 b8 c4, error 2.5, avg 5.0.
// Budget 2.5 (≤ 1000) → infeasible; the cheapest choice a4 b4 c2 needs 1200 bits = 3.0 bits/weight.
const problem = {
  layers: [
    { name: 'A', params: 100, options: [{ id: 'a4', bits: 4, error: 1.0 }, { id: 'a8', bits: 8, error: 0.1 }] },
    { name: 'B', params: 100, options: [{ id: 'b4', bits: 4, error: 2.0 }, { id: 'b8', bits: 8, error: 0.5 }] },
    { name: 'C', params: 200, options: [{ id: 'c2', bits: 2, error: 5.0 }, { id: 'c4', bits: 4, error: 1.0 }] },
  ],
};

test('allocate --problem solves the hand-worked instance exactly at several budgets', () => {
  const { dir, cleanup } = tempDir();
  try {
    const file = path.join(dir, 'problem.json');
    writeFileSync(file, JSON.stringify(problem));
    for (const solver of ['auto', 'dp', 'mip']) {
      let r = runCli('allocate', '--problem', file, '--budget-bits', '4.5', '--json', '--solver', solver);
      assert.equal(r.code, 0, r.stderr);
      let j = JSON.parse(r.stdout);
      assert.deepEqual([j.feasible, j.choice, j.avgBits], [true, { A: 'a4', B: 'b4', C: 'c4' }, 4], solver);
      assert.ok(Math.abs(j.totalError - 4.0) < 1e-12, solver);
      r = runCli('allocate', '--problem', file, '--budget-bits', '5', '--json', '--solver', solver);
      j = JSON.parse(r.stdout);
      assert.deepEqual([j.feasible, j.choice, j.avgBits], [true, { A: 'a4', B: 'b8', C: 'c4' }, 5], solver);
      assert.ok(Math.abs(j.totalError - 2.5) < 1e-12, solver);
    }
    const r = runCli('allocate', '--problem', file, '--budget-bits', '2.5', '--json');
    assert.equal(r.code, 0, 'an impossible budget is a result, not an error');
    const j = JSON.parse(r.stdout);
    assert.equal(j.feasible, false);
    assert.equal(j.minAvgBits, 3);
    const table = runCli('allocate', '--problem', file, '--budget-bits', '2.5');
    assert.match(table.stdout, /infeasible: the minimum achievable is 3 bits\/weight/);
  } finally {
    cleanup();
  }
});

test('allocate: malformed problem and missing budget exit 2 with a located message', () => {
  const { dir, cleanup } = tempDir();
  try {
    const file = path.join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ layers: [{ name: 'A', params: 10, options: [{ id: 'x', bits: -3, error: 1 }] }] }));
    let r = runCli('allocate', '--problem', file, '--budget-bits', '4');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /bad\.json.*layers\[0\]\.options\[0\]\.bits/);
    r = runCli('allocate', '--problem', file);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--budget-bits: expected a positive number/);
  } finally {
    cleanup();
  }
});
