// Round-half-to-even primitives shared by every format (Math.round rounds halves up, which biases codes).

/** 1.5·2^52: adding and subtracting it rounds a double to an integer, ties to even (IEEE default rounding). */
export const MAGIC = 6755399441055744;

/**
 * Round half to even. Kernels inline `x + MAGIC - MAGIC` after clamping |x| far below 2^51; this guarded form is
 * for everything else (beyond 2^51 every double is already an integer).
 */
export function roundHalfEven(x: number): number {
  if (!(Math.abs(x) < 2251799813685248)) return x;
  return x + MAGIC - MAGIC;
}

// Exponent extraction through the bits of a double (exact, unlike Math.log2 near powers of two).
const F64 = new Float64Array(1);
const U32 = new Uint32Array(F64.buffer);
/** Index of a double's high 32-bit word in a Uint32Array view (little-endian: 1). */
export const HI_WORD = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;
const HI = HI_WORD;

// 2^(e − 1023) for every biased double exponent e (0 for e = 0): reading the exponent and looking the power up
// avoids writing narrow words into the double, which would stall store-to-load forwarding on every element.
const POW2_BY_BIASED_EXP = Float64Array.from({ length: 2048 }, (_, e) => (e === 0 ? 0 : 2 ** (e - 1023)));

/** 2^floor(log2 a) for a positive normal double a; 0 for 0 and subnormal doubles. */
export function pow2Floor(a: number): number {
  F64[0] = a;
  return POW2_BY_BIASED_EXP[(U32[HI] >>> 20) & 0x7ff];
}

/** floor(log2 a) for a positive finite a (fp32 subnormals included: they are normal as doubles). */
export function exponentOf(a: number): number {
  F64[0] = a;
  return ((U32[HI] >>> 20) & 0x7ff) - 1023;
}
