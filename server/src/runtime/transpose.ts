// Float32 transposes for the Gram kernel in WebAssembly SIMD (transpose.wat), on buffers inside the kernel's own
// memory. onnxruntime reads and writes such views directly, so the Gram's scratch lives there: Xᵀ for the Gemms,
// their output blocks, and the assembled symmetric matrix. Reused across calls, the scratch is already paged in
// (first touch of 64 MiB costs ~30 ms in page faults here). The wasm kernels do the whole 4×4 tiles, JS the edges.
import { WasmKernel } from '../wasm-kernel';
import { TRANSPOSE_WASM } from './transpose-wasm';

interface Exports {
  transpose(src: number, dst: number, rows: number, cols: number, stride: number): void;
  mirror(m: number, d: number): void;
}

/** Memory the scratch may take: wasm32 addresses 4 GiB, and this leaves room to spare in a worker. */
const MAX_BYTES = 2 ** 31;

export class WasmScratch {
  private constructor(private readonly kernel: WasmKernel<Exports>) {}

  /** A scratch for this thread; undefined where WebAssembly SIMD is unavailable. */
  static create(): WasmScratch | undefined {
    const kernel = WasmKernel.create<Exports>(TRANSPOSE_WASM);
    return kernel && new WasmScratch(kernel);
  }

  /**
   * Consecutive float32 regions of these lengths (16-byte aligned), or undefined when they need more than
   * MAX_BYTES or the host refuses. Views from an earlier call may be on a replaced memory: take all of one
   * computation's regions in one call.
   */
  regions(lengths: readonly number[]): Float32Array[] | undefined {
    const offsets: number[] = [];
    let end = 0;
    for (const n of lengths) {
      offsets.push(end);
      end += Math.ceil((n * 4) / 16) * 16;
    }
    if (end > MAX_BYTES || !this.kernel.reserve(end)) return undefined;
    return lengths.map((n, i) => new Float32Array(this.kernel.buffer, offsets[i], n));
  }

  /**
   * dst [cols, stride] = srcᵀ for src [rows, cols], in the first `rows` entries of each dst row (stride ≥ rows);
   * both are views from the latest `regions` and do not overlap.
   */
  transpose(src: Float32Array, dst: Float32Array, rows: number, cols: number, stride = rows): void {
    this.check(src, dst);
    this.kernel.exports.transpose(src.byteOffset, dst.byteOffset, rows, cols, stride);
    const r4 = rows & ~3;
    const c4 = cols & ~3;
    for (let r = r4; r < rows; r++) for (let c = 0; c < cols; c++) dst[c * stride + r] = src[r * cols + c];
    for (let c = c4; c < cols; c++) for (let r = 0; r < r4; r++) dst[c * stride + r] = src[r * cols + c];
  }

  /** Copies the upper triangle of the d×d matrix m (a view from the latest `regions`) onto the lower one. */
  mirror(m: Float32Array, d: number): void {
    this.check(m);
    this.kernel.exports.mirror(m.byteOffset, d);
    const d4 = d & ~3;
    // lower halves of the diagonal 4×4 tiles, then whole rows past the last full tile
    for (let t = 0; t < d4; t += 4) {
      for (let r = t + 1; r < t + 4; r++) for (let c = t; c < r; c++) m[r * d + c] = m[c * d + r];
    }
    for (let r = d4; r < d; r++) for (let c = 0; c < r; c++) m[r * d + c] = m[c * d + r];
  }

  /** The kernels address the current memory only. */
  private check(...views: Float32Array[]): void {
    if (views.some((v) => v.buffer !== this.kernel.buffer)) throw new Error('WasmScratch: a view of a memory since replaced');
  }
}
