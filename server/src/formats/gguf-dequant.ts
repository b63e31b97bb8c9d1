// ggml tensor types: the element/byte size of every block type (so any GGUF tensor's byte range can be
// validated) and dequantizers for the common ones. Block layouts follow ggml-common.h (`block_q4_0`, …,
// `block_q6_K`); the decoding follows ggml's reference `dequantize_row_*` definitions, evaluated in double
// precision and rounded once to float32.
import { f16Lookup } from './dtypes';
import type { DType } from './types';

/** Decode `nBlocks` consecutive blocks from `src` into `out` (nBlocks × blockSize floats from index 0). */
export type Dequantizer = (src: Uint8Array, nBlocks: number, out: Float32Array) => void;

export interface GgmlType {
  id: number;
  /** ggml's name (`Q4_K`, `IQ2_XXS`, `F16`, …). */
  name: string;
  /** Our dtype: the ggml name, or `UNKNOWN_<id>` for types newer than the shared DType vocabulary. */
  dtype: DType;
  /** Elements per block (1 for plain element types). */
  blockSize: number;
  /** Bytes per block. */
  typeSize: number;
  /** Stored in blocks with shared scales (vs plain elements). */
  blocked: boolean;
  /** Present for the block types we can decode; plain types decode through `decodePlain`. */
  dequantize?: Dequantizer;
}

const QK_K = 256;

let f16: Float32Array | undefined;
/** fp16 at byte `o` of `b` (little-endian). */
const half = (b: Uint8Array, o: number): number => (f16 ??= f16Lookup())[b[o] | (b[o + 1] << 8)];

/** Q4_0: d, 16 bytes of nibbles; low nibbles are elements 0..15, high nibbles 16..31; x = (q − 8)·d. */
function dequantQ4_0(src: Uint8Array, nb: number, out: Float32Array): void {
  for (let i = 0, o = 0, y = 0; i < nb; i++, o += 18, y += 32) {
    const d = half(src, o);
    for (let j = 0; j < 16; j++) {
      const q = src[o + 2 + j];
      out[y + j] = ((q & 15) - 8) * d;
      out[y + j + 16] = ((q >> 4) - 8) * d;
    }
  }
}

/** Q4_1: d, m, nibbles as Q4_0; x = q·d + m. */
function dequantQ4_1(src: Uint8Array, nb: number, out: Float32Array): void {
  for (let i = 0, o = 0, y = 0; i < nb; i++, o += 20, y += 32) {
    const d = half(src, o);
    const m = half(src, o + 2);
    for (let j = 0; j < 16; j++) {
      const q = src[o + 4 + j];
      out[y + j] = (q & 15) * d + m;
      out[y + j + 16] = (q >> 4) * d + m;
    }
  }
}

/** Fifth bits of Q5 blocks: a little-endian u32 whose bit j belongs to element j. */
const u32At = (b: Uint8Array, o: number): number => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;

/** Q5_0: d, qh (u32), nibbles; q = nibble | bit·16; x = (q − 16)·d. */
function dequantQ5_0(src: Uint8Array, nb: number, out: Float32Array): void {
  for (let i = 0, o = 0, y = 0; i < nb; i++, o += 22, y += 32) {
    const d = half(src, o);
    const qh = u32At(src, o + 2);
    for (let j = 0; j < 16; j++) {
      const q = src[o + 6 + j];
      out[y + j] = (((q & 15) | (((qh >>> j) & 1) << 4)) - 16) * d;
      out[y + j + 16] = (((q >> 4) | (((qh >>> (j + 16)) & 1) << 4)) - 16) * d;
    }
  }
}

/** Q5_1: d, m, qh, nibbles; x = q·d + m. */
function dequantQ5_1(src: Uint8Array, nb: number, out: Float32Array): void {
  for (let i = 0, o = 0, y = 0; i < nb; i++, o += 24, y += 32) {
    const d = half(src, o);
    const m = half(src, o + 2);
    const qh = u32At(src, o + 4);
    for (let j = 0; j < 16; j++) {
      const q = src[o + 8 + j];
      out[y + j] = ((q & 15) | (((qh >>> j) & 1) << 4)) * d + m;
      out[y + j + 16] = ((q >> 4) | (((qh >>> (j + 16)) & 1) << 4)) * d + m;
    }
  }
}

/** Q8_0: d, 32 int8; x = q·d. */
function dequantQ8_0(src: Uint8Array, nb: number, out: Float32Array): void {
  for (let i = 0, o = 0, y = 0; i < nb; i++, o += 34, y += 32) {
    const d = half(src, o);
    for (let j = 0; j < 32; j++) out[y + j] = ((src[o + 2 + j] << 24) >> 24) * d;
  }
}

// K-quants: super-blocks of QK_K = 256 elements split into 16- or 32-element sub-blocks with their own scales.

/** Decode `nb` super-blocks of `size` bytes: `decode(o, y)` for each, with its byte offset and first element. */
function eachSuperBlock(nb: number, size: number, decode: (o: number, y: number) => void): void {
  for (let i = 0; i < nb; i++) decode(i * size, i * QK_K);
}

/**
 * The 2-bit walk of Q2_K and Q3_K: each 128-element half h reads its 32 qs bytes (from `qs`) four times, 2-bit
 * shifts 0, 2, 4, 6; element l of part p of pass j belongs to 16-element sub-block s = 8h + 2j + p and decodes to
 * dl[s]·q − ml[s]. Q3_K's third bit (hmask at byte `hm` ≥ 0) is bit 4h + j of hmask[16p + l]; when clear, q is
 * lowered by 4. (The element loop is written twice so that Q2_K does not pay for the bit it lacks.)
 */
function twoBitK(src: Uint8Array, qs: number, hm: number, y: number, dl: Float64Array, ml: Float64Array, out: Float32Array): void {
  for (let h = 0; h < 2; h++) {
    const q0 = qs + 32 * h;
    for (let j = 0; j < 4; j++) {
      const shift = 2 * j;
      const bit = 4 * h + j;
      for (let part = 0; part < 2; part++) {
        const s = 8 * h + 2 * j + part;
        const d = dl[s];
        const m = ml[s];
        const base = y + 128 * h + 32 * j + 16 * part;
        const at = q0 + 16 * part;
        if (hm < 0) for (let l = 0; l < 16; l++) out[base + l] = d * ((src[at + l] >> shift) & 3) - m;
        else {
          const hat = hm + 16 * part;
          // Branch-free: q2 − 4 + 4·hbit (the bits are noise-like, so a branch would mispredict half the time).
          for (let l = 0; l < 16; l++) out[base + l] = d * (((src[at + l] >> shift) & 3) - 4 + (((src[hat + l] >> bit) & 1) << 2)) - m;
        }
      }
    }
  }
}

/** Q2_K (84 bytes): scales[16] (low nibble scale, high nibble min), qs[64], d, dmin. x = d·(sc & 15)·q − dmin·(sc >> 4). */
function dequantQ2_K(src: Uint8Array, nb: number, out: Float32Array): void {
  const dl = new Float64Array(16);
  const ml = new Float64Array(16);
  eachSuperBlock(nb, 84, (o, y) => {
    const d = half(src, o + 80);
    const dmin = half(src, o + 82);
    for (let s = 0; s < 16; s++) {
      dl[s] = d * (src[o + s] & 15);
      ml[s] = dmin * (src[o + s] >> 4);
    }
    twoBitK(src, o + 16, -1, y, dl, ml, out);
  });
}

/**
 * Q3_K (110 bytes): hmask[32], qs[64], scales[12], d; x = d·scale·q. The 16 scales are 6-bit, offset by 32:
 * low 4 bits in the nibbles of bytes 0..7 (scale s < 8: low nibble of byte s; s ≥ 8: high nibble of byte s − 8),
 * high 2 bits at bit 2·(s >> 2) of byte 8 + (s & 3).
 */
function dequantQ3_K(src: Uint8Array, nb: number, out: Float32Array): void {
  const dl = new Float64Array(16);
  const noMin = new Float64Array(16);
  eachSuperBlock(nb, 110, (o, y) => {
    const d = half(src, o + 108);
    const sb = o + 96;
    for (let s = 0; s < 16; s++) {
      const low = s < 8 ? src[sb + s] & 15 : src[sb + s - 8] >> 4;
      const high = (src[sb + 8 + (s & 3)] >> (2 * (s >> 2))) & 3;
      dl[s] = d * ((low | (high << 4)) - 32);
    }
    twoBitK(src, o + 32, o, y, dl, noMin, out);
  });
}

/**
 * The 6-bit (scale, min) pair of sub-block j in a Q4_K/Q5_K `scales[12]` at `p`: j < 4 keeps both in the low
 * 6 bits of bytes j and j + 4; j ≥ 4 takes the low 4 bits from the nibbles of byte j + 4 and the high 2 bits
 * from the top bits of bytes j − 4 (scale) and j (min).
 */
function scaleMinK4(src: Uint8Array, p: number, j: number, into: Int32Array): void {
  if (j < 4) {
    into[0] = src[p + j] & 63;
    into[1] = src[p + j + 4] & 63;
  } else {
    into[0] = (src[p + j + 4] & 15) | ((src[p + j - 4] >> 6) << 4);
    into[1] = (src[p + j + 4] >> 4) | ((src[p + j] >> 6) << 4);
  }
}

/**
 * Q4_K (144 bytes: d, dmin, scales[12], qs[128]) and Q5_K (176 bytes: the same with qh[32] before qs) in the
 * super-block at byte `o`: each 64-element chunk c reads 32 qs bytes: low nibbles are sub-block 2c, high nibbles
 * sub-block 2c + 1; Q5_K's fifth bit (qh at byte `hm` ≥ 0) is bit 2c (low) / 2c + 1 (high) of qh[l].
 * x = d·sc·q − dmin·m. (The element loop is written twice so that Q4_K does not pay for the bit it lacks.)
 */
function nibbleK(src: Uint8Array, o: number, qsAt: number, hm: number, y: number, a: Int32Array, b: Int32Array, out: Float32Array): void {
  const d = half(src, o);
  const dmin = half(src, o + 2);
  for (let c = 0; c < 4; c++) {
    scaleMinK4(src, o + 4, 2 * c, a);
    scaleMinK4(src, o + 4, 2 * c + 1, b);
    const d1 = d * a[0], m1 = dmin * a[1], d2 = d * b[0], m2 = dmin * b[1];
    const b1 = 2 * c;
    const qs = o + qsAt + 32 * c;
    const base = y + 64 * c;
    if (hm < 0) {
      for (let l = 0; l < 32; l++) {
        const q = src[qs + l];
        out[base + l] = d1 * (q & 15) - m1;
        out[base + 32 + l] = d2 * (q >> 4) - m2;
      }
    } else {
      for (let l = 0; l < 32; l++) {
        const q = src[qs + l];
        const hb = src[hm + l];
        out[base + l] = d1 * ((q & 15) | (((hb >> b1) & 1) << 4)) - m1;
        out[base + 32 + l] = d2 * ((q >> 4) | (((hb >> (b1 + 1)) & 1) << 4)) - m2;
      }
    }
  }
}

function dequantQ4_K(src: Uint8Array, nb: number, out: Float32Array): void {
  const a = new Int32Array(2);
  const b = new Int32Array(2);
  eachSuperBlock(nb, 144, (o, y) => nibbleK(src, o, 16, -1, y, a, b, out));
}

function dequantQ5_K(src: Uint8Array, nb: number, out: Float32Array): void {
  const a = new Int32Array(2);
  const b = new Int32Array(2);
  eachSuperBlock(nb, 176, (o, y) => nibbleK(src, o, 48, o + 16, y, a, b, out));
}

/**
 * Q6_K (210 bytes): ql[128], qh[64], scales int8[16], d. Per 128-element half h: ql bytes 64h.., qh bytes 32h..;
 * for l < 32 the four elements l, l+32, l+64, l+96 take the low nibble of ql[l], low nibble of ql[l+32], high
 * nibble of ql[l], high nibble of ql[l+32], with qh[l] bits (0-1, 2-3, 4-5, 6-7) on top; q − 32 times
 * d·scales[e >> 4].
 */
function dequantQ6_K(src: Uint8Array, nb: number, out: Float32Array): void {
  eachSuperBlock(nb, 210, (o, y) => {
    const d = half(src, o + 208);
    for (let h = 0; h < 2; h++) {
      const ql = o + 64 * h;
      const qh = o + 128 + 32 * h;
      const sc = o + 192 + 8 * h;
      for (let is = 0; is < 2; is++) {
        const s0 = ((src[sc + is] << 24) >> 24) * d;
        const s2 = ((src[sc + is + 2] << 24) >> 24) * d;
        const s4 = ((src[sc + is + 4] << 24) >> 24) * d;
        const s6 = ((src[sc + is + 6] << 24) >> 24) * d;
        for (let l = 16 * is; l < 16 * is + 16; l++) {
          const lo = src[ql + l];
          const hi = src[ql + l + 32];
          const hb = src[qh + l];
          const e = y + 128 * h + l;
          out[e] = s0 * (((lo & 15) | ((hb & 3) << 4)) - 32);
          out[e + 32] = s2 * (((hi & 15) | (((hb >> 2) & 3) << 4)) - 32);
          out[e + 64] = s4 * (((lo >> 4) | (((hb >> 4) & 3) << 4)) - 32);
          out[e + 96] = s6 * (((hi >> 4) | (((hb >> 6) & 3) << 4)) - 32);
        }
      }
    }
  });
}

// [id, ggml name, block size, bytes per block, dequantizer]. Ids 4, 5 (Q4_2/Q4_3) and 31..33, 36..38 (repacked
// variants) were removed from ggml and never appear in GGUF files.
type Row = [number, Exclude<DType, `UNKNOWN_${string}`>, number, number, Dequantizer?];
const ROWS: Row[] = [
  [0, 'F32', 1, 4], [1, 'F16', 1, 2], [28, 'F64', 1, 8], [30, 'BF16', 1, 2],
  [24, 'I8', 1, 1], [25, 'I16', 1, 2], [26, 'I32', 1, 4], [27, 'I64', 1, 8],
  [2, 'Q4_0', 32, 18, dequantQ4_0], [3, 'Q4_1', 32, 20, dequantQ4_1],
  [6, 'Q5_0', 32, 22, dequantQ5_0], [7, 'Q5_1', 32, 24, dequantQ5_1],
  [8, 'Q8_0', 32, 34, dequantQ8_0], [9, 'Q8_1', 32, 36],
  [10, 'Q2_K', QK_K, 84, dequantQ2_K], [11, 'Q3_K', QK_K, 110, dequantQ3_K],
  [12, 'Q4_K', QK_K, 144, dequantQ4_K], [13, 'Q5_K', QK_K, 176, dequantQ5_K],
  [14, 'Q6_K', QK_K, 210, dequantQ6_K], [15, 'Q8_K', QK_K, 292],
  [16, 'IQ2_XXS', QK_K, 66], [17, 'IQ2_XS', QK_K, 74], [18, 'IQ3_XXS', QK_K, 98],
  [19, 'IQ1_S', QK_K, 50], [20, 'IQ4_NL', 32, 18], [21, 'IQ3_S', QK_K, 110],
  [22, 'IQ2_S', QK_K, 82], [23, 'IQ4_XS', QK_K, 136], [29, 'IQ1_M', QK_K, 56],
  [34, 'TQ1_0', QK_K, 54], [35, 'TQ2_0', QK_K, 66], [39, 'MXFP4', 32, 17],
  [40, 'NVFP4', 64, 36], [41, 'Q1_0', 128, 18],
];

/** Every ggml type id a GGUF file may use, with its block geometry. */
export const GGML_TYPES: ReadonlyMap<number, GgmlType> = new Map(
  ROWS.map(([id, name, blockSize, typeSize, dequantize]): [number, GgmlType] => [
    id,
    {
      id,
      name,
      dtype: name,
      blockSize,
      typeSize,
      blocked: blockSize > 1,
      ...(dequantize ? { dequantize } : {}),
    },
  ]),
);
