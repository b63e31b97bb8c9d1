// Generic ExMy element codec: round to nearest, ties to even; saturating at the largest finite magnitude;
// subnormals kept. Used for FP8/FP6/FP4 elements, MX elements, NVFP4 block scales and fp16 scales.
import * as rounding from './rounding';

// Module-level aliases: under CommonJS transpilation (tsx) every use of an imported binding is a getter call,
// too slow inside per-element loops.
const { exponentOf, MAGIC, pow2Floor } = rounding;

export interface Minifloat {
  name: string;
  ebits: number;
  mbits: number;
  bias: number;
  /** Largest finite magnitude: saturation target (E4M3 448: S.1111.111 is NaN; E5M2 57344: exponent 31 is Inf/NaN). */
  maxFinite: number;
  /** Exponent of the largest normal binade: the MX spec's emax_elem. */
  emax: number;
  /** 2^(1 − bias): smallest normal magnitude. */
  minNormal: number;
  /** 2^(1 − bias − m): subnormal spacing = smallest positive value. */
  minQuantum: number;
  /** 2^−m: spacing of a binade relative to its lower bound. */
  ulpScale: number;
  /** Storage bits (sign + exponent + mantissa). */
  bits: number;
}

function minifloat(name: string, ebits: number, mbits: number, maxFinite: number): Minifloat {
  const bias = 2 ** (ebits - 1) - 1;
  return {
    name,
    ebits,
    mbits,
    bias,
    maxFinite,
    emax: exponentOf(maxFinite),
    minNormal: 2 ** (1 - bias),
    minQuantum: 2 ** (1 - bias - mbits),
    ulpScale: 2 ** -mbits,
    bits: 1 + ebits + mbits,
  };
}

// OCP 8-bit Floating Point spec v1.0 (E4M3 has no Inf; max 448) and the OCP MX v1.0 element types (FP6, FP4: no Inf/NaN).
export const E4M3 = minifloat('e4m3', 4, 3, 448);
export const E5M2 = minifloat('e5m2', 5, 2, 57344);
export const E3M2 = minifloat('e3m2', 3, 2, 28);
export const E2M3 = minifloat('e2m3', 2, 3, 7.5);
export const E2M1 = minifloat('e2m1', 2, 1, 6);
/** IEEE binary16, used for stored scales; saturates at 65504 instead of overflowing to Inf. */
export const FP16 = minifloat('fp16', 5, 10, 65504);

/**
 * x rounded to the nearest value of `f` (ties to even), |result| ≤ maxFinite. x must be finite.
 * Clamping before rounding is equivalent to saturating after it because maxFinite is on the grid. The rounding
 * works on the signed value (it is symmetric), so no branch depends on the sign; a result of 0 is +0.
 */
export function roundMinifloat(f: Minifloat, x: number): number {
  const m = f.maxFinite;
  const v = x > m ? m : x < -m ? -m : x;
  let q = pow2Floor(Math.abs(v)) * f.ulpScale; // spacing of v's binade
  if (q < f.minQuantum) q = f.minQuantum; // subnormal range: fixed spacing
  const c = q * MAGIC; // adding c rounds to a multiple of q, ties to even (|v| < 2^51·q always)
  return v + c - c;
}

/** Bit pattern (sign | exponent field | mantissa) of a magnitude `a` that is on the grid of `f`. */
export function minifloatCode(f: Minifloat, a: number, negative: boolean): number {
  let bits: number;
  if (a < f.minNormal) bits = a / f.minQuantum;
  else {
    const e = exponentOf(a);
    bits = ((e + f.bias) << f.mbits) | (a * 2 ** (f.mbits - e) - 2 ** f.mbits);
  }
  return negative ? bits | (1 << (f.ebits + f.mbits)) : bits;
}

/** Round to fp16 (saturating): how every fp16 scale is stored. */
export function toFp16(x: number): number {
  return roundMinifloat(FP16, x);
}
