// The number-format vocabulary (DESIGN.md §3): every format quantizes then dequantizes a float32 weight and states
// its exact storage cost, so measured error and counted bits always describe the same thing.
import type { WeightLayout } from '../formats/types';

export type FormatFamily = 'int' | 'nf' | 'fp' | 'mx' | 'nvfp4' | 'bfp';

/** A modifier applied on top of a base format (`<base>+ol2`, `<base>+reorder`, `<base>+had64`). */
export type FormatModifier = 'outliers' | 'reorder' | 'hadamard';

/**
 * How many consecutive input-axis elements share one scale: a group length, one scale per output channel
 * ('channel', i.e. per row of the [out, in] view), or one per tensor ('tensor').
 */
export type Granularity = number | 'channel' | 'tensor';

export interface QdqOptions {
  /**
   * Filled (length = element count, same flat order as the input) with the stored integer code of every element:
   * int formats the integer q (asym 0..2^b−1, sym signed), NormalFloat the code-book index, FP elements their bit
   * pattern (sign bit included), MXINT8/BFP the signed integer mantissa, entries kept at fp16 by `+ol` OUTLIER_CODE.
   * For the empirical entropy of the codes.
   */
  codes?: Int32Array;
  /** Where to write the dequantized values (length = element count; returned). A fresh array when absent. */
  out?: Float32Array;
  /** The caller has already checked that every value is finite: skip the check (one pass over the input per call). */
  finite?: boolean;
}

/** Code written for entries that `+ol<k>` keeps at fp16 (they are not codes of the base format). */
export const OUTLIER_CODE = -2147483648;

export interface NumberFormat {
  readonly id: string;
  readonly family: FormatFamily;
  /** One line, the exact definition (for the README and `quantlens formats`). */
  readonly description: string;
  readonly granularity: Granularity;
  /** Set on `<base>+…` variants. */
  readonly base?: string;
  readonly modifier?: FormatModifier;
  /** Exact storage of a tensor of this shape in bits: elements + scales + zero points + indexes + permutations. */
  storageBits(shape: readonly number[], layout: WeightLayout): number;
  /** storageBits / element count (0 for an empty tensor). */
  bitsPerWeight(shape: readonly number[], layout: WeightLayout): number;
  /** Quantize then dequantize. Throws QuantInputError on NaN/±Inf, Error on a shape that does not match `w`. */
  quantizeDequantize(w: Float32Array, shape: readonly number[], layout: WeightLayout, opts?: QdqOptions): Float32Array;
}

/** Bad weight values (NaN/±Inf). `index` is the flat element index; the caller adds the tensor name. */
export class QuantInputError extends Error {
  constructor(
    readonly index: number,
    readonly value: number,
  ) {
    super(`non-finite weight ${value} at flat index ${index}: quantization needs finite values`);
    this.name = 'QuantInputError';
  }
}

/** An id `getFormat` cannot parse. */
export class UnknownFormatError extends Error {
  constructor(
    readonly id: string,
    readonly why: string,
  ) {
    super(`unknown number format '${id}': ${why}`);
    this.name = 'UnknownFormatError';
  }
}
