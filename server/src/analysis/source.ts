// Streams a tensor as blocks of rows of its [out, in] view (output channels × input axis, groups along a row),
// the view every number format quantizes. Layouts whose rows are contiguous on disk (out_in, embedding, conv,
// other) read one element range per block; in_out ([in, out], ONNX MatMul B) is read once in storage-row chunks
// and transposed into one float32 copy of the tensor (the memory bound for such tensors is one extra copy).
import type { Checkpoint, HalfBits, TensorInfo } from '../formats/types';
import { gridOf } from '../quant/grid';

export interface RowBlock {
  /** rowIds.length × cols values, row-major. */
  data: Float32Array;
  /** Row of the [out, in] view of each block row. */
  rowIds: Int32Array;
}

export class TensorSource {
  readonly rows: number;
  readonly cols: number;
  private transposed?: Float32Array;

  constructor(
    private readonly ckpt: Checkpoint,
    readonly t: TensorInfo,
    private readonly blockElems: number,
  ) {
    const g = gridOf(t.shape, t.layout);
    this.rows = g.rows;
    this.cols = g.cols;
  }

  /** Rows per block: as many as fit in blockElems, at least one. */
  get blockRows(): number {
    return Math.max(1, Math.min(this.rows, Math.floor(this.blockElems / Math.max(this.cols, 1))));
  }

  get inOut(): boolean {
    return this.t.layout === 'in_out' && this.t.shape.length >= 2;
  }

  /** Logical coordinates (as stored) of element (row, col) of the [out, in] view. */
  coords(row: number, col: number): number[] {
    let flat = this.inOut ? col * this.rows + row : row * this.cols + col;
    const shape = this.t.shape;
    const out = new Array<number>(shape.length);
    for (let d = shape.length - 1; d >= 0; d--) {
      out[d] = flat % shape[d];
      flat = Math.floor(flat / shape[d]);
    }
    return out;
  }

  /**
   * Blocks over all rows, or over the given sorted row subset. A block's data is valid until the next one is
   * requested (full blocks of contiguous rows reuse one buffer: fresh 512 KB arrays per block pile up until a major GC).
   */
  async *blocks(subset?: Int32Array): AsyncGenerator<RowBlock> {
    const per = this.blockRows;
    const total = subset ? subset.length : this.rows;
    const reuse = new Float32Array(per * this.cols);
    for (let s = 0; s < total; s += per) {
      const n = Math.min(per, total - s);
      const rowIds = new Int32Array(n);
      for (let i = 0; i < n; i++) rowIds[i] = subset ? subset[s + i] : s + i;
      yield { data: await this.readRows(rowIds, reuse), rowIds };
    }
  }

  /**
   * Blocks of all rows as stored 16-bit patterns, when the checkpoint can hand them over and rows are contiguous
   * on disk (not in_out); undefined otherwise (then use blocks()). Reads alternate between the two buffers
   * `buffers(rows)` gives for `rows`-row blocks (fresh arrays without them): a block is valid until the next one.
   */
  halfBlocks(buffers?: (rows: number) => [Uint16Array, Uint16Array] | undefined): AsyncGenerator<HalfBits & { rowIds: Int32Array }> | undefined {
    const readHalf = this.ckpt.readHalf?.bind(this.ckpt);
    if (!readHalf || this.inOut || (this.t.dtype !== 'F16' && this.t.dtype !== 'BF16')) return undefined;
    const { rows, cols, t } = this;
    // 16-bit blocks 8× the float32 block (2 MiB at the default): fewer reads, whose fixed cost showed next to the scan.
    const per = Math.max(1, Math.min(rows, Math.floor((8 * this.blockElems) / Math.max(cols, 1))));
    const into = buffers?.(per);
    const read = (s: number) => readHalf(t.name, { start: s * cols, count: Math.min(per, rows - s) * cols }, into?.[(s / per) & 1]);
    return (async function* () {
      // The next block is read while this one is scanned: the scan is fast enough that waiting on reads showed.
      let next = read(0);
      let pending = true;
      try {
        for (let s = 0; s < rows; s += per) {
          const half = await next;
          pending = s + per < rows;
          if (pending) next = read(s + per);
          if (!half) throw new Error(`${t.name}: stored ${t.dtype} but its patterns could not be read`);
          yield { ...half, rowIds: Int32Array.from({ length: Math.min(per, rows - s) }, (_, i) => s + i) };
        }
      } finally {
        // A consumer that stops early still waits for the read in flight: it writes into a buffer that is reused.
        if (pending) await next.catch(() => undefined);
      }
    })();
  }

  /** Rows (sorted) as one row-major buffer; runs of consecutive rows are read with one call. */
  async readRows(rowIds: Int32Array, into?: Float32Array): Promise<Float32Array> {
    const cols = this.cols;
    const n = rowIds.length;
    if (n === 0) return new Float32Array(0);
    const contiguous = rowIds[n - 1] - rowIds[0] === n - 1;
    if (this.inOut) {
      const all = await this.transpose();
      return contiguous ? all.subarray(rowIds[0] * cols, (rowIds[n - 1] + 1) * cols) : gather(all, rowIds, cols);
    }
    if (contiguous) return this.ckpt.read(this.t.name, { start: rowIds[0] * cols, count: n * cols }, into);
    // Runs of consecutive rows, read concurrently straight into their place (a sample is mostly single rows).
    const out = into && into.length >= n * cols ? into.subarray(0, n * cols) : new Float32Array(n * cols);
    const runs: { row: number; view: Float32Array }[] = [];
    for (let i = 0; i < n; ) {
      let j = i + 1;
      while (j < n && rowIds[j] === rowIds[j - 1] + 1) j++;
      runs.push({ row: rowIds[i], view: out.subarray(i * cols, j * cols) });
      i = j;
    }
    const parts = await Promise.all(runs.map(({ row, view }) => this.ckpt.read(this.t.name, { start: row * cols, count: view.length }, view)));
    // A reader that ignores `into` returns its own array: copy those.
    parts.forEach((p, k) => {
      const { view } = runs[k];
      if (p.buffer !== view.buffer || p.byteOffset !== view.byteOffset) view.set(p);
    });
    return out;
  }

  /** The in_out tensor as [out, in], read in chunks of whole storage rows. */
  private async transpose(): Promise<Float32Array> {
    if (this.transposed) return this.transposed;
    const { rows, cols } = this; // storage is [cols, rows]
    const t = new Float32Array(rows * cols);
    const chunk = Math.max(1, Math.floor(this.blockElems / Math.max(rows, 1)));
    for (let c0 = 0; c0 < cols; c0 += chunk) {
      const nc = Math.min(chunk, cols - c0);
      const part = await this.ckpt.read(this.t.name, { start: c0 * rows, count: nc * rows });
      for (let c = 0; c < nc; c++) {
        const src = c * rows;
        for (let r = 0; r < rows; r++) t[r * cols + c0 + c] = part[src + r];
      }
    }
    this.transposed = t;
    return t;
  }
}

function gather(all: Float32Array, rowIds: Int32Array, cols: number): Float32Array {
  const out = new Float32Array(rowIds.length * cols);
  for (let i = 0; i < rowIds.length; i++) out.set(all.subarray(rowIds[i] * cols, (rowIds[i] + 1) * cols), i * cols);
  return out;
}
