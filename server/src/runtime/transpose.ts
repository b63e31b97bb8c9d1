// Float32 transposes for the Gram kernel in WebAssembly SIMD (transpose.wat), on buffers inside the kernel's own
// memory. onnxruntime reads and writes such views directly, so the Gram's scratch lives there: Xᵀ for the Gemms,
// their output blocks, and the assembled symmetric matrix. Reused across calls, the scratch is already paged in
// (first touch of 64 MiB costs ~30 ms in page faults here). The wasm kernels do the whole 4×4 tiles, JS the edges.
import { TRANSPOSE_WASM } from './transpose-wasm';

type TransposeFn = (src: number, dst: number, rows: number, cols: number, stride: number) => void;
type MirrorFn = (m: number, d: number) => void;

/** Memory the scratch may grow to: wasm32 addresses 4 GiB, and this leaves room to spare in a worker. */
const MAX_BYTES = 2 ** 31;
const PAGE = 65536;

export class WasmScratch {
  private constructor(
    private readonly memory: WebAssembly.Memory,
    private readonly transposeFn: TransposeFn,
    private readonly mirrorFn: MirrorFn,
  ) {}

  /** A scratch for this thread; undefined where WebAssembly SIMD is unavailable. */
  static create(): WasmScratch | undefined {
    const bytes = Buffer.from(TRANSPOSE_WASM, 'base64');
    if (!WebAssembly.validate(bytes)) return undefined;
    const memory = new WebAssembly.Memory({ initial: 1 });
    const { exports } = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });
    return new WasmScratch(memory, exports.transpose as TransposeFn, exports.mirror as MirrorFn);
  }

  /**
   * Consecutive float32 regions of these lengths (16-byte aligned), or undefined when they need more than
   * MAX_BYTES. Growing the memory detaches earlier views: take all of one computation's regions in one call.
   */
  regions(lengths: readonly number[]): Float32Array[] | undefined {
    const offsets: number[] = [];
    let end = 0;
    for (const n of lengths) {
      offsets.push(end);
      end += Math.ceil((n * 4) / 16) * 16;
    }
    if (end > MAX_BYTES) return undefined;
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      try {
        this.memory.grow(Math.ceil((end - have) / PAGE));
      } catch {
        return undefined; // the address space or the host refused: the caller takes its JS path
      }
    }
    return lengths.map((n, i) => new Float32Array(this.memory.buffer, offsets[i], n));
  }

  /**
   * dst [cols, stride] = srcᵀ for src [rows, cols], in the first `rows` entries of each dst row (stride ≥ rows);
   * both are views from `regions` and do not overlap.
   */
  transpose(src: Float32Array, dst: Float32Array, rows: number, cols: number, stride = rows): void {
    this.transposeFn(src.byteOffset, dst.byteOffset, rows, cols, stride);
    const r4 = rows & ~3;
    const c4 = cols & ~3;
    for (let r = r4; r < rows; r++) for (let c = 0; c < cols; c++) dst[c * stride + r] = src[r * cols + c];
    for (let c = c4; c < cols; c++) for (let r = 0; r < r4; r++) dst[c * stride + r] = src[r * cols + c];
  }

  /** Copies the upper triangle of the d×d matrix m (a view from `regions`) onto the lower one. */
  mirror(m: Float32Array, d: number): void {
    this.mirrorFn(m.byteOffset, d);
    const d4 = d & ~3;
    // lower halves of the diagonal 4×4 tiles, then whole rows past the last full tile
    for (let t = 0; t < d4; t += 4) {
      for (let r = t + 1; r < t + 4; r++) for (let c = t; c < r; c++) m[r * d + c] = m[c * d + r];
    }
    for (let r = d4; r < d; r++) for (let c = 0; c < r; c++) m[r * d + c] = m[c * d + r];
  }
}
