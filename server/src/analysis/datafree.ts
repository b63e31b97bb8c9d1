// Data-free analysis of one tensor against a set of number formats (DESIGN.md §4), one row block at a time:
//   relMse = ‖Q(W) − W‖² / ‖W‖²,  sqnrDb = −10·log10(relMse),  maxAbsErr = max |Q(w) − w|,
//   entropyBits = −Σ p_c log2 p_c over the stored element codes c (bits per weight; scales not included),
// plus weight statistics (stats.ts), group-error maps (groupmap.ts) and high-impact curves (highimpact.ts).
// Memory: a few buffers of one block (blockElems values) per tensor; in_out tensors add one float32 copy.
import { QuantLensError } from '../formats/errors';
import type { Checkpoint, TensorInfo } from '../formats/types';
import { getFormat, type NumberFormat } from '../quant';
import { cachedImatrix, hessianDiagonal } from '../sensitivity/imatrix';
import { decodePlain } from '../formats/dtypes';
import { toFp16 } from '../quant/minifloat';
import { blockMode, groupSizeOf } from './blockmode';
import { GroupMapAcc } from './groupmap';
import { highImpactCurves, magnitudeKeys, PromotionAcc, promotionCurve, RankAcc, type TensorGeometry } from './highimpact';
import { chainsGroups, HalfScanner } from './half-scan';
import { heavinessOf, sampledRatio, sampleRows, sampleSize, type RowSample } from './sample';
import { TensorSource } from './source';
import { locateNonFinite, NonFiniteWeight, StatsAcc, TopAbs } from './stats';
import type { DatafreeOptions, FormatErrors, LayerReport } from './types';

/** Default block size: 128 K values (512 KB per float32 buffer) keeps the per-block buffers in L2 and memory low. */
export const BLOCK_ELEMS = 1 << 17;

/** Formats below this many bits per weight (4096×4096) get high-impact and promotion curves. */
const LOW_BITS = 5;

/** Dense code histogram for codes in −2048…2047 (every ≤ 12-bit code); wider codes go to a Map. */
const CODE_OFFSET = 1 << 11;
const CODE_BINS = 1 << 12;

export interface TensorContext {
  blockElems?: number;
  /** Called after every block with the number of weights just scored. */
  progress?: (weights: number) => void;
  signal?: AbortSignal;
}

/** Error sums, code histogram and per-group errors of one format over the rows scored so far. */
class FormatAcc {
  num = 0;
  /** Σ (ΔW_ij)² H_jj with an imatrix diagonal (0 without one). */
  hnum = 0;
  maxAbs = 0;
  readonly hist = new Float64Array(CODE_BINS);
  readonly rare = new Map<number, number>();
  /** Per row scored, in order: its squared error (a typed array: a fresh [] per tensor deoptimized its push). */
  readonly rowNum: Float64Array;
  rowCount = 0;
  /** Per-group squared-error sums of the row just added. */
  readonly groupErr: Float64Array;
  readonly groupSize: number;
  map?: GroupMapAcc;
  /** Low formats: high-impact rank histograms and group-promotion gains. */
  rank?: RankAcc;
  promotion?: PromotionAcc;

  constructor(
    readonly f: NumberFormat,
    rows: number,
    readonly cols: number,
  ) {
    this.rowNum = new Float64Array(rows);
    this.groupSize = groupSizeOf(f, cols);
    this.groupErr = new Float64Array(Math.ceil(cols / this.groupSize));
  }

  /** Row `row` of the view at w/out/codes[off …]; its squared errors to err[off …] when given. */
  addRow(w: Float32Array, out: Float32Array, codes: Int32Array, off: number, row: number, err?: Float32Array): void {
    const { cols, groupSize, groupErr, hist } = this;
    let maxAbs = this.maxAbs;
    let rowSum = 0;
    // Math.abs/Math.max compile branch-free; `d < 0 ? -d : d` mispredicts on random signs (~5× slower).
    for (let j = 0, c0 = off; c0 < off + cols; j++, c0 += groupSize) {
      const end = Math.min(off + cols, c0 + groupSize);
      let s = 0;
      if (err) {
        for (let c = c0; c < end; c++) {
          const d = out[c] - w[c];
          const e = d * d;
          s += e;
          err[c] = e;
          maxAbs = Math.max(maxAbs, Math.abs(d));
        }
      } else {
        for (let c = c0; c < end; c++) {
          const d = out[c] - w[c];
          s += d * d;
          maxAbs = Math.max(maxAbs, Math.abs(d));
        }
      }
      groupErr[j] = s;
      rowSum += s;
    }
    for (let c = off; c < off + cols; c++) {
      const k = codes[c] + CODE_OFFSET;
      if (k >= 0 && k < CODE_BINS) hist[k]++;
      else this.rare.set(k, (this.rare.get(k) ?? 0) + 1);
    }
    this.maxAbs = maxAbs;
    this.num += rowSum;
    this.rowNum[this.rowCount++] = rowSum;
    this.map?.addRow(row, groupErr);
  }

  /** Adds Σ_c (out − w)²·h[hOff + c] over the row at off (the Hessian-diagonal weighted error). */
  addWeighted(w: Float32Array, out: Float32Array, off: number, h: Float32Array, hOff: number): void {
    let s = 0;
    for (let c = 0; c < this.cols; c++) {
      const d = out[off + c] - w[off + c];
      s += d * d * h[hOff + c];
    }
    this.hnum += s;
  }

  entropyBits(): number {
    let n = 0;
    let s = 0;
    const add = (c: number) => {
      if (c > 0) {
        n += c;
        s += c * Math.log2(c);
      }
    };
    for (let k = 0; k < CODE_BINS; k++) add(this.hist[k]);
    for (const c of this.rare.values()) add(c);
    return n > 0 ? Math.log2(n) - s / n : 0;
  }
}

function located(t: TensorInfo, src: TensorSource, e: NonFiniteWeight): QuantLensError {
  const at = src.coords(e.row, e.col);
  return new QuantLensError('non-finite-weight', `non-finite weight ${e.value} at [${at.join(', ')}]: quantization needs finite values`, {
    file: t.file,
    tensor: t.name,
  });
}

/** Analyze one tensor (≥ 2 dims, analyzable) of an open checkpoint. */
export async function analyzeTensor(ckpt: Checkpoint, t: TensorInfo, opts: DatafreeOptions, ctx: TensorContext = {}): Promise<LayerReport> {
  const src = new TensorSource(ckpt, t, ctx.blockElems ?? BLOCK_ELEMS);
  try {
    return await analyzeSource(src, opts, ctx);
  } catch (e) {
    if (e instanceof NonFiniteWeight) throw located(t, src, e);
    throw e;
  }
}

const allRows = (n: number) => Int32Array.from({ length: n }, (_, i) => i);

async function analyzeSource(src: TensorSource, opts: DatafreeOptions, ctx: TensorContext): Promise<LayerReport> {
  const { t, rows, cols } = src;
  const geo: TensorGeometry = { shape: t.shape, layout: t.layout, params: t.params, rows, cols };
  const sampling = opts.sample !== undefined && sampleSize(rows, opts.sample) < rows;

  const selected = opts.formats.map(getFormat);
  const hd = opts.imatrix !== undefined ? hessianDiagonal(await cachedImatrix(opts.imatrix), t.name, rows, cols) : undefined;
  const accs = new Map(selected.map((f) => [f.id, new FormatAcc(f, rows, cols)]));
  const blockwise = selected.filter((f) => blockMode(f) !== 'whole').map((f) => accs.get(f.id)!);
  const whole = selected.filter((f) => blockMode(f) === 'whole').map((f) => accs.get(f.id)!);

  // High-impact: the int8 keep format runs first so its errors are ready for the low formats.
  // Sampled mode gives a first picture of the errors: the curves (a third of a full scan's time) need every weight.
  const lows = opts.highImpact && !sampling ? blockwise.filter((a) => a.f.bitsPerWeight([4096, 4096], 'out_in') < LOW_BITS) : [];
  const int8 = getFormat('int8_ch_sym');
  const keep8 = lows.length > 0 ? (accs.get(int8.id) ?? new FormatAcc(int8, rows, cols)) : undefined;
  const passes = keep8 ? [keep8, ...blockwise.filter((a) => a !== keep8)] : blockwise;

  // A full pass for tensor-wide inputs: per-column max |w| (augmented formats, when the tensor spans several
  // blocks, or sampled) and, in sampled mode, the largest |w| and the per-row auxiliaries of the estimator.
  const augment = new Set(passes.filter((a) => blockMode(a.f) === 'augment'));
  let colMax: Float32Array | undefined;
  let full: FullScan | undefined;
  if ((augment.size > 0 && rows > src.blockRows) || sampling) {
    // Per-column maxima matter only to +reorder; per-tensor scales need the overall max alone.
    const columns = !sampling || [...augment].some((a) => a.f.modifier === 'reorder');
    const groupSizes = selected.filter((f) => f.granularity !== 'tensor').map((f) => accs.get(f.id)!.groupSize);
    full = new FullScan(rows, cols, sampling ? [...new Set(groupSizes)] : undefined, columns);
    const half = sampling ? src.halfBlocks((n) => full!.halfInputs(n)) : undefined;
    if (half) for await (const b of half) full.addHalf(b.bits, b.dtype, b.rowIds);
    else for await (const b of src.blocks()) full.add(b.data, b.rowIds);
    colMax = full.colMax;
  }
  const sample = sampling ? sampleRows(rows, opts.sample!, opts.seed, t.name, heavinessOf(full!.auxiliaries(), rows)) : undefined;
  const subset = sample?.rows;
  for (const a of lows) {
    a.rank = new RankAcc();
    a.promotion = new PromotionAcc(a.groupErr.length, subset ? subset.length : rows);
  }
  if (opts.groupMaps && !subset) for (const a of accs.values()) a.map = new GroupMapAcc(rows, cols, a.groupSize, opts.mapSize);

  const stats = new StatsAcc(opts.sigma);
  const bn = src.blockRows * cols;
  const augmented = augment.size > 0 ? new Float32Array(bn + cols) : undefined;
  const codes = new Int32Array(bn + cols);
  // One output buffer for every format and block: fresh 512 KB arrays would pile up until a major GC (peak RSS).
  const outBuf = new Float32Array(bn + cols);
  const hi = lows.length > 0;
  const errLow = hi ? new Float32Array(bn) : undefined;
  const errLowBits = errLow && new Uint32Array(errLow.buffer);
  const e8 = hi ? new Float32Array(bn) : undefined;
  const e16 = hi ? new Float32Array(bn) : undefined; // stays 0 for fp16 sources: keeping an fp16 value is exact
  const magKey = hi ? new Uint16Array(bn) : undefined;

  let seq = 0;
  for await (const { data, rowIds } of src.blocks(subset)) {
    if (ctx.signal?.aborted) throw ctx.signal.reason;
    const n = rowIds.length;
    const len = n * cols;
    const bits = new Uint32Array(data.buffer, data.byteOffset, len);
    for (let i = 0; i < n; i++) stats.addRow(data, bits, i * cols, cols, rowIds[i]);
    if (augment.size > 0 && !colMax) colMax = columnMax(data, n, cols);
    if (magKey) {
      magnitudeKeys(bits, len, magKey);
      if (t.dtype !== 'F16') fp16Errors(data, len, e16!);
    }
    for (const acc of passes) {
      let input = data;
      if (augment.has(acc)) {
        input = augmented!.subarray(0, len + cols);
        input.set(data);
        input.set(colMax!, len);
      }
      const out = quantize(acc.f, input, cols, codes, outBuf);
      const err = acc === keep8 ? e8 : acc.rank ? errLow : undefined;
      for (let i = 0; i < n; i++) {
        acc.addRow(input, out, codes, i * cols, rowIds[i], err);
        acc.promotion?.addRow(seq + i, acc.groupErr, e8!, i * cols, acc.groupSize, cols);
        if (hd) acc.addWeighted(input, out, i * cols, hd.diag, hd.matOfRow(rowIds[i]) * cols);
      }
      acc.rank?.addBlock(errLow!, errLowBits!, magKey!, e16!, e8!, len);
    }
    seq += n;
    ctx.progress?.(len);
  }

  // Formats that must see the whole tensor at once.
  if (whole.length > 0) {
    const all = await src.readRows(allRows(rows));
    const allCodes = new Int32Array(all.length);
    const ids = subset ?? allRows(rows);
    for (const acc of whole) {
      const out = quantize(acc.f, all, cols, allCodes);
      for (const r of ids) {
        acc.addRow(all, out, allCodes, r * cols, r);
        if (hd) acc.addWeighted(all, out, r * cols, hd.diag, hd.matOfRow(r) * cols);
      }
    }
  }

  return finish(src, opts, geo, sample, stats, full, selected, accs, lows.map((a) => a.f), int8, hd !== undefined);
}

/**
 * Quantize values viewed as [rows, cols] out_in. Every row has been through StatsAcc.addRow or FullScan, which
 * name a non-finite weight, so the format's own finiteness pass (one per format and block) is skipped.
 */
function quantize(f: NumberFormat, input: Float32Array, cols: number, codes: Int32Array, out?: Float32Array): Float32Array {
  return f.quantizeDequantize(input, [input.length / cols, cols], 'out_in', { codes: codes.subarray(0, input.length), out: out?.subarray(0, input.length), finite: true });
}

/** e16[i] = (w − fp16(w))². */
function fp16Errors(w: Float32Array, n: number, e16: Float32Array): void {
  for (let i = 0; i < n; i++) {
    const d = w[i] - toFp16(w[i]);
    e16[i] = d * d;
  }
}

function columnMax(data: Float32Array, n: number, cols: number): Float32Array {
  const m = new Float32Array(cols);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < cols; c++) {
      m[c] = Math.max(m[c], Math.abs(data[i * cols + c]));
    }
  }
  return m;
}

/** One SIMD scanner per thread (undefined without WebAssembly SIMD). */
let scanner: HalfScanner | undefined | null = null;
function halfScanner(): HalfScanner | undefined {
  if (scanner === null) scanner = HalfScanner.create();
  return scanner;
}

/** |value| and value² of each 16-bit magnitude pattern (sign cleared), for scans over stored F16/BF16 bits. */
const halfTables = new Map<'F16' | 'BF16', { abs: Float64Array; sq: Float64Array; nonFinite: number }>();
function halfTable(dtype: 'F16' | 'BF16') {
  let t = halfTables.get(dtype);
  if (!t) {
    const patterns = Uint16Array.from({ length: 0x8000 }, (_, m) => m);
    const abs = Float64Array.from(decodePlain(dtype, new Uint8Array(patterns.buffer), 0x8000));
    t = { abs, sq: abs.map((v) => v * v), nonFinite: dtype === 'F16' ? 0x7c00 : 0x7f80 };
    halfTables.set(dtype, t);
  }
  return t;
}

/**
 * One pass over every row: per-column max |w| (augmented formats) and, when sampling, the largest |w| (super
 * weights, max/σ) and the estimator's per-row auxiliaries: Σw², and for each group length g of the selected
 * formats Σ over the row's groups of n·range² and of n·max|w|² (the uniform-noise model n·Δ²/12 up to a constant,
 * Δ ∝ the group's range or absmax; from maxima over blocks of 16, merged). Also where sampled mode meets bad
 * values. On F16/BF16 storage the sampled pass reads the stored patterns (addHalf): no decoding, integer maxima,
 * in the SIMD kernel of half-scan.wat where it takes the row length and group lengths, else in JS.
 */
export class FullScan {
  /** Float maxima of add(); addHalf keeps patterns in colMaxBits and `colMax` decodes them. */
  private readonly floatColMax: Float32Array;
  /** The |value| table of the stored patterns, once addHalf has run. */
  private halfAbs?: Float64Array;
  readonly top = new TopAbs();
  readonly rowSumSq: Float64Array;
  /** Per group length: per-row Σ n·range² and Σ n·max|w|² over its groups. */
  readonly rowAux = new Map<number, [range: Float64Array, amax: Float64Array]>();
  /** max w and −min w (both ≥ 0: the range widened to contain 0) of each block of 16 of the current row. */
  private readonly blockPos: Float64Array;
  private readonly blockNeg: Float64Array;
  private readonly colMaxBits: Uint16Array;
  /** rowAux as a plain array by increasing group length: endRow runs per row, where a Map iterator would allocate. */
  private readonly auxList: { g: number; range: Float64Array; amax: Float64Array }[];
  /** auxList's group lengths; `scanner` is the SIMD kernel when it takes them (and rows are whole 16-blocks). */
  private readonly groups: number[];
  private readonly scanner: HalfScanner | undefined;

  constructor(
    rows: number,
    readonly cols: number,
    /** Group lengths whose auxiliaries the estimator needs; undefined: not sampling. */
    private readonly groupSizes?: number[],
    private readonly columns = true,
  ) {
    this.floatColMax = new Float32Array(cols);
    this.colMaxBits = new Uint16Array(cols);
    this.rowSumSq = new Float64Array(groupSizes ? rows : 0);
    this.blockPos = new Float64Array(Math.ceil(cols / 16));
    this.blockNeg = new Float64Array(Math.ceil(cols / 16));
    for (const g of groupSizes ?? []) this.rowAux.set(g, [new Float64Array(rows), new Float64Array(rows)]);
    this.auxList = [...this.rowAux].map(([g, [range, amax]]) => ({ g, range, amax })).sort((x, y) => x.g - y.g);
    this.groups = this.auxList.map((a) => a.g);
    this.scanner = groupSizes && cols % 16 === 0 && chainsGroups(this.groups, cols) ? halfScanner() : undefined;
  }

  add(data: Float32Array, rowIds: Int32Array): void {
    const { cols, floatColMax: colMax, blockPos, blockNeg } = this;
    if (!this.groupSizes) {
      for (let i = 0; i < rowIds.length; i++) {
        let s = 0;
        for (let c = 0; c < cols; c++) {
          const v = data[i * cols + c];
          s += v;
          colMax[c] = Math.max(colMax[c], Math.abs(v));
        }
        if (!Number.isFinite(s)) locateNonFinite(data, i * cols, cols, rowIds[i]);
      }
      return;
    }
    for (let i = 0; i < rowIds.length; i++) {
      const off = i * cols;
      let sq = 0;
      let rowMax = 0;
      for (let b = 0, c0 = off; c0 < off + cols; b++, c0 += 16) {
        const end = Math.min(off + cols, c0 + 16);
        let pos = 0;
        let neg = 0;
        for (let c = c0; c < end; c++) {
          const v = data[c];
          sq += v * v;
          pos = Math.max(pos, v);
          neg = Math.max(neg, -v);
        }
        blockPos[b] = pos;
        blockNeg[b] = neg;
        rowMax = Math.max(rowMax, pos, neg);
      }
      if (!Number.isFinite(sq)) locateNonFinite(data, off, cols, rowIds[i]);
      if (this.columns) for (let c = 0; c < cols; c++) colMax[c] = Math.max(colMax[c], Math.abs(data[off + c]));
      else colMax[0] = Math.max(colMax[0], rowMax);
      this.top.addRow(data, off, cols, rowIds[i]);
      this.endRow(rowIds[i], sq);
    }
  }

  /** add() on stored F16/BF16 patterns (sampling only): integer maxima of the magnitude patterns. */
  addHalf(bits: Uint16Array, dtype: 'F16' | 'BF16', rowIds: Int32Array): void {
    const { cols, colMaxBits, auxList, groups } = this;
    const { abs, nonFinite } = halfTable(dtype);
    this.halfAbs = abs;
    const scan = this.scanner?.scan(bits, rowIds.length, cols, dtype, groups, this.columns ? colMaxBits : undefined);
    // Float32 auxiliaries overflow for |w| beyond 2^64: such blocks take the float64 JS path.
    if (!scan || !scan.aux.every(Number.isFinite)) {
      this.addHalfJs(bits, dtype, rowIds);
      return;
    }
    const nb = cols / 16;
    const ng = groups.length;
    const { pos, neg, sums, rowMax, aux } = scan;
    for (let i = 0; i < rowIds.length; i++) {
      const row = rowIds[i];
      const m = rowMax[i];
      if (m >= nonFinite) this.nonFiniteRow(bits, i, dtype, row);
      if (!this.columns) colMaxBits[0] = Math.max(colMaxBits[0], m);
      // Only the blocks that can enter the largest entries are decoded (outlier channels put one in most rows).
      if (abs[m] > this.top.threshold) {
        for (let b = 0, k = i * nb; b < nb; b++, k++) {
          if (abs[Math.max(pos[k], neg[k])] > this.top.threshold) this.topBlock(bits, i * cols + 16 * b, row, 16 * b, abs);
        }
      }
      this.rowSumSq[row] = sums[i];
      for (let k = 0; k < ng; k++) {
        auxList[k].range[row] = aux[2 * (i * ng + k)];
        auxList[k].amax[row] = aux[2 * (i * ng + k) + 1];
      }
    }
  }

  /** Two buffers in the kernel's memory for blocks of `rows` rows, when addHalf will scan there (saves a copy). */
  halfInputs(rows: number): [Uint16Array, Uint16Array] | undefined {
    return this.scanner?.inputs(rows, this.cols, this.groups.length);
  }

  /** addHalf in plain JS, for rows that are not whole blocks of 16 or group lengths the kernel cannot merge. */
  private addHalfJs(bits: Uint16Array, dtype: 'F16' | 'BF16', rowIds: Int32Array): void {
    const { cols, blockPos, blockNeg, colMaxBits } = this;
    const { abs, sq: square, nonFinite } = halfTable(dtype);
    this.halfAbs = abs;
    for (let i = 0; i < rowIds.length; i++) {
      const off = i * cols;
      let sq = 0;
      let rowMax = 0;
      for (let b = 0, c0 = off; c0 < off + cols; b++, c0 += 16) {
        const end = Math.min(off + cols, c0 + 16);
        let pos = 0;
        let neg = 0;
        for (let c = c0; c < end; c++) {
          const h = bits[c];
          const m = h & 0x7fff;
          const s = h >>> 15; // 1: negative
          sq += square[m];
          pos = Math.max(pos, m & (s - 1));
          neg = Math.max(neg, m & -s);
        }
        blockPos[b] = abs[pos];
        blockNeg[b] = abs[neg];
        rowMax = Math.max(rowMax, pos, neg);
      }
      if (rowMax >= nonFinite) this.nonFiniteRow(bits, i, dtype, rowIds[i]);
      if (this.columns) for (let c = 0; c < cols; c++) colMaxBits[c] = Math.max(colMaxBits[c], bits[off + c] & 0x7fff);
      else colMaxBits[0] = Math.max(colMaxBits[0], rowMax);
      // Decode the row only when it holds a candidate for the largest entries.
      if (abs[rowMax] > this.top.threshold) this.top.addRow(decodePlain(dtype, new Uint8Array(bits.buffer, bits.byteOffset + off * 2, cols * 2), cols), 0, cols, rowIds[i]);
      this.endRow(rowIds[i], sq);
    }
  }

  /** Throws NonFiniteWeight naming the bad entry of row i of a block of patterns. */
  private nonFiniteRow(bits: Uint16Array, i: number, dtype: 'F16' | 'BF16', row: number): void {
    const cols = this.cols;
    locateNonFinite(decodePlain(dtype, new Uint8Array(bits.buffer, bits.byteOffset + i * cols * 2, cols * 2), cols), 0, cols, row);
  }

  /**
   * Per-column max |w|; with `columns` false only the tensor's max, in column 0 (per-tensor scales need no more).
   * Decoded on demand from addHalf's patterns: code after addHalf's row loop made V8 deoptimize on every tensor.
   */
  get colMax(): Float32Array {
    const abs = this.halfAbs;
    if (abs) for (let c = 0; c < (this.columns ? this.cols : 1); c++) this.floatColMax[c] = abs[this.colMaxBits[c]];
    return this.floatColMax;
  }

  /** The entries of one block of 16 patterns that exceed the top list's threshold, in column order (as addRow). */
  private topBlock(bits: Uint16Array, at: number, row: number, col: number, abs: Float64Array): void {
    for (let c = 0; c < 16; c++) {
      const h = bits[at + c];
      const a = abs[h & 0x7fff];
      if (a > this.top.threshold) this.top.insert(a, h & 0x8000 ? -a : a, row, col + c);
    }
  }

  /** Σ n·range² and Σ n·max|w|² per group length, merging the row's 16-blocks. */
  private endRow(row: number, sq: number): void {
    this.rowSumSq[row] = sq;
    const { blockPos, blockNeg, cols, auxList } = this;
    const nb = blockPos.length;
    for (let k = 0; k < auxList.length; k++) {
      const { g, range, amax } = auxList[k];
      let sr = 0;
      let sa = 0;
      for (let c0 = 0; c0 < cols; c0 += g) {
        const c1 = Math.min(cols, c0 + g);
        const b1 = Math.min(nb, (c1 + 15) >> 4);
        let pos = 0;
        let neg = 0;
        // Blocks of 16 overlapping [c0, c1): exact when g is a multiple of 16, an upper bound otherwise.
        for (let b = c0 >> 4; b < b1; b++) {
          pos = Math.max(pos, blockPos[b]);
          neg = Math.max(neg, blockNeg[b]);
        }
        const a = Math.max(pos, neg);
        sr += (c1 - c0) * (pos + neg) * (pos + neg);
        sa += (c1 - c0) * a * a;
      }
      range[row] = sr;
      amax[row] = sa;
    }
  }

  /** Every auxiliary (heavy rows are those heavy by any of them). */
  auxiliaries(): Float64Array[] {
    return [this.rowSumSq, ...[...this.rowAux.values()].flat()];
  }

  /**
   * The auxiliary a format's error follows, chosen by the format (never by this sample's variance: keeping the
   * smallest of several estimated variances biases the interval narrow): n·range² over its groups for
   * asymmetric integer scales (Δ ∝ max − min), n·max|w|² for the other scaled formats (Δ ∝ absmax), Σw² for a
   * per-tensor scale (a floating-point element's error is relative).
   */
  auxiliaryFor(f: NumberFormat, groupSize: number): Float64Array {
    if (f.granularity === 'tensor') return this.rowSumSq;
    const [range, amax] = this.rowAux.get(groupSize)!;
    return f.id.includes('_asym') ? range : amax;
  }
}

function finish(
  src: TensorSource,
  opts: DatafreeOptions,
  geo: TensorGeometry,
  sample: RowSample | undefined,
  stats: StatsAcc,
  full: FullScan | undefined,
  selected: NumberFormat[],
  accs: Map<string, FormatAcc>,
  lows: NumberFormat[],
  int8: NumberFormat,
  weighted: boolean,
): LayerReport {
  const { t, rows } = src;
  // Sampled: Σ w² of the whole tensor is known from the full pass.
  const den = sample ? full!.rowSumSq.reduce((a, b) => a + b, 0) : stats.sumSq;
  const errors: Record<string, FormatErrors> = {};
  for (const f of selected) {
    const a = accs.get(f.id)!;
    const est = sample && sampledRatio(a.rowNum.subarray(0, a.rowCount), sample, full!.auxiliaryFor(f, a.groupSize), den, opts.confidence);
    const relMse = est ? est.estimate : den > 0 ? a.num / den : 0;
    const e: FormatErrors = {
      relMse,
      sqnrDb: relMse > 0 ? -10 * Math.log10(relMse) : null,
      maxAbsErr: a.maxAbs,
      entropyBits: a.entropyBits(),
      bitsPerWeight: f.bitsPerWeight(t.shape, t.layout),
    };
    if (est) e.ci = [est.lo, est.hi];
    // Sampled: the weighted sum scales like the unweighted one (the same rows were scored).
    if (weighted) e.hessianDiag = est ? (a.num > 0 ? (a.hnum * relMse * den) / a.num : 0) : a.hnum;
    errors[f.id] = e;
  }
  const report: LayerReport = {
    name: t.name,
    block: t.layer.block,
    layer: t.layer.layer,
    params: t.params,
    shape: t.shape,
    layout: t.layout,
    dtype: t.dtype,
    sumSq: den,
    stats: stats.result((r, c) => src.coords(r, c), sample ? full!.top : undefined),
    errors,
  };
  if (sample) report.sampled = { rows: sample.rows.length, of: rows };
  if (opts.groupMaps && !sample) {
    report.groupMaps = {};
    for (const f of selected) report.groupMaps[f.id] = accs.get(f.id)!.map!.result();
  }
  if (lows.length > 0) {
    report.highImpact = {};
    report.promotion = {};
    for (const low of lows) {
      const a = accs.get(low.id)!;
      report.highImpact[low.id] = highImpactCurves(a.rank!, low, int8, geo, den, opts.ratios);
      report.promotion[low.id] = promotionCurve(a.promotion!, low, int8, geo, den);
    }
  }
  return report;
}
