// <base>+had<h>: block Hadamard rotation along the input axis (MR-GPTQ style). Each full run of h input-axis
// elements of a row is multiplied by the normalized Walsh–Hadamard matrix H = H_h/√h (Sylvester order; orthonormal
// and symmetric, so H·H = I), the base format quantizes the rotated tensor, and H is applied again to map back.
// A row tail shorter than h (input length not a multiple of h) is quantized unrotated. No extra bits: a kernel
// that consumes the rotated weights applies H to its activations instead.
import type { FormatDef } from './define';
import { type Grid, mapGroups } from './grid';

/** In-place normalized fast Walsh–Hadamard transform of x (length a power of two). */
export function hadamardTransform(x: Float64Array): void {
  const h = x.length;
  for (let len = 1; len < h; len <<= 1) {
    for (let i = 0; i < h; i += len << 1) {
      for (let j = i; j < i + len; j++) {
        const a = x[j];
        const b = x[j + len];
        x[j] = a + b;
        x[j + len] = a - b;
      }
    }
  }
  const s = 1 / Math.sqrt(h);
  for (let i = 0; i < h; i++) x[i] *= s;
}

/** dst = src with every full h-block of every row rotated by H (a shorter row tail copied unchanged). */
function rotateBlocks(src: Float32Array, dst: Float32Array, grid: Grid, h: number, buf: Float64Array): void {
  mapGroups(src, dst, undefined, grid, h, (s, d, _codes, off, n) => {
    if (n < h) {
      for (let i = off; i < off + n; i++) d[i] = s[i];
      return;
    }
    for (let j = 0; j < h; j++) buf[j] = s[off + j];
    hadamardTransform(buf);
    for (let j = 0; j < h; j++) d[off + j] = buf[j];
  });
}

export function withHadamard(base: FormatDef, h: number): FormatDef {
  return {
    id: `${base.id}+had${h}`,
    family: base.family,
    description: `${base.id} after a normalized ${h}x${h} Walsh-Hadamard rotation of each block of ${h} input channels (rotated back after dequantization; no extra bits)`,
    granularity: base.granularity,
    base: base.id,
    modifier: 'hadamard',
    bits: (grid) => base.bits(grid),
    qdq(w, grid, out, codes) {
      const buf = new Float64Array(h);
      const rotated = new Float32Array(w.length);
      rotateBlocks(w, rotated, grid, h, buf);
      const deq = new Float32Array(w.length);
      base.qdq(rotated, grid, deq, codes);
      rotateBlocks(deq, out, grid, h, buf);
    },
  };
}
