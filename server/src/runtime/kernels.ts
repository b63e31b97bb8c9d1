// Compute kernels as onnxruntime graphs: matmul and the Gram matrix XᵀX.
//
// Gram: one Gemm(transA=1) and Transpose+MatMul run at the same speed here (X 4096×4096: 2.3 s either
// way on 2 threads, ~60 GFLOP/s). Exploiting symmetry is what pays: the columns of X are split into
// blocks of ~256 and only the blocks X_iᵀX_j with i ≤ j are computed (136 Gemms, 53% of the flops):
// ~1.03 s, against 1.08 s with blocks of 512 (36 Gemms, 56%) and 1.9 s with inter-op parallelism.
import * as ort from 'onnxruntime-node';
import { QuantLensError, type Location } from '../formats/errors';
import { GraphBuilder } from './graph';
import { cachedSession, type SessionOptions } from './session';

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

/** Column blocks of a Gram computation: block i covers columns start[i] … start[i] + size[i] − 1. */
export interface GramLayout {
  d: number;
  start: number[];
  size: number[];
}

/** Largest Gram dimension accepted: a 32768² float64 matrix is already 8 GiB. */
export const MAX_GRAM_DIM = 32768;

/** Splits d columns into near-equal blocks of at most `blockSize` (default 256). */
export function gramLayout(d: number, blockSize = 256, where: Location = HERE): GramLayout {
  if (!(Number.isSafeInteger(d) && d >= 1 && d <= MAX_GRAM_DIM)) {
    throw new QuantLensError('bad-shape', `Gram dimension must be an integer in 1..${MAX_GRAM_DIM}, found ${d}`, where);
  }
  if (!(Number.isSafeInteger(blockSize) && blockSize >= 1)) throw new QuantLensError('bad-shape', `Gram block size must be a positive integer, found ${blockSize}`, where);
  const count = Math.max(1, Math.ceil(d / blockSize));
  const base = Math.floor(d / count);
  const size = Array.from({ length: count }, (_, i) => base + (i < d % count ? 1 : 0));
  const start = size.map((_, i) => size.slice(0, i).reduce((s, x) => s + x, 0));
  return { d, start, size };
}

function gramGraph(layout: GramLayout): Uint8Array {
  const g = new GraphBuilder('gram');
  g.input('X', 'float32', ['n', layout.d]);
  const count = layout.size.length;
  const parts = count === 1 ? ['X'] : layout.size.map((_, i) => `X${i}`);
  if (count > 1) g.node('Split', ['X', g.int64s('split', layout.size)], parts, { axis: 1 });
  for (let i = 0; i < count; i++) {
    for (let j = i; j < count; j++) {
      g.node('Gemm', [parts[i], parts[j]], [`H${i}_${j}`], { transA: 1 });
      g.output(`H${i}_${j}`, 'float32', [layout.size[i], layout.size[j]]);
    }
  }
  return g.build();
}

/** The blocks X_iᵀX_j (i ≤ j) of one Gram computation, float32 as onnxruntime returned them. */
export interface GramBlocks {
  layout: GramLayout;
  /** Row-major size[i]×size[j] block for each i ≤ j, in the order i = 0…, j = i…. */
  blocks: Float32Array[];
}

/** XᵀX for X [n, d] by onnxruntime: only the blocks on and above the diagonal (n = 0 gives none). */
export async function gramBlocks(x: Float32Array, n: number, layout: GramLayout, opts: KernelOptions = {}): Promise<GramBlocks> {
  const d = layout.d;
  checkShape('X', x, n, d, opts.where ?? HERE);
  if (n === 0) return { layout, blocks: [] };
  const key = `gram:d=${d}:blocks=${layout.size.join(',')}`;
  const { session } = await cachedSession(key, () => gramGraph(layout), opts);
  const out = await session.run({ X: new ort.Tensor('float32', x, [n, d]) });
  const blocks: Float32Array[] = [];
  const count = layout.size.length;
  for (let i = 0; i < count; i++) for (let j = i; j < count; j++) blocks.push(out[`H${i}_${j}`].data as Float32Array);
  return { layout, blocks };
}

/**
 * Visits the blocks with their place in the d×d matrix; `visit(blk, rowStart, colStart, rows, cols)`.
 * Blocks strictly above the diagonal have rowStart < colStart.
 */
function eachBlock(g: GramBlocks, visit: (blk: Float32Array, r0: number, c0: number, rows: number, cols: number) => void): void {
  if (g.blocks.length === 0) return;
  const { start, size } = g.layout;
  let k = 0;
  for (let i = 0; i < size.length; i++) {
    for (let j = i; j < size.length; j++) visit(g.blocks[k++], start[i], start[j], size[i], size[j]);
  }
}

/** target += the upper triangle (diagonal blocks in full) of XᵀX; call `mirrorUpper` once when done. */
export function addUpper(target: Float64Array, g: GramBlocks): void {
  const d = g.layout.d;
  eachBlock(g, (blk, r0, c0, rows, cols) => {
    for (let r = 0; r < rows; r++) {
      const dst = (r0 + r) * d + c0;
      const src = r * cols;
      for (let c = 0; c < cols; c++) target[dst + c] += blk[src + c];
    }
  });
}

/** target = XᵀX in full: each block written in place and, above the diagonal, transposed below it (64×64 tiles). */
export function writeSymmetric(target: Float32Array, g: GramBlocks): void {
  const d = g.layout.d;
  const T = 64;
  eachBlock(g, (blk, r0, c0, rows, cols) => {
    for (let r = 0; r < rows; r++) target.set(blk.subarray(r * cols, (r + 1) * cols), (r0 + r) * d + c0);
    if (r0 === c0) return;
    for (let cc = 0; cc < cols; cc += T) {
      for (let rr = 0; rr < rows; rr += T) {
        const c1 = Math.min(cc + T, cols);
        const r1 = Math.min(rr + T, rows);
        for (let c = cc; c < c1; c++) {
          const dst = (c0 + c) * d + r0;
          for (let r = rr; r < r1; r++) target[dst + r] = blk[r * cols + c];
        }
      }
    }
  });
}

/** Copies the upper triangle of a d×d row-major matrix onto the lower one (exact symmetry), in 64×64 tiles for the cache. */
export function mirrorUpper(m: Float64Array, d: number): void {
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
  const g = await gramBlocks(x, n, gramLayout(d, opts.blockSize, opts.where), opts);
  const h = new Float32Array(d * d);
  writeSymmetric(h, g);
  return h;
}
