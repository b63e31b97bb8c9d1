// Compute kernels as onnxruntime graphs: matmul and the Gram matrix XᵀX.
//
// Gram: one Gemm over all of X runs at ~60 GFLOP/s on 2 threads (X 4096×4096: 2.3 s). Exploiting symmetry
// is what pays. X is transposed once (MLAS, ~0.07 s); block row i of H is then one Gemm(transB) of the Xᵀ
// rows of block i against the Xᵀ rows from block i on, both zero-copy views of the transposed buffer, so
// 16 Gemms for blocks of 256 compute 53% of the flops. MLAS's transB path is faster here than its transA
// path: in an A/B run this beat the earlier 136 square X_iᵀX_j Gemms by ~4% (1.33 s vs 1.41 s).
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

/** A Float32Array whose every element the caller overwrites: skips zero-filling (~15 ms per 64 MiB). */
function uninitialized(length: number): Float32Array {
  return new Float32Array(Buffer.allocUnsafeSlow(length * 4).buffer, 0, length);
}

/** Xᵀ [d, n] from X [n, d]: MLAS's multithreaded transpose (~0.07 s for 4096², twice a tiled JS loop). */
function transposeGraph(d: number): Uint8Array {
  const g = new GraphBuilder('transpose');
  g.input('X', 'float32', ['n', d]);
  g.node('Transpose', ['X'], ['XT'], { perm: [1, 0] });
  g.output('XT', 'float32', [d, 'n']);
  return g.build();
}

/** Block row i: Gemm(A_i, B_i, transB) with A_i = Xᵀ rows of block i, B_i = Xᵀ rows start[i]…d−1 (both views). */
function gramGraph(layout: GramLayout): Uint8Array {
  const g = new GraphBuilder('gram');
  layout.size.forEach((rows, i) => {
    const cols = layout.d - layout.start[i];
    g.input(`A${i}`, 'float32', [rows, 'n']);
    g.input(`B${i}`, 'float32', [cols, 'n']);
    g.node('Gemm', [`A${i}`, `B${i}`], [`H${i}`], { transB: 1 });
    g.output(`H${i}`, 'float32', [rows, cols]);
  });
  return g.build();
}

/** The block rows of one Gram computation, float32 as onnxruntime returned them. */
export interface GramBlocks {
  layout: GramLayout;
  /** Block row i: row-major size[i] × (d − start[i]), rows start[i]… and columns start[i]…d−1 of XᵀX. */
  blocks: Float32Array[];
}

/** XᵀX for X [n, d] by onnxruntime: only the block rows on and above the diagonal (n = 0 gives none). */
export async function gramBlocks(x: Float32Array, n: number, layout: GramLayout, opts: KernelOptions = {}): Promise<GramBlocks> {
  const d = layout.d;
  checkShape('X', x, n, d, opts.where ?? HERE);
  if (n === 0) return { layout, blocks: [] };
  const transpose = await cachedSession(`transpose:d=${d}`, () => transposeGraph(d), opts);
  const xt = uninitialized(n * d);
  await transpose.session.run({ X: new ort.Tensor('float32', x, [n, d]) }, { XT: new ort.Tensor('float32', xt, [d, n]) });
  const { session } = await cachedSession(`gram:d=${d}:blocks=${layout.size.join(',')}`, () => gramGraph(layout), opts);
  const feed: Record<string, ort.Tensor> = {};
  layout.size.forEach((rows, i) => {
    const at = layout.start[i] * n;
    feed[`A${i}`] = new ort.Tensor('float32', xt.subarray(at, at + rows * n), [rows, n]);
    feed[`B${i}`] = new ort.Tensor('float32', xt.subarray(at), [d - layout.start[i], n]);
  });
  // Outputs written by onnxruntime straight into JS memory (no copy out of its own buffers).
  const blocks = layout.size.map((rows, i) => uninitialized(rows * (d - layout.start[i])));
  const fetches: Record<string, ort.Tensor> = {};
  blocks.forEach((b, i) => (fetches[`H${i}`] = new ort.Tensor('float32', b, [layout.size[i], d - layout.start[i]])));
  await session.run(feed, fetches);
  return { layout, blocks };
}

/** target += the upper triangle (diagonal blocks in full) of XᵀX; call `mirrorUpper` once when done. */
export function addUpper(target: Float64Array, g: GramBlocks): void {
  const { d, start, size } = g.layout;
  g.blocks.forEach((blk, i) => {
    const r0 = start[i];
    const cols = d - r0;
    for (let r = 0; r < size[i]; r++) {
      const dst = (r0 + r) * d + r0;
      const src = r * cols;
      for (let c = 0; c < cols; c++) target[dst + c] += blk[src + c];
    }
  });
}

/** target = XᵀX in full: each block row written in place and, right of its diagonal square, transposed below it (64×64 tiles). */
export function writeSymmetric(target: Float32Array, g: GramBlocks): void {
  const { d, start, size } = g.layout;
  const T = 64;
  g.blocks.forEach((blk, i) => {
    const r0 = start[i];
    const rows = size[i];
    const cols = d - r0;
    for (let r = 0; r < rows; r++) target.set(blk.subarray(r * cols, (r + 1) * cols), (r0 + r) * d + r0);
    for (let cc = rows; cc < cols; cc += T) {
      const c1 = Math.min(cc + T, cols);
      for (let rr = 0; rr < rows; rr += T) {
        const r1 = Math.min(rr + T, rows);
        for (let c = cc; c < c1; c++) {
          const dst = (r0 + c) * d + r0;
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
  const h = n === 0 ? new Float32Array(d * d) : uninitialized(d * d);
  writeSymmetric(h, g);
  return h;
}
