// Integer codes + dequantized values → the tensors of an ONNX DequantizeLinear (opset 21): the stored codes, one
// scale per group and (asymmetric formats) one zero point per group, laid out as the ONNX spec asks for blocked
// quantization (scale shape = the weight's shape with the blocked axis divided by block_size, rounded up) or
// per-axis quantization (1-D scale along the output axis).
//
// The scales are not recomputed from the weights: they are recovered from what the format produced, d = (c − z)·s,
// and every element is checked to dequantize back bit-exactly in float32 (products of small integers and fp16
// scales are exact). A tensor that fails the check is not packed (the caller writes it fake-quantized instead).
import type { WeightLayout } from '../formats/types';
import type { NumberFormat } from '../quant';
import { gridOf, type Grid } from '../quant/grid';

export type CodeType = 'int4' | 'uint4' | 'int8' | 'uint8';

export interface PackedWeight {
  /** Element type of the codes (and of the zero points). */
  type: CodeType;
  /** Codes in the weight's flat storage order, over `dims`. */
  codes: Int32Array;
  /** Shape of the stored codes: the weight's shape, or its [out, in·…] view for conv/out_in weights of rank > 2. */
  dims: number[];
  scales: Float32Array;
  scaleDims: number[];
  /** Present for asymmetric formats (same shape as the scales). */
  zeros?: Int32Array;
  axis: number;
  /** Absent for per-axis (one scale per output channel) quantization. */
  blockSize?: number;
}

export interface IntFormatInfo {
  bits: number;
  signed: boolean;
  /** Group length along the input axis, or 'channel'. */
  group: number | 'channel';
}

/** Bits, signedness and grouping of a plain integer format (no modifiers); undefined for any other format. */
export function intFormatInfo(f: NumberFormat): IntFormatInfo | undefined {
  const m = /^int(\d+)_(?:ch|g(\d+))_(sym|asym)$/.exec(f.id);
  if (!m || f.family !== 'int' || f.modifier !== undefined) return undefined;
  return { bits: Number(m[1]), signed: m[3] === 'sym', group: m[2] === undefined ? 'channel' : Number(m[2]) };
}

/** Why the weight cannot be stored as DequantizeLinear codes, or undefined when it can. */
export function packable(f: NumberFormat, shape: readonly number[], layout: WeightLayout): string | undefined {
  const info = intFormatInfo(f);
  if (!info) return `${f.id} is not a plain integer format (onnxruntime has no kernel for it)`;
  if (info.bits > 8) return `${info.bits}-bit codes do not fit an 8-bit container`;
  if (layout === 'in_out' && shape.length !== 2) return `an [in, out] weight of rank ${shape.length} has no single blocked axis`;
  if (layout !== 'in_out' && layout !== 'out_in' && layout !== 'conv') return `layout ${layout} is not a weight matrix`;
  return undefined;
}

/** The scale and zero point of one group, or undefined when no (s, z) reproduces every element exactly. */
function groupParams(deq: Float32Array, codes: Int32Array, idx: Int32Array, n: number, signed: boolean, qmax: number): [number, number] | undefined {
  const c0 = codes[idx[0]];
  const d0 = deq[idx[0]];
  let s = NaN;
  let z = 0;
  if (signed) {
    for (let k = 0; k < n && Number.isNaN(s); k++) if (codes[idx[k]] !== 0) s = deq[idx[k]] / codes[idx[k]];
    if (Number.isNaN(s)) s = 0;
  } else {
    let k = 1;
    while (k < n && codes[idx[k]] === c0) k++;
    if (k < n) {
      s = (deq[idx[k]] - d0) / (codes[idx[k]] - c0);
      z = Math.round(c0 - d0 / s);
    } else if (d0 === 0) {
      [s, z] = [0, c0];
    } else {
      // One distinct code: any zero point that reproduces the value exactly will do.
      for (z = 0; z <= qmax && Number.isNaN(s); z++) {
        const t = Math.fround(d0 / (c0 - z));
        if (c0 !== z && Math.fround((c0 - z) * t) === d0) s = t;
      }
      z--;
    }
  }
  s = Math.fround(s);
  if (!Number.isFinite(s) || z < 0 || z > qmax) return undefined;
  for (let k = 0; k < n; k++) {
    const i = idx[k];
    if (Math.fround((codes[i] - z) * s) !== deq[i]) return undefined;
  }
  return [s, z];
}

/**
 * Packs a weight quantized with `info` (values `deq`, codes as the formats module reports them: signed q for
 * symmetric, q + zero for asymmetric formats) for DequantizeLinear; undefined when the values are not exactly
 * codes × group scales.
 */
export function packWeight(deq: Float32Array, codes: Int32Array, shape: readonly number[], layout: WeightLayout, info: IntFormatInfo): PackedWeight | undefined {
  const grid: Grid = gridOf(shape, layout);
  const { rows, cols, rowStride, colStride } = grid;
  const g = info.group === 'channel' ? Math.max(cols, 1) : info.group;
  const nb = Math.ceil(cols / g);
  const qmax = info.signed ? 0 : 2 ** info.bits - 1;
  const scales = new Float32Array(rows * nb);
  const zeros = info.signed ? undefined : new Int32Array(rows * nb);
  const inOut = layout === 'in_out';
  const idx = new Int32Array(g);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < nb; b++) {
      const c0 = b * g;
      const n = Math.min(g, cols - c0);
      for (let k = 0; k < n; k++) idx[k] = r * rowStride + (c0 + k) * colStride;
      const p = groupParams(deq, codes, idx, n, info.signed, qmax);
      if (!p) return undefined;
      // Blocked scales follow the weight's axes: [blocks, out] for [in, out], [out, blocks] otherwise.
      const at = inOut ? b * rows + r : r * nb + b;
      scales[at] = p[0];
      if (zeros) zeros[at] = p[1];
    }
  }
  const type: CodeType = info.bits <= 4 ? (info.signed ? 'int4' : 'uint4') : info.signed ? 'int8' : 'uint8';
  const dims = inOut ? [...shape] : [rows, cols];
  const perAxis = info.group === 'channel';
  const axis = inOut ? (perAxis ? 1 : 0) : perAxis ? 0 : 1;
  const scaleDims = perAxis ? [rows] : inOut ? [nb, rows] : [rows, nb];
  return { type, codes, dims, scales, scaleDims, zeros, axis, ...(perAxis ? {} : { blockSize: g }) };
}

/** Two 4-bit codes per byte, the first in the low nibble (ONNX int4/uint4 storage). */
export function packNibbles(codes: Int32Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(codes.length / 2));
  for (let i = 0; i < codes.length; i++) out[i >> 1] |= (codes[i] & 15) << ((i & 1) * 4);
  return out;
}
