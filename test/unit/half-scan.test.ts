// The SIMD pre-pass kernel against the IEEE definitions of F16/BF16 (its committed bytes: wasm-kernels.test.ts).
import assert from 'node:assert/strict';
import test from 'node:test';
import { chainsGroups, HalfScanner } from '../../server/src/analysis/half-scan';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** |value| of a 16-bit pattern, straight from the format definitions. */
function magnitude(h: number, dtype: 'F16' | 'BF16'): number {
  if (dtype === 'BF16') {
    u32[0] = (h & 0x7fff) << 16;
    return f32[0];
  }
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  return e === 0 ? f * 2 ** -24 : (1 + f / 1024) * 2 ** (e - 15);
}

/** Random patterns of finite values; BF16 below 2^60, where float32 squares of sums stay finite. */
function patterns(n: number, seed: number, dtype: 'F16' | 'BF16'): Uint16Array {
  let s = seed;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
  const limit = dtype === 'F16' ? 0x7c00 : (127 + 60) << 7;
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = ((next() >>> 16) % limit) | (next() & 0x8000);
  // Zeros of both signs, the smallest subnormals, the largest values.
  out.set([0x0000, 0x8000, 0x0001, 0x8001, 0x03ff, limit - 1, 0x8000 | (limit - 1)], 5);
  return out;
}

test('half scan: block maxima by sign, row maxima, Σw² and group auxiliaries match the F16/BF16 definitions', () => {
  const scanner = HalfScanner.create();
  assert.ok(scanner, 'Node 20 has WebAssembly SIMD');
  for (const dtype of ['F16', 'BF16'] as const) {
    for (const [rows, cols, groups] of [[3, 16, [16]], [7, 48, [16, 32]], [40, 512, [16, 32, 64, 128, 512]], [5, 160, [32, 64]], [6, 96, [16, 128]], [4, 528, [16, 64, 256]]] as const) {
      const bits = patterns(rows * cols, rows * cols, dtype);
      bits.fill(0x8000, 16, 32); // a block of negative zeros: both maxima are the pattern 0
      const colMax = new Uint16Array(cols).fill(0x0400); // running maxima start from earlier rows
      const { pos: gotPos, neg: gotNeg, sums, rowMax, aux } = scanner.scan(bits, rows, cols, dtype, groups, colMax);
      for (let r = 0; r < rows; r++) {
        let sum = 0;
        let top = 0;
        for (let b = 0; b < cols / 16; b++) {
          let pos = 0;
          let neg = 0;
          for (let c = b * 16; c < b * 16 + 16; c++) {
            const h = bits[r * cols + c];
            sum += magnitude(h, dtype) ** 2;
            if (h & 0x8000) neg = Math.max(neg, h & 0x7fff);
            else pos = Math.max(pos, h);
          }
          const k = r * (cols / 16) + b;
          assert.deepEqual([gotPos[k], gotNeg[k]], [pos, neg], `${dtype} ${rows}×${cols} row ${r} block ${b}`);
          top = Math.max(top, pos, neg);
        }
        assert.equal(rowMax[r], top, `${dtype} row ${r} maximum`);
        assert.ok(Math.abs(sums[r] - sum) <= 1e-14 * sum, `${dtype} row ${r}: Σw² ${sums[r]} vs ${sum}`);
        groups.forEach((g, k) => {
          // Σ over groups of n·(max w − min w)² with the range widened to 0, and n·max|w|², from the values.
          let range = 0;
          let amax = 0;
          for (let c0 = 0; c0 < cols; c0 += g) {
            const vals = Array.from(bits.subarray(r * cols + c0, r * cols + Math.min(cols, c0 + g)), (h) => (h & 0x8000 ? -1 : 1) * magnitude(h, dtype));
            const [hi, lo] = [Math.max(0, ...vals), Math.min(0, ...vals)];
            range += vals.length * (hi - lo) ** 2;
            amax += vals.length * Math.max(hi, -lo) ** 2;
          }
          const [gotRange, gotAmax] = [aux[2 * (r * groups.length + k)], aux[2 * (r * groups.length + k) + 1]];
          // Summed in float32: ~1e-7 per addition.
          assert.ok(Math.abs(gotRange - range) <= 1e-5 * range, `${dtype} row ${r} g${g}: Σ n·range² ${gotRange} vs ${range}`);
          assert.ok(Math.abs(gotAmax - amax) <= 1e-5 * amax, `${dtype} row ${r} g${g}: Σ n·max|w|² ${gotAmax} vs ${amax}`);
        });
      }
      for (let c = 0; c < cols; c++) {
        let m = 0x0400;
        for (let r = 0; r < rows; r++) m = Math.max(m, bits[r * cols + c] & 0x7fff);
        assert.equal(colMax[c], m, `${dtype} column ${c} maximum`);
      }
    }
  }
});

test('half scan: auxiliaries are Inf, not wrong, for BF16 values beyond 2^64 (the caller then sums in float64)', () => {
  const bits = new Uint16Array(32).fill(0x3f80); // 1.0
  bits[3] = (127 + 70) << 7; // 2^70
  const { aux, sums } = HalfScanner.create()!.scan(bits, 1, 32, 'BF16', [16, 32]);
  assert.equal(sums[0], 31 + 2 ** 140, 'Σw² is summed in float64');
  assert.ok([...aux].some((x) => x === Infinity));
});

test('half scan: blocks read into buffers in the kernel memory are scanned in place, with the same results', () => {
  const scanner = HalfScanner.create()!;
  const [rows, cols, groups] = [12, 64, [16, 32, 64]];
  const bits = patterns(rows * cols, 7, 'F16');
  const copy = scanner.scan(bits, rows, cols, 'F16', groups);
  const expected = [copy.pos, copy.neg, copy.sums, copy.rowMax, copy.aux].map((a) => Array.from(a));
  const [a, b] = scanner.inputs(rows, cols, groups.length);
  assert.equal(a.buffer, b.buffer);
  for (const view of [a, b]) {
    view.set(bits);
    const got = scanner.scan(view, rows, cols, 'F16', groups);
    assert.deepEqual([got.pos, got.neg, got.sums, got.rowMax, got.aux].map((x) => Array.from(x)), expected);
    assert.deepEqual(Array.from(view), Array.from(bits), 'the input is left as it was');
  }
  // The other buffer is untouched by a scan of the first (a read may be filling it meanwhile).
  b.fill(0x1234);
  scanner.scan(a, rows, cols, 'F16', groups, new Uint16Array(cols));
  assert.ok(b.every((x) => x === 0x1234));
  assert.throws(() => scanner.scan(a, rows + 1, cols, 'F16', groups), /13×64 patterns expected, 768 given/);
});

test('half scan: group lengths 16·2^k or whole rows, increasing', () => {
  assert.ok(chainsGroups([16, 32, 128, 4096], 4096) && chainsGroups([32], 64) && chainsGroups([], 64) && chainsGroups([128, 4000], 4000));
  assert.ok(!chainsGroups([8], 64) && !chainsGroups([48], 96 * 4) && !chainsGroups([64, 32], 128) && !chainsGroups([128, 4000], 8000));
  assert.throws(() => HalfScanner.create()!.scan(new Uint16Array(64), 1, 64, 'F16', [32, 48]), /not 16·2\^k/);
});

test('half scan: rejects a row length that is not a multiple of 16', () => {
  assert.throws(() => HalfScanner.create()!.scan(new Uint16Array(20), 1, 20, 'F16', []), /cols % 16/);
});
