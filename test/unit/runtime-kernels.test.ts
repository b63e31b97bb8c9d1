import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { randn } from '../fixtures/common';
import { QuantLensError } from '../../server/src/formats/errors';
import { gram, gramLayout, matmul, mirrorUpper, resetGramScratch } from '../../server/src/runtime/kernels';
import { GramAccumulator } from '../../server/src/runtime/gram';
import { releaseSessions } from '../../server/src/runtime/session';

after(() => {
  resetGramScratch();
  return releaseSessions();
});

const cpu = { providers: ['cpu'] };

/** Σ_k A[i,k]·B[k,j] in float64 over the float32 inputs: the independent reference. */
function matmulRef(a: Float32Array, m: number, k: number, b: Float32Array, n: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    let s = 0;
    for (let t = 0; t < k; t++) s += a[i * k + t] * b[t * n + j];
    c[i * n + j] = s;
  }
  return c;
}

function gramRef(x: Float32Array, n: number, d: number): Float64Array {
  const h = new Float64Array(d * d);
  for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) {
    let s = 0;
    for (let r = 0; r < n; r++) s += x[r * d + a] * x[r * d + b];
    h[a * d + b] = s;
  }
  return h;
}

/** max |got − want| / max |want|. */
function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  assert.equal(got.length, want.length);
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    num = Math.max(num, Math.abs(got[i] - want[i]));
    den = Math.max(den, Math.abs(want[i]));
  }
  return num / den;
}

test('matmul matches a float64 reference', async () => {
  const [m, k, n] = [7, 33, 5];
  const a = randn(m * k, 11, 1);
  const b = randn(k * n, 12, 1);
  const c = await matmul(a, [m, k], b, [k, n], cpu);
  assert.equal(c.length, m * n);
  assert.ok(relErr(c, matmulRef(a, m, k, b, n)) < 1e-6);
  await assert.rejects(matmul(a, [m, k], b, [k + 1, n - 1], cpu), (e: unknown) => e instanceof QuantLensError && /B: expected 34×4 = 136 values, found 165/.test(e.message));
  await assert.rejects(matmul(a, [m, k], a, [m, k], cpu), /inner dimensions differ \(A has 33 columns, B has 7 rows\)/);
});

for (const wasm of [true, false]) {
  const path = wasm ? 'WebAssembly transposes' : "onnxruntime's Transpose and JS copies";
  test(`gram (${path}): XᵀX from symmetric column blocks (uneven) equals the float64 reference and is exactly symmetric`, async () => {
    resetGramScratch(wasm);
    const [n, d] = [50, 23];
    const x = randn(n * d, 21, 1);
    assert.deepEqual(gramLayout(d, 8).rects, [{ row: 0, rows: 8, col: 0, cols: 23 }, { row: 8, rows: 8, col: 8, cols: 15 }, { row: 16, rows: 7, col: 16, cols: 7 }]);
    for (const blockSize of [8, 5, 512]) {
      const h = await gram(x, n, d, { ...cpu, blockSize });
      assert.ok(relErr(h, gramRef(x, n, d)) < 1e-6, `blockSize ${blockSize}`);
      for (let a = 0; a < d; a++) for (let b = 0; b < a; b++) assert.equal(h[a * d + b], h[b * d + a]);
    }
    // Blocks wider than the 64×64 transposition tiles (75 + 75 columns), rows past a 128-row band.
    const wide = randn(131 * 150, 22, 1);
    const hw = await gram(wide, 131, 150, { ...cpu, blockSize: 100 });
    assert.ok(relErr(hw, gramRef(wide, 131, 150)) < 1e-6);
    for (let a = 0; a < 150; a++) for (let b = 0; b < a; b++) assert.equal(hw[a * 150 + b], hw[b * 150 + a]);
    // n a multiple of 128: Xᵀ rows padded with zeros in the scratch. A zero column must give exact zeros.
    const tall = randn(256 * 37, 23, 1);
    for (let r = 0; r < 256; r++) tall[r * 37 + 5] = 0;
    const ht = await gram(tall, 256, 37, { ...cpu, blockSize: 16 });
    assert.ok(relErr(ht, gramRef(tall, 256, 37)) < 1e-6);
    for (let c = 0; c < 37; c++) assert.ok(ht[5 * 37 + c] === 0 && ht[c * 37 + 5] === 0, `H[5][${c}] = ${ht[5 * 37 + c]}`);
    // A view into a larger buffer (non-zero byteOffset) is read from its own start: [[1,2],[3,4]]ᵀ[[1,2],[3,4]] by hand.
    const view = new Float32Array([9, 9, 9, 1, 2, 3, 4]).subarray(3);
    assert.deepEqual([...(await gram(view, 2, 2, cpu))], [10, 14, 14, 20]);
    assert.deepEqual([...(await matmul(view, [2, 2], view, [2, 2], cpu))], [7, 10, 15, 22]);
    assert.deepEqual([...(await gram(new Float32Array(0), 0, 2, cpu))], [0, 0, 0, 0]);
    resetGramScratch();
  });
}

test("gram: concurrent calls share the thread's scratch one at a time, each with its own result", async () => {
  const shapes: [number, number][] = [[40, 36], [7, 9], [64, 36], [33, 70]];
  const xs = shapes.map(([n, d], i) => randn(n * d, 50 + i, 1));
  const hs = await Promise.all(shapes.map(([n, d], i) => gram(xs[i], n, d, { ...cpu, blockSize: 16 })));
  shapes.forEach(([n, d], i) => assert.ok(relErr(hs[i], gramRef(xs[i], n, d)) < 1e-6, `call ${i}`));
});

test('gramLayout: blocks wider than 64 split their diagonal square; every entry on or above the diagonal is covered once', () => {
  // d = 300 in two blocks of 150: 150 rows from column 75 on, then 75 rows from 37 to 75, then the 37² square.
  assert.deepEqual(gramLayout(300).rects, [
    { row: 0, rows: 150, col: 75, cols: 225 }, { row: 0, rows: 75, col: 37, cols: 38 }, { row: 0, rows: 37, col: 0, cols: 37 },
    { row: 150, rows: 150, col: 225, cols: 75 }, { row: 150, rows: 75, col: 187, cols: 38 }, { row: 150, rows: 37, col: 150, cols: 37 },
  ]);
  for (const [d, bs] of [[300, 256], [1000, 256], [257, 100], [4096, 256], [65, 65], [7, 3]]) {
    const hits = new Uint8Array(d * d);
    for (const { row, rows, col, cols } of gramLayout(d, bs).rects) {
      for (let r = row; r < row + rows; r++) for (let c = col; c < col + cols; c++) hits[r * d + c]++;
    }
    for (let r = 0; r < d; r++) for (let c = r; c < d; c++) if (hits[r * d + c] !== 1) assert.fail(`d ${d}, block ${bs}: H[${r}][${c}] computed ${hits[r * d + c]} times`);
  }
});

test('mirrorUpper copies every entry above the diagonal to its transpose (several 64×64 tiles)', () => {
  const d = 150;
  const m = new Float64Array(d * d).map((_, i) => i);
  mirrorUpper(m, d);
  for (let r = 0; r < d; r++) for (let c = 0; c < d; c++) assert.equal(m[r * d + c], c <= r ? c * d + r : r * d + c);
});

test('GramAccumulator over 3 uneven batches = (2/N) XᵀX within 1e-5 relative', async () => {
  const d = 19;
  const rows = [7, 30, 4];
  const n = rows.reduce((s, r) => s + r, 0);
  const x = randn(n * d, 31, 1);
  // Planted structure: one large-scale column, one constant column, so the diagonal spans decades.
  for (let r = 0; r < n; r++) {
    x[r * d + 3] *= 100;
    x[r * d + 5] = 0.25;
  }
  const ref = gramRef(x, n, d).map((v) => (2 / n) * v);
  // chunkRows 16 makes the batches straddle chunk boundaries (7 | 9+16+5 | 4 → chunks of 16, 16, 9 rows).
  const acc = new GramAccumulator(d, { ...cpu, chunkRows: 16, blockSize: 8 });
  let at = 0;
  for (const r of rows) {
    await acc.add(x.subarray(at * d, (at + r) * d));
    at += r;
  }
  const { H, n: count } = await acc.result();
  assert.equal(count, n);
  assert.ok(relErr(H, ref) < 1e-5, `relative error ${relErr(H, ref)}`);
  for (let a = 0; a < d; a++) assert.ok(Math.abs(H[a * d + a] - ref[a * d + a]) <= 1e-5 * ref[a * d + a], `diag ${a}`);
  assert.equal(H[5 * d + 5], 2 * 0.0625); // constant column: (2/N)·N·0.25², exact in float32 and float64
});

test('H depends only on the row sequence: batching, result() mid-stream and thread count change no bit', async () => {
  const d = 12;
  const n = 90;
  const x = randn(n * d, 41, 1);
  async function run(cuts: number[], threads: number, peek: boolean): Promise<Float64Array> {
    const acc = new GramAccumulator(d, { providers: ['cpu'], threads, chunkRows: 32 });
    let at = 0;
    for (const c of [...cuts, n]) {
      void acc.add(x.subarray(at * d, c * d)); // not awaited: the accumulator serializes its work
      if (peek) await acc.result();
      at = c;
    }
    return (await acc.result()).H;
  }
  const base = await run([10, 50], 1, false);
  assert.deepEqual(await run([1, 2, 33, 64, 89], 2, true), base);
  assert.deepEqual(await run([], 2, false), base);
});

test('GramAccumulator rejects bad input with located errors', async () => {
  const where = { file: 'calib.jsonl', tensor: 'model.layers.0.mlp.down_proj' };
  const acc = new GramAccumulator(4, { ...cpu, where });
  await assert.rejects(acc.result(), /calib.jsonl \[model.layers.0.mlp.down_proj\]: no calibration rows/);
  await assert.rejects(acc.add(new Float32Array(6)), /batch of 6 values is not a whole number of rows of 4/);
  const bad = new Float32Array(8);
  bad[6] = NaN;
  await assert.rejects(acc.add(bad), /row 1 column 2 is NaN; expected finite activations/);
  assert.equal(acc.count, 0);
  assert.throws(() => new GramAccumulator(0), /Gram dimension must be an integer in 1\.\.32768, found 0/);
  assert.throws(() => new GramAccumulator(4, { chunkRows: 0 }), /chunkRows must be a positive integer/);
});
