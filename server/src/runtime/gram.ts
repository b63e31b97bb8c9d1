// Streaming layer Hessian H = (2/N) Σ x xᵀ over calibration rows x ∈ R^d (DESIGN.md §4).
//
// Rows are gathered into fixed chunks of `chunkRows`; each full chunk's XᵀX is computed by onnxruntime
// in float32 and added into a float64 sum. Precision: each entry carries the float32 rounding of one
// chunk's dot product (typically ~√chunkRows · 6e-8 relative to Σ|x_a x_b| over the chunk, at worst
// chunkRows · 6e-8); the sum over chunks adds float64 rounding only. Determinism: chunk boundaries
// depend only on the row sequence (not on how callers batch it), the float64 sum runs in chunk order,
// and MLAS splits a Gemm across threads by output tiles, not along the summed dimension (verified:
// 1 and 2 threads give bitwise-equal 4096² blocks) — so H does not change with batching or threads.
import { QuantLensError, type Location } from '../formats/errors';
import { addUpper, gramBlocks, gramLayout, mirrorUpper, type GramLayout, type KernelOptions } from './kernels';

export interface GramOptions extends KernelOptions {
  /** Rows per onnxruntime call (default: up to 2048, at most 32 MiB of float32 per chunk). */
  chunkRows?: number;
  /** Column block size of the symmetric Gram graph (default 256). */
  blockSize?: number;
}

export interface GramResult {
  /** (2/N) Σ x xᵀ, d×d row-major, exactly symmetric. */
  H: Float64Array;
  /** Rows accumulated. */
  n: number;
}

const CHUNK_BYTES = 32 * 2 ** 20;

export class GramAccumulator {
  private readonly layout: GramLayout;
  private readonly chunk: Float32Array;
  private readonly chunkRows: number;
  private readonly sum: Float64Array;
  private readonly where: Location;
  private fill = 0;
  private rows = 0;
  /** add()/result() run one after another even when callers do not await. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly d: number,
    private readonly opts: GramOptions = {},
  ) {
    this.where = opts.where ?? { file: '<calibration rows>' };
    this.layout = gramLayout(d, opts.blockSize, this.where);
    const rows = opts.chunkRows ?? Math.max(1, Math.min(2048, Math.floor(CHUNK_BYTES / 4 / d)));
    if (!(Number.isSafeInteger(rows) && rows >= 1 && rows * d <= 2 ** 28)) {
      throw new QuantLensError('bad-chunk', `chunkRows must be a positive integer with chunkRows·d ≤ 2^28, found ${rows}`, this.where);
    }
    this.chunkRows = rows;
    this.chunk = new Float32Array(rows * d);
    this.sum = new Float64Array(d * d);
  }

  /** Rows accepted so far. */
  get count(): number {
    return this.rows;
  }

  /** Adds a batch of rows, row-major [rows, d]. Rejects non-finite values (they would poison all of H). */
  add(x: Float32Array): Promise<void> {
    const d = this.d;
    if (x.length % d !== 0) {
      return Promise.reject(new QuantLensError('bad-shape', `batch of ${x.length} values is not a whole number of rows of ${d}`, this.where));
    }
    for (let i = 0; i < x.length; i++) {
      if (!Number.isFinite(x[i])) {
        return Promise.reject(new QuantLensError('non-finite', `row ${this.rows + Math.floor(i / d)} column ${i % d} is ${x[i]}; expected finite activations`, this.where));
      }
    }
    const batch = x.slice();
    this.rows += batch.length / d;
    return this.enqueue(async () => {
      let at = 0;
      while (at < batch.length) {
        const take = Math.min(batch.length - at, (this.chunkRows - this.fill) * d);
        this.chunk.set(batch.subarray(at, at + take), this.fill * d);
        this.fill += take / d;
        at += take;
        if (this.fill === this.chunkRows) await this.flush();
      }
    });
  }

  /**
   * H = (2/N) Σ x xᵀ over every row added so far. The partly filled chunk is counted without being
   * flushed, so calling this mid-stream does not move later chunk boundaries.
   */
  result(): Promise<GramResult> {
    return this.enqueue(async () => {
      if (this.rows === 0) throw new QuantLensError('no-rows', 'no calibration rows were added: H is undefined', this.where);
      const H = this.sum.slice();
      await gramBlocks(this.chunk.subarray(0, this.fill * this.d), this.fill, this.layout, this.opts, (g) => addUpper(H, g));
      const scale = 2 / this.rows;
      for (let i = 0; i < H.length; i++) H[i] *= scale;
      mirrorUpper(H, this.d);
      return { H, n: this.rows };
    });
  }

  private async flush(): Promise<void> {
    await gramBlocks(this.chunk, this.chunkRows, this.layout, this.opts, (g) => addUpper(this.sum, g));
    this.fill = 0;
  }

  private enqueue<T>(task: () => Promise<T>): Promise<T> {
    const next = this.queue.then(task);
    this.queue = next.catch(() => undefined);
    return next;
  }
}
