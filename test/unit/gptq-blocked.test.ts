// The blocked factorization GPTQ uses for large layers (float64 onnxruntime MatMuls): checked against the definition
// U upper with a positive diagonal and UᵀU·(H + λ·mean(diag H)·I) = I (the Cholesky factor is unique), and through
// GPTQ itself against properties with independent answers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { QuantLensError } from '../../server/src/formats/errors';
import { blockedInverseUpperFactor, gptqQuantize } from '../../server/src/jobs/gptq';
import { getFormat } from '../../server/src/quant';
import { randn } from '../fixtures/common';

const where = { file: 'test' };

/** H = AᵀA/m + 0.1·I for A m×n Gaussian (SPD, correlated). */
function spd(n: number, m: number, seed: number): Float64Array {
  const A = randn(m * n, seed, 1);
  const H = new Float64Array(n * n);
  for (let k = 0; k < m; k++) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) H[i * n + j] += (A[k * n + i] * A[k * n + j]) / m;
  for (let i = 0; i < n; i++) H[i * n + i] += 0.1;
  return H;
}

/** max |UᵀU·(H + λ·mean(diag H)·I) − I|, by plain triple loops. */
function inverseResidual(U: Float64Array, H: Float64Array, n: number, damp: number): number {
  let mean = 0;
  for (let i = 0; i < n; i++) mean += H[i * n + i] / n;
  const G = new Float64Array(n * n); // UᵀU
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let m = 0; m < n; m++) G[i * n + j] += U[m * n + i] * U[m * n + j];
  let worst = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += G[i * n + k] * (H[k * n + j] + (k === j ? damp * mean : 0));
      worst = Math.max(worst, Math.abs(s - (i === j ? 1 : 0)));
    }
  }
  return worst;
}

describe('blocked inverse upper factor', () => {
  for (const [n, block] of [
    [70, 16],
    [48, 48],
    [33, 64],
  ] as const) {
    it(`n = ${n}, blocks of ${block}: upper, positive diagonal, UᵀU = (H + λI)⁻¹`, async () => {
      const H = spd(n, 2 * n, n);
      const U = await blockedInverseUpperFactor(H, n, 0.01, { factorBlock: block }, where);
      for (let i = 0; i < n; i++) {
        assert.ok(U[i * n + i] > 0, `U[${i},${i}] = ${U[i * n + i]}`);
        for (let j = 0; j < i; j++) assert.equal(U[i * n + j], 0, `U[${i},${j}]`);
      }
      assert.ok(inverseResidual(U, H, n, 0.01) < 1e-9);
    });
  }

  it('rejects a Hessian that is not positive definite, naming the inputs', async () => {
    const n = 20;
    const H = spd(n, 40, 5);
    for (let j = 0; j < n; j++) {
      H[3 * n + j] = 0;
      H[j * n + 3] = 0;
    }
    H[3 * n + 3] = -0.5;
    await assert.rejects(blockedInverseUpperFactor(H, n, 0, { factorBlock: 8 }, where), (e: unknown) => e instanceof QuantLensError && e.code === 'not-pd' && /inputs 0…3/.test(e.detail));
    await assert.rejects(blockedInverseUpperFactor(new Float64Array(n * n), n, 0.01, {}, where), (e: unknown) => e instanceof QuantLensError && e.code === 'not-pd');
  });

  it('GPTQ with the blocked factor: a diagonal Hessian gives round-to-nearest; a full one the same codes as the JS factor', async () => {
    const rows = 23; // not a multiple of 4: the main loop's four-row and single-row paths both run
    const cols = 40;
    const W = randn(rows * cols, 3, 0.05);
    const f = getFormat('int4_g8_asym');
    const diag = new Float64Array(cols * cols);
    for (let i = 0; i < cols; i++) diag[i * cols + i] = 1 + i;
    const r = await gptqQuantize(W, [rows, cols], 'out_in', f, [diag], { factorJsMax: 0, factorBlock: 16 });
    assert.deepEqual(r.values, f.quantizeDequantize(W, [rows, cols], 'out_in'));
    const H = spd(cols, 80, 4);
    const blocked = await gptqQuantize(W, [rows, cols], 'out_in', f, [H], { factorJsMax: 0, factorBlock: 16, blockSize: 8 });
    const js = await gptqQuantize(W, [rows, cols], 'out_in', f, [H], { blockSize: 8 });
    assert.deepEqual(blocked.codes, js.codes);
  });
});
