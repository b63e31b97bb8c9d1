// Compute kernels as onnxruntime graphs: matmul and the Gram matrix XᵀX.
//
// Gram: one Gemm over all of X runs at ~60 GFLOP/s on 2 threads (X 4096×4096: 2.3 s). Exploiting symmetry
// is what pays. X is transposed once into the thread's WebAssembly scratch (transpose.ts, ~30 ms), each row of
// Xᵀ padded against cache-set aliasing; the Gemms (transB) then read zero-copy views of it: a block of rows against
// the columns from its middle on, with the diagonal square left over split again (gramLayout), 48 Gemms for
// 51.2 % of the flops. MLAS's transB path is faster here than its transA path, and wide row blocks of 256 beat
// square blocks (1.11 s vs 1.21 s). H is assembled in the scratch and mirrored there by the SIMD kernel.
import * as ort from 'onnxruntime-node';
import { QuantLensError, type Location } from '../formats/errors';
import { GraphBuilder } from './graph';
import { cachedSession, type SessionOptions } from './session';
import { WasmScratch } from './transpose';

export interface KernelOptions extends SessionOptions {
  /** Where the data came from, for error messages. */
  where?: Location;
}

const HERE: Location = { file: '<kernel input>' };

function checkShape(name: string, data: Float32Array, rows: number, cols: number, where: Location): void {
  if (!(Number.isSafeInteger(rows) && rows >= 0 && Number.isSafeInteger(cols) && cols >= 1)) {
    throw new QuantLensError('bad-shape', `${name}: shape must be non-negative integers, found [${rows}, ${cols}]`, where);
  }
  if (data.length !== rows * cols) {
    throw new QuantLensError('bad-shape', `${name}: expected ${rows}×${cols} = ${rows * cols} values, found ${data.length}`, where);
  }
}

/** C = A·B for A [m, k] and B [k, n], float32 row-major. */
export async function matmul(a: Float32Array, [m, k]: readonly [number, number], b: Float32Array, [k2, n]: readonly [number, number], opts: KernelOptions = {}): Promise<Float32Array> {
  const where = opts.where ?? HERE;
  checkShape('A', a, m, k, where);
  checkShape('B', b, k2, n, where);
  if (k !== k2) throw new QuantLensError('bad-shape', `matmul: inner dimensions differ (A has ${k} columns, B has ${k2} rows)`, where);
  const { session } = await cachedSession('matmul', () => {
    const g = new GraphBuilder('matmul');
    g.input('A', 'float32', ['m', 'k']);
    g.input('B', 'float32', ['k', 'n']);
    g.node('MatMul', ['A', 'B'], ['C']);
    g.output('C', 'float32', ['m', 'n']);
    return g.build();
  }, opts);
  const out = await session.run({ A: new ort.Tensor('float32', a, [m, k]), B: new ort.Tensor('float32', b, [k, n]) });
  return out.C.data as Float32Array;
}

/** One Gemm of a Gram computation: rows row…row+rows−1 and columns col…col+cols−1 of XᵀX. */
export interface GramRect {
  row: number;
  rows: number;
  col: number;
  cols: number;
}

/** The Gemms of a Gram computation: together they cover every entry on and above the diagonal once. */
export interface GramLayout {
  d: number;
  rects: GramRect[];
}

/** Largest Gram dimension accepted: a 32768² float64 matrix is already 8 GiB. */
export const MAX_GRAM_DIM = 32768;

/** Diagonal squares up to this size are computed whole; larger ones are split (see gramLayout). */
const SQUARE = 64;

/**
 * Splits d into near-equal row blocks of at most `blockSize` (default 256). Block [s, s+m) is one Gemm of its rows
 * against the columns from its middle on, [s + ⌊m/2⌋, d); the square left of that, [s, s + ⌊m/2⌋)², is split the
 * same way until it is at most 64 wide. That halves and quarters the diagonal waste of whole 256² squares (6 % of
 * the flops at d = 4096) for ~3.5 % less Gemm time; smaller row blocks instead lose as much to packing as they save.
 */
export function gramLayout(d: number, blockSize = 256, where: Location = HERE): GramLayout {
  if (!(Number.isSafeInteger(d) && d >= 1 && d <= MAX_GRAM_DIM)) {
    throw new QuantLensError('bad-shape', `Gram dimension must be an integer in 1..${MAX_GRAM_DIM}, found ${d}`, where);
  }
  if (!(Number.isSafeInteger(blockSize) && blockSize >= 1)) throw new QuantLensError('bad-shape', `Gram block size must be a positive integer, found ${blockSize}`, where);
  const count = Math.max(1, Math.ceil(d / blockSize));
  const base = Math.floor(d / count);
  const rects: GramRect[] = [];
  // rows [s, s+m) against columns [s, end), end ≥ s + m
  const cover = (s: number, m: number, end: number): void => {
    const h = m > SQUARE ? Math.floor(m / 2) : 0;
    rects.push({ row: s, rows: m, col: s + h, cols: end - s - h });
    if (h > 0) cover(s, h, s + h);
  };
  for (let i = 0, s = 0; i < count; i++) {
    const m = base + (i < d % count ? 1 : 0);
    cover(s, m, d);
    s += m;
  }
  return { d, rects };
}

/** A Float32Array whose every element the caller overwrites: skips zero-filling (~15 ms per 64 MiB). */
function uninitialized(length: number): Float32Array {
  return new Float32Array(Buffer.allocUnsafeSlow(length * 4).buffer, 0, length);
}

/** Xᵀ [d, n] from X [n, d] by onnxruntime, for when the WebAssembly scratch is unavailable. */
function transposeGraph(d: number): Uint8Array {
  const g = new GraphBuilder('transpose');
  g.input('X', 'float32', ['n', d]);
  g.node('Transpose', ['X'], ['XT'], { perm: [1, 0] });
  g.output('XT', 'float32', [d, 'n']);
  return g.build();
}

/** Gemm i: Gemm(A_i, B_i, transB) with A_i, B_i the Xᵀ rows of rect i's rows and columns (views). */
function gramGraph(layout: GramLayout): Uint8Array {
  const g = new GraphBuilder('gram');
  layout.rects.forEach(({ rows, cols }, i) => {
    g.input(`A${i}`, 'float32', [rows, 'n']);
    g.input(`B${i}`, 'float32', [cols, 'n']);
    g.node('Gemm', [`A${i}`, `B${i}`], [`H${i}`], { transB: 1 });
    g.output(`H${i}`, 'float32', [rows, cols]);
  });
  return g.build();
}

/** The Gemm outputs of one Gram computation, float32 as onnxruntime returned them. */
export interface GramBlocks {
  layout: GramLayout;
  /** blocks[i]: rect i of XᵀX, row-major [rows, cols]. */
  blocks: Float32Array[];
}

/** Floats in all Gemm outputs of a layout. */
const blockFloats = (layout: GramLayout) => layout.rects.reduce((s, r) => s + r.rows * r.cols, 0);

/**
 * Row length of Xᵀ in the scratch: zero padding after n columns when n is a multiple of 128. MLAS reads the Gemm's
 * A rows in place; 16 KiB apart (n = 4096) they share cache sets, and 16 zeros that move each row by one 64-byte
 * line made the Gemms ~3 % faster (1.09 → 1.06 s at 4096²). Zeros add nothing to a dot product.
 */
const paddedLength = (n: number) => (n % 128 === 0 ? n + 16 : n);

/** The thread's Gram scratch (null: not made yet; undefined: off), lent to one computation at a time: each awaits onnxruntime. */
let scratch: WasmScratch | undefined | null = null;
let scratchQueue: Promise<unknown> = Promise.resolve();

function withScratch<T>(task: (s: WasmScratch | undefined) => Promise<T>): Promise<T> {
  const run = scratchQueue.then(() => task(scratch === null ? (scratch = WasmScratch.create()) : scratch));
  scratchQueue = run.catch(() => undefined);
  return run;
}

/**
 * Drops the thread's Gram scratch (its memory goes with the next GC). With `enabled` false, later Grams take
 * onnxruntime's Transpose and JS copies instead — the path of hosts without WebAssembly SIMD; for tests.
 */
export function resetGramScratch(enabled = true): void {
  scratch = enabled ? null : undefined;
}

/** Where a computation that wants H in full may assemble it: a free d×d region of the scratch. */
interface Assembly {
  scratch: WasmScratch;
  h: Float32Array;
}

/**
 * Runs the layout's Gemms and hands their outputs to `use` while they are valid (they may live in the shared
 * scratch). With `full`, `use` also gets a free d×d scratch region to assemble H in, when the scratch is there.
 */
async function withGramBlocks<T>(x: Float32Array, n: number, layout: GramLayout, opts: KernelOptions, full: boolean, use: (g: GramBlocks, spare?: Assembly) => T): Promise<T> {
  const d = layout.d;
  checkShape('X', x, n, d, opts.where ?? HERE);
  if (n === 0) return use({ layout, blocks: [] });
  const key = layout.rects.map((r) => `${r.row}+${r.rows}x${r.col}+${r.cols}`).join(',');
  const { session } = await cachedSession(`gram:d=${d}:${key}`, () => gramGraph(layout), opts);
  return withScratch(async (s) => {
    // Two regions: X's copy, whose space the Gemm outputs take once it is transposed; Xᵀ, whose space H may take.
    const k = paddedLength(n);
    const regions = s?.regions([Math.max(n * d, blockFloats(layout)), Math.max(d * k, full ? d * d : 0)]);
    const wasm = s !== undefined && regions !== undefined ? { s, copy: regions[0], free: regions[1] } : undefined;
    let xt: Float32Array;
    let out: Float32Array;
    let stride = n;
    if (wasm !== undefined) {
      wasm.copy.set(x);
      stride = k;
      xt = wasm.free.subarray(0, d * k);
      wasm.s.transpose(wasm.copy, xt, n, d, k);
      if (k > n) for (let r = 0; r < d; r++) xt.fill(0, r * k + n, (r + 1) * k);
      out = wasm.copy;
    } else {
      const transpose = await cachedSession(`transpose:d=${d}`, () => transposeGraph(d), opts);
      xt = uninitialized(n * d);
      await transpose.session.run({ X: new ort.Tensor('float32', x, [n, d]) }, { XT: new ort.Tensor('float32', xt, [d, n]) });
      out = uninitialized(blockFloats(layout));
    }
    const feed: Record<string, ort.Tensor> = {};
    const fetches: Record<string, ort.Tensor> = {};
    const blocks: Float32Array[] = [];
    let at = 0;
    layout.rects.forEach(({ row, rows, col, cols }, i) => {
      feed[`A${i}`] = new ort.Tensor('float32', xt.subarray(row * stride, (row + rows) * stride), [rows, stride]);
      feed[`B${i}`] = new ort.Tensor('float32', xt.subarray(col * stride, (col + cols) * stride), [cols, stride]);
      // Outputs written by onnxruntime straight into this memory (no copy out of its own buffers).
      blocks.push(out.subarray(at, at + rows * cols));
      fetches[`H${i}`] = new ort.Tensor('float32', blocks[i], [rows, cols]);
      at += rows * cols;
    });
    await session.run(feed, fetches);
    return use({ layout, blocks }, wasm !== undefined && full ? { scratch: wasm.s, h: wasm.free.subarray(0, d * d) } : undefined);
  });
}

/** Hands the Gemm outputs of XᵀX for X [n, d] to `use`, which must not keep them: they may live in shared scratch. */
export function gramBlocks<T>(x: Float32Array, n: number, layout: GramLayout, opts: KernelOptions, use: (g: GramBlocks) => T): Promise<T> {
  return withGramBlocks(x, n, layout, opts, false, use);
}

/** target += the Gemm outputs at their places (the upper triangle, some entries below it); then `mirrorUpper` once. */
export function addUpper(target: Float64Array, g: GramBlocks): void {
  const d = g.layout.d;
  g.blocks.forEach((blk, i) => {
    const { row, rows, col, cols } = g.layout.rects[i];
    for (let r = 0; r < rows; r++) {
      const dst = (row + r) * d + col;
      const src = r * cols;
      for (let c = 0; c < cols; c++) target[dst + c] += blk[src + c];
    }
  });
}

/** target = the Gemm outputs at their places (the upper triangle, some entries below it), row by row. */
function placeUpper(target: Float32Array, g: GramBlocks): void {
  const d = g.layout.d;
  g.blocks.forEach((blk, i) => {
    const { row, rows, col, cols } = g.layout.rects[i];
    for (let r = 0; r < rows; r++) target.set(blk.subarray(r * cols, (r + 1) * cols), (row + r) * d + col);
  });
}

/** Copies the upper triangle of a d×d row-major matrix onto the lower one (exact symmetry), in 64×64 tiles for the cache. */
export function mirrorUpper(m: Float64Array | Float32Array, d: number): void {
  const T = 64;
  for (let r0 = 0; r0 < d; r0 += T) {
    for (let c0 = 0; c0 <= r0; c0 += T) {
      const r1 = Math.min(r0 + T, d);
      for (let r = r0; r < r1; r++) {
        const c1 = Math.min(c0 + T, r);
        for (let c = c0; c < c1; c++) m[r * d + c] = m[c * d + r];
      }
    }
  }
}

/**
 * XᵀX [d, d] for X [n, d], exactly symmetric, in float32 — the precision onnxruntime summed it in.
 * For float64 sums over many batches use GramAccumulator.
 */
export async function gram(x: Float32Array, n: number, d: number, opts: KernelOptions & { blockSize?: number } = {}): Promise<Float32Array> {
  return withGramBlocks(x, n, gramLayout(d, opts.blockSize, opts.where), opts, true, (g, spare) => {
    if (n === 0) return new Float32Array(d * d);
    const h = uninitialized(d * d);
    if (spare === undefined) {
      placeUpper(h, g);
      mirrorUpper(h, d);
    } else {
      // Assembled in the scratch, which is paged in already and where the SIMD mirror runs, then copied out.
      placeUpper(spare.h, g);
      spare.scratch.mirror(spare.h, d);
      h.set(spare.h);
    }
    return h;
  });
}
