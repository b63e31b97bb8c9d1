// Block floating point bfp{m}_b{k}: a block of k elements along the input axis shares an 8-bit exponent
// E = floor(log2 amax_block) (clamped to −127…127); each element is sign + (m−1)-bit magnitude M, a fixed-point
// number whose top bit weighs 2^E: value = ±M·2^(E−(m−2)), M = min(rne(|w|/2^(E−(m−2))), 2^(m−1) − 1).
// E.g. bfp8: 1 sign + 7 magnitude bits, step 2^(E−6); the block max lands in [64, 128) steps and saturates at 127.
// An all-zero block dequantizes to zeros. Bits: m per element + 8 per block (a partial last block pays a full one).
import type { FormatDef } from './define';
import * as fp from './fp';
import { groupCount, mapGroups } from './grid';
import * as rounding from './rounding';

// Module-level aliases: under CommonJS transpilation (tsx) every use of an imported binding is a getter call,
// too slow inside per-element and per-block loops.
const { MAGIC, pow2Floor } = rounding;
const { absMax } = fp;
const MIN_TOP = 2 ** -127;

function qdqBfpRun(w: Float32Array, out: Float32Array, codes: Int32Array | undefined, off: number, n: number, m: number): void {
  const amax = absMax(w, off, n);
  // 2^E with E clamped to the 8-bit exponent range −127…127 (fp32 amax < 2^128 never needs the upper clamp).
  const top = amax > 0 ? Math.max(pow2Floor(amax), MIN_TOP) : 0;
  const step = top * 2 ** (2 - m);
  const inv = step > 0 ? 1 / step : 0; // exact: a power of two
  const mmax = 2 ** (m - 1) - 1;
  const end = off + n;
  for (let i = off; i < end; i++) {
    let x = w[i] * inv;
    x = x < -mmax ? -mmax : x > mmax ? mmax : x;
    const q = x + MAGIC - MAGIC;
    out[i] = q * step;
    if (codes) codes[i] = q;
  }
}

export function bfpDef(m: number, block: number): FormatDef {
  return {
    id: `bfp${m}_b${block}`,
    family: 'bfp',
    description: `block floating point: 8-bit shared exponent floor(log2 amax) per block of ${block}, elements sign + ${m - 1}-bit magnitude (step 2^(E-${m - 2})), round half to even, saturating`,
    granularity: block,
    bits: (grid) => m * grid.numel + 8 * groupCount(grid, block),
    qdq(w, grid, out, codes) {
      mapGroups(w, out, codes, grid, block, (src, dst, c, off, n) => qdqBfpRun(src, dst, c, off, n, m));
    },
  };
}
