// OCP Microscaling (MX) v1.0: mxfp4, mxfp6_e3m2, mxfp6_e2m3, mxfp8_e4m3, mxfp8_e5m2, mxint8.
// Spec facts used (OCP Microscaling Formats (MX) Specification v1.0, Sept. 2023: the format tables and the
// conversion algorithm, reproduced as Algorithm 1 in arXiv:2310.10537):
// - a block of k = 32 elements shares one E8M0 scale X = 2^shared_exp (8 bits, bias 127, 2^−127..2^127);
// - shared_exp = floor(log2(max_i |V_i|)) − emax_elem, emax_elem = exponent of the element type's largest normal
//   (E2M1 2, E2M3 2, E3M2 4, E4M3 8, E5M2 15, INT8 0);
// - P_i = quantize_to_element_format(V_i / X), normal values beyond the element range clamped to its max normal;
// - MXINT8 elements are 8-bit two's complement with an implicit scale 2^−6 (values −2 … 1 63/64).
// Rounding: round half to even. shared_exp below −127 is clamped to −127 (only blocks with amax < 2^−119 reach it;
// fp32 input cannot exceed the upper end). An all-zero block dequantizes to zeros.
// Bits: element bits + 8 per block of 32 (a partial last block pays a full scale).
import type { FormatDef } from './define';
import { groupCount, mapGroups } from './grid';
import * as fp from './fp';
import { E2M1, type Minifloat } from './minifloat';
import * as roundTables from './round-table';
import * as rounding from './rounding';

// Module-level aliases: under CommonJS transpilation (tsx) every use of an imported binding is a getter call,
// too slow inside per-element and per-block loops.
const { MAGIC, pow2Floor } = rounding;
const { absMax, qdqMinifloatRun } = fp;
const { roundTable } = roundTables;

export const MX_BLOCK = 32;

const MIN_SCALE = 2 ** -127;

/** X = 2^shared_exp for a block with this amax (> 0); `unit` = 2^−emax_elem. */
function mxScale(amax: number, unit: number): number {
  const x = pow2Floor(amax) * unit;
  return x < MIN_SCALE ? MIN_SCALE : x;
}

function qdqMxIntRun(w: Float32Array, out: Float32Array, codes: Int32Array | undefined, off: number, n: number): void {
  const amax = absMax(w, off, n);
  const end = off + n;
  const step = amax > 0 ? mxScale(amax, 1) / 64 : 0; // value of one int8 code step
  const inv = step > 0 ? 1 / step : 0;
  for (let i = off; i < end; i++) {
    let x = w[i] * inv; // exact: step is a power of two
    x = x < -128 ? -128 : x > 127 ? 127 : x;
    const q = x + MAGIC - MAGIC;
    out[i] = q * step;
    if (codes) codes[i] = q;
  }
}

/** 2^k for k in −150 … 150, by k + 150. */
const POW2 = Float64Array.from({ length: 301 }, (_, i) => 2 ** (i - 150));

/**
 * MX minifloat blocks of a contiguous run, on the float32 bit patterns. The scale 2^k is a power of two, so w/2^k
 * is w with its exponent lowered by k: the rounding-table index moves by k << binadeBits, the bits below it do not
 * change, and results equal qdqMinifloatRun with that scale bit for bit. Indices pushed below 0 are values under
 * 2^−126, which round to 0 in every element type. The block amax comes from an integer max of the patterns (the
 * same order as |w| for finite floats).
 */
function qdqMxMinifloatRun(w: Float32Array, bits: Uint32Array, out: Float32Array, codes: Int32Array | undefined, off: number, n: number, elem: Minifloat): void {
  const { shift, low, up, tie, value, signShift, binadeBits } = roundTable(elem, 'f32');
  const emax = elem.emax;
  // Float32 subnormal elements have no implicit bit, so shifting their index is wrong; below 2^−126 they scale to
  // under 2^(−126−k), which rounds to 0 (as the shifted index does) while that is below half the element's
  // smallest step 2^(−bias−m): k ≥ bias + m − 126. Blocks with smaller scales (amax around 2^−120) take the
  // double path.
  const safeK = elem.bias + elem.mbits - 126;
  const end = off + n;
  for (let b0 = off; b0 < end; b0 += MX_BLOCK) {
    const b1 = Math.min(end, b0 + MX_BLOCK);
    let m = 0;
    for (let i = b0; i < b1; i++) m = Math.max(m, bits[i] & 0x7fffffff);
    if (m === 0) {
      for (let i = b0; i < b1; i++) {
        out[i] = 0;
        if (codes) codes[i] = (bits[i] >>> 31) << signShift;
      }
      continue;
    }
    const k = Math.max((m >>> 23) - 127 - emax, -127);
    if (k < safeK) {
      qdqMinifloatRun(w, out, codes, b0, b1 - b0, elem, mxScale(absMax(w, b0, b1 - b0), 2 ** -emax));
      continue;
    }
    const scale = POW2[k + 150];
    const move = k << binadeBits;
    for (let i = b0; i < b1; i++) {
      const b = bits[i];
      const mag = b & 0x7fffffff;
      const idx = Math.max((mag >>> shift) - move, 0);
      const c = ((mag & low) === 0 ? tie[idx] : up[idx]) | ((b >>> 31) << signShift);
      out[i] = value[c] * scale;
      if (codes) codes[i] = c;
    }
  }
}

export function mxDef(elem: Minifloat | 'int8'): FormatDef {
  const isInt = elem === 'int8';
  const name = isInt ? 'mxint8' : elem === E2M1 ? 'mxfp4' : `mxfp${elem.bits}_${elem.name}`;
  const bits = isInt ? 8 : elem.bits;
  const what = isInt ? 'INT8 elements (two\'s complement ×2^-6, emax 0)' : `FP${elem.bits} ${elem.name.toUpperCase()} elements (emax ${elem.emax}, saturating at ±${elem.maxFinite})`;
  return {
    id: name,
    family: 'mx',
    description: `OCP MX v1.0: blocks of 32 along the input axis, E8M0 scale 2^(floor(log2 amax)-emax), ${what}, round half to even`,
    granularity: MX_BLOCK,
    bits: (grid) => bits * grid.numel + 8 * groupCount(grid, MX_BLOCK),
    qdq(w, grid, out, codes) {
      if (isInt) return mapGroups(w, out, codes, grid, MX_BLOCK, qdqMxIntRun);
      // Whole rows per call (the kernel walks its blocks): per-block calls cost more than the block's work.
      let cached: Float32Array | undefined;
      let view: Uint32Array | undefined;
      mapGroups(w, out, codes, grid, Math.max(grid.cols, 1), (src, dst, c, off, n) => {
        if (src !== cached) view = new Uint32Array(src.buffer, src.byteOffset, src.length);
        cached = src;
        qdqMxMinifloatRun(src, view!, dst, c, off, n, elem);
      });
    },
  };
}
