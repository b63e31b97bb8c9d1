// The Gram's WebAssembly transposes against their index definitions, and every committed kernel against its .wat.
import assert from 'node:assert/strict';
import test from 'node:test';
import { HALF_SCAN_WASM } from '../../server/src/analysis/half-scan-wasm';
import { TRANSPOSE_WASM } from '../../server/src/runtime/transpose-wasm';
import { WasmScratch } from '../../server/src/runtime/transpose';
import { assemble, generatedSource, KERNELS } from '../../scripts/build-wasm';

const scratch = WasmScratch.create()!;

test('transpose: dst[c][r] = src[r][c] for shapes on and off the 4×4 tiles and the 128-row bands, padded rows untouched', () => {
  for (const [rows, cols, pad] of [[1, 1, 0], [3, 5, 0], [4, 4, 0], [7, 9, 0], [8, 3, 0], [130, 67, 0], [260, 12, 0], [5, 132, 0], [8, 8, 16], [131, 6, 5]]) {
    const stride = rows + pad;
    const [src, dst] = scratch.regions([rows * cols, stride * cols])!;
    for (let i = 0; i < src.length; i++) src[i] = i + 0.5;
    dst.fill(-1);
    scratch.transpose(src, dst, rows, cols, stride);
    for (let c = 0; c < cols; c++) for (let r = 0; r < stride; r++) {
      const want = r < rows ? r * cols + c + 0.5 : -1;
      if (dst[c * stride + r] !== want) assert.fail(`${rows}×${cols} stride ${stride}: dst[${c}][${r}] = ${dst[c * stride + r]}, want ${want}`);
    }
  }
});

test('mirror: the lower triangle becomes the upper one transposed; the diagonal and upper triangle stay', () => {
  for (const d of [1, 2, 3, 4, 5, 8, 13, 131, 260]) {
    const [m] = scratch.regions([d * d])!;
    for (let i = 0; i < m.length; i++) m[i] = i;
    scratch.mirror(m, d);
    for (let r = 0; r < d; r++) for (let c = 0; c < d; c++) {
      const want = c >= r ? r * d + c : c * d + r;
      if (m[r * d + c] !== want) assert.fail(`d = ${d}: m[${r}][${c}] = ${m[r * d + c]}, want ${want}`);
    }
  }
});

test('regions: consecutive, 16-byte aligned; more room replaces the memory without detaching the old one', () => {
  const [a, b, c] = scratch.regions([3, 5, 100_000])!;
  assert.deepEqual([a.byteOffset, b.byteOffset, c.byteOffset], [0, 16, 48]);
  assert.ok(c.buffer.byteLength >= 48 + 400_000);
  c[99_999] = 7;
  const [big, dst] = scratch.regions([4_000_000, 4])!;
  // The old views still read their memory (a grown memory would have detached them: length 0).
  assert.equal(c.length, 100_000);
  assert.equal(c[99_999], 7);
  assert.notEqual(big.buffer, c.buffer);
  assert.throws(() => scratch.transpose(c, dst, 2, 2), /memory since replaced/);
  assert.equal(scratch.regions([2 ** 29 + 1]), undefined);
});

test('the committed modules are the assembled .wat files (run `npm run build:wasm` after editing one)', async () => {
  const committed: Record<string, string> = { HALF_SCAN_WASM, TRANSPOSE_WASM };
  assert.deepEqual(KERNELS.map((k) => k.name).sort(), Object.keys(committed).sort());
  for (const k of KERNELS) {
    const bytes = await assemble(k.wat);
    assert.equal(committed[k.name], bytes.toString('base64'), k.wat);
    assert.ok(generatedSource(k.wat, k.name, bytes).includes(committed[k.name]));
  }
});
