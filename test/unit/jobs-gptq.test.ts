import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gptqQuantize, inverseUpperFactor } from '../../server/src/jobs/gptq';
import { getFormat } from '../../server/src/quant';
import { randn } from '../fixtures/common';
import { gaussJordanInverse } from '../helpers/linalg';

/** Inverse of a row-major n×n SPD matrix (float64). */
function invert(a: Float64Array, n: number): Float64Array {
  return Float64Array.from(gaussJordanInverse(Array.from({ length: n }, (_, i) => [...a.slice(i * n, i * n + n)])).flat());
}

describe('GPTQ', () => {
  it('matches the hand-worked 4×4 case (U = I + 0.5 on the superdiagonal, int4 per-channel)', async () => {
    // Choose U, set H = (UᵀU)⁻¹: then the Cholesky factor of H⁻¹ GPTQ uses is exactly U (no damping).
    const U = new Float64Array([1, 0.5, 0, 0, 0, 1, 0.5, 0, 0, 0, 1, 0.5, 0, 0, 0, 1]);
    const UtU = new Float64Array(16);
    for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) for (let k = 0; k < 4; k++) UtU[i * 4 + j] += U[k * 4 + i] * U[k * 4 + j];
    const H = invert(UtU, 4);
    // [out, in] rows. Row 0 by hand (scale 7/7 = 1): col 0: 0.6 → 1, e = −0.4, col 1 ← 0.6 + 0.2 = 0.8 → 1,
    // e = −0.2, col 2 ← 0.45 + 0.1 = 0.55 → 1 (RTN: 0), e = −0.45, col 3 ← 7 + 0.225 → clamp 7.
    // Row 3 (scale 0.5): 0.2 → 0 (e = 0.2), 0.1 → 0 (e = 0.1), 0.15 → 0 (e = 0.15), 3.425/0.5 = 6.85 → 7.
    const W = new Float32Array([0.6, 0.6, 0.45, 7, -0.6, -0.6, -0.45, -7, 7, 0, 0, 0, 0.2, 0.2, 0.2, 3.5]);
    const f = getFormat('int4_ch_sym');
    for (const blockSize of [128, 2]) {
      const r = await gptqQuantize(W, [4, 4], 'out_in', f, [H], { damp: 0, blockSize });
      assert.deepEqual([...r.codes], [1, 1, 1, 7, -1, -1, -1, -7, 7, 0, 0, 0, 0, 0, 0, 7], `block size ${blockSize}`);
      assert.deepEqual([...r.values], [1, 1, 1, 7, -1, -1, -1, -7, 7, 0, 0, 0, 0, 0, 0, 3.5]);
    }
    const rtn = new Int32Array(16);
    f.quantizeDequantize(W, [4, 4], 'out_in', { codes: rtn });
    assert.deepEqual([...rtn.slice(0, 4)], [1, 1, 0, 7]);
  });

  it('with a diagonal Hessian equals round-to-nearest (no error to spread)', async () => {
    const W = randn(8 * 16, 4, 1);
    const H = new Float64Array(16 * 16);
    for (let i = 0; i < 16; i++) H[i * 16 + i] = 1 + i;
    for (const id of ['int4_g8_asym', 'int3_ch_sym']) {
      const f = getFormat(id);
      const r = await gptqQuantize(W, [16, 8], 'in_out', f, [H]);
      assert.deepEqual(r.values, f.quantizeDequantize(W, [16, 8], 'in_out'), id);
    }
  });

  it('reduces the layer-output error vs RTN on a calibrated layer (fixed seeds)', async () => {
    const d = 48;
    const out = 24;
    const N = 512;
    for (const seed of [1, 2, 3]) {
      // Correlated inputs X = Z·A (rows N), a weight [in, out] as MatMul stores it.
      const Z = randn(N * d, seed, 1);
      const A = randn(d * d, seed + 100, 0.3);
      for (let i = 0; i < d; i++) A[i * d + i] += 1;
      const X = new Float64Array(N * d);
      for (let n = 0; n < N; n++) for (let j = 0; j < d; j++) for (let k = 0; k < d; k++) X[n * d + j] += Z[n * d + k] * A[k * d + j];
      const H = new Float64Array(d * d);
      for (let n = 0; n < N; n++) for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) H[i * d + j] += (2 / N) * X[n * d + i] * X[n * d + j];
      const W = randn(d * out, seed + 200, 0.2);
      const outErr = (q: Float32Array) => {
        let s = 0;
        for (let n = 0; n < N; n++) {
          for (let o = 0; o < out; o++) {
            let y = 0;
            for (let k = 0; k < d; k++) y += X[n * d + k] * (q[k * out + o] - W[k * out + o]);
            s += y * y;
          }
        }
        return s;
      };
      for (const id of ['int4_g16_asym', 'int3_ch_sym']) {
        const f = getFormat(id);
        const rtn = outErr(f.quantizeDequantize(W, [d, out], 'in_out'));
        const js = await gptqQuantize(W, [d, out], 'in_out', f, [H], { blockSize: 16 });
        const gptq = outErr(js.values);
        assert.ok(gptq < 0.9 * rtn, `${id} seed ${seed}: GPTQ ${gptq} vs RTN ${rtn}`);
        // The lazy update on onnxruntime (float32) gives the same codes up to rare rounding ties.
        const ort = await gptqQuantize(W, [d, out], 'in_out', f, [H], { blockSize: 16, jsLimit: 0 });
        const same = js.codes.filter((c, i) => c === ort.codes[i]).length / js.codes.length;
        assert.ok(same > 0.99, `${id}: ${same}`);
      }
    }
  });

  it('rejects formats without an integer grid and mismatched Hessians', async () => {
    const W = randn(16, 1, 1);
    await assert.rejects(gptqQuantize(W, [4, 4], 'out_in', getFormat('nf4_g64'), [new Float64Array(16)]), /plain integer format/);
    await assert.rejects(gptqQuantize(W, [4, 4], 'out_in', getFormat('int4_ch_sym'), [new Float64Array(9)]), /expected 4×4 Hessians/);
  });
});

describe('inverse upper factor', () => {
  it('UᵀU equals the damped inverse of H (checked by multiplying back: UᵀU·(H + λI) = I)', () => {
    const n = 6;
    const A = randn(n * n, 9, 1);
    const H = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let k = 0; k < n; k++) H[i * n + j] += A[k * n + i] * A[k * n + j];
    let mean = 0;
    for (let i = 0; i < n; i++) mean += H[i * n + i] / n;
    const U = inverseUpperFactor(H, n, 0.01, { file: 'test' });
    for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) assert.equal(U[i * n + j], 0);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < n; k++) {
          let inv = 0; // (UᵀU)[i, k]
          for (let m = 0; m < n; m++) inv += U[m * n + i] * U[m * n + k];
          s += inv * (H[k * n + j] + (k === j ? 0.01 * mean : 0));
        }
        assert.ok(Math.abs(s - (i === j ? 1 : 0)) < 1e-9, `[${i}, ${j}] = ${s}`);
      }
    }
  });
});
