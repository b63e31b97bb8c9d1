import assert from 'node:assert/strict';
import { test } from 'node:test';
import { randn } from '../fixtures/common';
import { QuantLensError } from '../../server/src/formats/errors';
import { cholesky, dampedCholesky, inverseDiagonal, inverseSpd } from '../../server/src/runtime/linalg';

// A = L·Lᵀ with L = [[2,0,0],[6,1,0],[-8,5,3]]; A⁻¹ = L⁻ᵀL⁻¹ with L⁻¹ = [[1/2,0,0],[-3,1,0],[19/3,-5/3,1/3]] (by hand).
const A = new Float64Array([4, 12, -16, 12, 37, -43, -16, -43, 98]);
const A_INV = [1777 / 36, -122 / 9, 19 / 9, -122 / 9, 34 / 9, -5 / 9, 19 / 9, -5 / 9, 1 / 9];

test('Cholesky of a hand-made SPD matrix is exact', () => {
  assert.deepEqual([...cholesky(A)], [2, 0, 0, 6, 1, 0, -8, 5, 3]);
});

test('inverse from Cholesky equals the hand-computed inverse to 1e-12', () => {
  const { inverse, damping } = inverseSpd(A, 0);
  assert.equal(damping, 0);
  inverse.forEach((v, i) => assert.ok(Math.abs(v - A_INV[i]) <= 1e-12 * Math.abs(A_INV[i]), `[${i}] ${v} vs ${A_INV[i]}`));
  const { diagonal } = inverseDiagonal(A, 0);
  [A_INV[0], A_INV[4], A_INV[8]].forEach((v, i) => assert.ok(Math.abs(diagonal[i] - v) <= 1e-12 * v));
});

test('damping adds λ·mean(diag H) to the diagonal', () => {
  // mean diag = (4 + 37 + 98)/3 = 139/3; λ = 0.03 → 1.39.
  const { L, damping } = dampedCholesky(A, 0.03);
  assert.ok(Math.abs(damping - 1.39) < 1e-15);
  assert.ok(Math.abs(L[0] - Math.sqrt(4 + 1.39)) < 1e-15);
  const damped = A.slice();
  for (let i = 0; i < 3; i++) damped[i * 3 + i] += 1.39;
  // (A + δI)·inverse = I on a random 43×43 SPD matrix BᵀB (43 = ten 4-row blocks + 3), default λ = 0.01.
  const n = 43;
  const b = randn(60 * n, 5, 1);
  const h = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let r = 0; r < 60; r++) h[i * n + j] += b[r * n + i] * b[r * n + j];
  const { inverse, damping: dd } = inverseSpd(h);
  const trace = Array.from({ length: n }, (_, i) => h[i * n + i]).reduce((s, v) => s + v, 0);
  assert.ok(Math.abs(dd - (0.01 * trace) / n) < 1e-12 * dd);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    let s = 0;
    for (let k = 0; k < n; k++) s += (h[i * n + k] + (i === k ? dd : 0)) * inverse[k * n + j];
    assert.ok(Math.abs(s - (i === j ? 1 : 0)) < 1e-10, `(HI)[${i},${j}] = ${s}`);
  }
  const { diagonal } = inverseDiagonal(h);
  diagonal.forEach((v, i) => assert.ok(Math.abs(v - inverse[i * n + i]) < 1e-12 * v));
  // L·Lᵀ reproduces the damped matrix.
  const { L: lh } = dampedCholesky(h);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) {
    let s = 0;
    for (let k = 0; k <= j; k++) s += lh[i * n + k] * lh[j * n + k];
    const want = h[i * n + j] + (i === j ? dd : 0);
    assert.ok(Math.abs(s - want) < 1e-12 * h[0], `(LLᵀ)[${i},${j}]`);
  }
});

test('a matrix that is not positive definite gives a clear, located error', () => {
  const indefinite = new Float64Array([1, 2, 2, 1]); // eigenvalues 3 and −1; damped pivot 1.01 − 2²/1.01 = −2.950
  const where = { file: 'model.onnx', tensor: 'layers.0.q_proj' };
  assert.throws(() => inverseSpd(indefinite, 0.01, where), (e: unknown) => {
    assert.ok(e instanceof QuantLensError);
    assert.equal(e.code, 'not-pd');
    assert.equal(e.message, 'model.onnx [layers.0.q_proj]: matrix is not positive definite: pivot 1 is -2.950 (diagonal entry 1.010), even after damping λ = 0.01 (added 0.01000 to the diagonal); raise the damping or check the calibration rows');
    return true;
  });
  // Enough damping makes it PD: 1 + 1.5 > 2.
  assert.doesNotThrow(() => inverseSpd(indefinite, 1.5));
  assert.throws(() => inverseSpd(new Float64Array(4)), /mean diagonal entry is 0/);
  assert.throws(() => inverseSpd(new Float64Array([2, 1, 0, 2])), /not symmetric: \[1,0\] = 0 but \[0,1\] = 1/);
  assert.throws(() => inverseSpd(new Float64Array(5)), /expected a square matrix, found 5 values/);
  assert.throws(() => inverseSpd(A, -1), /damping λ must be a finite number ≥ 0/);
  assert.throws(() => cholesky(new Float64Array([1, 1, 1, 1])), /pivot 1 is 0\.000/); // singular PSD
});
