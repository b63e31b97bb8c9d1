// The sampled-mode pre-pass over stored F16/BF16 patterns as a WebAssembly SIMD kernel (half-scan.wat): ~22 ms per
// 4096×4096 tensor (~1.3 ns a weight) against ~100 ms for the same work in V8, where data-dependent maxima
// mispredict branches; in JS it was a third of a sampled run's time.
import { WasmKernel } from '../wasm-kernel';
import { HALF_SCAN_WASM } from './half-scan-wasm';

export interface HalfScan {
  /** Per block of 16, row-major: the largest magnitude pattern among the entries ≥ 0. */
  pos: Uint16Array;
  /** The same among the entries < 0. */
  neg: Uint16Array;
  /** Per row: Σ w². */
  sums: Float64Array;
  /** Per row: the largest magnitude pattern. */
  rowMax: Int32Array;
  /**
   * Per row and group length (in the order given): [Σ n·range², Σ n·max|w|²] over the row's groups, summed in
   * float32 (to ~1e-6; Inf for |w| beyond 2^64).
   */
  aux: Float64Array;
}

interface Exports {
  scan(src: number, rows: number, cols: number, blk: number, sums: number, shift: number, mult: number, colmax: number): void;
  aux(blk: number, rows: number, nb: number, cols: number, gs: number, ng: number, shift: number, mult: number, out: number, rowmax: number, scratch: number): void;
}

const PARAMS = { F16: { shift: 13, mult: 2 ** 112 }, BF16: { shift: 16, mult: 1 } } as const;
const align = (n: number) => (n + 15) & ~15;

/** Whether the kernel takes these group lengths for rows of `cols`: increasing, each 16·2^k or a whole row (≥ cols). */
export function chainsGroups(groups: readonly number[], cols: number): boolean {
  return groups.every((g, i) => (i === 0 || g > groups[i - 1]) && (g >= cols || (g >= 16 && g % 16 === 0 && ((g / 16) & (g / 16 - 1)) === 0)));
}

export class HalfScanner {
  /** Where scan's own layout starts: after the input buffers handed out by `inputs`. */
  private base = 16;

  private constructor(private readonly kernel: WasmKernel<Exports>) {}

  /** A scanner for this thread; undefined where WebAssembly SIMD is unavailable (then scan in JS). */
  static create(): HalfScanner | undefined {
    const kernel = WasmKernel.create<Exports>(HALF_SCAN_WASM);
    return kernel && new HalfScanner(kernel);
  }

  /**
   * Two buffers of `rows` × `cols` patterns inside the kernel's memory, sized so that scans of up to `rows` rows
   * never replace it: reading a block straight into one saves scan its copy. Valid until the next call.
   */
  inputs(rows: number, cols: number, groups: number): [Uint16Array, Uint16Array] {
    const bytes = align(rows * cols * 2);
    this.base = 16 + 2 * bytes;
    this.reserve(this.layout(rows, cols, groups, true).end);
    const buf = this.kernel.buffer;
    return [new Uint16Array(buf, 16, rows * cols), new Uint16Array(buf, 16 + bytes, rows * cols)];
  }

  /** Byte offsets of one scan's areas: [colmax] src blk sums gs out rowmax scratch, from `base` on. */
  private layout(rows: number, cols: number, ng: number, colMax: boolean) {
    const nb = cols / 16;
    const cm = this.base;
    const src = align(cm + (colMax ? cols * 2 : 0));
    const blk = align(src + rows * cols * 2);
    const sums = align(blk + rows * nb * 4);
    const gs = align(sums + rows * 8);
    const out = align(gs + ng * 4);
    const rowmax = align(out + rows * ng * 16);
    const scratch = align(rowmax + rows * 4);
    return { cm, src, blk, sums, gs, out, rowmax, scratch, end: scratch + 4 * (nb + 16) * 2 };
  }

  private reserve(end: number): void {
    if (!this.kernel.reserve(end)) throw new RangeError(`half scan: cannot allocate ${end} bytes of WebAssembly memory`);
  }

  /**
   * Scans `rows` rows of `cols` patterns (cols a multiple of 16; `groups` as `chainsGroups` takes). With `colMax`,
   * its entries become the maxima of themselves and each column's magnitude patterns. The result's arrays are
   * valid until the next call.
   */
  scan(bits: Uint16Array, rows: number, cols: number, dtype: 'F16' | 'BF16', groups: readonly number[], colMax?: Uint16Array): HalfScan {
    if (cols % 16 !== 0) throw new Error(`half scan: rows of ${cols} patterns are not whole blocks of 16 (cols % 16 = 0)`);
    if (bits.length < rows * cols) throw new Error(`half scan: ${rows}×${cols} patterns expected, ${bits.length} given`);
    if (!chainsGroups(groups, cols)) throw new Error(`half scan: group lengths ${groups.join(', ')} are not 16·2^k or whole rows of ${cols}`);
    const nb = cols / 16;
    const ng = groups.length;
    // Address 0 means "no column maxima" to the kernel; the first 16 bytes stay unused.
    const { cm, src: own, blk, sums, gs, out, rowmax, scratch, end } = this.layout(rows, cols, ng, colMax !== undefined);
    // Patterns already in this memory (an `inputs` buffer) are scanned in place.
    const inPlace = bits.buffer === this.kernel.buffer;
    if (!inPlace) this.reserve(end);
    else if (end > this.kernel.buffer.byteLength) throw new Error(`half scan: ${rows} rows is more than inputs() reserved`);
    const buf = this.kernel.buffer;
    const src = inPlace ? bits.byteOffset : own;
    if (colMax) new Uint16Array(buf, cm, cols).set(colMax);
    if (!inPlace) new Uint16Array(buf, src, rows * cols).set(bits.subarray(0, rows * cols));
    new Int32Array(buf, gs, ng).set(groups);
    const { shift, mult } = PARAMS[dtype];
    this.kernel.exports.scan(src, rows, cols, blk, sums, shift, mult, colMax ? cm : 0);
    this.kernel.exports.aux(blk, rows, nb, cols, gs, ng, shift, mult, out, rowmax, scratch);
    if (colMax) colMax.set(new Uint16Array(buf, cm, cols));
    return {
      pos: new Uint16Array(buf, blk, rows * nb),
      neg: new Uint16Array(buf, blk + rows * nb * 2, rows * nb),
      sums: new Float64Array(buf, sums, rows),
      rowMax: new Int32Array(buf, rowmax, rows),
      aux: new Float64Array(buf, out, rows * ng * 2),
    };
  }
}
