// Outlier-aware variants of a base format.
// <base>+ol<k>: in every scale block of the base (its group; a whole row for per-channel/per-tensor bases) the k
//   largest-|w| entries (ties: lower index first) are kept as fp16 values with a ceil(log2 B)-bit in-block index;
//   the base format quantizes the block with those entries set to 0 (so its scales see only the remaining
//   values: every base's scale statistic ignores a 0). Extra bits: min(k, n_block)·(16 + ceil(log2 B)) per block.
// <base>+reorder: input channels (columns of the [out, in] view; conv: the flattened in·kh·kw axis) are permuted
//   once per tensor by descending max|w| over the output channels (ties: lower index first), so outlier channels
//   share groups; the base quantizes the permuted matrix and the result is permuted back.
//   Extra bits: the permutation, ceil(log2 in)·in per tensor.
import { groupLength, type FormatDef } from './define';
import { forEachGroup, type Grid } from './grid';
import { toFp16 } from './minifloat';
import { OUTLIER_CODE } from './types';

const ceilLog2 = (n: number) => (n <= 1 ? 0 : Math.ceil(Math.log2(n)));

/** Number of kept entries over the tensor: min(k, n) for every block of B (the last of a row may be shorter). */
function keptCount(grid: Grid, b: number, k: number): number {
  const full = Math.floor(grid.cols / b);
  const rem = grid.cols - full * b;
  return grid.rows * (full * Math.min(k, b) + Math.min(k, rem));
}

export function withOutliers(base: FormatDef, k: number): FormatDef {
  return {
    id: `${base.id}+ol${k}`,
    family: base.family,
    description: `${base.id} with the ${k} largest-|w| entries of each scale block kept in fp16 (+ in-block index), the rest quantized by ${base.id}`,
    granularity: base.granularity,
    base: base.id,
    modifier: 'outliers',
    bits(grid) {
      const b = groupLength(base.granularity, grid);
      return base.bits(grid) + keptCount(grid, b, k) * (16 + ceilLog2(b));
    },
    qdq(w, grid, out, codes) {
      const work = Float32Array.from(w);
      const kept = new Float64Array(keptCount(grid, groupLength(base.granularity, grid), k));
      const topIdx = new Float64Array(k);
      const topAbs = new Float64Array(k);
      let nKept = 0;
      forEachGroup(grid, groupLength(base.granularity, grid), (off, n, stride) => {
        topAbs.fill(-1);
        const end = off + n * stride;
        for (let i = off; i < end; i += stride) {
          const a = Math.abs(w[i]);
          if (a <= topAbs[k - 1]) continue; // strict: an equal later entry loses the tie
          let j = k - 1;
          while (j > 0 && topAbs[j - 1] < a) {
            topAbs[j] = topAbs[j - 1];
            topIdx[j] = topIdx[j - 1];
            j--;
          }
          topAbs[j] = a;
          topIdx[j] = i;
        }
        for (let j = 0; j < Math.min(k, n); j++) {
          kept[nKept++] = topIdx[j];
          work[topIdx[j]] = 0;
        }
      });
      base.qdq(work, grid, out, codes);
      for (let j = 0; j < nKept; j++) {
        const i = kept[j];
        out[i] = toFp16(w[i]);
        if (codes) codes[i] = OUTLIER_CODE;
      }
    },
  };
}

/** Input-channel order by descending max|w| over output channels (stable). */
export function reorderPermutation(w: Float32Array, grid: Grid): Int32Array {
  const colMax = new Float64Array(grid.cols);
  for (let r = 0; r < grid.rows; r++) {
    for (let c = 0, i = r * grid.rowStride; c < grid.cols; c++, i += grid.colStride) {
      const a = Math.abs(w[i]);
      if (a > colMax[c]) colMax[c] = a;
    }
  }
  const perm = Int32Array.from({ length: grid.cols }, (_, c) => c);
  return perm.sort((a, b) => colMax[b] - colMax[a] || a - b);
}

/**
 * dst[:, j] = src[:, perm[j]] (forward) or dst[:, perm[j]] = src[:, j] (back), in the grid's own storage order:
 * for in_out a column of the [out, in] view is a contiguous row of the data, copied as a block.
 */
function permuteColumns<T extends Float32Array | Int32Array>(src: T, dst: T, grid: Grid, perm: Int32Array, back: boolean): void {
  const { rows, cols, rowStride: rs, colStride: cs } = grid;
  if (cs === 1) {
    for (let r = 0; r < rows; r++) {
      const o = r * rs;
      if (back) for (let j = 0; j < cols; j++) dst[o + perm[j]] = src[o + j];
      else for (let j = 0; j < cols; j++) dst[o + j] = src[o + perm[j]];
    }
    return;
  }
  for (let j = 0; j < cols; j++) {
    const a = j * cs;
    const b = perm[j] * cs;
    for (let r = 0; r < rows; r++) {
      if (back) dst[b + r * rs] = src[a + r * rs];
      else dst[a + r * rs] = src[b + r * rs];
    }
  }
}

export function withReorder(base: FormatDef): FormatDef {
  return {
    id: `${base.id}+reorder`,
    family: base.family,
    description: `${base.id} on input channels permuted by descending max|w| (permutation stored: ceil(log2 in) bits per input channel)`,
    granularity: base.granularity,
    base: base.id,
    modifier: 'reorder',
    bits: (grid) => base.bits(grid) + (grid.rows > 0 ? ceilLog2(grid.cols) * grid.cols : 0),
    qdq(w, grid, out, codes) {
      const perm = reorderPermutation(w, grid);
      const permuted = new Float32Array(w.length);
      permuteColumns(w, permuted, grid, perm, false);
      const deq = new Float32Array(w.length);
      const pcodes = codes ? new Int32Array(w.length) : undefined;
      base.qdq(permuted, grid, deq, pcodes);
      permuteColumns(deq, out, grid, perm, true);
      if (codes && pcodes) permuteColumns(pcodes, codes, grid, perm, true);
    },
  };
}
